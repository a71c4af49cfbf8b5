"""What the billing service publishes."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from contracts.fields import (
    MAX_QUANTITY,
    Amount,
    Body,
    Country,
    Currency,
    Money,
    Price,
    SignedMoney,
    Text,
    Total,
    Url,
)
from contracts.registry import integration_event


@integration_event("billing", "AccountOpened")
class AccountOpened(Schema):
    id_field = "account_id"

    account_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    currency = Currency(required=True)


@integration_event("billing", "InvoiceIssued")
class InvoiceIssued(Schema):
    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = Text(required=True)
    purpose = Text(required=True)
    currency = Currency(required=True)
    total = Total(required=True)
    due_date = Text(required=True)


@integration_event("billing", "InvoicePaid")
class InvoicePaid(Schema):
    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    source = Text(required=True)
    reference = Text(load_default=None, allow_none=True)
    # what the invoice was for (order, renewal, add_funds, manual); absent from invoices
    # paid before it was published
    purpose = Text(load_default=None, allow_none=True)


@integration_event("billing", "InvoiceVoided")
class InvoiceVoided(Schema):
    """An unpaid invoice was voided: by staff, with their reason, or by billing as its
    customer was deleted (`customer deleted`). It can no longer be paid; its number stays
    used. Whatever waited for it to be paid (an order's pending services) will not be."""

    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = Text(required=True)
    reason = Text(required=True, validate=validate.Length(min=1, max=500))
    at = fields.AwareDateTime(required=True, format="iso")
    # what the invoice was for (order, renewal, add_funds, manual); absent from invoices
    # voided before it was published
    purpose = Text(load_default=None, allow_none=True)


@integration_event("billing", "PaymentReceived")
class PaymentReceived(Schema):
    id_field = "payment_id"

    payment_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    amount = Total(required=True)
    currency = Currency(required=True)
    method = Text(required=True)
    invoice_id = fields.UUID(load_default=None, allow_none=True)


@integration_event("billing", "FundsAdded")
class FundsAdded(Schema):
    """Money came onto a personal account: a payment (or what a payment left over after
    its invoice), a refund to the account, a staff correction or a commission."""

    id_field = "account_id"

    account_id = fields.UUID(required=True)
    entry_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True, allow_none=True)
    currency = Currency(required=True, allow_none=True)
    kind = Text(required=True)
    amount = Total(required=True)
    balance_after = Total(required=True, allow_none=True)
    reference = Text(load_default=None, allow_none=True)
    at = fields.AwareDateTime(required=True, format="iso")


# ---- RPC payloads -------------------------------------------------------------------------


MoneyField = Money  # {"amount", "currency"}: 1 to MAX_AMOUNT minor units, ISO 4217


class RecordPayment(Schema):
    customer_id = fields.UUID(required=True)
    amount = fields.Nested(MoneyField, required=True)
    method = Text(
        required=True, validate=validate.OneOf(["bank_transfer", "cash", "card", "other"])
    )
    reference = Text(required=True, validate=validate.Length(min=1, max=200))
    invoice_id = fields.UUID(load_default=None, allow_none=True)


class InvoiceLine(Schema):
    description = Text(required=True, validate=validate.Length(min=1, max=500))
    product_id = fields.UUID(load_default=None, allow_none=True)
    quantity = fields.Integer(
        load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )
    unit_price = fields.Nested(
        Price,
        required=True,
        metadata={"description": "money; every line of an invoice in one currency, its own"},
    )
    period = Text(
        load_default=None,
        allow_none=True,
        max_length=100,
        metadata={"description": "the period the line covers, as words for people"},
    )
    period_start = fields.Date(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the first day the line covers (ISO date); with `period_end` or "
            "not at all"
        },
    )
    period_end = fields.Date(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the last day the line covers, inclusive (ISO date), not before "
            "`period_start`"
        },
    )

    @validates_schema
    def _period_dates(self, data, **kwargs):
        start, end = data.get("period_start"), data.get("period_end")
        if start is None and end is not None:
            raise ValidationError("A period's last day needs its first day.", "period_start")
        if end is None and start is not None:
            raise ValidationError("A period's first day needs its last day.", "period_end")
        if start is not None and end < start:
            raise ValidationError(
                f"A period ends on or after its first day ({start.isoformat()}).", "period_end"
            )


