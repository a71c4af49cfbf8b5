"""What the helpdesk service publishes and accepts.

Mail threading: every message the mail gateway sends about a ticket message carries
a Message-ID made by `outgoing_message_id`, so a reply's In-Reply-To/References lead
back to that ticket message through `ticket_message_of`.
"""

from __future__ import annotations

import re
import uuid

from marshmallow import EXCLUDE, Schema, fields, validate

from contracts.fields import Body, Email, Text
from contracts.registry import integration_event

_OUTGOING = re.compile(r"<?hl\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.")


def outgoing_message_id(ticket_message_id: str, recipient_key: str, domain: str) -> str:
    """Our Message-ID for the mail about one ticket message to one recipient."""
    return f"<hl.{ticket_message_id}.{recipient_key}@{domain}>"


def ticket_message_of(message_id: str) -> str | None:
    """The ticket message an outgoing Message-ID of ours was about, if it is one of ours."""
    match = _OUTGOING.match(message_id.strip().lower())
    if match is None:
        return None
    try:
        return str(uuid.UUID(match.group(1)))
    except ValueError:
        return None


@integration_event("helpdesk", "ServicesSuspensionRequested")
class ServicesSuspensionRequested(Schema):
    """Suspend every active service of a customer (abuse action or penalty threshold)."""

    id_field = "ticket_id"

    ticket_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    reason = Body(required=True)


LANGUAGES = ("en", "ru", "fr")
AUTHOR_KINDS = ("client", "staff", "system", "mail")
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("open", "answered", "customer_reply", "closed")


class AttachmentRef(Schema):
    """A file on a ticket message; its content is downloaded from the helpdesk by id."""

    id = Text(required=True)  # the content's sha256: files are content-addressed
    filename = Text(required=True)
    content_type = Text(required=True)
    size = fields.Integer(required=True)


class _TicketNotice(Schema):
    """What every ticket notification carries: whom it is about and how to address it.

    The client is `customer_id` (its e-mail and users are the customers service's) or,
    for a ticket opened by an unknown sender, `guest_email`. `reply_address` is the
    department's first incoming address (From/Reply-To of the mail), `language` the
    client's language, `forbid_replies` says the client cannot answer this ticket.
    """

    id_field = "ticket_id"

    ticket_id = fields.UUID(required=True)
    tracking_number = Text(required=True)
    department_id = fields.UUID(required=True)
    department_name = Text(required=True)
    reply_address = Text(load_default=None, allow_none=True)
    customer_id = fields.UUID(load_default=None, allow_none=True)
    guest_email = Text(load_default=None, allow_none=True)
    subject = Text(required=True)
    language = Text(required=True, validate=validate.OneOf(LANGUAGES))
    forbid_replies = fields.Boolean(required=True)


class _MessageNotice(_TicketNotice):
    """One message of a ticket. `notify_staff_ids`: the staff of the department (or the
    assignee) who asked to be told of it. `notify_client`: staff wrote it (an answer, or a
    message to the customer): mail it to the client. The client's own messages have it false.
    `mail_message_id`: the Message-ID of the e-mail it came in, for threading."""

    message_id = fields.UUID(required=True)
    body = Body(required=True)
    author_kind = Text(required=True, validate=validate.OneOf(AUTHOR_KINDS))
    author_id = Text(load_default=None, allow_none=True)
    author_name = Text(load_default="")
    internal = fields.Boolean(required=True)
    attachments = fields.List(fields.Nested(AttachmentRef), load_default=list)
    notify_staff_ids = fields.List(fields.UUID(), load_default=list)
    notify_client = fields.Boolean(required=True)
    mail_message_id = Text(load_default=None, allow_none=True)


@integration_event("helpdesk", "TicketOpened")
class TicketOpened(_MessageNotice):
    """A new ticket with its first message (from a client, by mail, or staff's message to
    a customer: then `notify_client` is true and the client gets the message). `abuse`:
    a violation notice's terms (deadline, action, penalty points, comment): it is mailed
    whatever the client's notification settings."""

    priority = Text(required=True, validate=validate.OneOf(PRIORITIES))
    via = Text(required=True, validate=validate.OneOf(["web", "mail", "staff"]))
    abuse = fields.Nested(lambda: Abuse(), load_default=None, allow_none=True)


