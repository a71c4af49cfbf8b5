"""What the helpdesk service publishes and accepts.

Mail threading: every message the mail gateway sends about a ticket message carries
a Message-ID made by `outgoing_message_id`, so a reply's In-Reply-To/References lead
back to that ticket message through `ticket_message_of`.
"""

from __future__ import annotations

import re
import uuid

from marshmallow import EXCLUDE, Schema, fields, validate

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
    reason = fields.String(required=True)


# ---- RPC payloads -------------------------------------------------------------------------


class IncomingAttachment(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_type = fields.String(load_default="application/octet-stream")
    content = fields.String(required=True)  # base64


class IncomingMail(Schema):
    """One parsed incoming e-mail as the mail gateway hands it to `helpdesk.receive_mail`.

    The helpdesk decides: a Message-ID already seen is a duplicate; In-Reply-To /
    References naming one of a ticket's messages, or `[#<tracking>]` in the subject,
    append to that ticket when the sender may write there; otherwise a new ticket in
    the department that owns `recipient`. `bounce_of` (our Message-ID that bounced)
    becomes an internal note. Answer: {"outcome": "opened" | "appended" | "duplicate"
    | "bounce_noted" | "refused", "ticket_id", "tracking_number", "reason"?}.
    """

    class Meta:
        unknown = EXCLUDE

    message_id = fields.String(required=True, validate=validate.Length(min=3, max=998))
    in_reply_to = fields.List(fields.String(), load_default=list)
    references = fields.List(fields.String(), load_default=list)
    sender = fields.Email(required=True)
    sender_name = fields.String(load_default="")
    recipient = fields.Email(required=True)
    subject = fields.String(load_default="")
    body = fields.String(load_default="")
    attachments = fields.List(fields.Nested(IncomingAttachment), load_default=list)
    bounce_of = fields.String(load_default=None, allow_none=True)
