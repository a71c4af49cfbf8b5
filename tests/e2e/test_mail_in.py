"""Mail in: a real SMTP client against the mail gateway's SMTP server, tickets by mail,
threading both ways, duplicates, strangers, robots, bounces, charsets, a helpdesk that
is away. Mail the system sends back lands in the stack's mail sink."""

import base64
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.test_mail_out import outbox, sent_to, wait_mail


@pytest.fixture(scope="module")
def smtp_in(stack):
    """The mail gateway's SMTP server answers (its own process, started by the service)."""

    def answers():
        try:
            with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=5) as s:
                return s.noop()[0] == 250
        except OSError:
            return False

    stack.wait_until(answers, timeout=60, what="the SMTP server")
    return stack.smtp_in_port


def deliver(stack, msg, mail_from: str | None = None, to: str | None = None):
    """Send like an MTA would; returns nothing on 250, raises SMTPDataError otherwise."""
    data = msg if isinstance(msg, bytes) else msg.as_bytes()
    if mail_from is None:
        mail_from = msg["From"] if not isinstance(msg, bytes) else ""
    with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=60) as s:
        s.sendmail(mail_from, [to or msg["To"]], data)


def mail(sender: str, to: str, subject: str, body: str, **headers) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def department(stack, staff_ids=()) -> tuple[dict, str]:
    address = f"support-{uuid.uuid4().hex[:8]}@provider.example"
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": "Support", "addresses": [address], "staff_ids": list(staff_ids)},
    )
    assert r.status_code == 201, r.text
    dept = r.json()
    # the helpdesk routes mail by its department list, which follows its log
    stack.wait_until(
        lambda: dept["id"] in listed_departments(stack),
        what="the department in the helpdesk's list",
    )
    return dept, address


def listed_departments(stack) -> set[str]:
    """The ids of every department the staff list shows, all its pages (the stack of a
    whole run has many, oldest first)."""
    found, page = set(), 1
    while True:
        r = stack.http(
            "GET",
            "/api/v1/staff/departments",
            stack.admin_token,
            params={"page": page, "page_size": 100},
        )
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        found |= {d["id"] for d in items}
        if len(items) < 100:
            return found
        page += 1


