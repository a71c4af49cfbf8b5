"""Incoming mail, read with the standard `email` package (policy.default), pure.

`parse(raw, envelope_from, domain)` gives a `ParsedMail`: the fields of the helpdesk's
IncomingMail contract, plus what the loop rules need (`loop`: why this message must
open no ticket and get no reply, `bounce_of`: our Message-ID that bounced).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from contracts.fields import clean_text, text_problem

MAX_BODY = 200_000
# no control characters or lone surrogates (undecodable bytes) in an id we hand on
_MSGID = re.compile(
    r"<[^<>\s\x00-\x1f\x7f-\x9f\ud800-\udfff]+@[^<>\s\x00-\x1f\x7f-\x9f\ud800-\udfff]+>"
)
_DAEMONS = ("mailer-daemon", "postmaster")
_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)

# Mislabelled charsets, as mail programs send them: the label on the left, what the
# bytes really are on the right (each one a superset of the label).
CHARSET_REPAIRS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "chinese": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "windows-1252",
    "latin1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-9": "windows-1254",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "win-1251": "windows-1251",
    "cp-1251": "windows-1251",
    "x-cp1251": "windows-1251",
    "windows-1251": "windows-1251",
    "koi8r": "koi8-r",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
}


class Unparseable(ValueError):
    """The message cannot be read well enough to hand on; it is kept for staff."""


@dataclass
class ParsedMail:
    message_id: str
    sender: str
    sender_name: str
    subject: str
    body: str
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    loop: str | None = None
    bounce_of: str | None = None

    def payload(self, recipient: str) -> dict:
        """The IncomingMail payload (contracts/helpdesk.py) for one recipient."""
        return {
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": self.references,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "recipient": recipient,
            "subject": self.subject,
            "body": self.body,
            "attachments": self.attachments,
            "bounce_of": self.bounce_of,
        }


def repaired_charset(label: str | None) -> str | None:
    if not label:
        return None
    name = label.strip().strip('"').lower()
    name = CHARSET_REPAIRS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, label: str | None) -> str:
    """Text of `data` labelled `label`: the repaired label first, then UTF-8, then the
    label (or windows-1252) with replacement characters; never fails."""
    charset = repaired_charset(label)
    for candidate in (charset, "utf-8"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(charset or "windows-1252", errors="replace")


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a broken header reads as absent
        return ""
    if value is None:
        return ""
    text = str(value)
    if "\ufffd" in text or "=?" in text:
        text = _decode_words_repaired(msg, name) or text
    return " ".join(text.split())


def _decode_words_repaired(msg: Message, name: str) -> str:
    """RFC 2047 words decoded with the charset repairs (policy.default trusts the label)."""
    from email.header import decode_header

    raw = None
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            raw = value
            break
    if raw is None:
        return ""
    try:
        parts = decode_header(str(raw))
    except Exception:  # noqa: BLE001
        return ""
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, charset or "utf-8"))
        else:
            out.append(chunk)
    return "".join(out)


def message_ids(value: str) -> list[str]:
    return _MSGID.findall(value or "")


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return decode_bytes(data, part.get_content_charset())


def html_to_text(html: str) -> str:
    """Safe plain text of an HTML body: no markup, no scripts or styles, links kept as text."""
    if not html.strip():
        return ""
    text = get_text(html, _HTML_CONFIG)
    lines = [line.rstrip() for line in text.splitlines()]
    out, blank = [], 0
    for line in lines:
        blank = blank + 1 if not line.strip() else 0
        if blank <= 1:
            out.append(line)
    return "\n".join(out).strip()


def _body(msg: EmailMessage) -> tuple[str, Message | None]:
    part = None
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001 - a broken structure: look for any text part below
        part = None
    if part is None:
        for candidate in msg.walk():
            if candidate.get_content_maintype() == "text" and not candidate.is_attachment():
                part = candidate
                break
    if part is None:
        return "", None
    text = _part_text(part)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    text = text.replace("\r\n", "\n").strip()
    return text[:MAX_BODY], part


def _attachments(msg: EmailMessage, body_part: Message | None) -> list[dict]:
    out = []
    for part in msg.walk():
        if part.is_multipart() or part is body_part:
            continue
        filename = part.get_filename()
        maintype = part.get_content_maintype()
        if not (part.is_attachment() or filename or maintype not in ("text", "message")):
            continue
        data = part.get_payload(decode=True) or b""
        out.append(
            {
                "filename": clean_text(filename or "attachment").strip()[:255] or "attachment",
                "content_type": clean_text(part.get_content_type())[:255],
                "content": base64.b64encode(data).decode("ascii"),
            }
        )
    return out


def loop_reason(msg: Message, envelope_from: str | None, sender: str) -> str | None:
    """Why a message must open no ticket and get no reply (RFC 3834 and the usual signs
    of robots), or None."""
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"auto-submitted: {auto}"
    precedence = _header(msg, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = _header(msg, name).lower()
        if value:
            return f"{name.lower()}: {value}"
    if envelope_from is not None and envelope_from.strip() in ("", "<>"):
        return "empty return path"
    local = sender.split("@")[0].lower()
    if local in _DAEMONS or local.startswith(("mailer-daemon", "postmaster")):
        return f"sent by {local}"
    return None


def bounced_message_id(msg: EmailMessage, raw: bytes, is_ours) -> str | None:
    """Our Message-ID that this delivery status notification (or robot's reply) is about."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                for mid in message_ids(str(inner.get("Message-ID", ""))):
                    if is_ours(mid):
                        return mid
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            headers = message_from_bytes(
                part.get_payload(decode=True) or b"", policy=policy.compat32
            )
            for mid in message_ids(str(headers.get("Message-ID", ""))):
                if is_ours(mid):
                    return mid
    for mid in message_ids(_header(msg, "In-Reply-To")) + message_ids(_header(msg, "References")):
        if is_ours(mid):
            return mid
    for mid in message_ids(raw.decode("latin-1")):
        if is_ours(mid):
            return mid
    return None


def is_report(msg: Message) -> bool:
    return msg.get_content_type() == "multipart/report"


def parse(raw: bytes, envelope_from: str | None, is_ours=lambda mid: False) -> ParsedMail:
    """Read one message. `envelope_from`: the SMTP MAIL FROM (None when unknown, as for
    mail fetched over IMAP without a Return-Path); `is_ours(message_id)`: whether a
    Message-ID is one of the gateway's own."""
    if not raw or not raw.strip():
        raise Unparseable("the message is empty")
    try:
        msg = message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # noqa: BLE001 - anything the parser cannot take is kept
        raise Unparseable(f"the parser failed: {exc}") from None
    if not msg.keys():
        raise Unparseable("the message has no headers")
    try:
        senders = getaddresses([_header(msg, "From")])
    except Exception:  # noqa: BLE001
        senders = []
    sender_name, sender = senders[0] if senders else ("", "")
    if not sender or "@" not in sender or text_problem(sender):
        fallback = (envelope_from or "").strip("<>")
        if "@" not in fallback or text_problem(fallback):
            raise Unparseable("the message names no sender address")
        sender, sender_name = fallback, ""
    sender = sender.strip().lower()
    ids = message_ids(_header(msg, "Message-ID"))
    message_id = (
        ids[0] if ids else f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"
    )
    try:
        body, body_part = _body(msg)
        attachments = _attachments(msg, body_part)
    except Exception as exc:  # noqa: BLE001
        raise Unparseable(f"the body cannot be read: {exc}") from None
    loop = loop_reason(msg, envelope_from, sender)
    bounce_of = None
    if loop is not None or is_report(msg):
        bounce_of = bounced_message_id(msg, raw, is_ours)
        loop = loop or "delivery status notification"
    return ParsedMail(
        message_id=message_id,
        sender=sender,
        # text from mail is taken as it comes, less what no text may hold (contracts/fields.py)
        sender_name=clean_text(sender_name).strip()[:200],
        subject=clean_text(_header(msg, "Subject")).strip()[:998],
        body=clean_text(body, multiline=True),
        in_reply_to=message_ids(_header(msg, "In-Reply-To")),
        references=message_ids(_header(msg, "References")),
        attachments=attachments,
        loop=loop,
        bounce_of=bounce_of,
    )
