"""The staff panel's billing pages: invoices (the list by status, overdue ones, one
invoice with its lines, payments and refunds; voiding it, recording a payment against
it, refunding it; issuing one by hand), payments (the list, recording one, processor
payments that matched no invoice), refunds (retrying a failed one), credit notes, tax
rules and affiliate programs. A tab bar links them (templates/staff/_billing_tabs.html).

Each page allows the roles of the API route it mirrors (`staff=`), and each action is
shown only to whom its route allows it (`can(...)` in the templates). Lists take the
panel's customer filter. Forms work without JavaScript: they post, and a success answers
303 to a page with `?done=...`; a refusal shows the form again with the error next to
its field. Recording a payment and issuing an invoice carry the form's own
Idempotency-Key, so a double click or a reload records one.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from contracts.errors import Conflict, HostledgerError, NotFound, ValidationFailed
from gateway.web.client.finances import MAX_AMOUNT, parse_amount
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page
from services.infra import clock
from services.infra.clock import isoformat

ROWS = 20
LIST = "GET /api/v1/staff/<any(invoices,payments,expenses,commissions):name>"
INVOICE = "GET /api/v1/staff/invoices/<uuid:invoice_id>"
VOID = "POST /api/v1/staff/invoices/<uuid:invoice_id>/void"
REFUND = "POST /api/v1/staff/invoices/<uuid:invoice_id>/refund"
ISSUE = "POST /api/v1/staff/invoices"
RECORD = "POST /api/v1/staff/payments"
UNMATCHED = "GET /api/v1/staff/payments/unmatched"
REFUNDS = "GET /api/v1/staff/refunds"
ONE_REFUND = "GET /api/v1/staff/refunds/<uuid:refund_id>"
RETRY = "POST /api/v1/staff/refunds/<uuid:refund_id>/retry"
NOTES = "GET /api/v1/staff/credit-notes"
ONE_NOTE = "GET /api/v1/staff/credit-notes/<uuid:note_id>"
TAX_RULES = "GET /api/v1/staff/tax-rules"
ADD_TAX_RULE = "POST /api/v1/staff/tax-rules"
CHANGE_TAX_RULE = "PATCH /api/v1/staff/tax-rules/<uuid:rule_id>"
PROGRAMS = "GET /api/v1/staff/affiliate-programs"
ADD_PROGRAM = "POST /api/v1/staff/affiliate-programs"
CHANGE_PROGRAM = "PATCH /api/v1/staff/affiliate-programs/<uuid:program_id>"

# the invoice list's choices: a status, `overdue` (unpaid and past due), or all
INVOICE_SHOWN = ("all", "unpaid", "overdue", "paid", "void", "cancelled", "refunded")
REFUND_SHOWN = ("all", "failed", "requested", "pending", "completed")
METHODS = ("bank_transfer", "cash", "card", "other")
REFUND_TO = ("account", "processor")
INVOICE_LINES = 3  # the lines the hand-issued invoice's form offers
REQUEST_KEY = (16, 64)  # the length of a form's own Idempotency-Key


class StaffBillingPages:
    """Mixed into GatewayService."""

    # -- invoices ---------------------------------------------------------------------------

    @page("GET", "/staff/invoices", staff=LIST)
    def web_staff_invoices(self, call: PageCall):
        shown = _choice(call, "status", INVOICE_SHOWN)
        number, size = call.page_args(ROWS)
        status = None if shown in ("all", "overdue") else shown
        invoices = call.services.billing.list(
            "invoices", call.customer_filter(), status, number, size, shown == "overdue"
        )
        return call.render(
            "staff/billing_invoices.html",
            invoices=invoices,
            shown=shown,
            customers=_customers(call, invoices["items"]),
            today=clock.now().date().isoformat(),
        )

    @page("GET", "/staff/invoices/<uuid:invoice_id>", staff=INVOICE)
    def web_staff_invoice(self, call: PageCall):
        return _invoice_page(call, FormErrors(), {})

    @page("POST", "/staff/invoices/<uuid:invoice_id>/void", staff=VOID)
    def web_staff_void_invoice(self, call: PageCall):
        invoice_id = str(call.path["invoice_id"])
        values, errors = call.form("reason")
        if not errors and not values["reason"]:
            errors.add("reason", call.gettext("Say why the invoice is voided."))
        if errors:
            return _invoice_page(call, errors, values, status=400)
        try:
            call.services.billing.void_invoice(invoice_id, {"reason": values["reason"]})
        except Conflict:
            errors.add("reason", call.gettext("Only an unpaid invoice can be voided."))
            return _invoice_page(call, errors, values, status=409)
        except ValidationFailed as exc:
            errors = call.service_errors(exc, errors)
            return _invoice_page(call, errors, values, status=400)
        return call.redirect(f"/staff/invoices/{invoice_id}", done="voided")

    @page("POST", "/staff/invoices/<uuid:invoice_id>/refund", staff=REFUND)
    def web_staff_refund_invoice(self, call: PageCall):
        invoice_id = str(call.path["invoice_id"])
        values, errors = call.form("refund_amount", "to", "refund_reason", "request")
        invoice = call.services.billing.get_invoice(invoice_id)
        currency = invoice["total"]["currency"]
        payload: dict = {"reason": values["refund_reason"], "to": values["to"], "amount": None}
        if values["to"] not in REFUND_TO:
            errors.add("to", call.gettext("Choose where the money goes."))
        if not values["refund_reason"]:
            errors.add("refund_reason", call.gettext("Say why the money goes back."))
        if values["refund_amount"]:
            amount = parse_amount(values["refund_amount"], currency, call.language)
            if not amount:
                errors.add("refund_amount", call.gettext("Enter an amount such as 25.00."))
            else:
                payload["amount"] = {"amount": amount, "currency": currency}
        if errors:
            return _invoice_page(call, errors, values, status=400)
        try:
            refund = call.services.billing.refund_invoice(
                invoice_id, payload, _form_key(values, "web-refund")
            )
        except Conflict as exc:
            field = "to" if "to" in (exc.fields or {}) else "refund_amount"
            errors.add(
                field,
                call.gettext(
                    "This refund cannot be made: more than is left to refund, or the money "
                    "cannot go that way."
                ),
            )
            return _invoice_page(call, errors, values, status=409)
        except ValidationFailed as exc:
            errors = call.service_errors(
                exc, errors, {"amount": N_("Check this value: it was not accepted.")}
            )
            return _invoice_page(call, errors, values, status=400)
        return call.redirect(f"/staff/refunds/{refund['id']}", done="requested")

    @page("GET", "/staff/invoices/new", staff=ISSUE)
    def web_staff_new_invoice(self, call: PageCall):
        customer = call.filtered_customer
        values = {"customer": str(customer["number"]) if customer else "", "due_days": "14"}
        return _issue_form(call, values, FormErrors())

    @page("POST", "/staff/invoices/new", staff=ISSUE)
    def web_staff_issue_invoice(self, call: PageCall):
        names = ["customer", "due_days", "request"]
        for n in range(INVOICE_LINES):
            names += [f"description_{n}", f"quantity_{n}", f"price_{n}", f"period_{n}"]
            names += [f"period_start_{n}", f"period_end_{n}"]
        values, errors = call.form(*names)
        customer = _customer_by_number(call, values["customer"], "customer", errors)
        due_days = _whole(values["due_days"], 0, 365)
        if due_days is None:
            errors.add("due_days", call.gettext("A number of days from 0 to 365."))
        lines = []
        currency = customer["currency"] if customer else None
        for n in range(INVOICE_LINES):
            described, priced = values[f"description_{n}"], values[f"price_{n}"]
            if not described and not priced and n:
                continue  # an empty extra line
            if not described:
                errors.add(f"description_{n}", call.gettext("Describe what is billed."))
            quantity = _whole(values[f"quantity_{n}"] or "1", 1, 10_000)
            if quantity is None:
                errors.add(f"quantity_{n}", call.gettext("A whole number from 1."))
            price = parse_amount(priced, currency, call.language) if currency else None
            if currency and (price is None or price > MAX_AMOUNT):
                errors.add(f"price_{n}", call.gettext("Enter an amount such as 25.00."))
            line = {
                "description": described,
                "quantity": quantity,
                "unit_price": {"amount": price, "currency": currency},
            }
            if values[f"period_{n}"]:
                line["period"] = values[f"period_{n}"]
            line.update(_period_days(call, values, n, errors))
            lines.append(line)
        if errors:
            return _issue_form(call, values, errors, status=400)
        payload = {"customer_id": customer["id"], "due_days": due_days, "lines": lines}
        try:
            invoice = call.services.billing.issue_invoice(payload, _form_key(values, "web-invoice"))
        except ValidationFailed as exc:
            errors = _line_errors(call, exc, errors)
            return _issue_form(call, values, errors, status=400)
        return call.redirect(f"/staff/invoices/{invoice['id']}", done="issued")

    # -- payments ---------------------------------------------------------------------------

    @page("GET", "/staff/payments", staff=LIST)
    def web_staff_payments(self, call: PageCall):
        number, size = call.page_args(ROWS)
        payments = call.services.billing.list(
            "payments", call.customer_filter(), None, number, size
        )
        return call.render(
            "staff/billing_payments.html",
            payments=payments,
            customers=_customers(call, payments["items"]),
            done=call.request.args.get("done"),
        )

    @page("GET", "/staff/payments/new", staff=RECORD)
    def web_staff_new_payment(self, call: PageCall):
        invoice = _invoice_or_none(call, call.request.args.get("invoice", ""))
        customer = call.filtered_customer
        values = {"customer": str(customer["number"]) if customer else "", "method": ""}
        if invoice is not None:
            values["customer"] = str(invoice["buyer"].get("number") or "")
            values["amount"] = _plain_amount(invoice["total"], call.language)
        return _payment_form(call, values, FormErrors(), invoice)

    @page("POST", "/staff/payments/new", staff=RECORD)
    def web_staff_record_payment(self, call: PageCall):
        values, errors = call.form(
            "customer", "amount", "method", "reference", "invoice_id", "request"
        )
        invoice = _invoice_or_none(call, values["invoice_id"])
        customer = None
        if invoice is not None:
            customer = {"id": invoice["customer_id"], "currency": invoice["total"]["currency"]}
        else:
            customer = _customer_by_number(call, values["customer"], "customer", errors)
        amount = None
        if customer is not None:
            amount = parse_amount(values["amount"], customer["currency"], call.language)
            if not amount or amount > MAX_AMOUNT:
                errors.add("amount", call.gettext("Enter an amount such as 25.00."))
        if values["method"] not in METHODS:
            errors.add("method", call.gettext("Choose how the money came."))
        if not values["reference"]:
            errors.add("reference", call.gettext("Enter the bank's or the receipt's reference."))
        if errors:
            return _payment_form(call, values, errors, invoice, status=400)
        payload = {
            "customer_id": customer["id"],
            "amount": {"amount": amount, "currency": customer["currency"]},
            "method": values["method"],
            "reference": values["reference"],
            "invoice_id": invoice["id"] if invoice else None,
        }
        try:
            call.services.billing.record_payment(payload, _form_key(values, "web-payment"))
        except Conflict:
            errors.add("_form", call.gettext("This invoice is not unpaid any more."))
            return _payment_form(call, values, errors, invoice, status=409)
        except ValidationFailed as exc:
            errors = call.service_errors(
                exc,
                errors,
                {
                    "amount": N_("Less than the invoice's total, or not in its currency."),
                    "customer_id": N_("This customer has no personal account in that currency."),
                },
            )
            return _payment_form(call, values, errors, invoice, status=400)
        if invoice is not None:
            return call.redirect(f"/staff/invoices/{invoice['id']}", done="paid")
        return call.redirect("/staff/payments", done="recorded")

    @page("GET", "/staff/payments/unmatched", staff=UNMATCHED)
    def web_staff_unmatched_payments(self, call: PageCall):
        number, size = call.page_args(ROWS)
        unmatched = call.services.billing.list("unmatched_payments", None, None, number, size)
        return call.render("staff/billing_unmatched.html", unmatched=unmatched)

    # -- refunds and credit notes -----------------------------------------------------------

    @page("GET", "/staff/refunds", staff=REFUNDS)
    def web_staff_refunds(self, call: PageCall):
        shown = _choice(call, "status", REFUND_SHOWN)
        number, size = call.page_args(ROWS)
        refunds = call.services.billing.list(
            "refunds",
            call.customer_filter(),
            None if shown == "all" else shown,
            number,
            size,
        )
        return call.render(
            "staff/billing_refunds.html",
            refunds=refunds,
            shown=shown,
            customers=_customers(call, refunds["items"]),
        )

    @page("GET", "/staff/refunds/<uuid:refund_id>", staff=ONE_REFUND)
    def web_staff_refund(self, call: PageCall):
        return _refund_page(call, FormErrors())

    @page("POST", "/staff/refunds/<uuid:refund_id>/retry", staff=RETRY)
    def web_staff_retry_refund(self, call: PageCall):
        refund_id = str(call.path["refund_id"])
        try:
            call.services.billing.retry_refund(refund_id)
        except Conflict:
            errors = FormErrors().add(
                "_form", call.gettext("Only a failed refund is sent again; this one is not.")
            )
            return _refund_page(call, errors, status=409)
        return call.redirect(f"/staff/refunds/{refund_id}", done="retried")

    @page("GET", "/staff/credit-notes", staff=NOTES)
    def web_staff_credit_notes(self, call: PageCall):
        number, size = call.page_args(ROWS)
        notes = call.services.billing.list(
            "credit_notes", call.customer_filter(), None, number, size
        )
        return call.render(
            "staff/billing_credit_notes.html",
            notes=notes,
            customers=_customers(call, notes["items"]),
        )

    @page("GET", "/staff/credit-notes/<uuid:note_id>", staff=ONE_NOTE)
    def web_staff_credit_note(self, call: PageCall):
        note = call.services.billing.get_credit_note(str(call.path["note_id"]))
        return call.render(
            "staff/billing_credit_note.html",
            note=note,
            whose=_customers(call, [note]).get(note["customer_id"]),
        )

    # -- tax rules and affiliate programs ---------------------------------------------------

    @page("GET", "/staff/tax-rules", staff=TAX_RULES)
    def web_staff_tax_rules(self, call: PageCall):
        return _tax_rules_page(call, {"inclusive": "1"}, FormErrors())

    @page("POST", "/staff/tax-rules", staff=ADD_TAX_RULE)
    def web_staff_add_tax_rule(self, call: PageCall):
        values, errors = call.form("name", "country", "rate", "inclusive", "valid_from", "valid_to")
        payload = _tax_rule_payload(call, values, errors)
        payload["country"] = values["country"].upper()
        if errors:
            return _tax_rules_page(call, values, errors, status=400)
        try:
            call.services.billing.add_tax_rule(payload)
        except ValidationFailed as exc:
            errors = call.service_errors(exc, errors)
            return _tax_rules_page(call, values, errors, status=400)
        return call.redirect("/staff/tax-rules", done="added")

    @page("GET", "/staff/tax-rules/<uuid:rule_id>", staff=CHANGE_TAX_RULE)
    def web_staff_tax_rule(self, call: PageCall):
        rule = _tax_rule(call)
        values = {
            "name": rule["name"],
            "rate": rule["rate"],
            "inclusive": "1" if rule["inclusive"] else "",
            "valid_from": (rule["valid_from"] or "")[:10],
            "valid_to": (rule["valid_to"] or "")[:10],
        }
        return _tax_rule_page(call, rule, values, FormErrors())

    @page("POST", "/staff/tax-rules/<uuid:rule_id>", staff=CHANGE_TAX_RULE)
    def web_staff_change_tax_rule(self, call: PageCall):
        rule = _tax_rule(call)
        values, errors = call.form("name", "rate", "inclusive", "valid_from", "valid_to", "end")
        if values["end"]:
            payload = {"valid_to": clock.now().isoformat()}
        else:
            payload = _tax_rule_payload(call, values, errors)
        if errors:
            return _tax_rule_page(call, rule, values, errors, status=400)
        try:
            call.services.billing.change_tax_rule(rule["id"], payload)
        except ValidationFailed as exc:
            errors = call.service_errors(
                exc, errors, {"valid_to": N_("The rule must end after it starts.")}
            )
            return _tax_rule_page(call, rule, values, errors, status=400)
        return call.redirect("/staff/tax-rules", done="changed")

    @page("GET", "/staff/affiliate-programs", staff=PROGRAMS)
    def web_staff_programs(self, call: PageCall):
        return _programs_page(call, {"maturity_days": "30"}, FormErrors())

    @page("POST", "/staff/affiliate-programs", staff=ADD_PROGRAM)
    def web_staff_add_program(self, call: PageCall):
        values, errors = call.form("name", "percent", "maturity_days")
        if not values["name"]:
            errors.add("name", call.gettext("Name the program."))
        payload = {"name": values["name"], **_program_payload(call, values, errors)}
        if errors:
            return _programs_page(call, values, errors, status=400)
        try:
            call.services.billing.create_program(payload)
        except Conflict:
            errors.add("name", call.gettext("A program has this name already."))
            return _programs_page(call, values, errors, status=409)
        except ValidationFailed as exc:
            errors = call.service_errors(exc, errors)
            return _programs_page(call, values, errors, status=400)
        return call.redirect("/staff/affiliate-programs", done="added")

    @page("GET", "/staff/affiliate-programs/<uuid:program_id>", staff=CHANGE_PROGRAM)
    def web_staff_program(self, call: PageCall):
        program = _program(call)
        values = {
            "percent": program["percent"],
            "maturity_days": str(program["maturity_days"]),
            "active": "1" if program["active"] else "",
        }
        return _program_page(call, program, values, FormErrors())

    @page("POST", "/staff/affiliate-programs/<uuid:program_id>", staff=CHANGE_PROGRAM)
    def web_staff_change_program(self, call: PageCall):
        program = _program(call)
        values, errors = call.form("percent", "maturity_days", "active")
        payload = dict(_program_payload(call, values, errors), active=bool(values["active"]))
        if errors:
            return _program_page(call, program, values, errors, status=400)
        try:
            call.services.billing.change_program(program["id"], payload)
        except ValidationFailed as exc:
            errors = call.service_errors(exc, errors)
            return _program_page(call, program, values, errors, status=400)
        return call.redirect("/staff/affiliate-programs", done="changed")


# -- what the pages share ----------------------------------------------------------------


def _choice(call: PageCall, name: str, choices: tuple[str, ...]) -> str:
    """`?<name>=` when it is one of `choices`, else the first of them."""
    asked = call.request.args.get(name, choices[0])
    return asked if asked in choices else choices[0]


def _customers(call: PageCall, rows: list[dict]) -> dict:
    """The customers the rows name, by id ({"number", "name", ...}; None for one that is
    gone), asked side by side."""
    ids = {row["customer_id"] for row in rows if row.get("customer_id")}
    asked = {i: call.services.customers.get_customer.call_async(i) for i in ids}
    found = {}
    for customer_id, reply in asked.items():
        try:
            found[customer_id] = reply.result()
        except HostledgerError:
            found[customer_id] = None
    return found


def _customer_by_number(call: PageCall, text: str, field: str, errors: FormErrors):
    """The customer whose number was typed in `field`, or None (with the error added)."""
    number = _whole(text, 1, 2**31 - 1)
    if number is None:
        errors.add(field, call.gettext("Enter the customer's number."))
        return None
    found = call.services.customers.list_customers({"number": number, "page_size": 1})
    if not found["items"]:
        errors.add(field, call.gettext("There is no customer with this number."))
        return None
    return call.services.customers.get_customer(found["items"][0]["id"])


def _period_days(call: PageCall, values: dict, n: int, errors: FormErrors) -> dict:
    """Line `n`'s first and last day of its period (`period_start`, `period_end`), both or
    neither, each refused next to its field."""
    days = {}
    for key in ("period_start", "period_end"):
        text = values[f"{key}_{n}"]
        if not text:
            continue
        try:
            days[key] = date.fromisoformat(text).isoformat()
        except ValueError:
            errors.add(f"{key}_{n}", call.gettext("A date such as 2026-12-31."))
    given = [key for key in ("period_start", "period_end") if values[f"{key}_{n}"]]
    if len(given) == 1:
        missing = "period_end" if given == ["period_start"] else "period_start"
        errors.add(f"{missing}_{n}", call.gettext("Give both days of the period, or neither."))
    elif len(days) == 2 and days["period_end"] < days["period_start"]:
        errors.add(f"period_end_{n}", call.gettext("The last day comes on or after the first."))
    return days if len(days) == 2 else {}


def _whole(text: str, least: int, most: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if least <= value <= most else None


def _form_key(values: dict, scope: str) -> str | None:
    """The form's own Idempotency-Key (a hidden field made with the form)."""
    key = values.get("request") or ""
    least, most = REQUEST_KEY
    return f"{scope}:{key}" if least <= len(key) <= most else None


