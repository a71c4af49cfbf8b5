"""Auditors explain every change: a customer's history merged from every service, paged,
with who did what (staff, the client, staff acting in the client's panel), the e-mail
before and after its correction, the customer and an invoice as they stood between two
changes, who may read which history, and every audit read recorded."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.staff_api import (
    AUDIT,
    client_with_account,
    department,
    history,
    history_pages,
    issue_invoice,
    record_payment,
)


def client_ticket(stack, client: str, subject: str, body: str) -> dict:
    """A ticket the client (its token) opens in a new department."""
    desk = department(stack, f"Audit desk {uuid.uuid4().hex[:6]}")
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        client,
        json={"department_id": desk["id"], "subject": subject, "body": body},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _me(stack, token) -> dict:
    return stack.http("GET", "/api/v1/me", token).json()


def _types(items) -> list[str]:
    return [i["type"] for i in items]


def _one(items, type_) -> dict:
    [found] = [i for i in items if i["type"] == type_]
    return found


def _between(earlier: str, later: str) -> str:
    a, b = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
    assert b - a >= timedelta(microseconds=2), (earlier, later)
    return (a + (b - a) / 2).isoformat()


def _subsequence(wanted, types) -> bool:
    it = iter(types)
    return all(t in it for t in wanted)


def test_a_customers_history_explains_every_change(stack):
    admin_id = _me(stack, stack.admin_token)["staff_id"]
    customer, client = client_with_account(stack, email=f"wrong-{uuid.uuid4().hex[:8]}@example.com")
    cid = customer["id"]

    # staff correct the e-mail, saying why
    right = f"right-{uuid.uuid4().hex[:8]}@example.com"
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{cid}",
        stack.admin_token,
        json={"email": right, "reason": "the client spelled it out on the phone"},
    )
    assert r.status_code == 200, r.text

    # staff record a payment, issue an invoice; the client pays it from the balance
    record_payment(stack, cid, 5000)
    invoice = issue_invoice(stack, cid, "Hosting", 1999)
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", client)
    assert r.status_code == 200, r.text

    # the client opens a ticket; staff, acting in the client's panel, change its language
    ticket = client_ticket(stack, client, "Hello", "A question.")
    r = stack.http("POST", f"/api/v1/staff/customers/{cid}/impersonate", stack.admin_token)
    assert r.status_code == 200, r.text
    acting = r.json()["token"]
    r = stack.http("PATCH", "/api/v1/client/profile", acting, json={"language": "fr"})
    assert r.status_code == 200, r.text

    wanted = [
        "Customer.Registered",
        "Customer.Corrected",
        "Payment.Received",
        "Invoice.Issued",
        "Invoice.Paid",
        "Ticket.Opened",
        "Customer.Edited",
    ]
    items = stack.wait_until(
        lambda: (
            (found := history(stack, f"customers/{cid}"))
            and _subsequence(wanted, _types(found))
            and found
        ),
        what="every service's events in the customer's history",
    )
    types = _types(items)
    assert _subsequence(wanted, types), types
    # the account opened for it and the ledger entries are its own too
    assert {"PersonalAccount.Opened", "PersonalAccount.Credited", "PersonalAccount.Debited"} <= set(
        types
    )
    assert {i["service"] for i in items} >= {"customers", "billing", "helpdesk"}
    # in time order, and each event once
    keys = [(i["occurred_at"], i["service"], i["position"]) for i in items]
    assert len(set(keys)) == len(keys)
    assert [datetime.fromisoformat(k[0]) for k in keys] == sorted(
        datetime.fromisoformat(k[0]) for k in keys
    )

    corrected = _one(items, "Customer.Corrected")
    assert corrected["summary"] == "Customer e-mail corrected"
    assert {"field": "email", "before": customer["email"], "after": right} in corrected["changes"]
    assert corrected["reason"] == "the client spelled it out on the phone"
    assert corrected["actor"] == {"kind": "staff", "id": admin_id}
    assert corrected["on_behalf_of"] is None
    registered = _one(items, "Customer.Registered")
    assert all("password" not in c["field"] for c in registered["changes"])
    assert "argon2" not in str(items)

    paid = _one(items, "Invoice.Paid")
    assert paid["actor"] == {"kind": "client", "id": cid} and paid["service"] == "billing"
    assert paid["aggregate"]["id"] == invoice["id"]
    opened = _one(items, "PersonalAccount.Opened")
    assert opened["actor"] == {"kind": "service", "id": "billing"}
    assert opened["cause"].startswith("customers:")  # the registration it follows from

    edited = _one(items, "Customer.Edited")
    assert edited["actor"] == {"kind": "client", "id": cid}
    assert edited["on_behalf_of"] == {"kind": "staff", "id": admin_id}
    assert {"field": "language", "before": "en", "after": "fr"} in edited["changes"]

    # paged two at a time: the same events in the same order
    paged, pages = history_pages(stack, f"customers/{cid}", limit=2)
    assert paged[: len(items)] == items and pages >= len(items) // 2
    r = stack.http(
        "GET",
        f"{AUDIT}/customers/{cid}/history",
        stack.admin_token,
        params={"cursor": "not-a-cursor"},
    )
    assert r.status_code == 400 and "cursor" in r.json()["error"]["fields"]

    # the customer as it stood between registration and correction, and after
    at = _between(registered["occurred_at"], corrected["occurred_at"])
    r = stack.http("GET", f"{AUDIT}/customer/{cid}", stack.admin_token, params={"at": at})
    assert r.status_code == 200, r.text
    then = r.json()
    assert then["state"]["email"] == customer["email"] and then["version"] == 1
    assert then["type"] == "Customer" and then["service"] == "customers"
    assert "password_hash" not in then["state"]
    r = stack.http("GET", f"{AUDIT}/customer/{cid}", stack.admin_token)
    assert r.json()["state"]["email"] == right and r.json()["state"]["language"] == "fr"
    before = _between("2000-01-01T00:00:00+00:00", registered["occurred_at"])
    r = stack.http("GET", f"{AUDIT}/customer/{cid}", stack.admin_token, params={"at": before})
    assert r.status_code == 404, r.text
    r = stack.http(
        "GET", f"{AUDIT}/customer/{cid}", stack.admin_token, params={"at": "2026-01-01T00:00:00"}
    )
    assert r.status_code == 400 and "at" in r.json()["error"]["fields"]

    # the invoice unpaid between issue and payment, then paid; its own history
    issued = _one(items, "Invoice.Issued")
    at = _between(issued["occurred_at"], paid["occurred_at"])
    r = stack.http("GET", f"{AUDIT}/invoice/{invoice['id']}", stack.admin_token, params={"at": at})
    assert r.status_code == 200, r.text
    assert r.json()["state"]["status"] == "unpaid" and r.json()["state"]["paid_at"] is None
    r = stack.http("GET", f"{AUDIT}/invoice/{invoice['id']}", stack.admin_token)
    assert r.json()["state"]["status"] == "paid"
    invoice_history = history(stack, f"invoice/{invoice['id']}")
    assert _subsequence(["Invoice.Issued", "Invoice.Paid"], _types(invoice_history))
    assert "Customer.Corrected" not in _types(invoice_history)
    ticket_history = history(stack, f"ticket/{ticket['id']}")
    assert _types(ticket_history)[0] == "Ticket.Opened"

    # who may read what: support not invoices' nor staff members', billing not tickets'
    _, support = stack.staff_member("support")
    _, billing = stack.staff_member("billing")
    auditor_member, auditor = stack.staff_member("auditor")
    assert stack.http("GET", f"{AUDIT}/customers/{cid}/history", support).status_code == 200
    for token, path in (
        (support, f"invoice/{invoice['id']}/history"),
        (support, f"invoice/{invoice['id']}"),
        (support, f"staff/{admin_id}/history"),
        (billing, f"ticket/{ticket['id']}/history"),
        (billing, f"staff/{admin_id}/history"),
    ):
        r = stack.http("GET", f"{AUDIT}/{path}", token)
        assert r.status_code == 403, (path, r.text)
    assert stack.http("GET", f"{AUDIT}/invoice/{invoice['id']}/history", billing).status_code == 200
    # an auditor reads every history, and changes nothing
    for path in (
        f"customers/{cid}/history",
        f"ticket/{ticket['id']}/history",
        f"staff/{admin_id}/history",
    ):
        assert stack.http("GET", f"{AUDIT}/{path}", auditor).status_code == 200, path
    r = stack.http("PATCH", f"/api/v1/staff/customers/{cid}", auditor, json={"note": "x"})
    assert r.status_code == 403, r.text
    r = stack.http(
        "POST", f"/api/v1/staff/invoices/{invoice['id']}/void", auditor, json={"reason": "x"}
    )
    assert r.status_code == 403, r.text

    # every audit read is recorded, in the reader's own history
    reads = stack.wait_until(
        lambda: [
            i
            for i in history(stack, f"staff/{auditor_member['id']}")
            if i["type"] == "AuditRead.Recorded"
        ],
        what="the auditor's reads in its history",
    )
    looked_at = {(c["after"]) for i in reads for c in i["changes"] if c["field"] == "object_id"}
    assert {cid, ticket["id"], admin_id} <= looked_at
    read = next(i for i in reads if any(c["after"] == cid for c in i["changes"]))
    assert read["actor"] == {"kind": "staff", "id": auditor_member["id"]}
    assert read["summary"] == "Audit: customer history read"
    # the customer's history is not changed by being read
    assert "AuditRead.Recorded" not in _types(history(stack, f"customers/{cid}"))


def test_a_deleted_customer_keeps_its_history_and_unknown_objects_are_404(stack):
    customer = stack.register_customer()
    cid = customer["id"]
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{cid}", stack.admin_token, params={"confirm": "true"}
    )
    assert r.status_code in (200, 204), r.text
    items = stack.wait_until(
        lambda: (
            (found := history(stack, f"customers/{cid}"))
            and "Customer.Deleted" in _types(found)
            and found
        ),
        what="the deletion in the history",
    )
    assert _types(items)[0] == "Customer.Registered"
    r = stack.http("GET", f"{AUDIT}/customer/{cid}", stack.admin_token)
    assert r.status_code == 200 and r.json()["state"]["deleted"] is True
    for path in (f"customers/{uuid.uuid4()}/history", f"invoice/{uuid.uuid4()}/history"):
        r = stack.http("GET", f"{AUDIT}/{path}", stack.admin_token)
        assert r.status_code == 404, (path, r.text)
    r = stack.http("GET", f"{AUDIT}/invoice/{cid}", stack.admin_token)
    assert r.status_code == 404  # a customer's id is no invoice
    r = stack.http(
        "GET", f"{AUDIT}/customers/{cid}/history", stack.admin_token, params={"limit": 0}
    )
    assert r.status_code == 400 and "limit" in r.json()["error"]["fields"]
