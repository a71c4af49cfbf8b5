"""The staff panel's history pages: every change of a customer, an invoice, a ticket, a
service or a staff member explained, and the object as it stood at a moment.

    /staff/customers/<id>/history    /staff/invoices/<id>/history
    /staff/tickets/<id>/history      /staff/services/<id>/history
    /staff/staff/<id>/history

Each page is the audit history the API answers (`GET /api/v1/staff/audit/.../history`,
gateway/api/audit.py: every service's events concerning the object, merged in time
order) and allows the roles of that route; the object's own page links it for them. A
page opens with the newest event, what staff and auditors look for first; "Oldest first"
(`?order=oldest`, kept in the address) reads it from the first, "Newest first" back. A
page shows ROWS events, paged by the history's cursor: the link onwards ("Older" newest
first, "Newer" oldest first) follows `next_cursor`, the link back goes through the
cursors of the pages before (`?trail=`, kept in the address, so no state is kept
anywhere). Each event says when (in UTC, as
every page), who (the staff member by name, the client, the system, mail; a staff member
acting in the client's panel as such), what happened and the changes, field: before →
after, in the page's language (history_words.py); and its reason. An event of another
object than the page's says which (linked to its page where the reader may open it); on
a customer's history its users, payers and discounts are named as on its card, and
customers by number and name everywhere.

`?at=<date and time>` (a datetime-local field, UTC) adds the object as it stood then
(`GET /api/v1/staff/audit/<kind>/<id>?at=`), as a definition list; a value that is no
date and time, or a moment before the object existed, is said next to the field. Every
history and state read is recorded as an audit read, as the API records it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlencode

from contracts import audit as contract
from contracts.errors import HostledgerError, NotFound, ValidationFailed
from gateway.api import audit as api
from gateway.web import i18n
from gateway.web.pages import FormErrors, PageCall, page
from gateway.web.staff import history_words as words

ROWS = 20
# how many of a customer's users, payers and discounts the history names
ROWS_NAMED = 200
# the fields by which an event names its own object (an invoice's number ...)
OWN_NAMES = ("number", "tracking_number", "code", "name")
# how many pages back "Older" can go (the cursors are kept in the address)
TRAIL_MAX = 60
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,500}$")

# the history page of each kind of object, and its object's own page
HISTORY_URLS = {
    "customer": "/staff/customers/{id}/history",
    "invoice": "/staff/invoices/{id}/history",
    "ticket": "/staff/tickets/{id}/history",
    "service": "/staff/services/{id}/history",
    "staff": "/staff/staff/{id}/history",
}
OBJECT_URLS = {
    "customer": "/staff/customers/{id}",
    "invoice": "/staff/invoices/{id}",
    "ticket": "/staff/tickets/{id}",
    "service": "/staff/services/{id}",
    "staff": "/staff/staff/{id}",
}
# an event's object, by aggregate class: its page in the panel and the route whose roles
# that page allows (an event of another object than the page's links to it)
LINKED = {
    "Customer": ("/staff/customers/{id}", "GET /api/v1/staff/customers/<uuid:customer_id>"),
    "Invoice": ("/staff/invoices/{id}", "GET /api/v1/staff/invoices/<uuid:invoice_id>"),
    "Ticket": ("/staff/tickets/{id}", "GET /api/v1/staff/tickets/<uuid:ticket_id>"),
    "Service": ("/staff/services/{id}", "GET /api/v1/staff/services/<uuid:service_id>"),
    "StaffMember": ("/staff/staff/{id}", "GET /api/v1/staff/staff"),
    "CreditNote": ("/staff/credit-notes/{id}", "GET /api/v1/staff/credit-notes/<uuid:note_id>"),
    "Refund": ("/staff/refunds/{id}", "GET /api/v1/staff/refunds/<uuid:refund_id>"),
}


class StaffHistoryPages:
    """Mixed into GatewayService."""

    @page("GET", "/staff/customers/<uuid:object_id>/history", staff=api.history_route("customer"))
    def web_staff_customer_history(self, call: PageCall):
        return history_page(call, "customer")

    @page("GET", "/staff/invoices/<uuid:object_id>/history", staff=api.history_route("invoice"))
    def web_staff_invoice_history(self, call: PageCall):
        return history_page(call, "invoice")

    @page("GET", "/staff/tickets/<uuid:object_id>/history", staff=api.history_route("ticket"))
    def web_staff_ticket_history(self, call: PageCall):
        return history_page(call, "ticket")

    @page("GET", "/staff/services/<uuid:object_id>/history", staff=api.history_route("service"))
    def web_staff_service_history(self, call: PageCall):
        return history_page(call, "service")

    @page("GET", "/staff/staff/<uuid:object_id>/history", staff=api.history_route("staff"))
    def web_staff_member_history(self, call: PageCall):
        return history_page(call, "staff")


# -- the page -----------------------------------------------------------------------------


def history_page(call: PageCall, kind: str):
    object_id = str(call.path["object_id"])
    args = call.request.args
    order = "oldest" if args.get("order") == "oldest" else "newest"
    cursor = args.get("cursor") or None
    trail = _trail(args.get("trail", ""), order)
    if cursor is not None and not _is_cursor(cursor, order):
        cursor, trail = None, []
    errors = FormErrors()
    at_text = args.get("at", "").strip()
    at = _instant(call, at_text, errors) if "at" in args else None
    if "at" in args and not at_text and not errors:
        errors.add("at", call.gettext("Enter a date and time."))

    history = api.history(_api_call(call, object_id, cursor=cursor, limit=ROWS, order=order), kind)
    title, subject, currency = _about(call, kind, object_id)
    state, status = None, 200
    if at is not None and call.can(api.state_route(kind)):
        try:
            state = api.past_state(_api_call(call, object_id, at=at), kind)
        except NotFound:
            errors.add("at", call.gettext("It did not exist yet at that moment."))
    if errors:
        status = 400
    translations = i18n.translations(call.language)
    staff = _staff_names(call, history["items"])
    names = _names(call, kind, object_id, history["items"])
    entries = [
        _entry(call, item, kind, object_id, staff, names, translations, currency)
        for item in history["items"]
    ]
    base = HISTORY_URLS[kind].format(id=object_id)
    here = {"order": order} if order == "oldest" else {}
    back = _back_url(base, here, cursor, trail)
    onwards = _onwards_url(base, here, cursor, trail, history["next_cursor"])
    return call.render(
        "staff/history.html",
        status=status,
        kind=kind,
        object_id=object_id,
        title=title,
        subject=subject,
        object_url=OBJECT_URLS[kind].format(id=object_id),
        base_url=base,
        entries=entries,
        page_number=len(trail) + (2 if cursor else 1),
        newest=order == "newest",
        back_url=back,
        onwards_url=onwards,
        newest_url=base,
        oldest_url=_url(base, {"order": "oldest"}),
        state_route=api.state_route(kind),
        at_value=at_text,
        errors=errors,
        state=state,
        state_rows=words.state_shown(state["state"], state["type"], call.language, translations)
        if state
        else [],
    )


def _api_call(call: PageCall, object_id: str, **query) -> SimpleNamespace:
    """What gateway/api/audit.py's `history` and `past_state` take of an API call."""
    query.setdefault("cursor", None)
    query.setdefault("at", None)
    return SimpleNamespace(path={"object_id": object_id}, query=query, services=call.services)


