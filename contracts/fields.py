"""The field types every schema uses, so one rule holds at every edge.

- `Text`: one line of text. Refuses NUL and every other control character (newline and
  tab included) and lone surrogates (text that is not valid Unicode).
- `Body`: text of several lines (messages, notes, descriptions, addresses). Keeps
  newline (`\\n`, `\\r\\n`) and tab; refuses every other control character and lone
  surrogates.
- `Amount`: money in integer minor units, strict (no floats, no strings, no booleans),
  bounded: at most `MAX_AMOUNT` unless a schema says otherwise.
- `Currency`: an active ISO 4217 code; `Country`: an ISO 3166-1 alpha-2 code.
- `Money`: `{"amount", "currency"}`, the one shape of money in requests and answers
  (`Price`: 0 allowed; `SignedMoney`: either sign, for corrections).
- `Email`, `Url`: marshmallow's, with the text rule and a length bound; `RecordedEmail`,
  in integration events, also takes `[erased]` (`ERASED`: an erased customer's address).
- `Json`: a free-form JSON value whose every string follows the `Body` rule and whose
  every integer fits a bigint column (for the few places that carry any JSON).

`MAX_AMOUNT` is 10**13 - 1 minor units (99,999,999,999.99 in a currency with cents):
the most any one amount given to the system may be. Sums of up to 900,000 such amounts
still fit PostgreSQL's bigint (2**63 - 1), the type of every money column; an invoice
line's quantity (at most 1,000) times its unit price, times its lines (at most 100),
does too. `MAX_TOTAL` (the bigint maximum) bounds the sums the services answer and
publish.

`clean_text` is the rule's other half, for text the system does not refuse but takes
as it comes (parsed e-mail): it removes what `Text`/`Body` would refuse.
"""

from __future__ import annotations

import re
from functools import cache

from marshmallow import Schema, ValidationError, fields, validate

from contracts.errors import ValidationFailed

MAX_AMOUNT = 10**13 - 1
MAX_TOTAL = 2**63 - 1
MAX_QUANTITY = 1_000
MAX_JSON_DEPTH = 32

CONTROL_MESSAGE = "Control characters are not allowed."
BODY_CONTROL_MESSAGE = "Control characters other than newline and tab are not allowed."
SURROGATE_MESSAGE = "Not valid Unicode text (it holds a lone surrogate)."
CURRENCY_MESSAGE = "Not an ISO 4217 currency code."
COUNTRY_MESSAGE = "Not an ISO 3166-1 two-letter country code."

# C0 controls, DEL and C1 controls: Unicode's category Cc
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# ISO 4217 codes that are not money one is billed in: no currency, the test code,
# precious metals, bond-market units, special drawing rights and funds codes
_NOT_MONEY = frozenset(
    "XXX XTS XAU XAG XPD XPT XBA XBB XBC XBD XDR XSU XUA "
    "BOV CHE CHW CLF COU MXV USN UYI UYW".split()
)


@cache
def currencies() -> frozenset[str]:
    """The active ISO 4217 codes one can bill in (pycountry's data)."""
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_MONEY


