"""The input rules of contracts/fields.py, and that every schema uses them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields

import contracts
from contracts import billing, customers
from contracts.fields import (
    BODY_CONTROL_MESSAGE,
    CONTROL_MESSAGE,
    COUNTRY_MESSAGE,
    CURRENCY_MESSAGE,
    MAX_AMOUNT,
    MAX_PAGE,
    MAX_TOTAL,
    SURROGATE_MESSAGE,
    Amount,
    Body,
    Country,
    Currency,
    Json,
    Page,
    PageSize,
    Text,
    clean_text,
    countries,
    currencies,
    text_problem,
)
from contracts.fields import _TextRule as TextRule
from gateway.schemas import Count

CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
# text that keeps the rule: no control characters, no surrogates
CLEAN = st.text(st.characters(blacklist_categories=("Cc", "Cs")))


def _load(field, value):
    class One(Schema):
        f = field

    return One().load({"f": value})["f"]


def _error(field, value) -> list[str]:
    with pytest.raises(ValidationError) as info:
        _load(field, value)
    return info.value.messages["f"]


# -- Text and Body ------------------------------------------------------------------------


@given(CLEAN)
def test_text_takes_text_without_control_characters(value):
    assert _load(Text(), value) == value
    assert _load(Body(), value) == value


@given(CLEAN, st.sampled_from(CONTROL), CLEAN)
def test_text_refuses_every_control_character(before, control, after):
    assert _error(Text(), before + control + after) == [CONTROL_MESSAGE]


@given(CLEAN, st.sampled_from(["\n", "\r\n", "\t"]), CLEAN)
def test_body_keeps_newlines_and_tabs(before, space, after):
    value = before + space + after
    assert _load(Body(), value) == value


@given(CLEAN, st.sampled_from([c for c in CONTROL if c not in "\n\t"]), CLEAN)
def test_body_refuses_other_control_characters(before, control, after):
    value = before + control + after
    if control == "\r" and after.startswith("\n"):
        return  # \r\n: a newline
    assert _error(Body(), value) == [BODY_CONTROL_MESSAGE]


@given(CLEAN, SURROGATES, CLEAN)
def test_text_and_body_refuse_lone_surrogates(before, surrogate, after):
    assert _error(Text(), before + surrogate + after) == [SURROGATE_MESSAGE]
    assert _error(Body(), before + surrogate + after) == [SURROGATE_MESSAGE]


def test_text_bounds_its_length():
    assert _load(Text(max_length=3), "abc") == "abc"
    assert _error(Text(max_length=3), "abcd")
    assert _error(Text(min_length=1), "")


@given(st.text())
def test_clean_text_keeps_the_rule(value):
    for multiline in (False, True):
        cleaned = clean_text(value, multiline)
        assert text_problem(cleaned, multiline) is None
        assert clean_text(cleaned, multiline) == cleaned


def test_clean_text_of_a_subject_and_a_body():
    assert clean_text("mail\x00subject") == "mailsubject"
    assert clean_text("two\r\n lines\tand a tab") == "two  lines and a tab"
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("one\r\ntwo\rthree\x07\tfour", multiline=True) == "one\r\ntwo\nthree\tfour"


# -- money --------------------------------------------------------------------------------


@given(st.integers(0, MAX_AMOUNT))
def test_amount_takes_integers_within_its_bounds(value):
    assert _load(Amount(), value) == value


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_AMOUNT + 1)))
def test_amount_refuses_integers_beyond_its_bounds(value):
    assert _error(Amount(), value)


@pytest.mark.parametrize(
    "value", [9223372036854775808, 10000000000000000000, 1.5, 100.0, "100", True, None, "1e3"]
)
def test_amount_refuses_what_is_not_a_bounded_integer(value):
    assert _error(Amount(), value)


def test_max_amount_leaves_room_for_sums_in_a_bigint():
    assert MAX_AMOUNT == 10**13 - 1
    assert MAX_TOTAL == 2**63 - 1
    assert 900_000 * MAX_AMOUNT <= MAX_TOTAL
    # an invoice: 100 lines of 1,000 units at the most each
    assert 100 * 1_000 * MAX_AMOUNT <= MAX_TOTAL


@given(st.sampled_from(sorted(currencies())))
def test_currency_takes_iso_4217_codes(code):
    assert _load(Currency(), code) == code


@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4))
def test_currency_refuses_anything_else(code):
    if code in currencies():
        return
    assert _error(Currency(), code) == [CURRENCY_MESSAGE]


@pytest.mark.parametrize("code", ["QQQ", "XXX", "XTS", "XAU", "eur", "EURO", "", "E\x00R"])
def test_currency_refuses_made_up_and_non_money_codes(code):
    assert _error(Currency(), code)


def test_the_usual_currencies_are_there():
    assert {"EUR", "USD", "GBP", "RUB", "CHF", "JPY", "KWD"} <= currencies()


@given(st.sampled_from(sorted(countries())))
def test_country_takes_iso_3166_codes(code):
    assert _load(Country(), code) == code


@pytest.mark.parametrize("code", ["ZZ", "AA", "QQ", "XX", "de", "DEU", "", "D\x00"])
def test_country_refuses_what_is_not_an_iso_3166_code(code):
    assert _error(Country(), code)
    if len(code) == 2 and code.isalpha() and code.isupper():
        assert _error(Country(), code) == [COUNTRY_MESSAGE]


def test_money_nested_names_the_field():
    with pytest.raises(ValidationError) as info:
        billing.RecordPayment().load(
            {
                "customer_id": "7b1e2d6c-98c0-4b41-9d5a-2f0a4f8d2a11",
                "amount": {"amount": 9223372036854775808, "currency": "QQQ"},
                "method": "cash",
                "reference": "r",
            }
        )
    assert set(info.value.messages["amount"]) == {"amount", "currency"}


# -- free-form values and paging ----------------------------------------------------------


def test_json_checks_every_string_and_number():
    assert _load(Json(), {"a": ["b\nc", 1, None, True, {"d": 2.5}]})
    assert _load(fields.Dict(keys=Text(), values=Json()), {"a": None}) == {"a": None}
    assert _error(Json(), {"a": ["b\x00"]}) == [BODY_CONTROL_MESSAGE]
    assert _error(Json(), {"a\x00": 1}) == [BODY_CONTROL_MESSAGE]
    assert _error(Json(), [2**63])
    nested: list = []
    for _ in range(100):
        nested = [nested]
    assert _error(Json(), nested)


def test_page_bounds_keep_the_offset_small():
    assert _load(Page(), "3") == 3
    assert _error(Page(), "9223372036854775807")
    assert _error(Page(), 0)
    assert _load(Page(), MAX_PAGE) == MAX_PAGE
    assert _error(PageSize(), 201)


# -- free-form objects in bodies ----------------------------------------------------------


def _invoice(**changes):
    body = {
        "customer_id": "7b1e2d6c-98c0-4b41-9d5a-2f0a4f8d2a11",
        "lines": [{"description": "Hosting", "unit_price": {"amount": 1000, "currency": "EUR"}}],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("discounts", "field"),
    [
        ([{}], "extra_discounts.0.name"),
        ([{"name": "x", "kind": "fixed", "amount": {"amount": -5, "currency": "EUR"}}], None),
        ([{"name": "x", "kind": "percentage", "percent": "lots"}], "extra_discounts.0.percent"),
        ([{"name": "x", "kind": "percentage"}], "extra_discounts.0.percent"),
        ([{"name": "x", "kind": "fixed"}], "extra_discounts.0.amount"),
        (["ten"], "extra_discounts.0"),
    ],
)
def test_extra_discounts_have_a_schema(discounts, field):
    from contracts.errors import from_marshmallow

    with pytest.raises(ValidationError) as info:
        billing.IssueInvoice().load(_invoice(extra_discounts=discounts))
    named = from_marshmallow(info.value).fields
    if field:
        assert field in named, named
    else:
        assert any(k.startswith("extra_discounts.0.amount") for k in named), named


def test_an_extra_discount_loads_in_the_shape_billing_applies():
    data = billing.IssueInvoice().load(
        _invoice(
            extra_discounts=[
                {
                    "name": "Promo X",
                    "kind": "percentage",
                    "percent": "10.00",
                    "amount": None,
                    "product_ids": ["7b1e2d6c-98c0-4b41-9d5a-2f0a4f8d2a11"],
                }
            ]
        )
    )
    (discount,) = data["extra_discounts"]
    assert discount["percent"] == "10.00"
    assert discount["product_ids"] == ["7b1e2d6c-98c0-4b41-9d5a-2f0a4f8d2a11"]


def test_invoice_lines_are_bounded():
    with pytest.raises(ValidationError) as info:
        billing.IssueInvoice().load(
            _invoice(
                lines=[
                    {
                        "description": "x",
                        "unit_price": {"amount": 1, "currency": "EUR"},
                        "quantity": 10**6,
                    }
                ]
            )
        )
    assert "lines" in info.value.messages


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_shows_the_field_types_with_numeric_bounds():
    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Deposit", schema=billing.Deposit)
    spec.components.schema("RegisterCustomer", schema=customers.RegisterCustomer)
    schemas = spec.to_dict()["components"]["schemas"]
    amount = schemas["Deposit"]["properties"]["amount"]
    assert amount["type"] == "integer"
    assert amount["minimum"] == 100 and amount["maximum"] == MAX_AMOUNT
    assert isinstance(amount["maximum"], int)
    person = schemas["RegisterCustomer"]["properties"]
    assert person["contact_person"]["type"] == "string"
    assert person["contact_person"]["maxLength"] == 200
    assert person["country"]["pattern"] == "^[A-Z]{2}$"
    assert person["currency"]["pattern"] == "^[A-Z]{3}$"


# -- every schema uses the field types ----------------------------------------------------

MONEY_NAMES = {
    "amount",
    "total",
    "subtotal",
    "unit_price",
    "balance",
    "balance_after",
    "price",
    "setup_fee",
    "tax",
}

# (schema, field path): why a field may stay as it is
ALLOWED: dict[tuple[str, str], str] = {
    ("contracts.helpdesk.PenaltyPointsGiven", "total"): "penalty points, not money",
    ("gateway.schemas.AccountSchema", "total"): "how many entries, not money",
    ("gateway.schemas.ParkedList", "total"): "how many parked events, not money",
}


def _schema_classes() -> dict[str, type[Schema]]:
    found: dict[str, type[Schema]] = {}
    modules = [
        importlib.import_module(f"contracts.{m.name}")
        for m in pkgutil.iter_modules(contracts.__path__)
    ]
    modules.append(importlib.import_module("gateway.schemas"))
    for module in modules:
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Schema)
                and obj is not Schema
                and obj.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = obj
    return found


def _route_schemas() -> dict[str, tuple[type[Schema], str]]:
    """Every body and query schema of the gateway's routes."""
    from gateway.service import GatewayService

    found = {}
    for name in dir(GatewayService):
        options = getattr(getattr(GatewayService, name), "route_options", None)
        if not options:
            continue
        _method, _url, kwargs = options
        for kind in ("body", "query"):
            schema = kwargs.get(kind)
            if schema is not None:
                found[f"{schema.__module__}.{schema.__qualname__}"] = (schema, kind)
    return found


