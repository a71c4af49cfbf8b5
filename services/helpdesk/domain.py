"""The helpdesk's aggregates: departments, tickets, reply templates, penalty standing,
settings, and the index aggregates that keep tracking numbers and Message-IDs unique."""

from __future__ import annotations

import secrets
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate, DomainError, KeyedIndex

_INDEX_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/helpdesk")

# no 0/O, 1/I/L: read over the phone without mistakes; drawn at random from
# 31**3 * 8**6 (about 7.8 billion) numbers, so that one number says nothing of the next
TRACKING_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_tracking_number() -> str:
    letters = "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(3))
    digits = "".join(secrets.choice("23456789") for _ in range(6))
    return f"{letters}-{digits}"


class TicketClosedForReplies(DomainError):
    """The ticket does not take answers from the client."""


class NotMergeable(DomainError):
    pass


class Department(Aggregate):
    @event("Created")
    def __init__(
        self,
        name: str,
        client_visible: bool,
        fields: list,
        staff_ids: list,
        addresses: list,
        business_hours: dict | None,
        accept_guests: bool,
    ):
        self.name = name
        self.client_visible = client_visible
        self.fields = fields
        self.staff_ids = staff_ids
        self.addresses = addresses
        self.business_hours = business_hours
        self.accept_guests = accept_guests

    @event("Changed")
    def change(self, changes: dict) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    def missing_fields(self, given: dict) -> dict:
        """The required extra fields the client left empty, as validation messages."""
        return {
            f["name"]: ["This department needs it."]
            for f in self.fields
            if f.get("required") and not str(given.get(f["name"]) or "").strip()
        }


class TrackingNumber(KeyedIndex):
    """Index: one per tracking number; a second ticket drawing the same one fails to save."""

    id_namespace = _INDEX_NS
    id_prefix = "tracking"
    key_fields = ("number",)

    @classmethod
    def key_text(cls, number: str) -> str:
        return number.strip().upper()

    @event("Claimed")
    def __init__(self, number: str, ticket_id: UUID):
        self.number = number
        self.ticket_id = ticket_id


class IncomingAddress(KeyedIndex):
    """Index: which department an incoming e-mail address feeds. Saved with the department,
    so two departments cannot take one address, and mail is routed without read-model lag."""

    id_namespace = _INDEX_NS
    id_prefix = "address"
    key_fields = ("address",)

    @classmethod
    def key_text(cls, address: str) -> str:
        return address.strip().lower()

    @event("Claimed")
    def __init__(self, address: str, department_id: UUID):
        self.address = address
        self.department_id = department_id

    @event("Reassigned")
    def reassign(self, department_id: UUID | None) -> None:
        self.department_id = department_id


class MailMessage(KeyedIndex):
    """Index: one per incoming Message-ID, saved with what the mail did to a ticket, so
    the same mail delivered twice is recognised (the second save fails)."""

    id_namespace = _INDEX_NS
    id_prefix = "mail"
    key_fields = ("message_id",)

    @classmethod
    def key_text(cls, message_id: str) -> str:
        return message_id.strip().strip("<>").lower()

    @event("Received")
    def __init__(self, message_id: str, ticket_id: UUID):
        self.message_id = message_id
        self.ticket_id = ticket_id


class TicketMessage(KeyedIndex):
    """Index: one per ticket message, saved with it: which ticket a mail answering our
    mail about that message (its Message-ID names the message) belongs to, found in the
    event store even while the ticket lists lag. A merged ticket's messages still name
    the ticket they were written on (it says where it was merged into)."""

    id_namespace = _INDEX_NS
    id_prefix = "ticket-message"
    key_fields = ("message_id",)

    @classmethod
    def key_text(cls, message_id) -> str:
        return str(message_id).strip().lower()

    @event("Written")
    def __init__(self, message_id: str, ticket_id: UUID):
        self.message_id = message_id
        self.ticket_id = ticket_id