def _is_cursor(text: str, order: str) -> bool:
    """Whether `text` is a cursor of the history read in `order` (one of the other order,
    from an address edited by hand, starts the page over instead of failing)."""
    if not _CURSOR.match(text):
        return False
    try:
        contract.decode_cursor(text, order)
    except ValidationFailed:
        return False
    return True


def _trail(text: str, order: str) -> list[str]:
    """The cursors of the pages before this one (not the first's), in the order read."""
    parts = [p for p in text.split(".") if p]
    if len(parts) > TRAIL_MAX or not all(_is_cursor(p, order) for p in parts):
        return []
    return parts


def _back_url(base: str, here: dict, cursor: str | None, trail: list[str]) -> str | None:
    """The page before this one in the order read ("Newer" newest first)."""
    if cursor is None:
        return None
    if not trail:
        return _url(base, here)
    query = {**here, "cursor": trail[-1]}
    if trail[:-1]:
        query["trail"] = ".".join(trail[:-1])
    return _url(base, query)


def _onwards_url(
    base: str, here: dict, cursor: str | None, trail: list[str], next_cursor: str | None
) -> str | None:
    """The page after this one in the order read ("Older" newest first)."""
    if not next_cursor:
        return None
    kept = ([*trail, cursor] if cursor else trail)[-TRAIL_MAX:]
    query = {**here, "cursor": next_cursor}
    if kept:
        query["trail"] = ".".join(kept)
    return _url(base, query)


def _url(base: str, query: dict) -> str:
    return f"{base}?{urlencode(query)}" if query else base


