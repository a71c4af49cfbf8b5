"""What an outgoing message looks like: our Message-IDs, threading and loop headers."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from uuid import NAMESPACE_URL, uuid5

from contracts.helpdesk import outgoing_message_id
from services.infra import clock

_NOTIFICATION_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/notification")


def notification_message_id(key: str, domain: str) -> str:
    """Our Message-ID for a notification that is not about a ticket message."""
    return f"<hlm.{uuid5(_NOTIFICATION_NS, key).hex}@{domain}>"


def thread_root(name: str, domain: str) -> str:
    """The Message-ID of the first mail of a thread (`invoice-<id>`): later mails about the
    same thing answer it, so mail programs show them together."""
    return f"<hlm.{name}@{domain}>"


def ticket_message_id(ticket_message_id: str, recipient: str, domain: str) -> str:
    """Our Message-ID for the mail about one ticket message to one recipient."""
    key = uuid5(_NOTIFICATION_NS, recipient.strip().lower()).hex[:16]
    return outgoing_message_id(ticket_message_id, key, domain)


def is_ours(message_id: str, domain: str) -> bool:
    value = message_id.strip().strip("<>").lower()
    return value.startswith(("hl.", "hlm.")) and value.endswith("@" + domain.lower())


def build(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """The message; `attachments`: (filename, content type, content) of each file."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(references or [in_reply_to])
    # RFC 3834: a machine wrote this; auto-responders must not answer it
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(body, charset="utf-8")
    for filename, content_type, content in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not subtype or maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def envelope_address(header_value: str) -> str:
    return parseaddr(header_value)[1]
