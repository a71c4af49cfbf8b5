"""Incoming mail kept for staff: what one message shows, and how it is handed on when
staff release it.

A held message is shown as text only: its headers decoded, its text body as the helpdesk
would take it (HTML turned into plain text), the names and sizes of its attachments.
Nothing of it is ever rendered as markup. Releasing hands it to the helpdesk exactly as
the mail-in process would (`helpdesk.receive_mail`), with the department staff chose
when they chose one; pure except for the `helpdesk` it is given.
"""

from __future__ import annotations

import base64
from email.header import decode_header
from email.parser import BytesParser
from email.policy import compat32
from itertools import islice

from contracts.errors import HostledgerError, ValidationFailed
from contracts.fields import clean_text
from services.mailgateway import authresults, compose, parsing

MAX_HEADERS = 200
MAX_HEADER_VALUE = 2000

# what the helpdesk answers when it took a message (contracts.helpdesk.IncomingMail)
TAKEN = ("opened", "appended", "duplicate", "noted", "bounce_noted")


def headers_of(raw: bytes) -> list[dict]:
    """The message's header fields in order, decoded (RFC 2047 words), as plain text."""
    msg = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    return [
        {"name": clean_text(name)[:200], "value": clean_text(_decoded(value))[:MAX_HEADER_VALUE]}
        for name, value in islice(msg.raw_items(), MAX_HEADERS)
    ]


def _decoded(value) -> str:
    try:
        text = "".join(
            parsing.decode_bytes(chunk, charset or "utf-8") if isinstance(chunk, bytes) else chunk
            for chunk, charset in decode_header(str(value))
        )
    except Exception:  # noqa: BLE001 - a broken header shows as it came
        text = str(value)
    return " ".join(text.split())


def describe(raw: bytes, domain: str) -> dict:
    """{"headers", "body", "attachments": [{"filename", "content_type", "size"}],
    "problem"}: `problem` says why the message cannot be read (then no body)."""
    try:
        headers = headers_of(raw)
    except Exception:  # noqa: BLE001 - whatever the parser trips on
        headers = []
    try:
        mail = parsing.parse(raw, None, lambda mid: compose.is_ours(mid, domain))
    except Exception as exc:  # noqa: BLE001
        return {"headers": headers, "body": None, "attachments": [], "problem": str(exc)[:500]}
    return {
        "headers": headers,
        "body": mail.body,
        "attachments": [
            {
                "filename": a["filename"],
                "content_type": a["content_type"],
                "size": len(base64.b64decode(a["content"])),
            }
            for a in mail.attachments
        ],
        "problem": None,
    }


def release(
    helpdesk, raw: bytes, held: dict, department_id: str | None, domain: str, authserv_id: str
) -> dict:
    """Hand a held message to the helpdesk as if it had just arrived, or into the
    department `department_id` (a new ticket there, whoever sent it). The helpdesk's answer
    when it took the message; ValidationFailed (naming `department_id`) when it cannot be
    read or the helpdesk refuses it again."""
    try:
        mail = parsing.parse(raw, held["sender"] or None, lambda mid: compose.is_ours(mid, domain))
    except Exception as exc:  # noqa: BLE001
        raise ValidationFailed(
            f"The message cannot be read: {exc}",
            {"_schema": ["The message cannot be read; it can only be discarded."]},
        ) from None
    recipients = [r.strip() for r in held["recipient"].split(",") if "@" in r]
    payload = mail.payload(recipients[0] if recipients else f"postmaster@{domain}")
    payload["sender_verified"] = authresults.sender_verified(
        BytesParser(policy=compat32).parsebytes(raw, headersonly=True), authserv_id
    )
    if department_id:
        payload["department_id"] = str(department_id)
    try:
        answer = helpdesk.receive_mail(payload)
    except ValidationFailed:
        raise
    except HostledgerError as exc:
        raise ValidationFailed(str(exc), {"department_id": [str(exc)]}) from None
    if answer.get("outcome") not in TAKEN or not answer.get("ticket_id"):
        reason = answer.get("reason") or "the helpdesk did not take it"
        raise ValidationFailed(
            f"The helpdesk did not take the message: {reason}.", {"department_id": [reason]}
        )
    return answer
