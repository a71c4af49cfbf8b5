"""What the orders service publishes and accepts."""

from __future__ import annotations

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from contracts.fields import Amount, Body, Currency, Money, Text, Total, Url
from contracts.registry import integration_event

CYCLES = ("monthly", "quarterly", "semiannually", "annually", "biennially", "triennially")
LANGUAGES = ("en", "ru", "fr")


@integration_event("orders", "OrderPlaced")
class OrderPlaced(Schema):
    id_field = "order_id"

    order_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    invoice_id = fields.UUID(required=True)
    total = Total(required=True)
    currency = Currency(required=True)


@integration_event("orders", "ServiceActivated")
class ServiceActivated(Schema):
    id_field = "service_id"

    service_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    product_id = fields.UUID(required=True)
    next_due_date = Text(required=True)
    reason = Body(required=True)


# ---- RPC payloads -------------------------------------------------------------------------


def _texts(required: bool):
    """Names (one line each, required) or descriptions (several lines) per language."""
    options = (
        {"required": True, "validate": validate.Length(min=1)}
        if required
        else {"load_default": dict}
    )
    kind = Text if required else Body
    return fields.Dict(
        keys=Text(validate=validate.OneOf(LANGUAGES)),
        values=kind(validate=validate.Length(min=1, max=2000)),
        **options,
    )


def _per_currency(**options):
    """Minor units per currency: {"EUR": 500}."""
    return fields.Dict(keys=Currency(), values=Amount(), **options)


_PER_CURRENCY = _per_currency()


class Addon(Schema):
    """An add-on of a product (a backup plan, an extra IP): its own prices per cycle and
    currency and setup fee, like the product's. `id` keeps an existing add-on's identity
    when a product's add-ons are changed; a new one gets an id of its own."""

    id = fields.UUID(load_default=None, allow_none=True)
    name = _texts(required=True)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)),
        values=_PER_CURRENCY,
        required=True,
        validate=validate.Length(min=1),
    )
    setup_fee = _per_currency(load_default=dict)


class ProductFields(Schema):
    """A product: names and descriptions per language ({"en": ..., "fr": ...}); prices per
    cycle and currency in minor units ({"monthly": {"EUR": 500}}); setup fee per currency."""

    name = _texts(required=True)
    description = _texts(required=False)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)),
        values=_PER_CURRENCY,
        required=True,
        validate=validate.Length(min=1),
    )
    setup_fee = _per_currency(load_default=dict)
    project_id = fields.UUID(load_default=None, allow_none=True)
    on_sale = fields.Boolean(load_default=True)
    provisioning = fields.Nested(
        "Provisioning", load_default=lambda: {"kind": "manual", "url": None}
    )
    addons = fields.List(fields.Nested(Addon), load_default=list, validate=validate.Length(max=50))

    @validates_schema
    def _distinct_addons(self, data, **kwargs):
        ids = [str(a["id"]) for a in data.get("addons") or [] if a.get("id")]
        if len(ids) != len(set(ids)):
            raise ValidationError("Each add-on appears once.", "addons")


class ProductAddons(Schema):
    """A product's whole list of add-ons (checked in full, also when the product is
    changed: each add-on needs its name and prices)."""

    addons = fields.List(fields.Nested(Addon), required=True, validate=validate.Length(max=50))


class Provisioning(Schema):
    """How a product's services are set up once paid: a staff task (`manual`), or a signed
    HTTP call to the provider's own tooling (`webhook`, to `url`)."""

    kind = Text(required=True, validate=validate.OneOf(["manual", "webhook"]))
    url = Url(load_default=None, allow_none=True, require_tld=False)

    @validates_schema
    def _url_for_webhook(self, data, **kwargs):
        # a whole provisioning even when the product is changed in part (PATCH)
        if "kind" not in data:
            raise ValidationError("Missing data for required field.", "kind")
        if data["kind"] == "webhook" and not data.get("url"):
            raise ValidationError("A webhook provisioner needs its url.", "url")


