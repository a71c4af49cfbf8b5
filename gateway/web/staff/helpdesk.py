"""The staff panel's helpdesk: ticket queues, one ticket with everything staff do to it,
reply templates, departments and the helpdesk's settings.

Each page mirrors the API route whose roles it allows (`staff="METHOD /api/v1/..."`) and
calls the same helpdesk commands: a `billing` or `auditor` member reads the queues and
tickets but gets no reply, assign, merge or change form, and a direct POST is 403.
Files go through the client area's checks (the helpdesk's own rules, errors naming each
file); attachments are downloaded from the staff API route, which takes the session cookie.
"""

from __future__ import annotations

import uuid

from contracts.errors import Conflict, NotFound, TooLarge, UnsupportedType, ValidationFailed
from contracts.fields import text_problem
from contracts.helpdesk import PRIORITIES, STATUSES
from gateway.web.client.support import (
    BODY_MAX,
    _file_refused,
    _size,
    _uploads,
    attachment_rules,
    upload_page,
)
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page
from gateway.web.staff.helpdesk_admin import StaffHelpdeskAdminPages

TICKETS = "GET /api/v1/staff/tickets"
TICKET = "GET /api/v1/staff/tickets/<uuid:ticket_id>"
CHANGE = "PATCH /api/v1/staff/tickets/<uuid:ticket_id>"
REPLY = "POST /api/v1/staff/tickets/<uuid:ticket_id>/replies"
ASSIGN = "POST /api/v1/staff/tickets/<uuid:ticket_id>/assign"
MERGE = "POST /api/v1/staff/tickets/<uuid:ticket_id>/merge"
PAGE_SIZE = 25
STATES = ("open", "archived")


def _ticket_id(call: PageCall) -> str:
    return str(call.path["ticket_id"])


def _queue_filters(call: PageCall) -> dict:
    """The queue's filters as asked (`?department_id=&status=&assigned=me&state=`), each
    kept only when it is one of its choices."""
    args = call.request.args
    department_id = _uuid_text(args.get("department_id", ""))
    status = args.get("status", "")
    assigned = args.get("assigned", "")
    state = args.get("state", "")
    return {
        "department_id": department_id or "",
        "status": status if status in STATUSES else "",
        "assigned": assigned if assigned == "me" else "",
        "state": state if state in STATES else "",
    }


def _uuid_text(value: str) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _customers(call: PageCall, ids) -> dict:
    """{customer id: its record} for the customers named, asked side by side; one that
    is gone is left out."""
    pending = {i: call.services.customers.get_customer.call_async(i) for i in set(ids) if i}
    found = {}
    for customer_id, reply in pending.items():
        try:
            found[customer_id] = reply.result()
        except NotFound:
            continue
    return found


def _staff_names(call: PageCall, ids) -> dict:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return {
        m["id"]: m["name"] or m["username"] for m in call.services.customers.staff_members(wanted)
    }


def _body(call: PageCall, errors: FormErrors) -> str:
    """The reply as typed: newlines kept, only the ends trimmed."""
    body = call.request.form.get("body", "").replace("\r\n", "\n").strip()
    if body and text_problem(body.replace("\n", " ").replace("\t", " ")):
        errors.add("body", call.gettext("Use letters, digits and punctuation only."))
    return body


NOTICES = {
    "replied": N_("Your answer was sent to the client."),
    "noted": N_("The internal note was added."),
    "assigned": N_("The ticket's assignee was changed."),
    "merged": N_("The other ticket was merged into this one."),
    "changed": N_("The ticket was changed."),
    "closed": N_("The ticket is closed."),
    "reopened": N_("The ticket is open again."),
}