def _problems(field, path: str, kind: str | None) -> list[str]:
    out = []
    name = path.rsplit(".", 1)[-1]
    if isinstance(field, fields.String) and not isinstance(field, TextRule | fields.UUID):
        out.append(f"{path}: a plain {type(field).__name__}, not Text/Body/Email/Url")
    if type(field) in (fields.Raw, fields.Field):
        out.append(f"{path}: a Raw field (any value, unchecked)")
    if isinstance(field, fields.Dict | fields.Mapping) and (
        field.key_field is None or field.value_field is None
    ):
        out.append(f"{path}: a Dict without key and value types")
    # a Count (how many items a list has in all) is named `total` too, and is no money
    typed = isinstance(field, Amount | Count)
    if isinstance(field, fields.Integer) and name in MONEY_NAMES and not typed:
        out.append(f"{path}: money as a plain Integer, not Amount")
    if name == "currency" and isinstance(field, fields.String) and not isinstance(field, Currency):
        out.append(f"{path}: a currency that is not a Currency")
    if name == "country" and isinstance(field, fields.String) and not isinstance(field, Country):
        out.append(f"{path}: a country that is not a Country")
    if (
        kind in ("body", "query")
        and name in ("page", "page_size")
        and not isinstance(field, Page | PageSize)
    ):
        out.append(f"{path}: paging without its bounds (Page / PageSize)")
    if isinstance(field, fields.Method | fields.Function | fields.Constant):
        out.append(f"{path}: a {type(field).__name__} field")
    return out


