"""Request and response shapes of the HTTP API (validation and the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate

from contracts.customers import CUSTOMER_KINDS, LANGUAGES, RegisterCustomer
from contracts.envelope import ActorSchema
from contracts.fields import (
    Amount,
    Body,
    Country,
    Currency,
    Email,
    Json,
    Text,
    Total,
    text_problem,
)
from contracts.orders import CYCLES, OrderItem, Provisioning


class ErrorBody(Schema):
    code = Text(required=True)
    message = Body(required=True)
    fields = fields.Dict(keys=Text(), values=fields.List(Body()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)


class MoneySchema(Schema):
    """Money as the services answer it (a balance may be negative)."""

    amount = Total(required=True)
    currency = Currency(required=True)


class PriceSchema(Schema):
    """A price given: 0 to MAX_AMOUNT minor units in an ISO 4217 currency."""

    amount = Amount(required=True)
    currency = Currency(required=True)


class HealthSchema(Schema):
    status = Text(validate=validate.OneOf(["ok", "unavailable"]))
    services = fields.Dict(keys=Text(), values=Text())


class LoginRequest(Schema):
    username = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, validate=validate.Length(min=1, max=1024))


class LoginResponse(Schema):
    token = Text(required=True)
    kind = Text(validate=validate.OneOf(["client", "staff"]))
    customer_id = fields.UUID()
    staff_id = fields.UUID()


class Impersonator(Schema):
    staff_id = fields.UUID()
    name = Text()
    role = Text()


class MeSchema(Schema):
    kind = Text(validate=validate.OneOf(["client", "staff"]))
    staff_id = fields.UUID()
    customer_id = fields.UUID()
    role = Text()
    name = Text()
    username = Text()
    impersonator = fields.Nested(Impersonator)


class StaffRegisterCustomer(RegisterCustomer):
    """POST /api/v1/staff/customers. The registration address is the caller's."""

    class Meta:
        exclude = ("registration_ip",)


class Credentials(Schema):
    username = Text()
    password = Text()


class CustomerSchema(Schema):
    id = fields.UUID()
    number = fields.Integer()
    kind = Text(validate=validate.OneOf(CUSTOMER_KINDS))
    name = Text()
    email = Email()
    username = Text()
    country = Country()
    contact_person = Text()
    company_name = Text(allow_none=True)
    language = Text(validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(allow_none=True)
    currency = Currency()
    registered_at = fields.DateTime()
    registration_ip = Text(allow_none=True)
    version = fields.Integer()
    credentials = fields.Nested(
        Credentials, metadata={"description": "only when generated; shown once"}
    )


class AccountEntry(Schema):
    id = Text()
    kind = Text()
    amount = fields.Nested(MoneySchema)
    at = fields.DateTime()
    balance_after = fields.Nested(MoneySchema)
    reference = Text(allow_none=True)
    reason = Body(allow_none=True)
    actor = fields.Nested(ActorSchema, allow_none=True)


class AccountSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    currency = Currency()
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
    service = Text()
    upstream = Text()
    position = fields.Integer(allow_none=True)
    type = Text(allow_none=True)
    error = Body()
    attempts = fields.Integer()
    parked_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolution = Text(allow_none=True)
    envelope = fields.Dict(keys=Text(), values=Json())


class ParkedList(Schema):
    items = fields.List(fields.Nested(ParkedEvent))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class OrderCustomer(Schema):
    """Who orders: a new e-mail creates the account; an existing one needs its password."""

    email = Email(required=True)
    password = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=1024))
    kind = Text(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    contact_person = Text(required=True, validate=validate.Length(min=1, max=200))
    country = Country(required=True)
    company_name = Text(load_default=None, allow_none=True, validate=validate.Length(max=200))
    language = Text(load_default="en", validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(load_default=None, allow_none=True)


class OrderItemRequest(OrderItem):
    """An item as the orders service takes it over RPC (ids as text)."""

    @post_load
    def _as_json(self, data, **kwargs):
        data["product_id"] = str(data["product_id"])
        data["addons"] = [str(a) for a in data["addons"]]
        return data


class OrderRequest(Schema):
    customer = fields.Nested(OrderCustomer, required=True)
    items = fields.List(
        fields.Nested(OrderItemRequest),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": '[{"product_id", "billing_cycle", "addons"?: [addon_id, ...]}]:'
            " priced from the catalog; an unknown product, cycle or add-on is a 400 naming"
            " items.<n> or items.<n>.addons.<m>"
        },
    )
    promo_code = Text(load_default=None, allow_none=True, max_length=100)


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
            loaded = PriceSchema().load(item) if isinstance(item, dict) else None
            if loaded is None:
                raise ValidationError('A price is {"amount": <minor units>, "currency": ...}.')
            out[loaded["currency"]] = loaded["amount"]
        return out


class Texts(fields.Field):
    """A text (English), or texts per language ({"en": ..., "fr": ...}): one line each,
    or (`multiline`) several."""

    def __init__(self, *, multiline: bool = False, **kwargs):
        kind = "several lines" if multiline else "one line"
        kwargs.setdefault(
            "metadata",
            {
                "oneOf": [
                    {"type": "string", "maxLength": 2000},
                    {
                        "type": "object",
                        "properties": {
                            language: {"type": "string", "maxLength": 2000}
                            for language in LANGUAGES
                        },
                        "additionalProperties": False,
                        "minProperties": 1,
                    },
                ],
                "description": f"text ({kind}), or per language",
            },
        )
        super().__init__(**kwargs)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        texts = value if isinstance(value, dict) else {"en": value}
        if not texts:
            raise ValidationError("Give the text in at least one language.")
        for language, text in texts.items():
            if language not in LANGUAGES:
                raise ValidationError(f"Languages are {', '.join(LANGUAGES)}.")
            if not isinstance(text, str) or not 1 <= len(text) <= 2000:
                raise ValidationError("A text of 1 to 2000 characters.")
            problem = text_problem(text, self.multiline)
            if problem:
                raise ValidationError(problem)
        return value


class AddonRequest(Schema):
    """An add-on of a product: name as text or per language; its own prices per cycle (one
    money object or a list of them) and setup fee. Send `id` to keep an existing add-on."""

    id = fields.UUID(load_default=None, allow_none=True)
    name = Texts(required=True)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)), values=MoneyOrList(), required=True
    )
    setup_fee = MoneyOrList(load_default=None)


class ProductRequest(Schema):
    """A product, as API.md spells it: names and descriptions as text (English) or per
    language ({"en": ..., "fr": ...}); each price one money object or a list of them."""

    name = Texts(required=True)
    description = Texts(load_default=None, allow_none=True, multiline=True)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)), values=MoneyOrList(), required=True
    )
    setup_fee = MoneyOrList(load_default=None)
    project_id = fields.UUID(load_default=None, allow_none=True)
    on_sale = fields.Boolean(load_default=True)
    provisioning = fields.Nested(
        Provisioning,
        load_default=None,
        metadata={"description": '{"kind": "manual"} or {"kind": "webhook", "url": ...}'},
    )
    addons = fields.List(fields.Nested(AddonRequest), load_default=None)
