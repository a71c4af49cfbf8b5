"""The staff panel's promo codes, beside the other billing pages: the list (by state and
a part of the code, paged), adding a code, one code with its uses, the orders placed
with it and its history, changing its discount, products, expiry and limit (never its
code: orders name it), deactivating it and activating it again.

The same orders-service commands as `/api/v1/staff/promo-codes...`; each page allows the
roles of the route it mirrors and shows an action only to whom its route allows it.
Amounts are typed as a person writes them (`9,99` on a French page); an expiry is a day,
the whole of which counts. Each change is an event of its own, stamped with the staff
member who made it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from decimal import Decimal

from babel import numbers

from contracts.errors import Conflict, HostledgerError, ValidationFailed
from gateway.web.client.finances import parse_amount
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page

PAGE_SIZE = 20
LIST = "GET /api/v1/staff/promo-codes"
ONE = "GET /api/v1/staff/promo-codes/<uuid:promo_id>"
CREATE = "POST /api/v1/staff/promo-codes"
CHANGE = "PATCH /api/v1/staff/promo-codes/<uuid:promo_id>"
TURN = "POST /api/v1/staff/promo-codes/<uuid:promo_id>/<any(deactivate,activate):action>"
STATES = ("active", "expired", "used_up", "deactivated")
KINDS = ("percentage", "fixed")
MAX_USES = 2**31 - 1

NOTICES = {
    "created": N_("The promo code is added."),
    "saved": N_("The promo code is saved."),
    "unchanged": N_("Nothing was changed."),
    "deactivate": N_("The promo code is deactivated: orders can no longer use it."),
    "activate": N_("The promo code is active again."),
}
CODE = re.compile(r"^[A-Za-z0-9_-]{3,40}$")  # contracts.orders.CreatePromo's rule
# a service's refusal, in the page's language, next to the field it names
MESSAGES = {
    "percent": N_("For a percentage: more than 0, at most 100."),
    "currency": N_("A currency code such as EUR."),
    "max_uses": N_("It has been used more often than that already."),
    "product_ids": N_("A product is no longer in the catalogue: reload the page."),
}


def amount_text(amount: int, currency: str, language: str) -> str:
    """Minor units as a person would type them on this page (`5,00` in French)."""
    digits = numbers.get_currency_precision(currency)
    return numbers.format_decimal(
        Decimal(amount).scaleb(-digits),
        format="0." + "0" * digits if digits else "0",
        locale=language,
    )


def expiry(text: str) -> str | None:
    """A day from a date field as the end of that day in UTC (None: no expiry);
    ValueError when it is not a date."""
    if not text:
        return None
    day = datetime.strptime(text, "%Y-%m-%d").date()
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC).isoformat()


def form_values(promo: dict | None, language: str) -> dict:
    """The form's fields for a code (a new one: empty, a percentage)."""
    if promo is None:
        return {
            "code": "",
            "kind": "percentage",
            "percent": "",
            "amount": "",
            "currency": "",
            "product_ids": [],
            "expires_at": "",
            "max_uses": "",
        }
    money = promo.get("amount")
    return {
        "code": promo["code"],
        "kind": promo["kind"],
        "percent": _percent_text(promo.get("percent")),
        "amount": amount_text(money["amount"], money["currency"], language) if money else "",
        "currency": money["currency"] if money else "",
        "product_ids": list(promo["product_ids"]),
        "expires_at": (promo.get("expires_at") or "")[:10],
        "max_uses": "" if promo.get("max_uses") is None else str(promo["max_uses"]),
    }


def _percent_text(percent: str | None) -> str:
    """`20.00` as `20`, `12.50` as `12.5`."""
    if not percent:
        return ""
    text = str(percent)
    return text.rstrip("0").rstrip(".") if "." in text else text


def read_form(call: PageCall, promo: dict | None) -> tuple[dict, dict, FormErrors]:
    """(the fields as typed, the body for the orders service, errors next to fields). A
    new code sends every field; a change sends what the form may change, the expiry only
    when another day was chosen (the day shown stands for the moment it has)."""
    names = ("kind", "percent", "amount", "currency", "expires_at", "max_uses")
    values, errors = call.form(*(("code",) if promo is None else ()), *names)
    values["product_ids"] = [p for p in call.request.form.getlist("product_ids") if p]
    payload: dict = {"kind": values["kind"]}
    if promo is None:
        if not values["code"]:
            errors.add("code", call.gettext("Fill this in."))
        elif not CODE.match(values["code"]):
            errors.add("code", call.gettext("From 3 to 40 letters, digits, _ or -."))
        payload["code"] = values["code"]
    if values["kind"] == "percentage":
        if not values["percent"]:
            errors.add("percent", call.gettext("Fill this in."))
        payload["percent"] = values["percent"].replace(",", ".").replace(" ", "")
        if promo is not None and promo.get("amount"):
            payload["amount"] = None
    elif values["kind"] == "fixed":
        currency = values["currency"].upper()
        values["currency"] = currency
        if not currency:
            errors.add("currency", call.gettext("Fill this in."))
        if not values["amount"]:
            errors.add("amount", call.gettext("Fill this in."))
        elif currency:
            minor = parse_amount(values["amount"], currency, call.language)
            if minor is None or minor == 0:
                errors.add("amount", call.gettext("Write the amount like 9.99."))
            payload["amount"] = {"amount": minor, "currency": currency}
        if promo is not None and promo.get("percent"):
            payload["percent"] = None
    else:
        errors.add("kind", call.gettext("Choose a kind of discount."))
    payload["product_ids"] = values["product_ids"]
    shown = (promo or {}).get("expires_at") or ""
    if promo is None or values["expires_at"] != shown[:10]:
        try:
            payload["expires_at"] = expiry(values["expires_at"])
        except ValueError:
            errors.add("expires_at", call.gettext("Choose a date."))
    text = values["max_uses"]
    if not text:
        payload["max_uses"] = None
    elif text.isdigit() and 1 <= int(text) <= MAX_USES:
        payload["max_uses"] = int(text)
    else:
        errors.add("max_uses", call.gettext("A whole number from 1, or empty for no limit."))
    return values, payload, errors


