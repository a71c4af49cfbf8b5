"""Billing routes: invoices, payments, the personal account, refunds, credit notes,
affiliate programs and tax rules."""

from __future__ import annotations

import base64
import logging

from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from contracts import billing
from contracts import fields as f
from contracts.errors import ValidationFailed
from gateway.api.common import ALL_STAFF, Page, PageQuery, jsonable, paged, str_or_none
from gateway.http import Call, route
from gateway.schemas import (
    PDF,
    AccountSchema,
    CheckoutAnswer,
    CommissionList,
    CreditNoteList,
    CreditNoteSchema,
    ExpenseList,
    InvoiceList,
    InvoiceSchema,
    PaymentList,
    PaymentSchema,
    ProgramList,
    ProgramSchema,
    RefundList,
    RefundRecord,
    TaxRule,
    TaxRuleList,
    UnmatchedPaymentList,
    WebhookAnswer,
)

log = logging.getLogger(__name__)


INVOICE_STATUSES = ("unpaid", "paid", "cancelled", "refunded", "void")
REFUND_STATUSES = ("requested", "pending", "completed", "failed")


class AccountQuery(Page):
    """`?at=` and a page of the account's entries (oldest first)."""

    at = fields.AwareDateTime(load_default=None, format="iso")


class BillingListQuery(PageQuery):
    """`status` and `overdue` filter invoices (the other lists have neither)."""

    status = f.Text(load_default=None, validate=validate.OneOf(INVOICE_STATUSES))
    overdue = fields.Boolean(
        load_default=False,
        metadata={"description": "invoices: true for unpaid ones whose due date has passed"},
    )


class ProgramAnswer(ProgramSchema):
    active = fields.Boolean(
        metadata={"description": "false: deactivated, no new commissions are earned under it"}
    )


class ProgramAnswers(ProgramList):
    items = fields.List(fields.Nested(ProgramAnswer))


class InvoicePayment(Schema):
    source = f.Text(
        metadata={"description": "balance, a processor's name, or the method staff recorded"}
    )
    reference = f.Text(allow_none=True)
    at = fields.DateTime()


class StaffInvoiceSchema(InvoiceSchema):
    """An invoice as staff see it: also the payments that paid it, and why and when it
    was voided (status `void`)."""

    payments = fields.List(fields.Nested(InvoicePayment))
    voided_at = fields.DateTime(allow_none=True)
    void_reason = f.Text(allow_none=True)


class RefundQuery(PageQuery):
    status = f.Text(load_default=None, validate=validate.OneOf(REFUND_STATUSES))


class PdfQuery(Schema):
    language = f.Text(load_default="en", validate=validate.OneOf(["en", "ru", "fr"]))


# each list's own answer (documented under its own path)
BILLING_LISTS = {
    "invoices": InvoiceList,
    "payments": PaymentList,
    "expenses": ExpenseList,
    "commissions": CommissionList,
}


class BillingRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>/account",
        query=AccountQuery,
        response=AccountSchema,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="the customer's personal account (?at= as it stood then)",
    )
    def customer_account(self, call: Call):
        return _account(call, str(call.path["customer_id"]))

    # -- billing --------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/<any(invoices,payments,expenses,commissions):name>",
        response=BILLING_LISTS,
        query=BillingListQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="invoices, payments, expenses or commissions (`status`, `overdue`: invoices only)",
    )
    def staff_billing_list(self, call: Call):
        return _billing_list(call, str_or_none(call.query["customer_id"]))

    @route(
        "POST",
        "/api/v1/staff/payments",
        idempotent="service",
        response=PaymentSchema,
        body=billing.RecordPayment,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="record a payment (Idempotency-Key accepted)",
    )
    def record_payment(self, call: Call):
        return call.services.billing.record_payment(jsonable(call.body), call.idempotency_key)

    @route(
        "POST",
        "/api/v1/staff/invoices",
        idempotent="service",
        response=InvoiceSchema,
        body=billing.IssueInvoice,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="issue an invoice by hand (its lines' unit prices are money in one currency,"
        " the customer's account's); 409 for a deleted customer",
    )
    def issue_invoice(self, call: Call):
        return call.services.billing.issue_invoice(jsonable(call.body), call.idempotency_key)

    @route(
        "GET",
        "/api/v1/staff/invoices/<uuid:invoice_id>",
        response=StaffInvoiceSchema,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="one invoice, with its payments and, when voided, why (never lags)",
    )
    def staff_invoice(self, call: Call):
        return call.services.billing.get_staff_invoice(str(call.path["invoice_id"]))

    @route(
        "POST",
        "/api/v1/staff/invoices/<uuid:invoice_id>/void",
        idempotent=True,
        response=StaffInvoiceSchema,
        body=billing.VoidInvoice,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="void an unpaid invoice, saying why (`reason`): it can no longer be paid and its "
        "number stays used (status `void`); no money moved for it, so no credit note is "
        "issued; 409 when it is not unpaid (Idempotency-Key accepted)",
    )
    def void_invoice(self, call: Call):
        return call.services.billing.void_invoice(str(call.path["invoice_id"]), jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/payments/unmatched",
        response=UnmatchedPaymentList,
        query=Page,
        roles=("admin", "billing", "auditor"),
        tags=("billing",),
        summary="processor payments for no known invoice, kept for staff",
    )
    def unmatched_payments(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "unmatched_payments", None, None, q["page"], q["page_size"]
        )

    @route(
        "POST",
        "/api/v1/payments/webhooks/<processor>",
        response=WebhookAnswer,
        tags=("billing",),
        summary="a payment processor's signed notification (401 unless validly signed)",
    )
    def processor_webhook(self, call: Call):
        raw = call.request.get_data(cache=True)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("The body is not UTF-8.", {"_body": ["Not UTF-8."]}) from None
        headers = dict(call.request.headers.items())
        return call.services.billing.processor_webhook(call.path["processor"], headers, body)

    @route(
        "GET",
        "/api/v1/client/account",
        client=("billing",),
        query=AccountQuery,
        response=AccountSchema,
        tags=("client",),
        summary="your personal account (?at= as it stood then)",
    )
    def client_account(self, call: Call):
        return _account(call, call.customer_id)

    @route(
        "POST",
        "/api/v1/client/account/funds",
        idempotent="service",
        response=InvoiceSchema,
        client=("billing",),
        body=billing.AddFunds,
        status=201,
        tags=("client",),
        summary="an invoice to add funds to your account (money in its currency)",
    )
    def add_funds(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return call.services.billing.add_funds_invoice(
            call.customer_id,
            customer["currency"],
            call.body,
            call.idempotency_key,
        )

    @route(
        "GET",
        "/api/v1/client/<any(invoices,payments,expenses,commissions):name>",
        response=BILLING_LISTS,
        query=BillingListQuery,
        client=("billing",),
        tags=("client",),
        summary="your invoices, payments, expenses or commissions (`status`: invoices only)",
    )
    def client_billing_list(self, call: Call):
        return _billing_list(call, call.customer_id)

    @route(
        "GET",
        "/api/v1/client/invoices/<uuid:invoice_id>",
        response=InvoiceSchema,
        client=("billing",),
        tags=("client",),
        summary="one of your invoices",
    )
    def client_invoice(self, call: Call):
        return call.services.billing.get_invoice(str(call.path["invoice_id"]), call.customer_id)

    @route(
        "POST",
        "/api/v1/client/invoices/<uuid:invoice_id>/pay",
        idempotent=True,
        response=InvoiceSchema,
        client=("billing",),
        tags=("client",),
        summary="pay an invoice from your personal account",
    )
    def pay_invoice(self, call: Call):
        return call.services.billing.pay_from_balance(
            call.customer_id, str(call.path["invoice_id"])
        )

    @route(
        "POST",
        "/api/v1/client/invoices/<uuid:invoice_id>/checkout",
        idempotent=True,
        response=CheckoutAnswer,
        body=billing.Checkout,
        client=("billing",),
        tags=("client",),
        summary="pay an unpaid invoice online: `redirect_url` is the processor's payment "
        "page (Stripe Checkout); `return_url` must be a page of this site; the payment "
        "counts only once the processor's signed webhook says so (409 when the invoice is "
        "not unpaid)",
    )
    def checkout_invoice(self, call: Call):
        return call.services.billing.start_checkout(
            call.customer_id, str(call.path["invoice_id"]), jsonable(call.body)
        )

    @route(
        "GET",
        "/api/v1/client/invoices/<uuid:invoice_id>/pdf",
        response=PDF,
        client=("billing",),
        tags=("client",),
        summary="one of your invoices as PDF, in your language",
    )
    def client_invoice_pdf(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return _pdf(call, call.customer_id, customer["language"])

    @route(
        "GET",
        "/api/v1/staff/invoices/<uuid:invoice_id>/pdf",
        response=PDF,
        roles=ALL_STAFF,
        query=PdfQuery,
        tags=("billing",),
        summary="an invoice as PDF (?language=)",
    )
    def staff_invoice_pdf(self, call: Call):
        return _pdf(call, None, call.query["language"])

    @route(
        "GET",
        "/api/v1/staff/affiliate-programs",
        response=ProgramAnswers,
        query=Page,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="affiliate programs (`active`: false once deactivated)",
    )
    def affiliate_programs(self, call: Call):
        return paged(call.services.billing.programs(), call.query)

    @route(
        "POST",
        "/api/v1/staff/affiliate-programs",
        idempotent=True,
        response=ProgramAnswer,
        body=billing.AffiliateProgram,
        status=201,
        roles=("admin",),
        tags=("billing",),
        summary="an affiliate program: percentage and maturity period",
    )
    def create_affiliate_program(self, call: Call):
        return call.services.billing.create_program(jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/affiliate-programs/<uuid:program_id>",
        response=ProgramAnswer,
        body=billing.EditAffiliateProgram,
        roles=("admin",),
        tags=("billing",),
        summary="change an affiliate program's percentage or maturity, or deactivate it "
        "(`active`: false: no new commissions under it; earned ones mature as they were)",
    )
    def change_affiliate_program(self, call: Call):
        return call.services.billing.change_program(
            str(call.path["program_id"]), jsonable(call.body)
        )

    @route(
        "GET",
        "/api/v1/staff/tax-rules",
        response=TaxRuleList,
        query=Page,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="tax rules per project and buyer country",
    )
    def tax_rules(self, call: Call):
        return paged(call.services.billing.tax_rules(), call.query)

    @route(
        "POST",
        "/api/v1/staff/tax-rules",
        idempotent=True,
        response=TaxRule,
        body=billing.AddTaxRule,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="add a tax rule",
    )
    def add_tax_rule(self, call: Call):
        return call.services.billing.add_tax_rule(jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/tax-rules/<uuid:rule_id>",
        response=TaxRule,
        body=billing.EditTaxRule,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="change a tax rule's name, rate, inclusion or validity; end it by setting "
        "`valid_to` (issued invoices keep the tax they were issued with)",
    )
    def change_tax_rule(self, call: Call):
        return call.services.billing.change_tax_rule(str(call.path["rule_id"]), jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/invoices/<uuid:invoice_id>/refund",
        idempotent="service",
        response=RefundRecord,
        body=billing.Refund,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="refund a paid invoice, fully or in part (`amount` money in the invoice's "
        "currency), to the personal account or through the processor, with a credit note; "
        "answers the refund (Idempotency-Key accepted)",
    )
    def refund_invoice(self, call: Call):
        return call.services.billing.refund_invoice(
            str(call.path["invoice_id"]),
            jsonable(call.body),
            call.idempotency_key,
        )

    @route(
        "GET",
        "/api/v1/staff/refunds",
        response=RefundList,
        query=RefundQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="refunds, with their processor status (?status=failed: the ones to retry)",
    )
    def staff_refunds(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "refunds", str_or_none(q["customer_id"]), q["status"], q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/staff/refunds/<uuid:refund_id>",
        response=RefundRecord,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="one refund (never lags)",
    )
    def staff_refund(self, call: Call):
        return call.services.billing.get_refund(str(call.path["refund_id"]))

    @route(
        "POST",
        "/api/v1/staff/refunds/<uuid:refund_id>/retry",
        response=RefundRecord,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="send a failed processor refund again (it is never paid out twice)",
    )
    def retry_refund(self, call: Call):
        return call.services.billing.retry_refund(str(call.path["refund_id"]))

    @route(
        "GET",
        "/api/v1/staff/credit-notes",
        response=CreditNoteList,
        query=PageQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="credit notes (?customer_id=)",
    )
    def staff_credit_notes(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "credit_notes", str_or_none(q["customer_id"]), None, q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/staff/credit-notes/<uuid:note_id>",
        response=CreditNoteSchema,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="one credit note",
    )
    def staff_credit_note(self, call: Call):
        return call.services.billing.get_credit_note(str(call.path["note_id"]))

    @route(
        "GET",
        "/api/v1/staff/credit-notes/<uuid:note_id>/pdf",
        response=PDF,
        roles=ALL_STAFF,
        query=PdfQuery,
        tags=("billing",),
        summary="a credit note as PDF (?language=)",
    )
    def staff_credit_note_pdf(self, call: Call):
        return _credit_note_pdf(call, None, call.query["language"])

    @route(
        "GET",
        "/api/v1/client/credit-notes",
        response=CreditNoteList,
        query=Page,
        client=("billing",),
        tags=("client",),
        summary="your credit notes",
    )
    def client_credit_notes(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "credit_notes", call.customer_id, None, q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/client/credit-notes/<uuid:note_id>",
        response=CreditNoteSchema,
        client=("billing",),
        tags=("client",),
        summary="one of your credit notes",
    )
    def client_credit_note(self, call: Call):
        return call.services.billing.get_credit_note(str(call.path["note_id"]), call.customer_id)

    @route(
        "GET",
        "/api/v1/client/credit-notes/<uuid:note_id>/pdf",
        response=PDF,
        client=("billing",),
        tags=("client",),
        summary="one of your credit notes as PDF, in your language",
    )
    def client_credit_note_pdf(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return _credit_note_pdf(call, call.customer_id, customer["language"])

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/account/corrections",
        idempotent=True,
        response=AccountSchema,
        body=billing.Correction,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="correct the personal account (signed money in its currency, with a reason)",
    )
    def correct_balance(self, call: Call):
        customer = call.services.customers.get_customer(str(call.path["customer_id"]))
        return call.services.billing.correct_balance(
            customer["id"], customer["currency"], call.body
        )


def _pdf(call: Call, customer_id: str | None, language: str) -> Response:
    invoice_id = str(call.path["invoice_id"])
    content = call.services.billing.invoice_pdf(invoice_id, customer_id, language)
    return Response(
        base64.b64decode(content),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{invoice_id}.pdf"'},
    )


def _credit_note_pdf(call: Call, customer_id: str | None, language: str) -> Response:
    note_id = str(call.path["note_id"])
    content = call.services.billing.credit_note_pdf(note_id, customer_id, language)
    return Response(
        base64.b64decode(content),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="credit-note-{note_id}.pdf"'},
    )


def _billing_list(call: Call, customer_id: str | None) -> dict:
    q, name = call.query, call.path["name"]
    for name_of, asked in (("status", q["status"] is not None), ("overdue", q["overdue"])):
        if asked and name != "invoices":
            raise ValidationFailed(
                f"The {name} list has no {name_of} filter.", {name_of: ["Only invoices have one."]}
            )
    return call.services.billing.list(
        name, customer_id, q["status"], q["page"], q["page_size"], q["overdue"]
    )


def _account(call: Call, customer_id: str) -> dict:
    customer = call.services.customers.get_customer(customer_id)
    at = call.query.get("at")
    return call.services.billing.get_account(
        customer["id"],
        customer["currency"],
        at.isoformat() if at else None,
        call.query.get("page", 1),
        call.query.get("page_size", 50),
    )
