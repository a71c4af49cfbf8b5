"""Mail kept for staff, through the gateway: a held message read as text, released into
a ticket (as if it had just arrived, or into a department staff chose) once, discarded
with a reason once, each recorded with who did it; and a template's preview on sample
values, its errors naming the field at fault."""

import uuid

from tests.e2e.test_mail_in import deliver, department, mail, smtp_in

__all__ = ["smtp_in"]  # the fixture, for the mail tests here


def held_item(stack, recipient: str, status: str = "held") -> dict | None:
    """The first kept message to `recipient` with `status`, looking through every page."""
    page = 1
    while True:
        r = stack.http(
            "GET",
            "/api/v1/staff/mail/held",
            stack.admin_token,
            params={"status": status, "page": page, "page_size": 200},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        for item in answer["items"]:
            if item["recipient"] == recipient:
                return item
        if page * answer["page_size"] >= answer["total"]:
            return None
        page += 1


def post(stack, path: str, token: str, body: dict):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    return stack.http("POST", path, token, json=body, headers=key)


def test_a_held_message_is_read_released_into_a_department_once(stack, smtp_in):
    nowhere = f"nowhere-{uuid.uuid4().hex[:8]}@provider.example"
    sender = f"stranger-{uuid.uuid4().hex[:8]}@client.example"
    deliver(stack, mail(sender, nowhere, "Привет, où est mon site ?", "Line one\n<b>not bold</b>"))
    held = stack.wait_until(lambda: held_item(stack, nowhere), what="the held message")
    assert held["reason"] == "refused" and held["status"] == "held"

    one = stack.http("GET", f"/api/v1/staff/mail/held/{held['id']}", stack.admin_token)
    assert one.status_code == 200, one.text
    content = one.json()["content"]
    assert {"name": "Subject", "value": "Привет, où est mon site ?"} in content["headers"]
    assert content["body"] == "Line one\n<b>not bold</b>" and content["problem"] is None

    # as if it had just arrived: still no department takes mail at that address
    url = f"/api/v1/staff/mail/held/{held['id']}/release"
    again = post(stack, url, stack.admin_token, {})
    assert again.status_code == 400 and "department_id" in again.json()["error"]["fields"], (
        again.text
    )
    billing = stack.staff_member("billing")[1]
    assert post(stack, url, billing, {}).status_code == 403

    dept, _ = department(stack)
    support_member, support = stack.staff_member("support")
    released = post(stack, url, support, {"department_id": dept["id"]})
    assert released.status_code == 200, released.text
    answer = released.json()
    assert answer["status"] == "released" and answer["tracking_number"]
    assert answer["handled_by"] == {"kind": "staff", "id": support_member["id"]}
    ticket = stack.http("GET", f"/api/v1/staff/tickets/{answer['ticket_id']}", stack.admin_token)
    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["subject"] == "Привет, où est mon site ?"
    assert ticket.json()["department_id"] == dept["id"]

    # not twice, whoever asks
    second = post(stack, url, stack.admin_token, {"department_id": dept["id"]})
    assert second.status_code == 409, second.text
    discard = post(stack, url.replace("release", "discard"), support, {"reason": "late"})
    assert discard.status_code == 409, discard.text
    assert held_item(stack, nowhere) is None
    assert held_item(stack, nowhere, "released")["ticket_id"] == answer["ticket_id"]


def test_a_rate_limited_message_released_opens_its_ticket_as_if_it_had_just_arrived(stack, smtp_in):
    dept, address = department(stack)
    storm = f"storm-{uuid.uuid4().hex[:8]}@elsewhere.example"
    for n in range(21):
        deliver(stack, mail(storm, address, f"Ticket {n}", "Again."))
    held = stack.wait_until(lambda: held_item(stack, address), what="the held message")
    assert held["reason"] == "rate_limited" and held["subject"] == "Ticket 20"
    r = post(stack, f"/api/v1/staff/mail/held/{held['id']}/release", stack.admin_token, {})
    assert r.status_code == 200, r.text
    ticket = stack.http("GET", f"/api/v1/staff/tickets/{r.json()['ticket_id']}", stack.admin_token)
    assert ticket.json()["subject"] == "Ticket 20"
    assert ticket.json()["department_id"] == dept["id"]


def test_a_held_message_is_discarded_with_a_reason_once(stack, smtp_in):
    nowhere = f"nowhere-{uuid.uuid4().hex[:8]}@provider.example"
    deliver(stack, b"\r\n\r\nno headers at all\r\n", mail_from="x@client.example", to=nowhere)
    held = stack.wait_until(lambda: held_item(stack, nowhere), what="the held message")
    one = stack.http("GET", f"/api/v1/staff/mail/held/{held['id']}", stack.admin_token).json()
    assert one["content"]["body"] is None and one["content"]["problem"]

    url = f"/api/v1/staff/mail/held/{held['id']}/discard"
    assert post(stack, url, stack.admin_token, {}).status_code == 400
    released = post(stack, url.replace("discard", "release"), stack.admin_token, {})
    assert released.status_code == 400, released.text  # unreadable: only discarded
    discarded = post(stack, url, stack.admin_token, {"reason": "Spam"})
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["status"] == "discarded" and discarded.json()["note"] == "Spam"
    assert discarded.json()["handled_by"]["kind"] == "staff"
    assert post(stack, url, stack.admin_token, {"reason": "again"}).status_code == 409
    assert held_item(stack, nowhere, "discarded")["note"] == "Spam"


def test_a_template_preview_renders_sample_values_and_names_the_field_at_fault(stack):
    url = "/api/v1/staff/mail/templates/invoice_issued/fr/preview"
    r = stack.http(
        "POST",
        url,
        stack.admin_token,
        json={"subject": "Facture {{ number }}", "body": "Bonjour {{ customer_name }},"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"subject": "Facture INV-2026-000001", "body": "Bonjour Jane Doe,\n"}
    unknown = stack.http(
        "POST", url, stack.admin_token, json={"subject": "{{ nothing }}", "body": "Hello"}
    )
    assert unknown.status_code == 400 and list(unknown.json()["error"]["fields"]) == ["subject"]
    broken = stack.http(
        "POST", url, stack.admin_token, json={"subject": "Facture", "body": "{% if %}"}
    )
    assert broken.status_code == 400 and list(broken.json()["error"]["fields"]) == ["body"]
    support = stack.staff_member("support")[1]
    assert stack.http("POST", url, support, json={"subject": "a", "body": "b"}).status_code == 403
    # nothing was saved
    shown = stack.http(
        "GET", "/api/v1/staff/mail/templates/invoice_issued/fr", stack.admin_token
    ).json()
    assert "Bonjour Jane" not in shown["body"]