class OrderItem(Schema):
    """What to order. Anything else sent with an item (a price, say) is ignored: prices
    come from the catalog on the server only."""

    class Meta:
        unknown = EXCLUDE

    product_id = fields.UUID(required=True)
    billing_cycle = Text(required=True, validate=validate.OneOf(CYCLES))
    addons = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=20))


class PlaceOrder(Schema):
    items = fields.List(
        fields.Nested(OrderItem), required=True, validate=validate.Length(min=1, max=50)
    )
    promo_code = Text(load_default=None, allow_none=True, max_length=100)


class _ServiceChange(Schema):
    id_field = "service_id"

    service_id = fields.UUID(required=True)
    reason = Body(required=True)


@integration_event("orders", "ServiceSuspended")
class ServiceSuspended(_ServiceChange):
    why = Text(required=True)
    # whose service it is (absent from events recorded before it was carried)
    customer_id = fields.UUID(load_default=None, allow_none=True)


@integration_event("orders", "ServiceUnsuspended")
class ServiceUnsuspended(_ServiceChange):
    customer_id = fields.UUID(load_default=None, allow_none=True)


@integration_event("orders", "ServiceTerminated")
class ServiceTerminated(_ServiceChange):
    customer_id = fields.UUID(required=True)
    product_id = fields.UUID(required=True)


class Provisioned(Schema):
    note = Body(load_default="", validate=validate.Length(max=1000))


@integration_event("orders", "ServiceCancelled")
class ServiceCancelled(_ServiceChange):
    customer_id = fields.UUID(required=True)
    product_id = fields.UUID(required=True)


class ServiceAction(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class CreatePromo(Schema):
    code = Text(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_-]{3,40}$", error="3 to 40 letters, digits, _ or -."
        ),
    )
    kind = Text(required=True, validate=validate.OneOf(["percentage", "fixed"]))
    percent = fields.Decimal(
        as_string=True,
        places=2,
        load_default=None,
        validate=validate.Range(min=0, max=100, min_inclusive=False),
    )
    amount = fields.Nested(
        Money,
        load_default=None,
        allow_none=True,
        metadata={"description": "a fixed promo's money (used on orders in its currency)"},
    )
    product_ids = fields.List(fields.UUID(), load_default=list)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)
    max_uses = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1)
    )

    @validates_schema
    def _consistent(self, data, **kwargs):
        if data["kind"] == "percentage" and data.get("percent") is None:
            raise ValidationError("A percentage promo needs its percent.", "percent")
        if data["kind"] == "fixed" and data.get("amount") is None:
            raise ValidationError("A fixed promo needs its amount (money).", "amount")
        if data["kind"] == "percentage" and data.get("amount") is not None:
            raise ValidationError("Only a fixed promo has an amount.", "amount")


PROMO_STATES = ("active", "expired", "used_up", "deactivated")


class ChangePromo(Schema):
    """What staff change on a promo code (only the fields sent; null: no expiry, no limit).
    Its code stays: orders and invoices name it. Turning a percentage promo into a fixed
    one needs its `amount`, the other way round its `percent`; `max_uses` cannot go below
    the uses made already."""

    kind = Text(validate=validate.OneOf(["percentage", "fixed"]))
    percent = fields.Decimal(
        as_string=True,
        places=2,
        allow_none=True,
        validate=validate.Range(min=0, max=100, min_inclusive=False),
    )
    amount = fields.Nested(
        Money,
        allow_none=True,
        metadata={"description": "a fixed promo's money (used on orders in its currency)"},
    )
    product_ids = fields.List(
        fields.UUID(),
        validate=validate.Length(max=200),
        metadata={"description": "the products it applies to ([]: all)"},
    )
    expires_at = fields.AwareDateTime(allow_none=True)
    max_uses = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))

    @pre_load
    def _code_stays(self, data, **kwargs):
        if isinstance(data, dict) and "code" in data:
            raise ValidationError({"code": ["The code cannot be changed: orders name it."]})
        return data


class PromoFilters(Schema):
    """The staff list's filters: `state` (active, expired, used_up, deactivated) and
    `code` (a part of the code, any case)."""

    state = Text(load_default=None, validate=validate.OneOf(PROMO_STATES))
    code = Text(load_default=None, validate=validate.Length(max=40))