class ReplyTemplate(Aggregate):
    @event("Created")
    def __init__(self, name: str, bodies: dict, department_id: UUID | None):
        self.name = name
        self.bodies = bodies
        self.department_id = department_id
        self.deleted = False

    def text_for(self, language: str, client_person: str, admin_name: str) -> str:
        body = (
            self.bodies.get(language) or self.bodies.get("en") or next(iter(self.bodies.values()))
        )
        return fill_macros(body, client_person, admin_name)

    @event("Changed")
    def change(self, changes: dict) -> None:
        """A new name, texts (the languages given replace all of them) or department."""
        for key in ("name", "bodies", "department_id"):
            if key in changes:
                setattr(self, key, changes[key])

    @event("Deleted")
    def delete(self) -> None:
        self.deleted = True


def fill_macros(text: str, client_person: str, admin_name: str) -> str:
    return text.replace("%client_person%", client_person).replace("%admin_name%", admin_name)


def message_text(broadcast: Broadcast, language: str | None) -> tuple[str, str]:
    """A message to customers' (subject, body) for a customer of `language`: its own
    language's text, else the message's main one; a reply template's text (in that
    language, else English) starts the body."""
    own = (broadcast.options.get("translations") or {}).get(language or "")
    subject, body = (own["subject"], own["body"]) if own else (broadcast.subject, broadcast.body)
    template = broadcast.options.get("template")
    if template:
        start = template.get(language or "") or template.get("en") or next(iter(template.values()))
        body = f"{start}\n\n{body}" if body.strip() else start
    return subject, body


ABUSE_DONE = {
    "suspend_services": "the customer's services are being suspended",
    "move_to_active": "the ticket is back among the active requests",
}


class HelpdeskConfig(Aggregate):
    """The helpdesk's settings, one aggregate."""

    ID = uuid5(_INDEX_NS, "settings")

    @event("Created")
    def __init__(self, values: dict):
        self.values = dict(values)

    @staticmethod
    def create_id(**_) -> UUID:
        return HelpdeskConfig.ID

    @event("Changed")
    def change(self, changes: dict) -> None:
        self.values = dict(self.values, **changes)


class Standing(KeyedIndex):
    """A customer's penalty points from abuse notices."""

    id_namespace = _INDEX_NS
    id_prefix = "standing"
    key_fields = ("customer_id",)

    @event("Opened")
    def __init__(self, customer_id: UUID):
        self.customer_id = customer_id
        self.total = 0
        self.suspended_at_total: int | None = None

    class PointsGiven(Aggregate.Event):
        customer_id: UUID
        ticket_id: UUID
        points: int
        total: int
        comment: str

        def apply(self, standing: Standing) -> None:
            standing.total = self.total

    def give(self, ticket_id: UUID, points: int, comment: str) -> None:
        self.trigger_event(
            self.PointsGiven,
            customer_id=self.customer_id,
            ticket_id=ticket_id,
            points=points,
            total=self.total + points,
            comment=comment,
        )

    @event("ThresholdPassed")
    def mark_threshold_passed(self, total: int) -> None:
        self.suspended_at_total = total