class ExtraDiscount(Schema):
    """A discount beyond the customer's own (a promo code's), applied like theirs: the
    best one per invoice line wins. `percent` for a percentage, `amount` (money) for a
    fixed one; `product_ids`: only lines of these products (none: every line)."""

    name = Text(required=True, validate=validate.Length(min=1, max=100))
    kind = Text(required=True, validate=validate.OneOf(["percentage", "fixed"]))
    percent = fields.Decimal(
        as_string=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=100, min_inclusive=False),
    )
    amount = fields.Nested(Money, load_default=None, allow_none=True)
    product_ids = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=500))

    @validates_schema
    def _consistent(self, data, **kwargs):
        if data.get("kind") == "percentage" and data.get("percent") is None:
            raise ValidationError("A percentage discount needs its percent.", "percent")
        if data.get("kind") == "fixed" and data.get("amount") is None:
            raise ValidationError("A fixed discount needs its amount.", "amount")

    @post_load
    def _as_applied(self, data, **kwargs):
        # the shape billing applies: percent as a decimal string, product ids as strings
        if data.get("percent") is not None:
            data["percent"] = str(data["percent"])
        data["product_ids"] = [str(p) for p in data["product_ids"]]
        return data


class IssueInvoice(Schema):
    """An invoice: its currency is its lines' (all in one, the customer's account's); a
    fixed extra discount in another currency is refused, naming it."""

    customer_id = fields.UUID(required=True)
    lines = fields.List(
        fields.Nested(InvoiceLine), required=True, validate=validate.Length(min=1, max=100)
    )
    due_days = fields.Integer(load_default=14, validate=validate.Range(min=0, max=365))
    extra_discounts = fields.List(
        fields.Nested(ExtraDiscount),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={"description": "discounts beyond the customer's own (a promo code's)"},
    )

    @validates_schema
    def _one_currency(self, data, **kwargs):
        lines = data.get("lines") or []
        if not lines:
            return
        currency = lines[0]["unit_price"]["currency"]
        errors: dict = {}
        for n, line in enumerate(lines):
            if line["unit_price"]["currency"] != currency:
                errors[f"lines.{n}.unit_price.currency"] = [
                    f"Every line of an invoice is in one currency ({currency})."
                ]
        for n, discount in enumerate(data.get("extra_discounts") or []):
            amount = discount.get("amount")
            if discount.get("kind") == "fixed" and amount and amount["currency"] != currency:
                errors[f"extra_discounts.{n}.amount.currency"] = [
                    f"Not the invoice's currency ({currency})."
                ]
        if errors:
            raise ValidationError(_nested(errors))


def _nested(errors: dict[str, list[str]]) -> dict:
    """{"lines.1.unit_price.currency": [...]} as marshmallow nests its messages."""
    out: dict = {}
    for path, texts in errors.items():
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(int(part) if part.isdigit() else part, {})
        node[last] = texts
    return out


def invoice_currency(data: dict) -> str:
    """The currency of an invoice as IssueInvoice loaded it: its lines'."""
    return data["lines"][0]["unit_price"]["currency"]


def plain_lines(lines: list[dict]) -> list[dict]:
    """Invoice lines as billing records them: the unit price in minor units (the
    invoice carries the currency), the period's days as ISO dates."""
    return [
        dict(
            line,
            unit_price=line["unit_price"]["amount"],
            period_start=_iso_day(line.get("period_start")),
            period_end=_iso_day(line.get("period_end")),
        )
        for line in lines
    ]


def _iso_day(day) -> str | None:
    return day.isoformat() if day is not None else None


class Deposit(Money):
    """Money to add to a personal account: at least 100 minor units."""

    amount = Amount(required=True, minimum=100)


class AddFunds(Schema):
    amount = fields.Nested(
        Deposit, required=True, metadata={"description": "money, in the account's currency"}
    )