def tickets(stack, department_id: str) -> list[dict]:
    r = stack.http(
        "GET",
        "/api/v1/staff/tickets",
        stack.admin_token,
        params={"department_id": department_id, "page_size": 200},
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


def ticket(stack, ticket_id: str) -> dict:
    r = stack.http("GET", f"/api/v1/staff/tickets/{ticket_id}", stack.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def received(stack, sender: str) -> list[dict]:
    r = stack.http(
        "GET",
        "/api/v1/staff/mail/received",
        stack.admin_token,
        params={"sender": sender, "page_size": 200},
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


def one_ticket(stack, department_id: str) -> dict:
    (t,) = stack.wait_until(lambda: tickets(stack, department_id), what="the ticket")
    return ticket(stack, t["id"])


def test_a_customers_mail_opens_a_ticket_and_the_conversation_threads_both_ways(stack, smtp_in):
    dept, address = department(stack)
    c = stack.register_customer(language="en", contact_person="Mail Client")
    first = mail(c["email"], address, "Server down", "My VPS does not boot.")
    deliver(stack, first)
    t = one_ticket(stack, dept["id"])
    assert t["customer_id"] == c["id"] and t["subject"] == "Server down"
    assert t["messages"][0]["body"] == "My VPS does not boot."
    number = t["tracking_number"]

    # the acknowledgement answers the client's mail and carries the tracking number
    (ack,) = wait_mail(stack, c["email"])
    assert ack["Subject"] == f"[#{number}] Server down"
    assert ack["In-Reply-To"].strip() == first["Message-ID"]
    assert ack["Auto-Submitted"] == "auto-generated"
    assert address in ack["From"]

    # an internal note first: staff only, it never reaches the client by mail
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{t['id']}/replies",
        stack.admin_token,
        json={"body": "Host node 7 is flapping again.", "internal": True},
    )
    assert r.status_code == 201, r.text

    # staff answer on the web: the client gets it by mail, in the same thread
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{t['id']}/replies",
        stack.admin_token,
        json={"body": "We are rebooting the host."},
    )
    assert r.status_code == 201, r.text
    _, answer = wait_mail(stack, c["email"], 2)
    assert answer["Subject"] == f"[#{number}] Server down"
    assert "We are rebooting the host." in answer.get_content()
    assert answer["In-Reply-To"].strip() == ack["Message-ID"].strip()
    assert first["Message-ID"] in answer["References"]
    # the note came before the answer in the helpdesk's log, so had it been mailed it
    # would be here by now
    assert all("node 7" not in m.get_content() for m in sent_to(stack, c["email"]))

    # the client answers that mail: appended to the same ticket, whatever the subject says
    reply = mail(
        c["email"],
        address,
        "Re: something else",
        "Thanks, it works.",
        In_Reply_To=answer["Message-ID"].strip(),
        References=f"{first['Message-ID']} {answer['Message-ID'].strip()}",
    )
    deliver(stack, reply)
    stack.wait_until(
        lambda: len(ticket(stack, t["id"])["messages"]) == 4, what="the reply on the ticket"
    )
    assert ticket(stack, t["id"])["messages"][-1]["body"] == "Thanks, it works."
    assert len(tickets(stack, dept["id"])) == 1
    outcomes = [m["outcome"] for m in received(stack, c["email"])]
    assert outcomes == ["opened", "appended"]


def test_staff_who_asked_are_told_of_a_new_ticket_in_their_language(stack, smtp_in):
    staff_email = f"sam-{uuid.uuid4().hex[:8]}@provider.example"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": f"sam-{uuid.uuid4().hex[:6]}",
            "name": "Sam Support",
            "email": staff_email,
            "role": "support",
            "language": "ru",
            "notifications": {"new_ticket": True},
            "password": "staff-password-1",
        },
    )
    assert r.status_code == 201, r.text
    dept, address = department(stack, staff_ids=[r.json()["id"]])
    sender = f"guest-{uuid.uuid4().hex[:8]}@elsewhere.example"
    deliver(stack, mail(sender, address, "Need help", "Disk is full."))
    t = one_ticket(stack, dept["id"])
    (told,) = wait_mail(stack, staff_email)
    assert told["Subject"] == f"[#{t['tracking_number']}] Need help"
    assert "пишет в заявке" in told.get_content() and "Disk is full." in told.get_content()
    (ack,) = wait_mail(stack, sender)  # the guest is acknowledged too
    assert ack["Subject"] == f"[#{t['tracking_number']}] Need help"


def test_the_same_message_twice_counts_once(stack, smtp_in):
    dept, address = department(stack)
    sender = f"guest-{uuid.uuid4().hex[:8]}@elsewhere.example"
    msg = mail(sender, address, "Twice", "Sent twice by a retrying MTA.")
    deliver(stack, msg)
    deliver(stack, msg)
    t = one_ticket(stack, dept["id"])
    assert len(t["messages"]) == 1
    assert [m["outcome"] for m in received(stack, sender)] == ["opened", "duplicate"]


def test_a_forged_tracking_number_from_a_stranger_opens_a_ticket_of_its_own(stack, smtp_in):
    dept, address = department(stack)
    c = stack.register_customer()
    deliver(stack, mail(c["email"], address, "My ticket", "Private matter."))
    victim = one_ticket(stack, dept["id"])
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@evil.example"
    deliver(
        stack,
        mail(stranger, address, f"Re: [#{victim['tracking_number']}] My ticket", "Let me in."),
    )
    stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 2, what="the stranger's ticket")
    assert len(ticket(stack, victim["id"])["messages"]) == 1
    other = next(t for t in tickets(stack, dept["id"]) if t["id"] != victim["id"])
    assert other["tracking_number"] != victim["tracking_number"]
    assert ticket(stack, other["id"])["messages"][0]["body"] == "Let me in."


