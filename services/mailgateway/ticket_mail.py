"""Mail about tickets: who gets which mail for a helpdesk event, and how it threads (pure).

Every mail about a ticket message has the Message-ID `contracts.helpdesk.outgoing_message_id`
makes (one per recipient), so a reply's In-Reply-To/References lead the helpdesk back to
the ticket. Per ticket and recipient the gateway remembers the first and the latest
Message-ID of the conversation (ours, or the client's own mail that the helpdesk took):
each new mail answers the latest one and references the first, so mail programs show
one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.mailgateway import compose, notifications
from services.mailgateway.outbox import Notification


@dataclass(frozen=True)
class Thread:
    root: str
    last: str


def thread_statement(ticket_id: str, recipient: str, message_id: str) -> tuple[str, tuple]:
    """Record `message_id` as the latest of the conversation with `recipient`."""
    return (
        "INSERT INTO mail_threads (ticket_id, recipient, root, last) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (ticket_id, recipient) DO UPDATE SET last = EXCLUDED.last",
        (str(ticket_id), recipient.lower(), message_id, message_id),
    )


def client_of(payload: dict, customer: dict | None) -> dict | None:
    """The ticket's client as a mail recipient: the customer, or the guest who wrote."""
    if customer is not None:
        return dict(customer, language=payload.get("language") or customer.get("language"))
    if payload.get("guest_email"):
        return {
            "id": None,
            "email": payload["guest_email"],
            "language": payload.get("language") or "en",
            "contact_person": "",
        }
    return None


def _sender(payload: dict) -> str | None:
    if not payload.get("reply_address"):
        return None
    name = (payload.get("department_name") or "").replace('"', "'")
    return f'"{name}" <{payload["reply_address"]}>' if name else payload["reply_address"]


# the mails a client gets about a ticket message: they carry its files
CLIENT_KINDS = ("ticket_reply", "ticket_notice", "abuse_notice")


def attachments_of(mails: list[Notification]) -> list[str]:
    """The ids of the files the mails carry, each once."""
    return list(dict.fromkeys(a["id"] for n in mails for a in n.context.get("attachments") or ()))


def _deadline(value) -> str:
    """A violation notice's deadline as the mail writes it (UTC, to the minute)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _one(
    *,
    ref: str,
    kind: str,
    payload: dict,
    person: dict,
    prefs: dict | None,
    threads: dict[str, Thread],
    domain: str,
    in_reply_to: str | None = None,
) -> tuple[Notification, tuple[str, tuple]]:
    recipient = person["email"].lower()
    message_id = compose.ticket_message_id(str(payload["message_id"]), recipient, domain)
    thread = threads.get(recipient)
    references = []
    if thread is not None:
        in_reply_to = thread.last
        references = [thread.root] + ([thread.last] if thread.last != thread.root else [])
    elif in_reply_to:
        references = [in_reply_to]
    context = {
        "tracking_number": payload["tracking_number"],
        "ticket_subject": payload["subject"],
        "message": payload.get("body") or "",
        "author": payload.get("author_name") or "",
        "references": references,
        "from": _sender(payload),
    }
    if kind == "abuse_notice":
        context["deadline"] = _deadline(payload["abuse"]["deadline"])
    if kind in CLIENT_KINDS and payload.get("attachments"):
        context["attachments"] = [
            {k: a[k] for k in ("id", "filename", "content_type")} for a in payload["attachments"]
        ]
    n = notifications.for_customer(
        key=f"{ref}:{kind}:{recipient}",
        kind=kind,
        customer=person,
        settings=prefs,
        context=context,
        domain=domain,
        company=payload.get("department_name") or "",
        message_id=message_id,
        in_reply_to=in_reply_to,
    )
    return n, thread_statement(str(payload["ticket_id"]), recipient, message_id)


def for_event(
    *,
    ref: str,
    event_type: str,
    payload: dict,
    client: dict | None,
    client_prefs: dict | None,
    staff: list[dict],
    threads: dict[str, Thread],
    domain: str,
) -> tuple[list[Notification], list[tuple[str, tuple]]]:
    """The mails a TicketOpened / TicketMessageAdded / TicketNoteAdded makes, and the
    thread records to write with them."""
    out: list[Notification] = []
    statements: list[tuple[str, tuple]] = []
    incoming = payload.get("mail_message_id")
    client_threads = dict(threads)
    if client is not None and client.get("email") and incoming:
        # the client's own mail is the latest message of their conversation
        statements.append(thread_statement(str(payload["ticket_id"]), client["email"], incoming))
        previous = threads.get(client["email"].lower())
        client_threads[client["email"].lower()] = Thread(
            previous.root if previous else incoming, incoming
        )
    internal = event_type == "TicketNoteAdded" or payload.get("internal")
    if client is not None and client.get("email") and not internal:
        kind = None
        if payload.get("notify_client"):
            kind = "ticket_notice" if payload.get("forbid_replies") else "ticket_reply"
            if event_type == "TicketOpened" and payload.get("abuse"):
                kind = "abuse_notice"
        elif event_type == "TicketOpened" and payload.get("via") in ("web", "mail"):
            kind = "ticket_opened"
        if kind is not None:
            n, statement = _one(
                ref=ref,
                kind=kind,
                payload=payload,
                person=client,
                prefs=client_prefs,
                threads=client_threads,
                domain=domain,
                in_reply_to=incoming,
            )
            out.append(n)
            statements.append(statement)
    for member in staff:
        if not member.get("email") or not member.get("active", True):
            continue
        n, statement = _one(
            ref=ref,
            kind="staff_ticket",
            payload=payload,
            person={
                "id": None,
                "email": member["email"],
                "language": member.get("language") or "en",
                "contact_person": member.get("name") or "",
            },
            prefs=None,
            threads=threads,
            domain=domain,
        )
        out.append(n)
        statements.append(statement)
    return out, statements