class StaffHelpdeskPages(StaffHelpdeskAdminPages):
    """Mixed into GatewayService."""

    # -- the queues -----------------------------------------------------------------------

    @page("GET", "/staff/tickets", staff=TICKETS)
    def web_staff_tickets(self, call: PageCall):
        chosen = _queue_filters(call)
        filters = {
            "department_id": chosen["department_id"] or None,
            "status": chosen["status"] or None,
            "assigned_to": call.staff_id if chosen["assigned"] == "me" else None,
            "archived": {"open": False, "archived": True}.get(chosen["state"]),
            "customer_id": call.customer_filter(),
        }
        number, size = call.page_args(PAGE_SIZE)
        helpdesk = call.services.helpdesk
        pending = helpdesk.staff_tickets.call_async(
            {k: v for k, v in filters.items() if v is not None}, number, size
        )
        departments = helpdesk.departments(False)
        tickets = pending.result()
        rows = tickets["items"]
        return call.render(
            "staff/tickets.html",
            tickets=tickets,
            chosen=chosen,
            departments=departments,
            department_names={d["id"]: d["name"] for d in departments},
            customers=_customers(call, [r["customer_id"] for r in rows]),
            staff_names=_staff_names(call, [r["assigned_to"] for r in rows]),
            query={k: v for k, v in chosen.items() if v},
        )

    # -- one ticket -------------------------------------------------------------------------

    @page("GET", "/staff/tickets/<uuid:ticket_id>", staff=TICKET)
    def web_staff_ticket(self, call: PageCall):
        ticket = call.services.helpdesk.staff_ticket(_ticket_id(call))
        return _ticket_page(call, ticket, {}, FormErrors())

    @upload_page("POST", "/staff/tickets/<uuid:ticket_id>/replies", staff=REPLY)
    def web_staff_reply(self, call: PageCall):
        helpdesk = call.services.helpdesk
        ticket_id = _ticket_id(call)
        values, errors = call.form("template_id")
        body = _body(call, errors)
        internal = call.request.form.get("internal") == "1"
        template_id = _uuid_text(values["template_id"])
        if values["template_id"] and template_id is None:
            errors.add("template_id", call.gettext("Choose one of the templates."))
        if not body and not template_id and not errors:
            errors.add("body", call.gettext("Write an answer or choose a template."))
        elif len(body) > BODY_MAX:
            errors.add("body", call.gettext("At most %(max)d characters.", max=BODY_MAX))
        files = _uploads(call, attachment_rules(call), errors)
        if not errors:
            payload = {"body": body, "internal": internal, "template_id": template_id}
            try:
                helpdesk.staff_reply(ticket_id, payload, files)
            except (UnsupportedType, TooLarge) as exc:
                _file_refused(call, exc, errors)
            except ValidationFailed as exc:
                call.service_errors(
                    exc,
                    errors,
                    {
                        "body": N_("Write an answer or choose a template."),
                        "template_id": N_("Choose one of the templates."),
                    },
                )
        if errors:
            ticket = helpdesk.staff_ticket(ticket_id)
            shown = {"body": body, "template_id": values["template_id"], "internal": internal}
            return _ticket_page(call, ticket, shown, errors, status=400)
        done = "noted" if internal else "replied"
        return call.redirect(f"/staff/tickets/{ticket_id}", done=done)

    @page("POST", "/staff/tickets/<uuid:ticket_id>/assign", staff=ASSIGN)
    def web_staff_assign(self, call: PageCall):
        ticket_id = _ticket_id(call)
        values, errors = call.form("staff_id")
        wanted = call.staff_id if values["staff_id"] == "me" else _uuid_text(values["staff_id"])
        if values["staff_id"] and wanted is None:
            errors.add("staff_id", call.gettext("Choose one of the staff members."))
        if not errors:
            try:
                call.services.helpdesk.assign(ticket_id, {"staff_id": wanted})
            except ValidationFailed as exc:
                call.service_errors(
                    exc, errors, {"staff_id": N_("Choose one of the staff members.")}
                )
        if errors:
            ticket = call.services.helpdesk.staff_ticket(ticket_id)
            return _ticket_page(call, ticket, {}, errors, status=400)
        return call.redirect(f"/staff/tickets/{ticket_id}", done="assigned")

    @page("POST", "/staff/tickets/<uuid:ticket_id>/merge", staff=MERGE)
    def web_staff_merge(self, call: PageCall):
        helpdesk = call.services.helpdesk
        ticket_id = _ticket_id(call)
        values, errors = call.form("other")
        other = values["other"].lstrip("#")
        other_id = _uuid_text(other)
        if not other and "other" not in errors:
            errors.add("other", call.gettext("Give the other ticket's number."))
        elif other and other_id is None:
            found = helpdesk.staff_tickets({"tracking_number": other.upper()}, 1, 1)["items"]
            other_id = found[0]["id"] if found else None
            if other_id is None:
                errors.add("other", call.gettext("There is no ticket with this number."))
        if not errors:
            try:
                helpdesk.merge(ticket_id, {"ticket_id": other_id})
            except (ValidationFailed, Conflict) as exc:
                message = (
                    N_("There is no ticket with this number.")
                    if isinstance(exc, ValidationFailed)
                    else N_(
                        "These tickets cannot be merged: they must be two different tickets "
                        "of the same customer, neither merged before."
                    )
                )
                errors.add("other", call.gettext(message))
        if errors:
            ticket = helpdesk.staff_ticket(ticket_id)
            return _ticket_page(call, ticket, {"other": values["other"]}, errors, status=400)
        return call.redirect(f"/staff/tickets/{ticket_id}", done="merged")

    @page("POST", "/staff/tickets/<uuid:ticket_id>/change", staff=CHANGE)
    def web_staff_change_ticket(self, call: PageCall):
        helpdesk = call.services.helpdesk
        ticket_id = _ticket_id(call)
        values, errors = call.form("priority", "department_id")
        if values["priority"] not in PRIORITIES:
            errors.add("priority", call.gettext("Choose one of the priorities."))
        department_id = _uuid_text(values["department_id"])
        if department_id is None:
            errors.add("department_id", call.gettext("Choose one of the departments."))
        if not errors:
            changes = {"priority": values["priority"], "department_id": department_id}
            try:
                helpdesk.change_ticket(ticket_id, changes)
            except ValidationFailed as exc:
                call.service_errors(
                    exc, errors, {"department_id": N_("Choose one of the departments.")}
                )
        if errors:
            ticket = helpdesk.staff_ticket(ticket_id)
            return _ticket_page(call, ticket, values, errors, status=400)
        return call.redirect(f"/staff/tickets/{ticket_id}", done="changed")

    @page("POST", "/staff/tickets/<uuid:ticket_id>/<any(close,reopen):action>", staff=CHANGE)
    def web_staff_ticket_state(self, call: PageCall):
        ticket_id = _ticket_id(call)
        closing = call.path["action"] == "close"
        status = "closed" if closing else "open"
        call.services.helpdesk.change_ticket(ticket_id, {"status": status})
        return call.redirect(
            f"/staff/tickets/{ticket_id}", done="closed" if closing else "reopened"
        )


