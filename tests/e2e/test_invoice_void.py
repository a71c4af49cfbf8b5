"""Voiding invoices through the gateway: an unpaid one with a reason (its number kept,
status `void`, recorded with who did it), refused for others; the staff invoice detail,
the `overdue` filter, and a deleted customer's unpaid invoices voided by billing."""

import uuid
from datetime import timedelta

from services.infra.clock import FileClock
from services.infra.personal_data import is_sealed
from tests.sealed_values import opened, stored


def _customer(stack):
    customer = stack.register_customer()
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", f"/api/v1/staff/customers/{customer['id']}/account", stack.admin_token
            ).status_code
            == 200
        ),
        what="the personal account",
    )
    return customer


def _invoice(stack, customer_id, amount=1500, due_days=14):
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "due_days": due_days,
            "lines": [
                {
                    "description": "Hosting plan",
                    "quantity": 1,
                    "unit_price": {"amount": amount, "currency": "EUR"},
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _listed(stack, customer_id, **query):
    r = stack.http(
        "GET",
        "/api/v1/staff/invoices",
        stack.admin_token,
        params={"customer_id": customer_id, **query},
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _void(stack, invoice_id, reason, token=None, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return stack.http(
        "POST",
        f"/api/v1/staff/invoices/{invoice_id}/void",
        token or stack.admin_token,
        json={"reason": reason},
        headers=headers,
    )


def test_staff_void_an_unpaid_invoice_and_its_number_stays_used(stack):
    customer = _customer(stack)
    invoice = _invoice(stack, customer["id"])
    member, billing = stack.staff_member("billing")
    key = str(uuid.uuid4())
    r = _void(stack, invoice["id"], "Issued twice by mistake", billing, key)
    assert r.status_code == 200, r.text
    voided = r.json()
    assert (voided["status"], voided["number"]) == ("void", invoice["number"])
    assert voided["void_reason"] == "Issued twice by mistake" and voided["voided_at"]
    # the same key and request: the first answer again; another request: 409
    again = _void(stack, invoice["id"], "Issued twice by mistake", billing, key)
    assert again.status_code == 200 and again.json()["voided_at"] == voided["voided_at"]
    assert _void(stack, invoice["id"], "Another reason", billing, key).status_code == 409

    detail = stack.http("GET", f"/api/v1/staff/invoices/{invoice['id']}", stack.admin_token)
    assert detail.status_code == 200 and detail.json()["status"] == "void"
    stack.wait_until(
        lambda: [i["status"] for i in _listed(stack, customer["id"])] == ["void"],
        what="the void invoice in the list",
    )
    assert [i["number"] for i in _listed(stack, customer["id"], status="void")] == [
        invoice["number"]
    ]
    pdf = stack.http("GET", f"/api/v1/staff/invoices/{invoice['id']}/pdf", stack.admin_token)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # the next invoice takes the next number: the void one's is not reused
    following = _invoice(stack, customer["id"])
    assert following["number"] > invoice["number"]

    # recorded with who voided it and why, the reason sealed with the customer's key
    [(version, recorded)] = stored(stack, "billing", invoice["id"], "Invoice.Voided")
    assert is_sealed(recorded["reason"])
    reason = opened(stack, "billing", invoice["id"], version, recorded, "reason")
    assert reason == "Issued twice by mistake"
    assert recorded["actor"] == {"kind": "staff", "id": member["id"]}


def test_an_invoice_that_is_not_unpaid_is_not_voided(stack):
    customer = _customer(stack)
    invoice = _invoice(stack, customer["id"], amount=700)
    paid = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": {"amount": 700, "currency": "EUR"},
            "method": "bank_transfer",
            "reference": "TX-void-1",
            "invoice_id": invoice["id"],
        },
    )
    assert paid.status_code == 201, paid.text
    r = _void(stack, invoice["id"], "Too late")
    assert r.status_code == 409
    assert f"invoice {invoice['number']} is paid" in r.json()["error"]["message"]
    detail = stack.http("GET", f"/api/v1/staff/invoices/{invoice['id']}", stack.admin_token)
    assert detail.json()["status"] == "paid"
    assert [p["reference"] for p in detail.json()["payments"]] == ["TX-void-1"]

    other = _invoice(stack, customer["id"])
    assert _void(stack, other["id"], "First").status_code == 200
    assert _void(stack, other["id"], "Second").status_code == 409


def test_who_may_void_and_what_is_refused(stack):
    customer = _customer(stack)
    invoice = _invoice(stack, customer["id"])
    _, support = stack.staff_member("support")
    assert _void(stack, invoice["id"], "Not mine", support).status_code == 403
    seen = stack.http("GET", f"/api/v1/staff/invoices/{invoice['id']}", support)
    assert seen.status_code == 200 and seen.json()["status"] == "unpaid"
    blank = _void(stack, invoice["id"], "")
    assert blank.status_code == 400 and "reason" in blank.json()["error"]["fields"]
    missing = _void(stack, str(uuid.uuid4()), "No such")
    assert missing.status_code == 404
    assert stack.http("GET", f"/api/v1/staff/invoices/{uuid.uuid4()}", support).status_code == 404


def test_the_overdue_filter_lists_unpaid_invoices_past_their_due_date(stack):
    customer = _customer(stack)
    late = _invoice(stack, customer["id"], due_days=1)
    _invoice(stack, customer["id"], due_days=30)
    stack.wait_until(lambda: len(_listed(stack, customer["id"])) == 2, what="both invoices")
    assert _listed(stack, customer["id"], overdue="true") == []
    # three days on (sessions may end meanwhile: billing is asked directly)
    FileClock.set_offset(stack.clock_file, timedelta(days=3))
    try:
        with stack.rpc() as rpc:
            listed = rpc.billing.list("invoices", customer["id"], None, 1, 50, True)
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    assert [i["id"] for i in listed["items"]] == [late["id"]]
    refused = stack.http(
        "GET", "/api/v1/staff/payments", stack.admin_token, params={"overdue": "true"}
    )
    assert refused.status_code == 400 and "overdue" in refused.json()["error"]["fields"]


def test_a_deleted_customers_unpaid_invoices_are_voided(stack):
    customer = _customer(stack)
    unpaid = _invoice(stack, customer["id"], amount=900)
    paid = _invoice(stack, customer["id"], amount=400)
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": {"amount": 400, "currency": "EUR"},
            "method": "cash",
            "reference": "TX-del-1",
            "invoice_id": paid["id"],
        },
    )
    assert r.status_code == 201, r.text
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{customer['id']}?confirm=true", stack.admin_token
    )
    assert r.status_code in (200, 204), r.text

    def status(invoice_id):
        return stack.http("GET", f"/api/v1/staff/invoices/{invoice_id}", stack.admin_token).json()

    voided = stack.wait_until(
        lambda: (s := status(unpaid["id"]))["status"] == "void" and s, what="the voided invoice"
    )
    assert voided["void_reason"] == "customer deleted" and voided["number"] == unpaid["number"]
    assert status(paid["id"])["status"] == "paid"
