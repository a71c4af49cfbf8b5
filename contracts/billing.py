"""What the billing service publishes."""

from __future__ import annotations

from marshmallow import Schema, fields

from contracts.registry import integration_event


@integration_event("billing", "AccountOpened")
class AccountOpened(Schema):
    id_field = "account_id"

    account_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    currency = fields.String(required=True)