def _plain_amount(money: dict, language: str) -> str:
    """Money as a person would type it in the form (`12.50`, `12,50` in French)."""
    from babel import numbers

    digits = numbers.get_currency_precision(money["currency"])
    value = money["amount"] / 10**digits
    return numbers.format_decimal(
        value, format="0." + "0" * digits if digits else "0", locale=language
    )


def _invoice_or_none(call: PageCall, invoice_id: str) -> dict | None:
    if not invoice_id:
        return None
    try:
        return call.services.billing.get_invoice(invoice_id)
    except NotFound:
        return None


def _invoice_page(call: PageCall, errors: FormErrors, values: dict, status: int = 200):
    """One invoice with its payments and refunds, and the forms of what this role may do
    with it (void, record a payment, refund), their errors next to their fields."""
    billing, invoice_id = call.services.billing, str(call.path["invoice_id"])
    invoice = billing.get_staff_invoice(invoice_id)
    refunds = billing.list("refunds", invoice["customer_id"], None, 1, 200)
    mine = [r for r in refunds["items"] if r["invoice_id"] == invoice_id]
    values = dict(values)
    values.setdefault("amount", _plain_amount(invoice["total"], call.language))
    return call.render(
        "staff/billing_invoice.html",
        status=status,
        invoice=invoice,
        refunds=mine,
        whose=_customers(call, [invoice]).get(invoice["customer_id"]),
        errors=errors,
        values=values,
        methods=METHODS,
        request_key=values.get("request") or secrets.token_urlsafe(24),
        done=call.request.args.get("done"),
        today=clock.now().date().isoformat(),
    )


