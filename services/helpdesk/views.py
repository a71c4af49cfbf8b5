"""What the helpdesk answers: tickets, messages, departments and templates as plain
values, for staff (everything) or for the client (never an internal note)."""

from __future__ import annotations

from services.helpdesk.domain import Broadcast, Department, ReplyTemplate, Ticket
from services.infra.clock import isoformat


def _str(value) -> str | None:
    return str(value) if value is not None else None


def _standing(status: str, archived: bool, client: bool) -> dict:
    """Where a ticket stands. A client's `status` is open or archived, what the client's
    list filters on, and `progress` is open, answered, customer_reply or closed; staff keep
    the progress as `status` and open or archived as `state`."""
    state = "archived" if archived else "open"
    if client:
        return {"status": state, "progress": status}
    return {"status": status, "state": state}


def row_view(r: dict, client: bool) -> dict:
    view = {
        "id": str(r["ticket_id"]),
        "tracking_number": r["tracking_number"],
        "department_id": str(r["department_id"]),
        "subject": r["subject"],
        **_standing(r["status"], r["archived"], client),
        "priority": r["priority"],
        "opened_at": isoformat(r["opened_at"]),
        "updated_at": isoformat(r["updated_at"]),
    }
    if not client:
        view.update(
            customer_id=_str(r["customer_id"]),
            guest_email=r["guest_email"],
            assigned_to=_str(r["assignee"]),
            merged_into=_str(r["merged_into"]),
        )
    return view


def message_view(m: dict, client: bool) -> dict:
    view = {
        "id": m["id"],
        "author_kind": m["author_kind"],
        "author_name": m["author_name"],
        "body": m["body"],
        "attachments": [dict(a) for a in m["attachments"]],
        "at": isoformat(m["at"]),
    }
    if not client:
        view.update(
            internal=m["internal"],
            author_id=m["author_id"],
            mail_message_id=m["mail_message_id"],
            merged_from=m.get("merged_from"),
        )
    return view


def ticket_view(t: Ticket, client: bool) -> dict:
    messages = t.visible_to_client() if client else t.messages
    view = {
        "id": str(t.id),
        "tracking_number": t.tracking_number,
        "department_id": str(t.department_id),
        "department_name": t.department_name,
        "subject": t.subject,
        **_standing(t.status, t.archived, client),
        "priority": t.priority,
        "fields": dict(t.fields),
        "forbid_replies": t.forbid_replies,
        "opened_at": isoformat(t.opened_at),
        "updated_at": isoformat(t.updated_at),
        "messages": [message_view(m, client) for m in messages],
        "version": t.version,
    }
    abuse = t.abuse
    if abuse:
        view["abuse"] = {
            "deadline": isoformat(abuse["deadline"]),
            "action": abuse["action"],
            "state": abuse.get("state"),
        }
        if not client:
            view["abuse"].update(
                penalty_points=abuse.get("penalty_points", 0), comment=abuse.get("comment", "")
            )
    if not client:
        view.update(
            customer_id=_str(t.customer_id),
            guest_email=t.guest_email,
            assigned_to=_str(t.assignee),
            language=t.language,
            via=t.via,
            merged_into=_str(t.merged_into),
            merged_tracking_numbers=list(getattr(t, "merged_ticket_numbers", [])),
            assign_on_reply_to=t.assign_on_reply_to,
        )
    return view


def department_view(d: Department, client: bool) -> dict:
    view = {"id": str(d.id), "name": d.name, "fields": [dict(f) for f in d.fields]}
    if not client:
        view.update(
            client_visible=d.client_visible,
            staff_ids=list(d.staff_ids),
            addresses=list(d.addresses),
            business_hours=d.business_hours,
            accept_guests=d.accept_guests,
            version=d.version,
        )
    else:
        view["business_hours"] = d.business_hours
    return view


def template_view(t: ReplyTemplate) -> dict:
    return {
        "id": str(t.id),
        "name": t.name,
        "bodies": dict(t.bodies),
        "department_id": _str(t.department_id),
    }


def broadcast_view(b: Broadcast, tickets: bool = True) -> dict:
    """A message to customers as staff see it: `count` recipients, `opened` tickets so far,
    `status` sending or sent, and the tickets opened (customer_id, ticket_id,
    tracking_number) in the order the recipients were named."""
    view = {
        "id": str(b.id),
        "status": b.status,
        "subject": b.subject,
        "department_id": str(b.department_id),
        "author_id": b.author.get("id"),
        "author_name": b.author.get("name") or "",
        "count": len(b.recipients),
        "opened": len(b.tickets),
        "created_at": isoformat(b.created_at),
        "sent_at": isoformat(b.sent_at) if b.sent_at else None,
    }
    if tickets:
        view["tickets"] = [dict(t) for t in b.tickets]
        abuse = dict(b.abuse) if b.abuse else None
        if abuse:
            abuse["deadline"] = isoformat(abuse["deadline"])
        view.update(
            body=b.body,
            forbid_replies=bool(b.options.get("forbid_replies")),
            assign_to_me=bool(b.options.get("assign_to_me")),
            languages=sorted({"en", *(b.options.get("translations") or {})}),
            abuse=abuse,
        )
    return view


def broadcast_row_view(r: dict) -> dict:
    return {
        "id": str(r["broadcast_id"]),
        "status": r["status"],
        "subject": r["subject"],
        "department_id": str(r["department_id"]),
        "author_id": r["author_id"],
        "author_name": r["author_name"],
        "count": r["recipients"],
        "opened": r["opened"],
        "created_at": isoformat(r["created_at"]),
        "sent_at": isoformat(r["sent_at"]) if r["sent_at"] else None,
    }