@integration_event("helpdesk", "TicketMessageAdded")
class TicketMessageAdded(_MessageNotice):
    """A message the client may see (never an internal note: those are TicketNoteAdded)."""


@integration_event("helpdesk", "TicketNoteAdded")
class TicketNoteAdded(_MessageNotice):
    """An internal note or a system note: for staff only, never mailed to the client."""


@integration_event("helpdesk", "TicketAssigned")
class TicketAssigned(_TicketNotice):
    staff_id = fields.UUID(load_default=None, allow_none=True)
    previous_staff_id = fields.UUID(load_default=None, allow_none=True)


@integration_event("helpdesk", "TicketClosed")
class TicketClosed(_TicketNotice):
    pass


@integration_event("helpdesk", "TicketsMerged")
class TicketsMerged(_TicketNotice):
    """`merged_ticket_id` (with its tracking number) now lives on inside this ticket."""

    merged_ticket_id = fields.UUID(required=True)
    merged_tracking_number = Text(required=True)


@integration_event("helpdesk", "AbuseDeadlinePassed")
class AbuseDeadlinePassed(_TicketNotice):
    """An abuse notice's deadline passed without the client answering; `action` was taken."""

    action = Text(required=True, validate=validate.OneOf(["move_to_active", "suspend_services"]))
    deadline = fields.AwareDateTime(required=True, format="iso")
    notify_staff_ids = fields.List(fields.UUID(), load_default=list)


@integration_event("helpdesk", "PenaltyPointsGiven")
class PenaltyPointsGiven(Schema):
    """Penalty points for an abuse notice; `total` is the customer's sum after it."""

    id_field = "standing_id"

    standing_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    ticket_id = fields.UUID(required=True)
    points = fields.Integer(required=True)
    total = fields.Integer(required=True)
    comment = Body(load_default="")


# ---- RPC payloads -------------------------------------------------------------------------


class IncomingAttachment(Schema):
    filename = Text(required=True, validate=validate.Length(min=1, max=255))
    content_type = Text(load_default="application/octet-stream", max_length=255)
    content = Text(required=True)  # base64


class IncomingMail(Schema):
    """One parsed incoming e-mail as the mail gateway hands it to `helpdesk.receive_mail`.

    The helpdesk decides: a Message-ID already seen is a duplicate; In-Reply-To /
    References naming one of a ticket's messages, or `[#<tracking>]` in the subject,
    append to that ticket when the sender may write there; otherwise a new ticket in
    the department that owns `recipient`. `bounce_of` (our Message-ID that bounced)
    becomes an internal note. Answer: {"outcome": "opened" | "appended" | "duplicate"
    | "bounce_noted" | "noted" | "refused", "ticket_id", "tracking_number", "reason"?}
    ("noted": mail from a staff address whose sender is not verified, kept as an
    internal note).
    """

    class Meta:
        unknown = EXCLUDE

    message_id = Text(required=True, validate=validate.Length(min=3, max=998))
    in_reply_to = fields.List(Text(max_length=998), load_default=list)
    references = fields.List(Text(max_length=998), load_default=list)
    sender = Email(required=True)
    sender_name = Text(load_default="")
    recipient = Email(required=True)
    subject = Text(load_default="", max_length=998)
    body = Body(load_default="")
    attachments = fields.List(fields.Nested(IncomingAttachment), load_default=list)
    bounce_of = Text(load_default=None, allow_none=True)
    # what the provider's own mail server found (Authentication-Results): True, DMARC
    # passed; False, DMARC, SPF or DKIM failed; None, nothing from it
    sender_verified = fields.Boolean(load_default=None, allow_none=True)
    # staff released this message, kept for them by the mail gateway, into a department:
    # a new ticket there whoever sent it (neither threaded nor refused for its address)
    department_id = fields.UUID(load_default=None, allow_none=True)