def _payment_form(
    call: PageCall, values: dict, errors: FormErrors, invoice: dict | None, status: int = 200
):
    return call.render(
        "staff/billing_payment_new.html",
        status=status,
        values=values,
        errors=errors,
        invoice=invoice,
        methods=METHODS,
        request_key=values.get("request") or secrets.token_urlsafe(24),
        today=clock.now().date().isoformat(),
    )


def _issue_form(call: PageCall, values: dict, errors: FormErrors, status: int = 200):
    return call.render(
        "staff/billing_invoice_new.html",
        status=status,
        values=values,
        errors=errors,
        line_count=INVOICE_LINES,
        request_key=values.get("request") or secrets.token_urlsafe(24),
    )


def _line_errors(call: PageCall, exc: ValidationFailed, errors: FormErrors) -> FormErrors:
    """The service's refusal of a hand-issued invoice next to the form's fields: a line's
    field (`lines.1.unit_price.currency`) next to that line's."""
    for name in exc.fields or {}:
        parts = str(name).split(".")
        if parts[0] == "lines" and len(parts) > 2 and parts[1].isdigit():
            field = {
                "unit_price": "price",
                "description": "description",
                "period_start": "period_start",
                "period_end": "period_end",
            }.get(parts[2])
            if field:
                errors.add(
                    f"{field}_{parts[1]}", call.gettext("Check this value: it was not accepted.")
                )
                continue
        if parts[0] == "customer_id":
            errors.add("customer", call.gettext("This customer cannot be billed in this way."))
            continue
        errors.add("_form", call.gettext("Check this value: it was not accepted."))
    if not errors:
        errors.add("_form", call.gettext("Check this value: it was not accepted."))
    return errors