def _instant(call: PageCall, text: str, errors: FormErrors) -> datetime | None:
    """The moment a datetime-local field gave (`2026-03-05T14:30`, seconds optional), in
    UTC as every time on the pages; None with the error added when it is not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or len(text) < 16 or "T" not in text or moment.year < 1900:
        errors.add("at", call.gettext("Enter a date and time, such as 2026-03-05 14:30."))
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _about(call: PageCall, kind: str, object_id: str) -> tuple[str, str | None, str | None]:
    """The page's title, the object's name in a few words (None: it is gone), and the
    currency its amounts are in when it has one."""
    s = call.services
    try:
        if kind == "customer":
            record = s.customers.customer_record(object_id)
            return (
                call.gettext("History of customer %(number)s", number=record["number"]),
                record["name"],
                record.get("currency"),
            )
        if kind == "invoice":
            invoice = s.billing.get_staff_invoice(object_id)
            return (
                call.gettext("History of invoice %(number)s", number=invoice["number"]),
                None,
                invoice["total"]["currency"],
            )
        if kind == "ticket":
            ticket = s.helpdesk.staff_ticket(object_id)
            return (
                call.gettext("History of ticket #%(number)s", number=ticket["tracking_number"]),
                ticket["subject"],
                None,
            )
        if kind == "service":
            service = s.orders.staff_service(object_id)
            names = {p["id"]: p["name"] for p in s.orders.catalog(call.language, False, None)}
            price = service.get("price") or {}
            name = names.get(service["product_id"], service["name"])
            return (
                call.gettext("History of the service %(name)s", name=name),
                None,
                price.get("currency") if isinstance(price, dict) else service.get("currency"),
            )
        if kind == "staff":
            found = s.customers.staff_members([object_id])
            if found:
                return (
                    call.gettext("History of staff member %(name)s", name=found[0]["name"]),
                    None,
                    None,
                )
    except HostledgerError:
        pass
    return call.gettext("History"), None, None


def _staff_names(call: PageCall, items: list[dict]) -> dict[str, str]:
    ids = {
        who["id"]
        for item in items
        for who in (item.get("actor"), item.get("on_behalf_of"))
        if isinstance(who, dict) and who.get("kind") == "staff" and who.get("id")
    }
    if not ids:
        return {}
    return {m["id"]: m["name"] for m in call.services.customers.staff_members(sorted(ids))}


def _names(call: PageCall, kind: str, object_id: str, items: list[dict]) -> dict[str, str]:
    """What the events concern besides the page's object, named, by id: a customer's
    users, payers and discounts as its card lists them; the customers the events name
    (by number and name); what an event of the page names itself (an invoice's number, a
    ticket's tracking number, a product's name)."""
    customers = call.services.customers
    asked = []
    if kind == "customer":
        asked = [
            customers.list_users.call_async(object_id, 1, ROWS_NAMED),
            customers.list_payers.call_async(object_id, 1, ROWS_NAMED),
            customers.list_kind.call_async("discount", 1, ROWS_NAMED, object_id),
        ]
    others = {
        (i.get("aggregate") or {}).get("id")
        for i in items
        if (i.get("aggregate") or {}).get("type") == "Customer"
    } - {object_id, None}
    records = {c: customers.get_customer.call_async(c) for c in others}
    names = {}
    for item in items:
        ident = (item.get("aggregate") or {}).get("id")
        for change in item.get("changes") or []:
            if change.get("field") in OWN_NAMES and isinstance(change.get("after"), str | int):
                names.setdefault(ident, str(change["after"]))
    for reply in asked:
        try:
            found = reply.result()["items"]
        except HostledgerError:
            continue
        for row in found:
            name = row.get("name") or row.get("username")
            if name:
                names[str(row["id"])] = name
    for ident, reply in records.items():
        try:
            record = reply.result()
        except HostledgerError:
            continue
        number = call.gettext("No. %(number)s", number=record["number"])
        names[ident] = f"{number} {record['name']}"
    return names


def _person(call: PageCall, who: dict | None, staff: dict, kind: str, object_id: str) -> dict:
    """{"text", "href"} of who did something."""
    who = who if isinstance(who, dict) else {}
    ident = who.get("id")
    match who.get("kind"):
        case "staff":
            return {
                "text": staff.get(ident) or call.gettext("A staff member"),
                "href": f"/staff/staff/{ident}"
                if ident and call.can("GET /api/v1/staff/staff")
                else None,
            }
        case "client":
            here = kind == "customer" and ident == object_id
            return {
                "text": call.gettext("The client"),
                "href": None if here or not ident else f"/staff/customers/{ident}",
            }
        case "mail":
            return {"text": call.gettext("Mail"), "href": None}
        case "anonymous":
            return {"text": call.gettext("A visitor"), "href": None}
    return {"text": call.gettext("System"), "href": None}


def _entry(
    call: PageCall,
    item: dict,
    kind: str,
    object_id: str,
    staff: dict,
    names: dict,
    translations,
    currency: str | None,
) -> dict:
    aggregate = item.get("aggregate") or {}
    aggregate_type, aggregate_id = aggregate.get("type"), aggregate.get("id")
    link = None
    if aggregate_id and aggregate_id != object_id and aggregate_type in LINKED:
        url, route = LINKED[aggregate_type]
        if call.can(route):
            link = url.format(id=aggregate_id)
    acting = item.get("on_behalf_of")
    return {
        "at": item["occurred_at"],
        "what": words.event_text(item, translations),
        "subject": _subject(aggregate_type, names.get(aggregate_id), translations),
        "own": aggregate_id == object_id,
        "link": link,
        "who": _person(call, item.get("actor"), staff, kind, object_id),
        "acting": _person(call, acting, staff, kind, object_id) if acting else None,
        "reason": item.get("reason"),
        "changes": words.changes_shown(item, call.language, translations, currency),
    }


def _subject(aggregate_type: str | None, name: str | None, translations) -> str:
    """What an event happened to, by kind and, when known, by name: "User: Helga"."""
    if not aggregate_type:
        return ""
    kind = words.subject_text(aggregate_type, translations)
    if not name:
        return kind
    return translations.gettext("%(field)s: %(value)s") % {"field": kind, "value": name}
