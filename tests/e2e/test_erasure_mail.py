"""Erasure and the mail gateway, through the running system: after a customer is erased
the mail gateway's database holds none of its addresses (the one it registered with,
the one staff corrected it to), none of the subjects and bodies of the mail it sent and
received, held mail from it included (sent to an address no department has, so no ticket
names it), nor the bounce of a notification to it. The mail gateway keeps no mail in files
of its own: the sink's files stand for the receiving servers' mailboxes, out of reach.

On a stack of its own: it compares the whole of the mail gateway's database with what it
wrote."""

from __future__ import annotations

import uuid
from email.utils import make_msgid

from tests.erasure_support import (
    PLACEHOLDER,
    erased_in,
    listed_department,
    mail,
    ok,
    own_stack,
    plain_text_in,
    send_mail,
    tickets_of,
)

stack = own_stack("em")


def _bounce(of_message_id: str, recipient: str, our_address: str) -> bytes:
    """A delivery status notification for our message `of_message_id` to `recipient`."""
    of_message_id = f"<{of_message_id.strip('<>')}>"
    lines = [
        "From: MAILER-DAEMON@mx.client.example",
        f"To: {our_address}",
        f"Subject: Undelivered Mail Returned to Sender: {recipient}",
        f"Message-ID: {make_msgid(domain='mx.client.example')}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"',
        "",
        "--dsn",
        "Content-Type: text/plain",
        "",
        f"Your message to {recipient} could not be delivered.",
        "--dsn",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.client.example",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        "Action: failed",
        "Status: 5.1.1",
        "",
        "--dsn",
        "Content-Type: text/rfc822-headers",
        "",
        f"Message-ID: {of_message_id}",
        f"To: {recipient}",
        "",
        "--dsn--",
        "",
    ]
    return "\r\n".join(lines).encode()


def _plain_text_in_mailgateway(stack, markers: list[str]) -> list[str]:
    return plain_text_in(stack, markers, services=["mailgateway"])