def _refund_page(call: PageCall, errors: FormErrors, status: int = 200):
    refund = call.services.billing.get_refund(str(call.path["refund_id"]))
    return call.render(
        "staff/billing_refund.html",
        status=status,
        refund=refund,
        whose=_customers(call, [refund]).get(refund["customer_id"]),
        errors=errors,
        done=call.request.args.get("done"),
    )


def _tax_rule_payload(call: PageCall, values: dict, errors: FormErrors) -> dict:
    """A tax rule's name, rate, inclusion and validity as the form gave them (dates as
    midnight UTC), errors next to their fields."""
    payload: dict = {"name": values["name"], "inclusive": bool(values["inclusive"])}
    if not values["name"]:
        errors.add("name", call.gettext("Name the tax, such as VAT."))
    rate = _decimal(values["rate"])
    if rate is None or not 0 <= rate <= 100:
        errors.add("rate", call.gettext("A percentage from 0 to 100, such as 20."))
    else:
        payload["rate"] = str(rate)
    for name in ("valid_from", "valid_to"):
        payload[name] = None
        if values[name]:
            try:
                day = date.fromisoformat(values[name])
            except ValueError:
                errors.add(name, call.gettext("Enter a date such as 2026-01-31."))
            else:
                payload[name] = datetime.combine(day, time.min, tzinfo=UTC).isoformat()
    return payload