def test_robots_open_nothing_and_a_storm_is_cut_off(stack, smtp_in):
    dept, address = department(stack)
    robot = f"robot-{uuid.uuid4().hex[:8]}@elsewhere.example"
    for headers in (
        {"Auto_Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"X_Autoreply": "yes"},
    ):
        deliver(stack, mail(robot, address, "Out of office", "I am away.", **headers))
    daemon = f"MAILER-DAEMON@{uuid.uuid4().hex[:8]}.example"
    deliver(stack, mail(daemon, address, "Undeliverable", "No such user."), mail_from="")
    deliver(stack, mail(robot, address, "Empty return path", "..."), mail_from="")
    assert [m["outcome"].split(":")[0] for m in received(stack, robot)] == ["ignored"] * 5
    assert tickets(stack, dept["id"]) == []
    assert sent_to(stack, robot) == []

    # a sender that is not marked as a robot but writes without end: the rate limit
    # (HOSTLEDGER_MAIL_RATE_LIMIT, 20 per window) keeps the rest for staff
    storm = f"storm-{uuid.uuid4().hex[:8]}@elsewhere.example"
    for n in range(23):
        deliver(stack, mail(storm, address, f"Ticket {n}", "Again."))
    outcomes = [m["outcome"] for m in received(stack, storm)]
    assert outcomes.count("rate_limited") == 3
    assert outcomes[:20] == ["opened"] * 20
    held = stack.http(
        "GET", "/api/v1/staff/mail/held", stack.admin_token, params={"page_size": 200}
    )
    mine = [h for h in held.json()["items"] if h["sender"] == storm]
    assert [h["reason"] for h in mine] == ["rate_limited"] * 3
    raw = stack.http("GET", f"/api/v1/staff/mail/held/{mine[0]['id']}/raw", stack.admin_token)
    assert raw.status_code == 200 and b"Subject: Ticket 20" in raw.content


def _dsn(our_message_id: str, recipient: str, to: str) -> bytes:
    boundary = "dsn-" + uuid.uuid4().hex
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.client.example>\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx.client.example>\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.client.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: support@provider.example\r\nTo: {recipient}\r\n"
        f"Message-ID: {our_message_id}\r\nSubject: whatever\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def test_a_bounce_of_our_mail_becomes_a_note_on_the_ticket_and_nothing_else(stack, smtp_in):
    dept, address = department(stack)
    c = stack.register_customer()
    deliver(stack, mail(c["email"], address, "Bounce me", "Hello."))
    t = one_ticket(stack, dept["id"])
    (ack,) = wait_mail(stack, c["email"])
    deliver(stack, _dsn(ack["Message-ID"].strip(), c["email"], address), mail_from="", to=address)
    stack.wait_until(lambda: len(ticket(stack, t["id"])["messages"]) == 2, what="the bounce note")
    note = ticket(stack, t["id"])["messages"][-1]
    assert note["internal"] is True and "could not be delivered" in note["body"]
    assert len(tickets(stack, dept["id"])) == 1
    assert len(sent_to(stack, c["email"])) == 1  # no mail about the bounce to anyone

    # a bounce of a notification that is not about a ticket marks it in the outbox
    from tests.e2e.test_mail_out import customer, issue_invoice

    payer = customer(stack)
    issue_invoice(stack, payer["id"])
    (invoice_mail,) = wait_mail(stack, payer["email"])
    deliver(
        stack,
        _dsn(invoice_mail["Message-ID"].strip(), payer["email"], "noreply@hostledger.local"),
        mail_from="",
        to="noreply@hostledger.local",
    )
    stack.wait_until(
        lambda: outbox(stack, customer_id=payer["id"])[0]["status"] == "bounced",
        what="the bounced notification",
    )


def test_encoded_subjects_and_mislabelled_charsets_are_read(stack, smtp_in):
    dept, address = department(stack)
    sender = f"ivan-{uuid.uuid4().hex[:8]}@client.example"
    subject = "Не работает сервер"
    encoded = "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="
    raw = (
        f"From: =?windows-1251?b?{base64.b64encode('Иван'.encode('cp1251')).decode()}?="
        f" <{sender}>\r\n"
        f"To: {address}\r\nSubject: {encoded}\r\n"
        f"Message-ID: {make_msgid(domain='client.example')}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=windows-1251\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + "Сайт недоступен с утра.".encode("cp1251")
    deliver(stack, raw, mail_from=sender, to=address)
    t = one_ticket(stack, dept["id"])
    assert t["subject"] == subject
    assert t["messages"][0]["body"] == "Сайт недоступен с утра."

    # labelled gb2312, written in gb18030 (a character gb2312 does not have)
    text = "服务器无法访问 𠀀"
    raw = (
        f"From: {sender}\r\nTo: {address}\r\n"
        f"Subject: =?gb2312?b?{base64.b64encode('网站'.encode('gb2312')).decode()}?=\r\n"
        f"Message-ID: {make_msgid(domain='client.example')}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb2312\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(text.encode("gb18030"))
    deliver(stack, raw, mail_from=sender, to=address)
    stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 2, what="the second ticket")
    second = next(x for x in tickets(stack, dept["id"]) if x["id"] != t["id"])
    assert second["subject"] == "网站"
    assert ticket(stack, second["id"])["messages"][0]["body"] == text

    # HTML only: safe text, no markup, no script
    html = mail(sender, address, "HTML", "unused")
    html.set_content(
        "<html><body><p>Hello <b>support</b></p><script>alert(1)</script></body></html>",
        subtype="html",
    )
    deliver(stack, html)
    stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 3, what="the HTML ticket")
    third = next(x for x in tickets(stack, dept["id"]) if x["subject"] == "HTML")
    body = ticket(stack, third["id"])["messages"][0]["body"]
    assert "Hello support" in body and "<" not in body and "alert" not in body


def test_unreadable_mail_and_mail_nobody_takes_are_kept_for_staff(stack, smtp_in):
    address = f"nobody-{uuid.uuid4().hex[:8]}@provider.example"
    deliver(stack, b"\r\n\r\nno headers at all\r\n", mail_from="x@client.example", to=address)
    deliver(stack, mail("y@client.example", address, "Anyone there?", "Hello?"))
    held = stack.http(
        "GET", "/api/v1/staff/mail/held", stack.admin_token, params={"page_size": 200}
    )
    mine = [(h["reason"], h["subject"]) for h in held.json()["items"] if h["recipient"] == address]
    assert mine == [("unparseable", ""), ("refused", "Anyone there?")]
    support = stack.staff_member("billing")[1]
    assert stack.http("GET", "/api/v1/staff/mail/held", support).status_code == 403


def test_helpdesk_away_during_delivery_answers_451_and_the_retry_succeeds(stack, smtp_in):
    dept, address = department(stack)
    sender = f"patient-{uuid.uuid4().hex[:8]}@client.example"
    msg = mail(sender, address, "While you were away", "Please answer.")
    stack.stop("helpdesk")
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            deliver(stack, msg)
        assert refused.value.smtp_code == 451
    finally:
        stack.start("helpdesk")
        stack.wait_for_service("helpdesk")
    deliver(stack, msg)  # the MTA's retry
    t = one_ticket(stack, dept["id"])
    assert t["subject"] == "While you were away" and len(t["messages"]) == 1
    # the request that timed out may have waited in the helpdesk's queue and opened the
    # ticket when it came back: then the retry is a duplicate; either way, one ticket
    assert [m["outcome"] for m in received(stack, sender)] in (["opened"], ["duplicate"])


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_attachments_follow_the_helpdesks_rules_and_a_refused_one_is_noted(stack, smtp_in):
    dept, address = department(stack)
    sender = f"files-{uuid.uuid4().hex[:8]}@client.example"
    msg = mail(sender, address, "Screenshot", "See the screenshot.")
    msg.add_attachment(_png(), maintype="image", subtype="png", filename="shot.png")
    msg.add_attachment(
        b"MZ\x90\x00" + b"\x00" * 60,
        maintype="application",
        subtype="octet-stream",
        filename="tool.exe",
    )
    deliver(stack, msg)
    t = one_ticket(stack, dept["id"])
    first, *notes = t["messages"]
    assert first["body"] == "See the screenshot."
    assert [a for a in first["attachments"] if "shot.png" in a.values()]
    assert not [a for a in first["attachments"] if "tool.exe" in a.values()]
    assert any(n["internal"] and "tool.exe" in n["body"] for n in notes)