@cache
def countries() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes (pycountry's data)."""
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why `value` breaks the text rule (a message), or None when it keeps it."""
    if _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    if multiline:
        return BODY_CONTROL_MESSAGE if _BODY_CONTROL.search(value) else None
    return CONTROL_MESSAGE if _CONTROL.search(value) else None


def clean_text(value: str, multiline: bool = False) -> str:
    """`value` made to keep the text rule: lone surrogates become U+FFFD; control
    characters are removed, except that a single-line text gets a space for a newline or
    a tab and a multi-line one keeps them (a lone carriage return becomes a newline)."""
    value = _SURROGATE.sub("\ufffd", value)
    if multiline:
        value = re.sub(r"\r(?!\n)", "\n", value)
        return _BODY_CONTROL.sub("", value)
    value = re.sub(r"[\r\n\t]+", " ", value)
    return _CONTROL.sub("", value)


def invalid(field: str, message: str) -> ValidationFailed:
    """A ValidationFailed naming `field` (a dotted path for nested ones)."""
    return ValidationFailed(message, {field: [message]})


class _TextRule:
    multiline = False

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(text, str):
            problem = text_problem(text, self.multiline)
            if problem:
                raise ValidationError(problem)
        return text


def _length(kwargs: dict, min_length: int | None, max_length: int | None) -> dict:
    if min_length is None and max_length is None:
        return kwargs
    bound = validate.Length(min=min_length, max=max_length)
    given = kwargs.get("validate")
    if given is None:
        kwargs["validate"] = bound
    elif isinstance(given, list | tuple):
        kwargs["validate"] = [*given, bound]
    else:
        kwargs["validate"] = [given, bound]
    return kwargs


class Text(_TextRule, fields.String):
    """One line of text: no control characters (not even newline or tab), no lone
    surrogates; `min_length`/`max_length` bound it."""

    def __init__(self, *, min_length: int | None = None, max_length: int | None = None, **kw):
        super().__init__(**_length(kw, min_length, max_length))


class Body(Text):
    """Text of several lines: keeps newline (\\n or \\r\\n) and tab, refuses every other
    control character and lone surrogates."""

    multiline = True


class Email(_TextRule, fields.Email):
    """An e-mail address (at most 254 characters), with the text rule."""

    def __init__(self, **kw):
        super().__init__(**_length(kw, None, 254))


# what a personal value of an erased customer reads as (services/infra/personal_data.py)
ERASED = "[erased]"


class RecordedEmail(Email):
    """An e-mail address as an event recorded it, in an integration event's payload: an
    address, or `[erased]` once its customer's personal data was erased (a downstream
    catching up on the log after an erasure reads that, and must not park it). Never for
    input: what a person sends is an `Email`."""

    def _validate(self, value) -> None:
        if value == ERASED:
            return
        super()._validate(value)


class Url(_TextRule, fields.Url):
    """A URL (at most 2,000 characters), with the text rule."""

    def __init__(self, **kw):
        super().__init__(**_length(kw, None, 2000))


class Currency(Text):
    """An ISO 4217 currency code, as used to bill (EUR, USD, ...)."""

    def __init__(self, **kw):
        kw.setdefault("metadata", {})
        kw["metadata"] = {"pattern": "^[A-Z]{3}$", "description": "ISO 4217", **kw["metadata"]}
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in currencies():
            raise ValidationError(CURRENCY_MESSAGE)
        return code


class Country(Text):
    """An ISO 3166-1 alpha-2 country code (DE, FR, US, ...)."""

    def __init__(self, **kw):
        kw.setdefault("metadata", {})
        kw["metadata"] = {
            "pattern": "^[A-Z]{2}$",
            "description": "ISO 3166-1 alpha-2",
            **kw["metadata"],
        }
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in countries():
            raise ValidationError(COUNTRY_MESSAGE)
        return code


class Amount(fields.Integer):
    """Money in integer minor units: strict (an integer, not a float, a string or a
    boolean), from `minimum` (default 0) to `maximum` (default MAX_AMOUNT)."""

    def __init__(self, *, minimum: int = 0, maximum: int = MAX_AMOUNT, **kw):
        kw["strict"] = True
        bound = validate.Range(
            min=minimum,
            max=maximum,
            error=f"An amount in minor units from {minimum} to {maximum}.",
        )
        given = kw.get("validate")
        if given is None:
            kw["validate"] = bound
        elif isinstance(given, list | tuple):
            kw["validate"] = [*given, bound]
        else:
            kw["validate"] = [given, bound]
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kw)


class Total(Amount):
    """A sum of money the system computed (a balance, an invoice's total): any integer
    that fits the bigint columns, negative too."""

    def __init__(self, **kw):
        kw.setdefault("minimum", -MAX_TOTAL)
        kw.setdefault("maximum", MAX_TOTAL)
        super().__init__(**kw)


class Money(Schema):
    """`{"amount": <minor units, 1 to MAX_AMOUNT>, "currency": <ISO 4217>}`."""

    amount = Amount(required=True, minimum=1)
    currency = Currency(required=True)


class Price(Money):
    """A price: `{"amount": <minor units, 0 to MAX_AMOUNT>, "currency": <ISO 4217>}` (a
    free add-on or setup costs 0)."""

    amount = Amount(required=True, minimum=0)


class SignedMoney(Money):
    """Money that moves either way (a correction): `{"amount": <minor units, -MAX_AMOUNT
    to MAX_AMOUNT, not 0>, "currency": <ISO 4217>}`; negative takes money away."""

    amount = Amount(
        required=True,
        minimum=-MAX_AMOUNT,
        validate=validate.NoneOf([0], error="Not zero."),
        metadata={"description": "signed minor units: a credit, or (negative) a debit"},
    )


class Json(fields.Field):
    """Any JSON value, checked: strings (and object keys) keep the `Body` rule, integers
    fit a bigint, floats are finite, nesting is at most MAX_JSON_DEPTH deep; null too."""

    def __init__(self, **kw):
        kw.setdefault("allow_none", True)
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kwargs):
        _check_json(value, 0)
        return value


def _check_json(value, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"Nested more than {MAX_JSON_DEPTH} deep.")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        problem = text_problem(value, multiline=True)
        if problem:
            raise ValidationError(problem)
    elif isinstance(value, int):
        if not -MAX_TOTAL - 1 <= value <= MAX_TOTAL:
            raise ValidationError("A number too large.")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError("Not a finite number.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key if isinstance(key, str) else str(key), depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item, depth + 1)
    else:
        raise ValidationError("Not a JSON value.")


MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 200


class Page(fields.Integer):
    """A page number: 1 to MAX_PAGE (default 1), so that the offset always fits."""

    def __init__(self, **kw):
        kw.setdefault("load_default", 1)
        super().__init__(validate=validate.Range(min=1, max=MAX_PAGE), **kw)


class PageSize(fields.Integer):
    """How many a page holds: 1 to MAX_PAGE_SIZE (default 50)."""

    def __init__(self, **kw):
        kw.setdefault("load_default", 50)
        super().__init__(validate=validate.Range(min=1, max=MAX_PAGE_SIZE), **kw)
