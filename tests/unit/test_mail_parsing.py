"""Reading incoming mail: headers, charsets and their repairs, HTML, attachments, robots."""

import base64
from email.message import EmailMessage

import pytest

from services.mailgateway import parsing
from services.mailgateway.compose import is_ours
from services.mailgateway.imap import _return_path, mailboxes


def ours(mid: str) -> bool:
    return is_ours(mid, "hostledger.local")


def message(**headers) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Jane <jane@client.example>")
    msg["To"] = "support@provider.example"
    msg["Subject"] = headers.pop("Subject", "Hello")
    msg["Message-ID"] = headers.pop("Message_ID", "<m1@client.example>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Body text.")
    return msg


def test_a_plain_message_gives_the_helpdesk_payload():
    mail = parsing.parse(
        message(In_Reply_To="<a@x>", References="<r@x> <a@x>").as_bytes(), "jane@client.example"
    )
    payload = mail.payload("support@provider.example")
    assert payload == {
        "message_id": "<m1@client.example>",
        "in_reply_to": ["<a@x>"],
        "references": ["<r@x>", "<a@x>"],
        "sender": "jane@client.example",
        "sender_name": "Jane",
        "recipient": "support@provider.example",
        "subject": "Hello",
        "body": "Body text.",
        "attachments": [],
        "bounce_of": None,
    }
    assert mail.loop is None


def test_encoded_words_and_a_windows_1251_body():
    raw = (
        b"From: =?windows-1251?b?" + base64.b64encode("Иван".encode("cp1251")) + b"?= <i@x.ru>\r\n"
        b"Subject: =?koi8-r?q?=F4=C5=D3=D4?=\r\n"
        b"Content-Type: text/plain; charset=windows-1251\r\n\r\n" + "Привет".encode("cp1251")
    )
    mail = parsing.parse(raw, "i@x.ru")
    assert (mail.sender_name, mail.subject, mail.body) == ("Иван", "Тест", "Привет")


def test_gb2312_labels_are_read_as_gb18030():
    text = "服务器 𠀀"  # the last character exists in gb18030 only
    raw = (
        b"From: a@b.cn\r\nSubject: =?gb2312?b?"
        + base64.b64encode(text.encode("gb18030"))
        + b"?=\r\nContent-Type: text/plain; charset=gb2312\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(text.encode("gb18030"))
    )
    mail = parsing.parse(raw, "a@b.cn")
    assert mail.subject == text and mail.body == text


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        ("us-ascii", "café".encode("cp1252"), "café"),
        ("iso-8859-1", b"\x93quoted\x94", "\u201cquoted\u201d"),
        ("utf-8", b"ok", "ok"),
        ("no-such-charset", "déjà".encode(), "déjà"),
        (None, "ünlabelled".encode(), "ünlabelled"),
        ("utf-8", b"\xff\xfe broken", "\ufffd\ufffd broken"),
    ],
)
def test_charset_repairs_never_fail(label, data, expected):
    assert parsing.decode_bytes(data, label) == expected


def test_html_only_mail_becomes_safe_text():
    msg = message()
    msg.set_content(
        "<html><head><style>p {color: red}</style><script>steal()</script></head>"
        "<body><h1>Title</h1><p>Hello <b>support</b>,</p><p>see "
        "<a href='https://example.org/x'>this</a></p></body></html>",
        subtype="html",
    )
    body = parsing.parse(msg.as_bytes(), None).body
    assert "Title" in body and "Hello support," in body and "https://example.org/x" in body
    assert "<" not in body and "steal" not in body and "color" not in body


