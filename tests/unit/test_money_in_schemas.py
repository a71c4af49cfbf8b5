"""Money has one shape in every request and answer of the HTTP API: {"amount", "currency"}.

Walks every schema of `gateway/schemas.py` and every body, query and answer schema of
the gateway's routes: a field named like money must be a money object (a nested schema
of `amount` and `currency`, or a map or list of them), never a bare integer, and no
schema carries a `currency` of its own beside such an amount. What may stay as it is
is listed below with the reason.
"""

from __future__ import annotations

import inspect

from marshmallow import Schema, fields

from contracts import billing, customers, orders
from contracts.fields import Money
from gateway import schemas

MONEY_NAMES = {
    "amount",
    "price",
    "prices",
    "total",
    "subtotal",
    "balance",
    "balance_after",
    "fee",
    "setup_fee",
    "unit_price",
    "tax",
    "credit",
    "credit_limit",
    "commission",
}

# (schema, field): why it is not money, or why it may stay as it is
ALLOWED: dict[tuple[str, str], str] = {
    ("AccountSchema", "total"): "how many entries the account has, not money",
    ("ParkedList", "total"): "how many parked events, not money",
    ("AccountSchema", "currency"): "the account's own currency (it holds money in one)",
    ("CustomerSchema", "currency"): "the customer's currency (its account's), no amount beside",
    ("ProfileSchema", "currency"): "the customer's currency (its account's), no amount beside",
    ("StaffRegisterCustomer", "currency"): "the currency a new customer is billed in",
    ("CatalogQuery", "currency"): "which currency to show prices in: a query, not money",
    ("ProductListQuery", "currency"): "which currency to show prices in: a query, not money",
}


def _is_money_schema(schema: Schema) -> bool:
    """`{"amount": <integer>, "currency": ...}` and nothing else."""
    return set(schema.fields) == {"amount", "currency"} and isinstance(
        schema.fields["amount"], fields.Integer
    )


def _is_money(field) -> bool:
    """A money object, a list of them, or a map (per cycle, per currency) of them."""
    if isinstance(field, schemas.MoneyOrList):
        return True  # one money object or a list of them (a price given per currency)
    if isinstance(field, fields.Nested):
        schema = field.schema
        if _is_money_schema(schema):
            return True
        # a tax: its `amount` is the money (with the rate beside it)
        return "amount" in schema.fields and _is_money(schema.fields["amount"])
    if isinstance(field, fields.List):
        return _is_money(field.inner)
    if isinstance(field, fields.Dict | fields.Mapping):
        return field.value_field is not None and _is_money(field.value_field)
    return False


def _count(field) -> bool:
    return isinstance(field, fields.Integer) and not isinstance(field, fields.Nested)


def _problems(schema: Schema, where: str, seen: set) -> list[str]:
    if type(schema) in seen or _is_money_schema(schema):
        return []  # a money object's own amount is its integer
    seen.add(type(schema))
    out = []
    own = type(schema).__name__
    money_fields = []
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key in MONEY_NAMES and (own, key) not in ALLOWED:
            if key == "total" and "items" in schema.fields and _count(field):
                continue  # a page of a list: how many items there are in all
            if _is_money(field):
                money_fields.append(key)
            elif not isinstance(field, schemas.Count):
                out.append(f"{where}: {own}.{key} is {type(field).__name__}, not money")
        out += _inner(field, where, seen)
    if (
        "currency" in schema.fields
        and not _is_money_schema(schema)
        and (own, "currency") not in ALLOWED
    ):
        beside = f" beside {', '.join(money_fields)}" if money_fields else ""
        out.append(f"{where}: {own}.currency: a currency of its own{beside}")
    return out


def _inner(field, where: str, seen: set) -> list[str]:
    if isinstance(field, fields.Nested):
        return _problems(field.schema, where, seen)
    if isinstance(field, fields.List):
        return _inner(field.inner, where, seen)
    if isinstance(field, fields.Dict | fields.Mapping) and field.value_field is not None:
        return _inner(field.value_field, where, seen)
    return []


def _route_schemas() -> dict[str, type[Schema]]:
    """Every body, query and answer schema of the gateway's routes, by where it is used."""
    from gateway.service import GatewayService

    found: dict[str, type[Schema]] = {}
    for name in dir(GatewayService):
        options = getattr(getattr(GatewayService, name), "route_options", None)
        if not options:
            continue
        method, url, kwargs = options
        for kind in ("body", "query", "response"):
            given = kwargs.get(kind)
            candidates = given.values() if isinstance(given, dict) else [given]
            for schema in candidates:
                if inspect.isclass(schema) and issubclass(schema, Schema):
                    found[f"{kind} of {method} {url} ({schema.__name__})"] = schema
    return found


def _gateway_schemas() -> dict[str, type[Schema]]:
    return {
        f"gateway.schemas.{name}": obj
        for name, obj in vars(schemas).items()
        if inspect.isclass(obj)
        and issubclass(obj, Schema)
        and obj is not Schema
        and obj.__module__ == schemas.__name__
    }


def _all_problems() -> list[str]:
    problems: list[str] = []
    for where, cls in sorted({**_gateway_schemas(), **_route_schemas()}.items()):
        problems += _problems(cls(), where, set())
    return sorted(set(problems))


def test_every_request_and_answer_gives_money_as_money():
    assert _all_problems() == []


def test_the_walk_finds_money_as_a_bare_integer_and_a_separate_currency():
    """The walk itself: it would catch the shapes the API used to have."""

    class OldRefund(Schema):
        amount = fields.Integer()

    class OldLine(Schema):
        unit_price = fields.Integer()

    class OldInvoice(Schema):
        currency = fields.String()
        lines = fields.List(fields.Nested(OldLine))

    class OldOrder(Schema):
        total = fields.Nested(Money)
        currency = fields.String()

    class OldDiscount(Schema):
        name = fields.String()
        amount = fields.Integer()
        currency = fields.String()

    assert _problems(OldRefund(), "x", set()) == ["x: OldRefund.amount is Integer, not money"]
    found = _problems(OldInvoice(), "x", set())
    assert "x: OldLine.unit_price is Integer, not money" in found
    assert "x: OldInvoice.currency: a currency of its own" in found
    assert _problems(OldOrder(), "x", set()) == [
        "x: OldOrder.currency: a currency of its own beside total"
    ]
    assert _problems(OldDiscount(), "x", set()) == [
        "x: OldDiscount.amount is Integer, not money",
        "x: OldDiscount.currency: a currency of its own",
    ]


def test_the_money_bodies_are_walked():
    """The routes that take money are among those walked, with their money nested."""
    walked = set(_route_schemas().values())
    for body in (
        billing.Correction,
        billing.Refund,
        billing.IssueInvoice,
        billing.AddFunds,
        billing.RecordPayment,
        customers.CreateDiscount,
        orders.CreatePromo,
    ):
        assert body in walked, body
        assert isinstance(
            body().fields["amount" if "amount" in body().fields else "lines"],
            fields.Nested | fields.List,
        )
    for answer in (schemas.OrderList, schemas.RefundRecord, schemas.Discount, schemas.Promo):
        assert answer in walked, answer