def _program_payload(call: PageCall, values: dict, errors: FormErrors) -> dict:
    payload: dict = {}
    percent = _decimal(values["percent"])
    if percent is None or not 0 < percent <= 100:
        errors.add("percent", call.gettext("A percentage above 0, up to 100, such as 10."))
    else:
        payload["percent"] = str(percent)
    days = _whole(values["maturity_days"], 0, 3650)
    if days is None:
        errors.add("maturity_days", call.gettext("A number of days from 0 to 3650."))
    else:
        payload["maturity_days"] = days
    return payload


def _decimal(text: str) -> Decimal | None:
    """A number a person typed (`20`, `7.7`, `7,7`), or None."""
    try:
        value = Decimal(text.replace(",", ".").replace("%", "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _tax_rule(call: PageCall) -> dict:
    rule_id = str(call.path["rule_id"])
    rule = next((r for r in call.services.billing.tax_rules() if r["id"] == rule_id), None)
    if rule is None:
        raise NotFound("No such tax rule.")
    return rule


def _program(call: PageCall) -> dict:
    program_id = str(call.path["program_id"])
    program = next((p for p in call.services.billing.programs() if p["id"] == program_id), None)
    if program is None:
        raise NotFound("No such affiliate program.")
    return program


def _tax_rules_page(call: PageCall, values: dict, errors: FormErrors, status: int = 200):
    rules = call.services.billing.tax_rules()
    now = isoformat(clock.now())
    return call.render(
        "staff/billing_tax_rules.html",
        status=status,
        rules=rules,
        now=now,
        values=values,
        errors=errors,
        done=call.request.args.get("done"),
    )


def _tax_rule_page(call: PageCall, rule: dict, values: dict, errors: FormErrors, status=200):
    return call.render(
        "staff/billing_tax_rule.html", status=status, rule=rule, values=values, errors=errors
    )


def _programs_page(call: PageCall, values: dict, errors: FormErrors, status: int = 200):
    return call.render(
        "staff/billing_programs.html",
        status=status,
        programs=call.services.billing.programs(),
        values=values,
        errors=errors,
        done=call.request.args.get("done"),
    )


def _program_page(call: PageCall, program: dict, values: dict, errors: FormErrors, status=200):
    return call.render(
        "staff/billing_program.html", status=status, program=program, values=values, errors=errors
    )