def test_multipart_alternative_prefers_plain_text_and_keeps_attachments():
    msg = message()
    msg.set_content("Plain version.")
    msg.add_alternative("<p>HTML version.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="a.pdf")
    mail = parsing.parse(msg.as_bytes(), None)
    assert mail.body == "Plain version."
    (attachment,) = mail.attachments
    assert attachment["filename"] == "a.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert base64.b64decode(attachment["content"]) == b"%PDF-1.4 data"


def test_a_message_without_message_id_gets_a_stable_one():
    raw = b"From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n"
    first, second = parsing.parse(raw, "a@b.c"), parsing.parse(raw, "a@b.c")
    assert first.message_id == second.message_id
    assert first.message_id != parsing.parse(raw + b"more", "a@b.c").message_id


@pytest.mark.parametrize(
    ("headers", "envelope_from", "reason"),
    [
        ({"Auto_Submitted": "auto-replied"}, "jane@client.example", "auto-submitted"),
        ({"Auto_Submitted": "auto-generated; type=x"}, "jane@client.example", "auto-submitted"),
        ({"Precedence": "bulk"}, "jane@client.example", "precedence"),
        ({"Precedence": "list"}, "jane@client.example", "precedence"),
        ({"Precedence": "junk"}, "jane@client.example", "precedence"),
        ({"X_Autoreply": "yes"}, "jane@client.example", "x-autoreply"),
        ({}, "", "empty return path"),
        ({}, "<>", "empty return path"),
        ({"From": "MAILER-DAEMON@mx.example"}, "x@mx.example", "sent by mailer-daemon"),
        ({"From": "postmaster@mx.example"}, "x@mx.example", "sent by postmaster"),
    ],
)
def test_robots_are_recognised(headers, envelope_from, reason):
    mail = parsing.parse(message(**headers).as_bytes(), envelope_from)
    assert mail.loop is not None and mail.loop.startswith(reason)


def test_auto_submitted_no_is_a_person():
    mail = parsing.parse(message(Auto_Submitted="no").as_bytes(), "jane@client.example")
    assert mail.loop is None


def test_a_delivery_report_names_our_message_that_bounced():
    ours_id = "<hl.6f1c1f9e-0b7e-4c1d-9a51-2b1b2f0b9c11.abcd@hostledger.local>"
    report = (
        "From: MAILER-DAEMON@mx.example\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ours_id}\r\n"
        "--b--\r\n"
    ).encode()
    mail = parsing.parse(report, "", ours)
    assert mail.bounce_of == ours_id and mail.loop
    # someone else's message bouncing is not ours to note
    other = report.replace(ours_id.encode(), b"<x@elsewhere.example>")
    assert parsing.parse(other, "", ours).bounce_of is None


def test_an_out_of_office_answering_our_mail_is_not_a_bounce_but_a_robot():
    ours_id = "<hlm.0123456789abcdef0123456789abcdef@hostledger.local>"
    mail = parsing.parse(
        message(Auto_Submitted="auto-replied", In_Reply_To=ours_id).as_bytes(),
        "jane@client.example",
        ours,
    )
    assert mail.loop.startswith("auto-submitted") and mail.bounce_of == ours_id


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n", b"\r\n\r\nno headers\r\n", b"Subject: no sender\r\n\r\nx"]
)
def test_unreadable_mail_is_refused_for_staff(raw):
    with pytest.raises(parsing.Unparseable):
        parsing.parse(raw, "")


def test_is_ours_only_for_our_domain_and_prefixes():
    assert ours("<hlm.abc@hostledger.local>") and ours("<hl.x.y@HOSTLEDGER.local>")
    assert not ours("<hlm.abc@other.example>") and not ours("<abc@hostledger.local>")


def test_imap_settings_and_return_path():
    (box,) = mailboxes(
        '[{"host": "imap.example", "user": "u", "password": "p", "recipient": "s@x.example",'
        ' "ssl": true}]'
    )
    assert (box.port, box.folder, box.name) == (993, "INBOX", "u@imap.example")
    assert mailboxes("") == []
    assert _return_path(b"Return-Path: <>\r\nFrom: a@b\r\n\r\nx") == "<>"
    assert _return_path(b"From: a@b\r\n\r\nReturn-Path: <x@y>") is None