def _notice(call: PageCall) -> str | None:
    notice = NOTICES.get(call.request.args.get("done", ""))
    return call.gettext(notice) if notice else None


def _products(call: PageCall) -> list[tuple[str, str]]:
    """Every product of the catalogue (on sale or not) as (id, name in the page's language)."""
    return [(p["id"], p["name"]) for p in call.services.orders.catalog(call.language, False, None)]


def _customers(call: PageCall, orders: list[dict]) -> dict:
    """The customers of the orders, by id, asked side by side (None: deleted)."""
    asked = {
        i: call.services.customers.get_customer.call_async(i)
        for i in {o["customer_id"] for o in orders}
    }
    found = {}
    for customer_id, reply in asked.items():
        try:
            found[customer_id] = reply.result()
        except HostledgerError:
            found[customer_id] = None
    return found


def _staff(call: PageCall, history: list[dict]) -> dict:
    ids = {
        who["id"]
        for event in history
        for who in (event.get("actor"), event.get("on_behalf_of"))
        if who and who.get("kind") == "staff" and who.get("id")
    }
    if not ids:
        return {}
    return {m["id"]: m for m in call.services.customers.staff_members(sorted(ids))}


class StaffPromoPages:
    """Mixed into GatewayService."""

    @page("GET", "/staff/promo-codes", staff=LIST)
    def web_staff_promos(self, call: PageCall):
        state = call.request.args.get("state", "")
        state = state if state in STATES else ""
        code = call.request.args.get("code", "").strip()[:40]
        number, size = call.page_args(PAGE_SIZE)
        filters = {"state": state or None, "code": code or None}
        try:
            promos = call.services.orders.list_promos(filters, number, size)
        except ValidationFailed:  # text no code can hold
            promos = {"items": [], "total": 0, "page": 1, "page_size": size}
        query = {k: v for k, v in (("state", state), ("code", code)) if v}
        return call.render(
            "staff/promos.html",
            promos=promos,
            state=state,
            code=code,
            query=query,
            notice=_notice(call),
        )

    @page("GET", "/staff/promo-codes/new", staff=CREATE)
    def web_staff_promo_new(self, call: PageCall):
        return _form_page(call, None, form_values(None, call.language), FormErrors())

    @page("POST", "/staff/promo-codes/new", staff=CREATE)
    def web_staff_promo_create(self, call: PageCall):
        values, payload, errors = read_form(call, None)
        if not errors:
            try:
                promo = call.services.orders.create_promo(payload)
            except Conflict:
                errors.add("code", call.gettext("This code exists already: choose another."))
            except ValidationFailed as exc:
                errors = call.service_errors(_by_field(exc), errors, MESSAGES)
            else:
                return call.redirect(f"/staff/promo-codes/{promo['id']}", done="created")
        return _form_page(call, None, values, errors, status=400)

    @page("GET", "/staff/promo-codes/<uuid:promo_id>", staff=ONE)
    def web_staff_promo(self, call: PageCall):
        promo = call.services.orders.get_promo(str(call.path["promo_id"]))
        return _form_page(
            call, promo, form_values(promo, call.language), FormErrors(), _notice(call)
        )

    @page("POST", "/staff/promo-codes/<uuid:promo_id>", staff=CHANGE)
    def web_staff_promo_change(self, call: PageCall):
        promo = call.services.orders.get_promo(str(call.path["promo_id"]))
        values, payload, errors = read_form(call, promo)
        if not errors:
            try:
                changed = call.services.orders.change_promo(promo["id"], payload)
            except ValidationFailed as exc:
                errors = call.service_errors(_by_field(exc), errors, MESSAGES)
            else:
                done = "unchanged" if _same(changed, promo) else "saved"
                return call.redirect(f"/staff/promo-codes/{promo['id']}", done=done)
        values["code"] = promo["code"]
        return _form_page(call, promo, values, errors, status=400)

    @page(
        "POST", "/staff/promo-codes/<uuid:promo_id>/<any(deactivate,activate):action>", staff=TURN
    )
    def web_staff_promo_turn(self, call: PageCall):
        promo_id, action = str(call.path["promo_id"]), call.path["action"]
        call.services.orders.set_promo_active(promo_id, action == "activate")
        return call.redirect(f"/staff/promo-codes/{promo_id}", done=action)


def _same(changed: dict, before: dict) -> bool:
    keys = ("kind", "percent", "amount", "product_ids", "expires_at", "max_uses")
    return all(changed.get(k) == before.get(k) for k in keys)


def _by_field(exc: ValidationFailed) -> ValidationFailed:
    """The refusal with the money's currency named as the form's own field."""
    fields = {
        ("currency" if str(name) == "amount.currency" else name): problems
        for name, problems in (exc.fields or {}).items()
    }
    return ValidationFailed(exc.message, fields)


def _form_page(call: PageCall, promo, values: dict, errors, notice=None, status: int = 200):
    history = (promo or {}).get("history") or []
    orders = (promo or {}).get("orders") or []
    return call.render(
        "staff/promos_edit.html",
        status=status,
        promo=promo,
        values=values,
        errors=errors,
        notice=notice,
        products=_products(call),
        customers=_customers(call, orders),
        staff=_staff(call, history),
    )