def test_the_mail_gateway_keeps_nothing_of_an_erased_customer(stack):
    tag = uuid.uuid4().hex[:8]
    admin = stack.admin_token
    first = f"Mara.Quillfeather{tag}@Mail-Erasure.example"
    corrected = f"mara.second{tag}@mail-erasure.example"
    subject_in, body_in = f"Broken mailbox {tag}", f"Hydrangea{tag} keeps failing"
    held_subject, held_body = f"Lost letter {tag}", f"Tamarind{tag} went astray"
    reply = f"Marigold{tag} answer from staff"
    other = f"stays.{tag}@mail-erasure.example"
    address = f"help-{tag}@provider.example"
    nowhere = f"nobody-{tag}@provider.example"

    customer = stack.register_customer(email=first, contact_person=f"Mara Quill{tag}")
    cid = customer["id"]
    bystander = stack.register_customer(email=other)
    listed_department(stack, f"Mail {tag}", [address])

    # mail in from the customer: a ticket; staff answer it by mail
    send_mail(stack, mail(first, address, subject_in, body_in), first, address)

    stack.wait_until(lambda: len(tickets_of(stack, cid)) == 1, timeout=90, what="the mailed ticket")
    ticket = tickets_of(stack, cid)[0]
    ok(
        stack.http(
            "POST", f"/api/v1/staff/tickets/{ticket['id']}/replies", admin, json={"body": reply}
        ),
        201,
    )
    # the address corrected by staff, then mail from it to an address no department has:
    # held for staff, on no ticket
    ok(
        stack.http(
            "PATCH",
            f"/api/v1/staff/customers/{cid}",
            admin,
            json={"email": corrected, "reason": "typo"},
        )
    )
    send_mail(stack, mail(corrected, nowhere, held_subject, held_body), corrected, nowhere)
    # and from the first address too
    send_mail(stack, mail(first, nowhere, held_subject, held_body), first, nowhere)
    # a bystander's held mail stays as it is
    send_mail(stack, mail(other, nowhere, f"Bystander {tag}", "kept"), other, nowhere)

    def held_from() -> set[str]:
        with stack.db("mailgateway") as conn:
            return {r[0] for r in conn.execute("SELECT lower(sender) FROM mail_held").fetchall()}

    stack.wait_until(
        lambda: {first.lower(), corrected, other} <= held_from(), timeout=60, what="held mail"
    )

    # a notification to the customer that bounced
    def sent_to_customer() -> list:
        with stack.db("mailgateway") as conn:
            return conn.execute(
                "SELECT message_id, context ? 'ticket_id' FROM mail_outbox"
                " WHERE customer_id = %s AND status = 'sent' ORDER BY id",
                (uuid.UUID(cid),),
            ).fetchall()

    def reply_sent() -> bool:
        with stack.db("mailgateway") as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM mail_outbox WHERE customer_id = %s AND status = 'sent'"
                    " AND position(%s IN context::text) > 0",
                    (uuid.UUID(cid), reply),
                ).fetchall()
            )

    stack.wait_until(reply_sent, timeout=90, what="the reply mailed to the client")
    notification = next(
        (mid for mid, about_ticket in sent_to_customer() if not about_ticket),
        sent_to_customer()[0][0],
    )
    send_mail(stack, _bounce(notification, first, address), "", address)

    def bounce_taken() -> bool:
        with stack.db("mailgateway") as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM mail_received WHERE sender = 'mailer-daemon@mx.client.example'"
                ).fetchall()
            )

    stack.wait_until(bounce_taken, timeout=60, what="the bounce")

    # the addresses the customers service's events gave: the registered and corrected ones
    def learnt(customer_id: str) -> set[str]:
        with stack.db("mailgateway") as conn:
            rows = conn.execute(
                "SELECT address FROM mail_customer_addresses WHERE customer_id = %s",
                (uuid.UUID(customer_id),),
            ).fetchall()
        return {a for (a,) in rows}

    stack.wait_until(lambda: learnt(cid) == {first.lower(), corrected}, what="the addresses learnt")

    markers = [first, corrected, subject_in, body_in, held_subject, held_body, reply]
    stack.wait_until(
        lambda: _plain_text_in_mailgateway(stack, [first, held_body]), what="mail kept"
    )
    assert any(
        f.startswith("mailgateway.mail_held")
        for f in _plain_text_in_mailgateway(stack, [corrected])
    )

    # erased
    r = stack.http("DELETE", f"/api/v1/staff/customers/{cid}?confirm=true", admin)
    assert r.status_code in (200, 204), r.text
    ok(
        stack.http(
            "POST", f"/api/v1/staff/customers/{cid}/erase", admin, json={"reason": "mail test"}
        ),
        202,
    )
    stack.wait_until(lambda: erased_in(stack, "mailgateway", cid), timeout=60, what="the erasure")
    left = _plain_text_in_mailgateway(stack, markers)
    assert left == [], "\n".join(left)

    # what was about others stays: the bystander's held mail and address
    with stack.db("mailgateway") as conn:
        kept = conn.execute(
            "SELECT sender, subject, length(raw) FROM mail_held WHERE lower(sender) = %s",
            (other,),
        ).fetchall()
        erased_rows = conn.execute(
            "SELECT count(*) FROM mail_held WHERE sender = %s AND length(raw) = 0",
            (PLACEHOLDER,),
        ).fetchone()[0]
    assert kept and kept[0][1] == f"Bystander {tag}" and kept[0][2] > 0
    assert learnt(bystander["id"]) == {other}
    assert learnt(cid) == set()
    assert erased_rows >= 2

    # the mail gateway keeps no mail in files of its own (the data directory holds the
    # helpdesk's attachments only)
    data = stack.logs / "data"
    for path in data.rglob("*") if data.exists() else ():
        if path.is_file():
            content = path.read_bytes().lower()
            assert not any(m.lower().encode() in content for m in markers), path
