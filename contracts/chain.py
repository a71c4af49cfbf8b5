"""What every service publishes about its own log's chain (services/infra/chain.py).

`ChainCheckpointed`: the service's chain of hashes reached `position` (a notification
id of its log) with `hash` (hex SHA-256); `sequence` numbers its checkpoints 1, 2, 3 ...
without gaps, so a service keeping them as witnesses takes them in order. Each service
publishes it under its own name as source.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.fields import Text
from contracts.registry import integration_event

CHECKPOINT_EVENT = "ChainCheckpointed"
# every service that keeps an event log (services.infra.settings.SERVICES)
CHAINED_SERVICES = ("customers", "billing", "orders", "helpdesk", "mailgateway")


class ChainCheckpointed(Schema):
    """A checkpoint of a service's chain, for the other services to keep as witnesses."""

    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    position = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=2**63 - 1)
    )
    hash = Text(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}\Z"))


# one declaration per source, as the registry keys contracts by (source, type)
CHECKPOINT_CONTRACTS: dict[str, type[Schema]] = {
    source: integration_event(source, CHECKPOINT_EVENT)(
        type(f"{source.title()}ChainCheckpointed", (ChainCheckpointed,), {"__module__": __name__})
    )
    for source in CHAINED_SERVICES
}