def _walk(field, path: str, kind: str | None, seen: set) -> list[str]:
    out = _problems(field, path, kind)
    if isinstance(field, fields.Nested):
        out += _walk_schema(field.schema, path, kind, seen)
    elif isinstance(field, fields.List):
        out += _walk(field.inner, f"{path}.<item>", kind, seen)
    elif isinstance(field, fields.Tuple):
        for i, inner in enumerate(field.tuple_fields):
            out += _walk(inner, f"{path}.{i}", kind, seen)
    elif isinstance(field, fields.Dict | fields.Mapping):
        if field.key_field is not None:
            out += _walk(field.key_field, f"{path}.<key>", kind, seen)
        if field.value_field is not None:
            out += _walk(field.value_field, f"{path}.<value>", kind, seen)
    return out


def _walk_schema(schema: Schema, prefix: str, kind: str | None, seen: set) -> list[str]:
    key = (type(schema), kind)
    if key in seen:
        return []
    seen.add(key)
    out = []
    for name, field in schema.fields.items():
        path = f"{prefix}.{field.data_key or name}"
        out += _walk(field, path, kind, seen)
    return out


def _all_problems() -> list[str]:
    problems = []
    schemas = {name: (cls, None) for name, cls in _schema_classes().items()}
    schemas.update(_route_schemas())
    for name, (cls, kind) in sorted(schemas.items()):
        for problem in _walk_schema(cls(), name, kind, set()):
            if not any(problem.startswith(f"{s}.{f}:") for s, f in ALLOWED):
                problems.append(problem)
    return problems


