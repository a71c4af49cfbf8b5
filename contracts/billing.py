"""What the billing service publishes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.registry import integration_event


@integration_event("billing", "AccountOpened")
class AccountOpened(Schema):
    id_field = "account_id"

    account_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    currency = fields.String(required=True)


@integration_event("billing", "InvoiceIssued")
class InvoiceIssued(Schema):
    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = fields.String(required=True)
    purpose = fields.String(required=True)
    currency = fields.String(required=True)
    total = fields.Integer(required=True)
    due_date = fields.String(required=True)


@integration_event("billing", "InvoicePaid")
class InvoicePaid(Schema):
    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    source = fields.String(required=True)
    reference = fields.String(load_default=None, allow_none=True)


@integration_event("billing", "PaymentReceived")
class PaymentReceived(Schema):
    id_field = "payment_id"

    payment_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    method = fields.String(required=True)
    invoice_id = fields.UUID(load_default=None, allow_none=True)


@integration_event("billing", "FundsAdded")
class FundsAdded(Schema):
    """Money came onto a personal account: a payment (or what a payment left over after
    its invoice), a refund to the account, a staff correction or a commission."""

    id_field = "account_id"

    account_id = fields.UUID(required=True)
    entry_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True, allow_none=True)
    currency = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True)
    amount = fields.Integer(required=True)
    balance_after = fields.Integer(required=True, allow_none=True)
    reference = fields.String(load_default=None, allow_none=True)
    at = fields.AwareDateTime(required=True, format="iso")


# ---- RPC payloads -------------------------------------------------------------------------


class MoneyField(Schema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))


class RecordPayment(Schema):
    customer_id = fields.UUID(required=True)
    amount = fields.Nested(MoneyField, required=True)
    method = fields.String(
        required=True, validate=validate.OneOf(["bank_transfer", "cash", "card", "other"])
    )
    reference = fields.String(required=True, validate=validate.Length(min=1, max=200))
    invoice_id = fields.UUID(load_default=None, allow_none=True)


class InvoiceLine(Schema):
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    product_id = fields.UUID(load_default=None, allow_none=True)
    quantity = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1))
    unit_price = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    period = fields.String(load_default=None, allow_none=True)


class IssueInvoice(Schema):
    customer_id = fields.UUID(required=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    lines = fields.List(fields.Nested(InvoiceLine), required=True, validate=validate.Length(min=1))
    due_days = fields.Integer(load_default=14, validate=validate.Range(min=0, max=365))
    extra_discounts = fields.List(
        fields.Dict(),
        load_default=list,
        metadata={"description": "discounts beyond the customer's own (a promo code's)"},
    )


class AddFunds(Schema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=100))


class AddTaxRule(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="A two-letter country code.")
    )
    project_id = fields.UUID(load_default=None, allow_none=True)
    rate = fields.Decimal(
        required=True, as_string=True, places=4, validate=validate.Range(min=0, max=100)
    )
    inclusive = fields.Boolean(required=True)
    valid_from = fields.AwareDateTime(load_default=None, allow_none=True)
    valid_to = fields.AwareDateTime(load_default=None, allow_none=True)


class Refund(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    amount = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "minor units; default: all that is left to refund"},
    )
    to = fields.String(
        load_default="account",
        validate=validate.OneOf(["account", "processor"]),
        metadata={"description": "the personal account, or back through the payment processor"},
    )


class Correction(Schema):
    amount = fields.Integer(required=True, strict=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class AffiliateProgram(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    percent = fields.Decimal(
        required=True,
        as_string=True,
        places=2,
        validate=validate.Range(min=0, max=100, min_inclusive=False),
    )
    maturity_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class _InvoiceNotice(Schema):
    """What a reminder or a dunning step needs to know of an unpaid invoice."""

    id_field = "invoice_id"

    invoice_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    number = fields.String(required=True)
    total = fields.Integer(required=True)
    currency = fields.String(required=True)
    due_date = fields.String(required=True)


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
    number = fields.String(required=True)
    invoice_id = fields.UUID(required=True)
    invoice_number = fields.String(required=True)
    refund_id = fields.UUID(required=True)
    to = fields.String(required=True)
    reason = fields.String(required=True)
    total = fields.Integer(required=True)
    currency = fields.String(required=True)


@integration_event("billing", "RefundIssued")
class RefundIssued(Schema):
    """The money of a refund went back: to the personal account, or out through the
    payment processor (which confirmed it)."""

    id_field = "refund_id"

    refund_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    invoice_id = fields.UUID(required=True)
    invoice_number = fields.String(required=True)
    credit_note_number = fields.String(required=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    to = fields.String(required=True)
    processor_refund_id = fields.String(load_default=None, allow_none=True)
