"""What the customers service publishes and accepts."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.registry import integration_event

CUSTOMER_KINDS = ("individual", "company", "sole_proprietor")
LANGUAGES = ("en", "ru", "fr")
STAFF_ROLES = ("admin", "support", "billing")


@integration_event("customers", "CustomerRegistered")
class CustomerRegistered(Schema):
    id_field = "customer_id"

    customer_id = fields.UUID(required=True)
    number = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    email = fields.Email(required=True)
    username = fields.String(required=True)
    country = fields.String(required=True)
    contact_person = fields.String(required=True)
    company_name = fields.String(load_default=None, allow_none=True)
    language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(load_default=None, allow_none=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    registered_at = fields.AwareDateTime(required=True, format="iso")


@integration_event("customers", "StaffRegistered")
class StaffRegistered(Schema):
    id_field = "staff_id"

    staff_id = fields.UUID(required=True)
    username = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.Email(load_default=None, allow_none=True)
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    language = fields.String(required=True)


# ---- RPC payloads -------------------------------------------------------------------------


class RegisterCustomer(Schema):
    """`customers.register_customer`: what staff (or the order form) give to register."""

    kind = fields.String(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    country = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Use a two-letter ISO 3166 country code."),
    )
    contact_person = fields.String(required=True, validate=validate.Length(min=1, max=200))
    company_name = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    project_id = fields.UUID(load_default=None, allow_none=True)
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))
    username = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9._@+-]{3,64}$",
            error="3 to 64 letters, digits and . _ @ + - only.",
        ),
    )
    password = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=8, max=256)
    )
    registration_ip = fields.String(load_default=None, allow_none=True)


class Login(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