def test_the_walk_finds_what_breaks_the_rules():
    class Bad(Schema):
        name = fields.String()
        price = fields.Integer()
        extra = fields.Dict()
        anything = fields.Raw()
        items = fields.List(fields.Nested(Schema.from_dict({"note": fields.Str()})))
        currency = Text()
        page = fields.Integer()

    problems = _walk_schema(Bad(), "Bad", "query", set())
    assert len(problems) == 7, problems
    assert any("Bad.items.<item>.note" in p for p in problems)


def test_every_schema_uses_the_field_types():
    schemas = _schema_classes()
    assert len(schemas) > 80  # the walk sees the contracts and the gateway's shapes
    assert len(_route_schemas()) > 30
    problems = _all_problems()
    assert not problems, "\n".join(problems)


# -- parsed e-mail: cleaned, not refused --------------------------------------------------

RAW_MAIL = (
    b"From: =?utf-8?q?Ja=00ne=07?= <jane@client.example>\r\n"
    b"To: support@provider.example\r\n"
    b"Subject: =?utf-8?q?mail=00subject?=\r\n"
    b"Message-ID: <m1@client.example>\r\n"
    b"In-Reply-To: <a\x01b@x> <ok@x>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Line one\x00\r\nLine\x07 two\ttabbed\r\n"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''re%00port.txt\r\n"
    b"\r\n"
    b"data\r\n"
    b"--b--\r\n"
)


def test_parsed_mail_is_cleaned_and_keeps_the_contract():
    from contracts.helpdesk import IncomingMail
    from services.mailgateway import parsing

    mail = parsing.parse(RAW_MAIL, "jane@client.example")
    assert mail.subject == "mailsubject"
    assert mail.sender_name == "Jane"
    assert mail.body == "Line one\nLine two\ttabbed"
    assert mail.attachments[0]["filename"] == "report.txt"
    assert mail.in_reply_to == ["<ok@x>"]
    loaded = IncomingMail().load(mail.payload("support@provider.example"))
    assert loaded["subject"] == "mailsubject"


def test_a_sender_address_with_control_characters_falls_back_to_the_envelope():
    from services.mailgateway import parsing

    raw = RAW_MAIL.replace(b"<jane@client.example>", b"<ja\x01ne@client.example>")
    mail = parsing.parse(raw, "jane@client.example")
    assert mail.sender == "jane@client.example"