class Checkout(Schema):
    """Pay an invoice on a payment processor's hosted page."""

    processor = Text(
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={"description": "a configured payment processor: `stripe`"},
    )
    return_url = Url(
        required=True,
        schemes={"http", "https"},
        metadata={
            "description": "a page of this site (HOSTLEDGER_PUBLIC_URL) the processor sends "
            "the client back to, with `checkout=success` or `checkout=cancel` added"
        },
    )


class AddTaxRule(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    country = Country(required=True)
    project_id = fields.UUID(load_default=None, allow_none=True)
    rate = fields.Decimal(
        required=True, as_string=True, places=4, validate=validate.Range(min=0, max=100)
    )
    inclusive = fields.Boolean(required=True)
    valid_from = fields.AwareDateTime(load_default=None, allow_none=True)
    valid_to = fields.AwareDateTime(load_default=None, allow_none=True)


class EditTaxRule(Schema):
    """Change a tax rule (its country and project stay: add another rule for others);
    end it by setting `valid_to`. Issued invoices keep their tax."""

    name = Text(validate=validate.Length(min=1, max=100))
    rate = fields.Decimal(as_string=True, places=4, validate=validate.Range(min=0, max=100))
    inclusive = fields.Boolean()
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_to = fields.AwareDateTime(allow_none=True)


class Refund(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))
    amount = fields.Nested(
        Money,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "money, in the invoice's currency; default: all that is left to refund"
        },
    )
    to = Text(
        load_default="account",
        validate=validate.OneOf(["account", "processor"]),
        metadata={"description": "the personal account, or back through the payment processor"},
    )


class VoidInvoice(Schema):
    """Staff void an unpaid invoice; the reason is recorded with who voided it."""

    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class Correction(Schema):
    amount = fields.Nested(
        SignedMoney,
        required=True,
        metadata={
            "description": "money in the account's currency: a credit, or (negative) a debit"
        },
    )
    reason = Text(required=True, validate=validate.Length(min=3, max=500))


class AffiliateProgram(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    percent = fields.Decimal(
        required=True,
        as_string=True,
        places=2,
        validate=validate.Range(min=0, max=100, min_inclusive=False),
    )
    maturity_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class EditAffiliateProgram(Schema):
    """Change a program (its name stays); `active`: false stops new commissions under it."""

    percent = fields.Decimal(
        as_string=True, places=2, validate=validate.Range(min=0, max=100, min_inclusive=False)
    )
    maturity_days = fields.Integer(strict=True, validate=validate.Range(min=0, max=3650))
    active = fields.Boolean()


class _InvoiceNotice(Schema):
    """What a reminder or a dunning step needs to know of an unpaid invoice."""

    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = Text(required=True)
    total = Total(required=True)
    currency = Currency(required=True)
    due_date = Text(required=True)


@integration_event("billing", "InvoiceDueSoon")
class InvoiceDueSoon(_InvoiceNotice):
    pass


@integration_event("billing", "InvoiceOverdue")
class InvoiceOverdue(_InvoiceNotice):
    pass


@integration_event("billing", "CreditNoteIssued")
class CreditNoteIssued(Schema):
    """A credit note for a refund of a paid invoice (the mail gateway sends it)."""

    id_field = "credit_note_id"

    credit_note_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = Text(required=True)
    invoice_id = fields.UUID(required=True)
    invoice_number = Text(required=True)
    refund_id = fields.UUID(required=True)
    to = Text(required=True)
    reason = Body(required=True)
    total = Total(required=True)
    currency = Currency(required=True)


@integration_event("billing", "RefundIssued")
class RefundIssued(Schema):
    """The money of a refund went back: to the personal account, or out through the
    payment processor (which confirmed it)."""

    id_field = "refund_id"

    refund_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    invoice_id = fields.UUID(required=True)
    invoice_number = Text(required=True)
    credit_note_number = Text(required=True)
    amount = Total(required=True)
    currency = Currency(required=True)
    to = Text(required=True)
    processor_refund_id = Text(load_default=None, allow_none=True)
