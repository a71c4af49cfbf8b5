"""Request and response shapes of the HTTP API (validation and the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from contracts.customers import CUSTOMER_KINDS, LANGUAGES, RegisterCustomer


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.Raw()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)


class MoneySchema(Schema):
    amount = fields.Integer(required=True, strict=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))


class HealthSchema(Schema):
    status = fields.String(validate=validate.OneOf(["ok", "unavailable"]))
    services = fields.Dict(keys=fields.String(), values=fields.String())


class LoginRequest(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class LoginResponse(Schema):
    token = fields.String(required=True)
    kind = fields.String(validate=validate.OneOf(["client", "staff"]))
    customer_id = fields.UUID()
    staff_id = fields.UUID()


class Impersonator(Schema):
    staff_id = fields.UUID()
    name = fields.String()
    role = fields.String()


class MeSchema(Schema):
    kind = fields.String(validate=validate.OneOf(["client", "staff"]))
    staff_id = fields.UUID()
    customer_id = fields.UUID()
    role = fields.String()
    name = fields.String()
    username = fields.String()
    impersonator = fields.Nested(Impersonator)


class StaffRegisterCustomer(RegisterCustomer):
    """POST /api/v1/staff/customers. The registration address is the caller's."""

    class Meta:
        exclude = ("registration_ip",)


class Credentials(Schema):
    username = fields.String()
    password = fields.String()


class CustomerSchema(Schema):
    id = fields.UUID()
    number = fields.Integer()
    kind = fields.String(validate=validate.OneOf(CUSTOMER_KINDS))
    name = fields.String()
    email = fields.Email()
    username = fields.String()
    country = fields.String()
    contact_person = fields.String()
    company_name = fields.String(allow_none=True)
    language = fields.String(validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(allow_none=True)
    currency = fields.String()
    registered_at = fields.DateTime()
    registration_ip = fields.String(allow_none=True)
    version = fields.Integer()
    credentials = fields.Nested(
        Credentials, metadata={"description": "only when generated; shown once"}
    )


class AccountEntry(Schema):
    id = fields.String()
    kind = fields.String()
    amount = fields.Nested(MoneySchema)
    at = fields.DateTime()
    balance_after = fields.Nested(MoneySchema)
    reference = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    actor = fields.Dict(allow_none=True)


class AccountSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    currency = fields.String()
    balance = fields.Nested(MoneySchema)
    entries = fields.List(
        fields.Nested(AccountEntry), metadata={"description": "one page, oldest first"}
    )
    total = fields.Integer(metadata={"description": "entries in all (up to `at`)"})
    page = fields.Integer()
    page_size = fields.Integer()
    at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    opened_at = fields.DateTime()


class ParkedEvent(Schema):
    id = fields.Integer()
    service = fields.String()
    upstream = fields.String()
    position = fields.Integer(allow_none=True)
    type = fields.String(allow_none=True)
    error = fields.String()
    attempts = fields.Integer()
    parked_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolution = fields.String(allow_none=True)
    envelope = fields.Dict()


class ParkedList(Schema):
    items = fields.List(fields.Nested(ParkedEvent))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class OrderCustomer(Schema):
    """Who orders: a new e-mail creates the account; an existing one needs its password."""

    email = fields.Email(required=True)
    password = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=1024)
    )
    kind = fields.String(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    contact_person = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Use a two-letter ISO 3166 country code."),
    )
    company_name = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(load_default=None, allow_none=True)


class OrderRequest(Schema):
    customer = fields.Nested(OrderCustomer, required=True)
    items = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": '[{"product_id", "billing_cycle", "addons"?: [addon_id, ...]}]:'
            " priced from the catalog; an unknown product, cycle or add-on is a 400 naming"
            " items.<n> or items.<n>.addons.<m>"
        },
    )
    promo_code = fields.String(load_default=None, allow_none=True)


class OrderAnswer(Schema):
    order_id = fields.UUID()
    customer_id = fields.UUID()
    invoice_id = fields.UUID()
    credentials = fields.Nested(Credentials)


class MoneyOrList(fields.Field):
    """A price: one money object, or a list of them (one per currency)."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        out = {}
        for item in items:
            loaded = MoneySchema().load(item) if isinstance(item, dict) else None
            if loaded is None:
                raise ValidationError('A price is {"amount": <minor units>, "currency": ...}.')
            out[loaded["currency"]] = loaded["amount"]
        return out


class AddonRequest(Schema):
    """An add-on of a product: name as text or per language; its own prices per cycle (one
    money object or a list of them) and setup fee. Send `id` to keep an existing add-on."""

    id = fields.UUID(load_default=None, allow_none=True)
    name = fields.Raw(required=True)
    prices = fields.Dict(keys=fields.String(), values=MoneyOrList(), required=True)
    setup_fee = MoneyOrList(load_default=None)


class ProductRequest(Schema):
    """A product, as API.md spells it: names and descriptions as text (English) or per
    language ({"en": ..., "fr": ...}); each price one money object or a list of them."""

    name = fields.Raw(required=True)
    description = fields.Raw(load_default=None)
    prices = fields.Dict(keys=fields.String(), values=MoneyOrList(), required=True)
    setup_fee = MoneyOrList(load_default=None)
    project_id = fields.UUID(load_default=None, allow_none=True)
    on_sale = fields.Boolean(load_default=True)
    provisioning = fields.Dict(
        load_default=None,
        metadata={"description": '{"kind": "manual"} or {"kind": "webhook", "url": ...}'},
    )
    addons = fields.List(fields.Nested(AddonRequest), load_default=None)