class DepartmentField(Schema):
    name = Text(
        required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="Use a-z, 0-9, _.")
    )
    label = Text(load_default="", validate=validate.Length(max=200))
    required = fields.Boolean(load_default=False)


class BusinessHours(Schema):
    """Days 0 (Monday) to 6, hours "HH:MM" in `timezone`."""

    days = fields.List(fields.Integer(validate=validate.Range(min=0, max=6)), load_default=list)
    opens = Text(load_default="09:00", validate=validate.Regexp(r"^\d\d:\d\d$"))
    closes = Text(load_default="18:00", validate=validate.Regexp(r"^\d\d:\d\d$"))
    timezone = Text(load_default="UTC", validate=validate.Length(max=64))


class DepartmentFields(Schema):
    """A department: who answers (`staff_ids`), which incoming addresses feed it, what a
    client must say when opening a ticket there, whether unknown senders may open one."""

    name = Text(required=True, validate=validate.Length(min=1, max=200))
    client_visible = fields.Boolean(load_default=True)
    fields_ = fields.List(
        fields.Nested(DepartmentField), data_key="fields", attribute="fields", load_default=list
    )
    staff_ids = fields.List(fields.UUID(), load_default=list)
    addresses = fields.List(Email(), load_default=list)
    business_hours = fields.Nested(BusinessHours, load_default=None, allow_none=True)
    accept_guests = fields.Boolean(load_default=True)


class OpenTicket(Schema):
    department_id = fields.UUID(required=True)
    subject = Text(required=True, validate=validate.Length(min=1, max=255))
    body = Body(required=True, validate=validate.Length(min=1, max=100_000))
    fields_ = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=40)),
        values=Body(validate=validate.Length(max=1000)),
        data_key="fields",
        attribute="fields",
        load_default=dict,
    )
    priority = Text(load_default="normal", validate=validate.OneOf(PRIORITIES))


class Reply(Schema):
    body = Body(required=True, validate=validate.Length(min=1, max=100_000))


class StaffReply(Schema):
    """A reply or an internal note; with `template_id` the body may be empty."""

    body = Body(load_default="", validate=validate.Length(max=100_000))
    internal = fields.Boolean(load_default=False)
    template_id = fields.UUID(load_default=None, allow_none=True)
    close = fields.Boolean(load_default=False)


class Assign(Schema):
    staff_id = fields.UUID(required=True, allow_none=True)


class ChangeTicket(Schema):
    priority = Text(validate=validate.OneOf(PRIORITIES))
    department_id = fields.UUID()
    status = Text(validate=validate.OneOf(["closed", "open"]))


class Merge(Schema):
    ticket_id = fields.UUID(required=True)  # merged into the ticket of the route


class ReplyTemplate(Schema):
    """A canned reply: its text per language; `%client_person%` and `%admin_name%` are
    filled in when used."""

    name = Text(required=True, validate=validate.Length(min=1, max=200))
    bodies = fields.Dict(
        keys=Text(validate=validate.OneOf(LANGUAGES)),
        values=Body(validate=validate.Length(min=1, max=100_000)),
        required=True,
        validate=validate.Length(min=1),
    )
    department_id = fields.UUID(load_default=None, allow_none=True)


class Abuse(Schema):
    deadline = fields.AwareDateTime(required=True, format="iso")
    action = Text(required=True, validate=validate.OneOf(["move_to_active", "suspend_services"]))
    penalty_points = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1000))
    comment = Body(load_default="", validate=validate.Length(max=2000))


class MessageText(Schema):
    """A message's subject and body in one language."""

    subject = Text(required=True, validate=validate.Length(min=1, max=255))
    body = Body(required=True, validate=validate.Length(min=1, max=100_000))