class Ticket(Aggregate):
    """A support ticket and every message on it, oldest first."""

    # the fields every published event of a ticket carries (contracts.helpdesk._TicketNotice)
    class Notice(Aggregate.Event):
        tracking_number: str
        department_id: UUID
        department_name: str
        reply_address: str | None
        customer_id: UUID | None
        guest_email: str | None
        subject: str
        language: str
        forbid_replies: bool

    class MessageNotice(Notice):
        message_id: UUID
        body: str
        author_kind: str
        author_id: str | None
        author_name: str
        internal: bool
        attachments: list
        notify_staff_ids: list
        notify_client: bool
        mail_message_id: str | None
        at: datetime

        def apply(self, ticket: Ticket) -> None:
            ticket.messages.append(
                {
                    "id": str(self.message_id),
                    "author_kind": self.author_kind,
                    "author_id": self.author_id,
                    "author_name": self.author_name,
                    "body": self.body,
                    "internal": self.internal,
                    "attachments": list(self.attachments),
                    "mail_message_id": self.mail_message_id,
                    "at": self.at,
                }
            )
            if self.mail_message_id:
                ticket.mail_message_ids.append(self.mail_message_id.strip().strip("<>").lower())
            if self.internal:
                return
            ticket.updated_at = self.at
            if self.author_kind in ("client", "mail"):
                ticket.status = "customer_reply"
                ticket.archived = False
                ticket.last_client_reply_at = self.at
                if ticket.abuse and ticket.abuse.get("state") == "pending":
                    ticket.abuse = dict(ticket.abuse, state="answered")
            elif self.author_kind == "staff":
                ticket.status = "answered"

    class Opened(MessageNotice, Aggregate.Created):
        priority: str
        via: str
        fields: dict
        assign_on_reply_to: str | None
        abuse: dict | None

        def apply(self, ticket: Ticket) -> None:
            ticket.tracking_number = self.tracking_number
            ticket.department_id = self.department_id
            ticket.department_name = self.department_name
            ticket.reply_address = self.reply_address
            ticket.customer_id = self.customer_id
            ticket.guest_email = self.guest_email
            ticket.subject = self.subject
            ticket.language = self.language
            ticket.forbid_replies = self.forbid_replies
            ticket.priority = self.priority
            ticket.via = self.via
            ticket.fields = dict(self.fields)
            ticket.assign_on_reply_to = self.assign_on_reply_to
            ticket.abuse = dict(self.abuse, state="pending") if self.abuse else None
            ticket.assignee = None
            ticket.status = "open"
            ticket.archived = False
            ticket.messages = []
            ticket.mail_message_ids = []
            ticket.opened_at = self.at
            ticket.updated_at = self.at
            ticket.last_client_reply_at = None
            ticket.merged_into = None
            super().apply(ticket)
            # the opening message is not an answer to anything
            ticket.status = "answered" if self.author_kind == "staff" else "open"
            ticket.last_client_reply_at = None
            if ticket.abuse:
                ticket.abuse["state"] = "pending"

    class MessageAdded(MessageNotice):
        """A message the client sees."""

    class NoteAdded(MessageNotice):
        """An internal or system note, for staff only."""

    class Assigned(Notice):
        staff_id: UUID | None
        previous_staff_id: UUID | None

        def apply(self, ticket: Ticket) -> None:
            ticket.assignee = self.staff_id

    class Closed(Notice):
        def apply(self, ticket: Ticket) -> None:
            ticket.status = "closed"
            ticket.archived = True  # a closed ticket moves to the client's archive

    class Merged(Notice):
        merged_ticket_id: UUID
        merged_tracking_number: str
        messages: list
        mail_message_ids: list

        def apply(self, ticket: Ticket) -> None:
            ticket.messages = sorted(
                ticket.messages + list(self.messages), key=lambda m: (m["at"], m["id"])
            )
            ticket.mail_message_ids.extend(self.mail_message_ids)
            ticket.merged_ticket_numbers = [
                *getattr(ticket, "merged_ticket_numbers", []),
                self.merged_tracking_number,
            ]

    class AbuseActed(Notice):
        action: str
        deadline: datetime
        notify_staff_ids: list

        def apply(self, ticket: Ticket) -> None:
            ticket.abuse = dict(ticket.abuse or {}, state="acted")
            if self.action == "move_to_active":
                ticket.status = "customer_reply"
                ticket.archived = False

    @event("MergedInto")
    def merged_into_ticket(self, target_id: UUID) -> None:
        self.merged_into = target_id
        self.status = "closed"

    @event("Archived")
    def archive(self) -> None:
        self.archived = True

    @event("Unarchived")
    def unarchive(self) -> None:
        self.archived = False

    @event("Reopened")
    def reopen(self) -> None:
        self.status = "open"
        self.archived = False

    @event("Changed")
    def change(self, changes: dict) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    @event("SuspensionRequested")
    def request_suspension(self, customer_id: UUID, reason: str) -> None:
        pass

    # -- commands -----------------------------------------------------------------------------

    @classmethod
    def open(cls, **kwargs) -> Ticket:
        return cls._create(cls.Opened, id=uuid4(), message_id=uuid4(), **kwargs)

    def notice(self) -> dict:
        return {
            "tracking_number": self.tracking_number,
            "department_id": self.department_id,
            "department_name": self.department_name,
            "reply_address": self.reply_address,
            "customer_id": self.customer_id,
            "guest_email": self.guest_email,
            "subject": self.subject,
            "language": self.language,
            "forbid_replies": self.forbid_replies,
        }

    def add_message(
        self,
        body: str,
        author_kind: str,
        author_id: str | None,
        author_name: str,
        at: datetime,
        internal: bool = False,
        attachments: list | None = None,
        notify_staff_ids: list | None = None,
        mail_message_id: str | None = None,
    ) -> dict:
        if author_kind in ("client", "mail") and self.forbid_replies:
            raise TicketClosedForReplies("This ticket does not take replies.")
        hidden = internal or author_kind == "system"
        self.trigger_event(
            self.NoteAdded if hidden else self.MessageAdded,
            message_id=uuid4(),
            body=body,
            author_kind=author_kind,
            author_id=author_id,
            author_name=author_name,
            internal=hidden,
            attachments=list(attachments or ()),
            notify_staff_ids=[str(s) for s in notify_staff_ids or ()],
            notify_client=not hidden and author_kind in ("staff", "system"),
            mail_message_id=mail_message_id,
            at=at,
            **self.notice(),
        )
        return self.messages[-1]

    def assign(self, staff_id: UUID | None) -> None:
        if staff_id == self.assignee:
            return
        self.trigger_event(
            self.Assigned, staff_id=staff_id, previous_staff_id=self.assignee, **self.notice()
        )

    def close(self) -> None:
        if self.status != "closed":
            self.trigger_event(self.Closed, **self.notice())

    def merge(self, other: Ticket) -> None:
        if other.id == self.id:
            raise NotMergeable("A ticket cannot be merged into itself.")
        if other.customer_id is None or other.customer_id != self.customer_id:
            raise NotMergeable("Only two tickets of the same customer can be merged.")
        if self.merged_into is not None or other.merged_into is not None:
            raise NotMergeable("A merged ticket cannot be merged again.")
        self.trigger_event(
            self.Merged,
            merged_ticket_id=other.id,
            merged_tracking_number=other.tracking_number,
            messages=[dict(m, merged_from=other.tracking_number) for m in other.messages],
            mail_message_ids=list(other.mail_message_ids),
            **self.notice(),
        )
        other.merged_into_ticket(self.id)

    def visible_to_client(self) -> list[dict]:
        return [m for m in self.messages if not m["internal"]]

    def attachment(self, file_id: str, client: bool) -> dict | None:
        messages = self.visible_to_client() if client else self.messages
        for message in messages:
            for attachment in message["attachments"]:
                if attachment["id"] == file_id:
                    return attachment
        return None

    def abuse_due(self, now: datetime) -> bool:
        abuse = self.abuse
        return bool(abuse and abuse.get("state") == "pending" and abuse["deadline"] <= now)

    def act_on_abuse(self, notify_staff_ids: list, at: datetime | None = None) -> None:
        """The deadline passed unanswered: record the action, and (with `at`) an internal
        note saying what was done, mailed to whoever answers for the notice: its assignee,
        else the staff member who sent it (besides `notify_staff_ids`)."""
        action, deadline = self.abuse["action"], self.abuse["deadline"]
        self.trigger_event(
            self.AbuseActed,
            action=action,
            deadline=deadline,
            notify_staff_ids=[str(s) for s in notify_staff_ids],
            **self.notice(),
        )
        if at is None:
            return
        sender = next((m["author_id"] for m in self.messages if m["author_kind"] == "staff"), None)
        responsible = str(self.assignee) if self.assignee else sender
        notify = list(dict.fromkeys([*([responsible] if responsible else []), *notify_staff_ids]))
        self.add_message(
            f"The deadline of this violation notice ({deadline:%Y-%m-%d %H:%M} UTC) passed"
            f" without an answer: {ABUSE_DONE[action]}.",
            "system",
            None,
            "",
            at,
            internal=True,
            notify_staff_ids=notify,
        )


