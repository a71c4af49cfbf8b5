"""The helpdesk's audit index: which of its aggregates are tickets, which are bookkeeping,
and what its events say in plain words (services/infra/audit.py). A message's text is
kept as the event's (cut when long), never the files' contents (they are not in events)."""

from __future__ import annotations

from services.infra.audit import AuditIndex, AuditMapping


def _opened(values: dict) -> dict:
    """A ticket opened by staff is answered, by anyone else open (Ticket.Opened.apply)."""
    return {
        "status": "answered" if values.get("author_kind") == "staff" else "open",
        "archived": False,
    }


def _message(values: dict) -> dict:
    """A message the client sees: theirs (or a mail) waits for staff, staff's answers it;
    an internal note changes nothing (Ticket.MessageNotice.apply)."""
    if values.get("internal"):
        return {}
    if values.get("author_kind") in ("client", "mail"):
        return {"status": "customer_reply", "archived": False}
    if values.get("author_kind") == "staff":
        return {"status": "answered"}
    return {}


# what a ticket's message events carry about the message, not the ticket
_MESSAGE = frozenset(
    {
        "message_id",
        "body",
        "author_kind",
        "author_id",
        "author_name",
        "internal",
        "attachments",
        "notify_staff_ids",
        "notify_client",
        "mail_message_id",
        "merged_ticket_id",
        "merged_tracking_number",
        "action",
        "deadline",
    }
)

MAPPING = AuditMapping(
    kinds={"Ticket": "ticket"},
    references={
        "merged_ticket_id": "ticket",
        "target_id": "ticket",
        "previous_staff_id": "staff",
    },
    internal=frozenset(
        {"TrackingNumber", "IncomingAddress", "MailMessage", "TicketMessage", "IdempotencyKey"}
    ),
    moments={
        "Ticket": _MESSAGE,
        "Standing": frozenset({"ticket_id", "points"}),
        "Broadcast": frozenset({"tickets"}),
    },
    # a merge carries the merged ticket's messages, a message to many its recipients
    bulky=frozenset({"messages", "mail_message_ids", "recipients"}),
    subjects={"ReplyTemplate": "Reply template", "HelpdeskConfig": "Helpdesk settings"},
    summaries={
        "Ticket.Opened": "Ticket opened",
        "Ticket.MessageAdded": "Ticket message added",
        "Ticket.NoteAdded": "Ticket internal note added",
        "Ticket.Assigned": "Ticket assigned",
        "Ticket.Merged": "Another ticket merged into this one",
        "Ticket.MergedInto": "Ticket merged into another",
        "Ticket.AbuseActed": "Abuse notice deadline passed: acted",
        "Ticket.Unarchived": "Ticket back among the open ones",
        "Ticket.SuspensionRequested": "Suspension of the customer's services asked for",
        "Standing.PointsGiven": "Penalty points given",
        "Standing.ThresholdPassed": "Penalty points threshold passed",
        "Broadcast.Created": "Message to customers written",
        "Broadcast.TicketsOpened": "Message to customers: tickets opened",
        "Broadcast.Sent": "Message to customers sent",
    },
    # what its events set without carrying it (services/infra/audit.py: LIFECYCLE)
    effects={
        "ReplyTemplate.Created": {"deleted": False},
        "ReplyTemplate.Deleted": {"deleted": True},
        "Ticket.Opened": _opened,
        "Ticket.MessageAdded": _message,
        "Ticket.NoteAdded": _message,
        "Ticket.Closed": {"status": "closed", "archived": True},
        "Ticket.MergedInto": {"status": "closed"},
        "Ticket.Archived": {"archived": True},
        "Ticket.Unarchived": {"archived": False},
        "Ticket.Reopened": {"status": "open", "archived": False},
        "Broadcast.Sent": {"status": "sent"},
    },
)


class HelpdeskAuditIndex(AuditIndex):
    mapping = MAPPING