class RecipientFilter(Schema):
    """The staff customer list's filters (as GET /api/v1/staff/customers takes them): the
    customers service finds who they match when the message is sent."""

    number = fields.Integer(validate=validate.Range(min=1))
    name = Text(validate=validate.Length(min=1, max=200))
    project_id = fields.UUID()
    group_id = fields.UUID()
    active_product_id = fields.UUID()
    language = Text(validate=validate.OneOf(LANGUAGES))
    registered_from = fields.AwareDateTime(format="iso")
    registered_to = fields.AwareDateTime(format="iso")


RECIPIENT_CHOICES = ("customer_ids", "all", "group_id", "project_id", "filter")


class SendMessage(Schema):
    """One ticket per customer, macros filled in per customer. Recipients: exactly one of
    `customer_ids`, `all`, `group_id` (a customer group), `project_id` or `filter` (the
    staff customer list's filters), each optionally narrowed to the customers whose
    language is `language` with `strict_language`. `subject` and `body` are the text for
    every language `translations` ({"ru": {"subject", "body"}, "fr": ...}) does not give:
    each customer gets its own language's text. With `template_id` the reply template's
    text, in the customer's language, starts the body (which may then be empty).
    `forbid_replies` cannot go with `abuse`: a violation notice must let the client
    answer before its deadline."""

    customer_ids = fields.List(fields.UUID(), load_default=None, validate=validate.Length(min=1))
    all = fields.Boolean(load_default=False)
    group_id = fields.UUID(load_default=None, allow_none=True)
    project_id = fields.UUID(load_default=None, allow_none=True)
    filter = fields.Nested(RecipientFilter, load_default=None, allow_none=True)
    department_id = fields.UUID(required=True)
    subject = Text(required=True, validate=validate.Length(min=1, max=255))
    body = Body(load_default="", validate=validate.Length(max=100_000))
    translations = fields.Dict(
        keys=Text(validate=validate.OneOf(LANGUAGES)),
        values=fields.Nested(MessageText),
        load_default=dict,
    )
    template_id = fields.UUID(load_default=None, allow_none=True)
    forbid_replies = fields.Boolean(load_default=False)
    assign_to_me = fields.Boolean(load_default=False)
    strict_language = fields.Boolean(load_default=False)
    language = Text(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES))
    abuse = fields.Nested(Abuse, load_default=None, allow_none=True)


class BroadcastTicket(Schema):
    """The ticket one recipient of a message got."""

    customer_id = fields.UUID(required=True)
    ticket_id = fields.UUID(required=True)
    tracking_number = Text(required=True)


class Broadcast(Schema):
    """A message to customers as it is now: `status` `sending` while tickets are still being
    opened in the background, `sent` once every recipient has one; `count` recipients,
    `opened` tickets so far, `tickets` those tickets (left out of lists)."""

    id = fields.UUID(required=True)
    status = Text(required=True, validate=validate.OneOf(["sending", "sent"]))
    subject = Text(required=True)
    department_id = fields.UUID(required=True)
    author_id = Text(allow_none=True)
    author_name = Text()
    count = fields.Integer(required=True)
    opened = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    sent_at = fields.DateTime(allow_none=True)
    tickets = fields.List(fields.Nested(BroadcastTicket))
    # how it was sent (left out of lists)
    body = Body()
    forbid_replies = fields.Boolean()
    assign_to_me = fields.Boolean()
    languages = fields.List(Text(validate=validate.OneOf(LANGUAGES)))
    abuse = fields.Nested(Abuse, allow_none=True)


class HelpdeskSettings(Schema):
    """Attachment rules, guests by mail, the penalty threshold."""

    allowed_extensions = fields.List(
        Text(validate=validate.Regexp(r"^[a-z0-9]{1,10}$")),
        validate=validate.Length(max=100),
    )
    max_file_bytes = fields.Integer(validate=validate.Range(min=1, max=100 * 1024 * 1024))
    max_message_bytes = fields.Integer(validate=validate.Range(min=1, max=500 * 1024 * 1024))
    accept_guest_mail = fields.Boolean()
    penalty_threshold = fields.Integer(validate=validate.Range(min=1, max=100_000))