class NotARecipient(DomainError):
    """A ticket recorded for a customer the message was not sent to."""


def sole_customer(recipients: list, chosen_by: str) -> UUID | None:
    """The customer a message to customers is about when staff named exactly one (an abuse
    notice about one customer's service is the typical case): its text, its comment and
    its recipient's name are that customer's personal data. None for a message to several,
    or to a group, a project, a filter or all that happened to find one."""
    if chosen_by != "customer_ids" or len(recipients) != 1:
        return None
    return UUID(str(recipients[0]["id"]))


class Broadcast(Aggregate):
    """A message to customers: who it goes to, what it says, and the ticket opened for each
    recipient so far. Saved before the first ticket is opened, so an interrupted sending is
    resumed from here; `sent` once every recipient has their ticket, or was erased before
    it could be opened (`erased_recipients`: no ticket is opened with erased text).
    `customer_id`: the one customer a message to one customer is about (`sole_customer`),
    whose key seals its texts."""

    @event("Created")
    def __init__(
        self,
        subject: str,
        body: str,
        author: dict,
        department_id: UUID,
        options: dict,
        abuse: dict | None,
        recipients: list,
        attachments: list,
        at: datetime,
        customer_id: UUID | None = None,
    ):
        self.customer_id = customer_id
        self.erased_recipients: list[str] = []
        self.subject = subject
        self.body = body
        self.author = dict(author)
        self.department_id = department_id
        self.options = dict(options)
        self.abuse = dict(abuse) if abuse else None
        self.recipients = [dict(r) for r in recipients]
        self.attachments = [dict(a) for a in attachments]
        self.created_at = at
        self.tickets: list[dict] = []
        self.status = "sending" if recipients else "sent"
        self.sent_at: datetime | None = None if recipients else at

    @event("TicketsOpened")
    def _tickets_opened(self, tickets: list) -> None:
        self.tickets.extend(dict(t) for t in tickets)

    @event("RecipientsErased")
    def _recipients_erased(self, customer_ids: list) -> None:
        self.erased_recipients.extend(customer_ids)

    @event("Sent")
    def _sent(self, at: datetime) -> None:
        self.status = "sent"
        self.sent_at = at

    def _done(self) -> set[str]:
        return {t["customer_id"] for t in self.tickets} | set(self.erased_recipients)

    def pending(self, limit: int) -> list[dict]:
        """The next recipients without a ticket (and not erased), in the order they were
        named."""
        done = self._done()
        return [r for r in self.recipients if r["id"] not in done][: max(limit, 0)]

    def record(self, tickets: list[dict], at: datetime, erased: list[str] = ()) -> None:
        """Record opened tickets (each recipient once, whoever reports it first) and the
        recipients whose personal data was erased before their ticket was opened (they get
        none); the message is sent when the last recipient has theirs."""
        wanted = {r["id"] for r in self.recipients}
        strangers = sorted(({t["customer_id"] for t in tickets} | set(erased)) - wanted)
        if strangers:
            raise NotARecipient(f"Not a recipient of this message: {', '.join(strangers)}.")
        done = self._done()
        left_out = [c for c in dict.fromkeys(erased) if c not in done]
        if left_out:
            self._recipients_erased(left_out)
            done.update(left_out)
        new = []
        for ticket in tickets:
            if ticket["customer_id"] not in done:
                done.add(ticket["customer_id"])
                new.append(ticket)
        if new:
            self._tickets_opened(new)
        if self.status == "sending" and not self.pending(1):
            self._sent(at)
