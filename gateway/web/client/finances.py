"""The client's finances: the personal account (its entries page by page, the balance at
a past date), invoices (each with its lines, PDF, paying it from the balance or online),
payments, expenses, credit notes, and adding funds.

The same billing commands as `/api/v1/client/...`: `get_account`, `list`, `get_invoice`,
`invoice_pdf`, `pay_from_balance`, `start_checkout`, `add_funds_invoice`,
`credit_note_pdf`. Every page needs the `billing` permission (or `full`).

Paying online: the invoice page's form posts to `/invoices/<id>/checkout`, which asks
billing for the processor's hosted page and answers a page that goes on there at once
(`<meta http-equiv="refresh">`, and a link): a 303 to another site after a form is
refused by the CSP's `form-action 'self'` of the page that sent the form (with htmx
boosting, that is whichever page was loaded first). The form is never boosted (a script
cannot follow a cross-site redirect). The processor sends the client back to
`/invoices/<id>?checkout=success|cancel`, which shows what billing knows: paid once
the processor's signed webhook arrived, "being confirmed" until then, or cancelled.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from babel import numbers
from werkzeug.wrappers import Response

from contracts.errors import Conflict, NotFound, Unavailable, ValidationFailed
from gateway.web.pages import FormErrors, PageCall, page
from services.infra import clock
from services.infra.settings import settings

ROWS = 20
BILLING = ("billing",)
INVOICE_FILTERS = ("unpaid", "paid", "all")
# the least an add-funds invoice is for, in minor units (contracts.billing.Deposit)
DEPOSIT_MINIMUM = 100
# the most a person may type (contracts.fields.MAX_AMOUNT), in minor units
MAX_AMOUNT = 10**13 - 1


class FinancesPages:
    """Mixed into GatewayService."""

    # -- the personal account ---------------------------------------------------------------

    @page("GET", "/finances", client=True, permissions=BILLING)
    def web_finances(self, call: PageCall):
        billing, customer = call.services.billing, call.customer
        errors = FormErrors()
        asked = call.request.args.get("at", "").strip()
        at_date = None
        if asked:
            try:
                at_date = date.fromisoformat(asked)
            except ValueError:
                errors.add("at", call.gettext("Enter a date such as 2026-01-31."))
            else:
                if at_date > clock.now().date():
                    errors.add("at", call.gettext("Choose today or a day before."))
                    at_date = None
        # entries come oldest first; without ?page= the newest are shown (the last page)
        number, size = call.page_args(ROWS)
        account = billing.get_account(call.customer_id, customer["currency"], None, number, size)
        if "page" not in call.request.args and account["total"] > size:
            last = (account["total"] + size - 1) // size
            account = billing.get_account(call.customer_id, customer["currency"], None, last, size)
        then = None
        if at_date is not None:
            moment = datetime.combine(at_date, time.max, tzinfo=UTC)
            then = billing.get_account(
                call.customer_id, customer["currency"], moment.isoformat(), 1, 1
            )
        return call.render(
            "client/finances.html",
            status=400 if errors else 200,
            account=account,
            then=then,
            at=asked,
            at_date=at_date.isoformat() if at_date else None,
            errors=errors,
            today=clock.now().date().isoformat(),
        )

    # -- invoices ---------------------------------------------------------------------------

    @page("GET", "/invoices", client=True, permissions=BILLING)
    def web_invoices(self, call: PageCall):
        shown = call.request.args.get("status", "unpaid")
        if shown not in INVOICE_FILTERS:
            shown = "unpaid"
        number, size = call.page_args(ROWS)
        invoices = call.services.billing.list(
            "invoices", call.customer_id, None if shown == "all" else shown, number, size
        )
        return call.render(
            "client/invoices.html",
            invoices=invoices,
            shown=shown,
            today=clock.now().date().isoformat(),
        )

    @page("GET", "/invoices/<uuid:invoice_id>", client=True, permissions=BILLING)
    def web_invoice(self, call: PageCall):
        return _invoice_page(call, FormErrors())

    @page("POST", "/invoices/<uuid:invoice_id>/pay", client=True, permissions=BILLING)
    def web_pay_invoice(self, call: PageCall):
        invoice_id = str(call.path["invoice_id"])
        try:
            call.services.billing.pay_from_balance(call.customer_id, invoice_id)
        except Conflict:
            errors = FormErrors().add(
                "pay",
                call.gettext(
                    "The balance does not cover this invoice (or it is not unpaid any "
                    "more): nothing was taken."
                ),
            )
            return _invoice_page(call, errors, status=409)
        return call.redirect(f"/invoices/{invoice_id}", paid="balance")

    @page("POST", "/invoices/<uuid:invoice_id>/checkout", client=True, permissions=BILLING)
    def web_checkout(self, call: PageCall):
        invoice_id = str(call.path["invoice_id"])
        values, errors = call.form("processor")
        processor = values["processor"] or "stripe"
        return_url = f"{settings().public_url}/invoices/{invoice_id}"
        try:
            answer = call.services.billing.start_checkout(
                call.customer_id, invoice_id, {"processor": processor, "return_url": return_url}
            )
        except Conflict:
            errors.add("checkout", call.gettext("This invoice is not unpaid: nothing to pay."))
            return _invoice_page(call, errors, status=409)
        except ValidationFailed:
            errors.add("checkout", call.gettext("Paying online is not available here."))
            return _invoice_page(call, errors, status=400)
        except Unavailable:
            errors.add(
                "checkout",
                call.gettext(
                    "The payment service could not be reached. Try again in a moment, or pay "
                    "from your balance."
                ),
            )
            return _invoice_page(call, errors, status=503)
        # to the processor's own page: a page that goes on there at once (a redirect would
        # be refused by the CSP form-action of the page whose form was sent)
        return call.render(
            "client/checkout_redirect.html",
            invoice_id=invoice_id,
            redirect_url=answer["redirect_url"],
        )

    @page("GET", "/invoices/<uuid:invoice_id>/pdf", client=True, permissions=BILLING)
    def web_invoice_pdf(self, call: PageCall):
        invoice_id = str(call.path["invoice_id"])
        content = call.services.billing.invoice_pdf(invoice_id, call.customer_id, call.language)
        return _pdf(content, f"invoice-{invoice_id}.pdf")

    # -- payments, expenses, credit notes ---------------------------------------------------

    @page("GET", "/payments", client=True, permissions=BILLING)
    def web_payments(self, call: PageCall):
        number, size = call.page_args(ROWS)
        payments = call.services.billing.list("payments", call.customer_id, None, number, size)
        return call.render("client/payments.html", payments=payments)

    @page("GET", "/expenses", client=True, permissions=BILLING)
    def web_expenses(self, call: PageCall):
        number, size = call.page_args(ROWS)
        expenses = call.services.billing.list("expenses", call.customer_id, None, number, size)
        return call.render("client/expenses.html", expenses=expenses)

    @page("GET", "/credit-notes", client=True, permissions=BILLING)
    def web_credit_notes(self, call: PageCall):
        number, size = call.page_args(ROWS)
        notes = call.services.billing.list("credit_notes", call.customer_id, None, number, size)
        return call.render("client/credit_notes.html", notes=notes)

    @page("GET", "/credit-notes/<uuid:note_id>/pdf", client=True, permissions=BILLING)
    def web_credit_note_pdf(self, call: PageCall):
        note_id = str(call.path["note_id"])
        content = call.services.billing.credit_note_pdf(note_id, call.customer_id, call.language)
        return _pdf(content, f"credit-note-{note_id}.pdf")

    # -- adding funds -----------------------------------------------------------------------

    @page("GET", "/add-funds", client=True, permissions=BILLING)
    def web_add_funds_page(self, call: PageCall):
        return _add_funds_form(call, {"amount": ""}, FormErrors())

    @page("POST", "/add-funds", client=True, permissions=BILLING)
    def web_add_funds(self, call: PageCall):
        values, errors = call.form("amount", "request")
        currency = call.customer["currency"]
        amount = None
        if not errors:
            amount = parse_amount(values["amount"], currency, call.language)
            if amount is None:
                errors.add("amount", call.gettext("Enter an amount such as 25.00."))
            elif amount < DEPOSIT_MINIMUM:
                minimum = {"amount": DEPOSIT_MINIMUM, "currency": currency}
                errors.add(
                    "amount",
                    call.gettext("At least %(minimum)s.", minimum=_money(minimum, call.language)),
                )
            elif amount > MAX_AMOUNT:
                errors.add("amount", call.gettext("That is more than can be added at once."))
        if errors:
            return _add_funds_form(call, values, errors, status=400)
        # the form's own key: sending it twice (a double click, a reload) makes one invoice
        key = values["request"] if 16 <= len(values["request"]) <= 64 else None
        try:
            invoice = call.services.billing.add_funds_invoice(
                call.customer_id,
                currency,
                {"amount": {"amount": amount, "currency": currency}},
                f"web-add-funds:{key}" if key else None,
            )
        except ValidationFailed as exc:
            errors = call.service_errors(exc, errors)
            return _add_funds_form(call, values, errors, status=400)
        return call.redirect(f"/invoices/{invoice['id']}", added="1")


def parse_amount(text: str, currency: str, language: str, signed: bool = False) -> int | None:
    """What a person typed (`25`, `25.5`, `1 234,56` in French) as minor units of
    `currency`, or None when it is not such an amount (too many decimals; negative, unless
    `signed`: a correction that takes money off, `-10.50`)."""
    cleaned = text.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if not cleaned or len(cleaned) > 30:
        return None
    digits = numbers.get_currency_precision(currency)
    value = None
    try:
        value = numbers.parse_decimal(cleaned, locale=language, strict=True)
    except (numbers.NumberFormatError, InvalidOperation, ValueError):
        # "25.50" typed on a French page (or "25,50" on an English one): one separator
        # is the decimal one
        if cleaned.count(".") + cleaned.count(",") == 1:
            try:
                value = Decimal(cleaned.replace(",", "."))
            except InvalidOperation:
                value = None
    if value is None or not value.is_finite() or (value < 0 and not signed):
        return None
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        return None
    return int(minor)


def _money(value: dict, language: str) -> str:
    from gateway.web import i18n

    return i18n.money(value, language)


def _add_funds_form(call: PageCall, values: dict, errors: FormErrors, status: int = 200):
    return call.render(
        "client/add_funds.html",
        status=status,
        values=values,
        errors=errors,
        currency=call.customer["currency"],
        request_key=values.get("request") or secrets.token_urlsafe(24),
        minimum={"amount": DEPOSIT_MINIMUM, "currency": call.customer["currency"]},
    )


def _invoice_page(call: PageCall, errors: FormErrors, status: int = 200) -> Response:
    """An invoice with what the client can do with it; `?checkout=` says how paying online
    went, `?paid=balance` that it was just paid from the balance."""
    billing, invoice_id = call.services.billing, str(call.path["invoice_id"])
    invoice = billing.get_invoice.call_async(invoice_id, call.customer_id)
    account = billing.get_account.call_async(
        call.customer_id, call.customer["currency"], None, 1, 1
    )
    processors = billing.checkout_processors.call_async()
    try:
        invoice = invoice.result()
    except NotFound:
        account.result(), processors.result()
        raise
    account, processors = account.result(), processors.result()
    if invoice["total"]["currency"] != account["currency"]:
        account = None  # another currency: the balance cannot pay it
    covered = (
        account is not None
        and invoice["status"] == "unpaid"
        and invoice["purpose"] != "add_funds"
        and account["balance"]["amount"] >= invoice["total"]["amount"]
    )
    outcome = call.request.args.get("checkout")
    response = call.render(
        "client/invoice.html",
        status=status,
        invoice=invoice,
        account=account,
        covered=covered,
        processors=processors,
        outcome=outcome if outcome in ("success", "cancel") else None,
        just_paid=call.request.args.get("paid") == "balance",
        just_added=call.request.args.get("added") == "1",
        errors=errors,
        today=clock.now().date().isoformat(),
    )
    return response


def _pdf(content: str, filename: str) -> Response:
    return Response(
        base64.b64decode(content),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