def _ticket_page(call: PageCall, ticket: dict, values: dict, errors: FormErrors, status=200):
    """A ticket as staff see it, with the forms the member's role may use."""
    s = call.services
    for message in ticket["messages"]:
        for file in message["attachments"]:
            file["size_text"] = _size(call, file.get("size") or 0)
    departments = s.helpdesk.departments(False)
    department = next((d for d in departments if d["id"] == ticket["department_id"]), None)
    labels = {f["name"]: f.get("label") for f in (department or {}).get("fields", [])}
    field_rows = [(labels.get(n) or n, v) for n, v in sorted(ticket["fields"].items())]
    may_reply = call.can(REPLY)
    templates = s.helpdesk.templates(ticket["department_id"]) if may_reply else []
    # whom the ticket may be given to: its department's staff, its assignee, oneself
    members = list((department or {}).get("staff_ids", []))
    members = list(dict.fromkeys([*members, ticket["assigned_to"], call.staff_id]))
    staff_names = _staff_names(call, members)
    assignable = [(m, staff_names[m]) for m in members if m in staff_names]
    ticket_customer = None
    if ticket.get("customer_id"):
        found = _customers(call, [ticket["customer_id"]])
        ticket_customer = found.get(ticket["customer_id"])
    done = call.request.args.get("done", "")
    notice = call.gettext(NOTICES[done]) if status == 200 and done in NOTICES else None
    return call.render(
        "staff/tickets_view.html",
        status=status,
        ticket=ticket,
        ticket_customer=ticket_customer,
        field_rows=field_rows,
        departments=departments,
        templates=templates,
        staff_names=staff_names,
        assignable=sorted(assignable, key=lambda item: item[1].lower()),
        values={"body": "", "template_id": "", "internal": False, "other": "", **values},
        errors=errors,
        rules=attachment_rules(call) if may_reply else None,
        notice=notice,
    )
