"""Refunds of paid invoices with their credit notes: to the personal account, or out
through Stripe. Stripe is not reachable from here, so billing's
HOSTLEDGER_STRIPE_API_BASE points at `FakeStripe` (tests/fake_stripe.py), a local server
that speaks Stripe's documented request and answer format for refunds (form-encoded
`POST /v1/refunds`, `GET /v1/refunds?payment_intent=`, Bearer secret key, and
Idempotency-Key replay: the first answer to a key, errors included, is the answer to
every later request with it).
"""

from __future__ import annotations

import io
import json
import time
import uuid

import eventlet
import pytest

from services.billing.processors import Stripe
from tests.e2e.test_billing import _balance, _customer_with_account, _invoice, _pay_in
from tests.e2e.test_webhooks import _event, _send
from tests.fake_stripe import FakeStripe
from tests.stack import STRIPE_API_KEY, STRIPE_SECRET


@pytest.fixture(scope="module")
def stripe(stack):
    fake = FakeStripe(stack.stripe_api_port, STRIPE_API_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def fresh(stripe):
    with stripe.lock:
        stripe.requests.clear()
        stripe.plan.clear()
    return stripe


def _refund(stack, invoice_id, key=None, **body):
    """A refund request (an integer `amount` is sent as euros); it answers the refund."""
    body.setdefault("reason", "customer asked")
    if isinstance(body.get("amount"), int):
        body["amount"] = {"amount": body["amount"], "currency": "EUR"}
    headers = {"Idempotency-Key": key} if key else {}
    return stack.http(
        "POST",
        f"/api/v1/staff/invoices/{invoice_id}/refund",
        stack.admin_token,
        json=body,
        headers=headers,
    )


def _paid_through_stripe(stack, amount):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], amount)
    event = _event(invoice["id"], amount)
    r = _send(stack, event)
    assert r.status_code == 200 and r.json()["outcome"] == "paid", r.text
    return customer, token, invoice, event["data"]["object"]["id"]


def _note(stack, refund: dict) -> dict:
    """The credit note a refund names."""
    r = stack.http(
        "GET", f"/api/v1/staff/credit-notes/{refund['credit_note_id']}", stack.admin_token
    )
    assert r.status_code == 200, r.text
    assert r.json()["number"] == refund["credit_note_number"]
    return r.json()


def _status(stack, token, invoice_id) -> str:
    return stack.http("GET", f"/api/v1/client/invoices/{invoice_id}", token).json()["status"]


def _cn_number(note) -> int:
    return int(note["number"].rsplit("-", 1)[1])


def test_partial_then_full_refund_to_the_account(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 1000)
    _pay_in(stack, customer["id"], 1000, invoice_id=invoice["id"])
    assert _balance(stack, token)["balance"]["amount"] == 0

    r = _refund(stack, invoice["id"], amount=300, to="account")
    assert r.status_code == 201, r.text
    first = r.json()
    assert _status(stack, token, invoice["id"]) == "paid"  # still paid: 700 of it stands
    assert first["status"] == "completed" and first["to"] == "account"
    assert first["amount"] == {"amount": 300, "currency": "EUR"}
    assert first["invoice_id"] == invoice["id"] and first["invoice_number"] == invoice["number"]
    note = _note(stack, first)
    assert note["number"].startswith("CN-") and note["invoice_number"] == invoice["number"]
    assert note["total"]["amount"] == 300 and note["buyer"]["email"] == customer["email"]
    assert note["lines"][0]["total"]["amount"] == 300
    assert _balance(stack, token)["balance"]["amount"] == 300

    r = _refund(stack, invoice["id"])  # the rest
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["amount"] == {"amount": 700, "currency": "EUR"}
    assert _status(stack, token, invoice["id"]) == "refunded"
    assert _note(stack, second)["total"]["amount"] == 700
    assert _cn_number(_note(stack, second)) == _cn_number(note) + 1
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 1000
    assert [(e["kind"], e["amount"]["amount"]) for e in account["entries"][-2:]] == [
        ("refund", 300),
        ("refund", 700),
    ]
    assert account["entries"][-1]["reference"] == second["credit_note_number"]

    again = _refund(stack, invoice["id"], amount=1)
    assert again.status_code == 409
    assert _balance(stack, token)["balance"]["amount"] == 1000

    def listed():
        items = stack.http("GET", "/api/v1/client/credit-notes", token).json()["items"]
        return sorted(i["number"] for i in items) if len(items) == 2 else None

    assert stack.wait_until(listed, what="credit notes listed") == sorted(
        [note["number"], second["credit_note_number"]]
    )
    detail = stack.http("GET", f"/api/v1/client/credit-notes/{note['id']}", token).json()
    assert detail["number"] == note["number"] and detail["reason"] == "customer asked"

    from pypdf import PdfReader

    r = stack.http("GET", f"/api/v1/client/credit-notes/{note['id']}/pdf", token)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    assert f"Credit note {note['number']}" in text and invoice["number"] in text
    r = stack.http(
        "GET",
        f"/api/v1/staff/credit-notes/{note['id']}/pdf",
        stack.admin_token,
        params={"language": "fr"},
    )
    assert f"Avoir {note['number']}" in PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    staff = stack.http(
        "GET",
        "/api/v1/staff/credit-notes",
        stack.admin_token,
        params={"customer_id": customer["id"]},
    ).json()
    assert staff["total"] == 2


def test_refund_bad_input_changes_nothing(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 500)
    assert _refund(stack, invoice["id"]).status_code == 409  # unpaid
    _pay_in(stack, customer["id"], 500, invoice_id=invoice["id"])
    r = _refund(stack, invoice["id"], to="processor")  # paid by bank transfer
    assert r.status_code == 409 and "to" in r.json()["error"]["fields"]
    assert _refund(stack, invoice["id"], amount=501).status_code == 409
    r = _refund(stack, invoice["id"], amount=0, to="bank")
    assert r.status_code == 400 and {"amount.amount", "to"} <= set(r.json()["error"]["fields"])
    assert _refund(stack, str(uuid.uuid4())).status_code == 404
    assert _balance(stack, token)["balance"]["amount"] == 0
    assert stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()[
        "status"
    ] == ("paid")


def test_partial_and_full_refund_through_stripe(stack, fresh):
    _customer, token, invoice, intent = _paid_through_stripe(stack, 2000)
    r = _refund(stack, invoice["id"], amount=500, to="processor")
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["status"] == "completed" and refund["processor"] == "stripe"
    assert _status(stack, token, invoice["id"]) == "paid"
    [post] = fresh.posts()
    assert post["path"] == "/v1/refunds"
    assert post["content_type"] == "application/x-www-form-urlencoded"
    assert post["authorization"] == f"Bearer {STRIPE_API_KEY}"
    assert post["form"]["payment_intent"] == intent and post["form"]["amount"] == "500"
    assert post["form"]["metadata[hostledger_refund_id]"] == refund["id"]
    assert post["idempotency_key"]
    assert refund["processor_refund_id"] == fresh.refunds[-1]["id"]

    r = _refund(stack, invoice["id"], to="processor")
    assert r.status_code == 201, r.text
    assert _status(stack, token, invoice["id"]) == "refunded"
    assert r.json()["amount"] == {"amount": 1500, "currency": "EUR"}
    mine = [x for x in fresh.refunds if x["payment_intent"] == intent]
    assert sorted(x["amount"] for x in mine) == [500, 1500]
    # the money went back out, not onto the account
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 0
    assert "refund" not in [e["kind"] for e in account["entries"]]

    def issued():
        return [
            e
            for e in stack.published("billing")
            if e["type"] == "RefundIssued" and e["payload"]["invoice_id"] == invoice["id"]
        ]

    events = stack.wait_until(lambda: len(issued()) == 2 and issued(), what="RefundIssued")
    assert {e["payload"]["to"] for e in events} == {"processor"}
    assert any(
        e["type"] == "CreditNoteIssued" and e["payload"]["invoice_id"] == invoice["id"]
        for e in stack.published("billing")
    )


def test_the_same_idempotency_key_refunds_once(stack, fresh):
    _, _, invoice, intent = _paid_through_stripe(stack, 900)
    key = uuid.uuid4().hex
    pool = eventlet.GreenPool(4)
    answers = list(
        pool.imap(
            lambda _: _refund(stack, invoice["id"], key=key, amount=400, to="processor"),
            range(4),
        )
    )
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({a.json()["credit_note_number"] for a in answers}) == 1
    assert len([x for x in fresh.refunds if x["payment_intent"] == intent]) == 1
    other = _refund(stack, invoice["id"], key=key, amount=300, to="processor")
    assert other.status_code == 409
    assert len([x for x in fresh.refunds if x["payment_intent"] == intent]) == 1


def test_stripe_failing_then_succeeding_refunds_once(stack, fresh):
    _, token, invoice, intent = _paid_through_stripe(stack, 1200)
    # the refund is made but its answer is lost, then Stripe fails with a 500
    fresh.plan.extend(["lose_answer"])
    r = _refund(stack, invoice["id"], to="processor")
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["status"] == "failed" and "reached" in refund["error"]
    assert _status(stack, token, invoice["id"]) == "paid"

    def failed():
        items = stack.http(
            "GET", "/api/v1/staff/refunds", stack.admin_token, params={"status": "failed"}
        ).json()["items"]
        return [i for i in items if i["id"] == refund["id"]]

    [listed] = stack.wait_until(failed, what="the failed refund listed for staff")
    assert listed["error"] == refund["error"]

    # the retry sends the same key: Stripe answers the refund it made, not a new one
    retried = stack.http(
        "POST", f"/api/v1/staff/refunds/{refund['id']}/retry", stack.admin_token
    ).json()
    assert retried["id"] == refund["id"] and retried["status"] == "completed", retried
    assert _status(stack, token, invoice["id"]) == "refunded"
    posts = fresh.posts()
    assert len(posts) == 2 and posts[0]["idempotency_key"] == posts[1]["idempotency_key"]
    assert len([x for x in fresh.refunds if x["payment_intent"] == intent]) == 1
    again = stack.http("POST", f"/api/v1/staff/refunds/{refund['id']}/retry", stack.admin_token)
    assert again.status_code == 409

    # an answered failure: the next attempt looks for ours first, then uses a new key
    _, _, invoice, intent = _paid_through_stripe(stack, 800)
    fresh.requests.clear()
    fresh.plan.extend(["fail"])
    r = _refund(stack, invoice["id"], to="processor").json()
    assert r["status"] == "failed" and "500" in r["error"]
    retried = stack.http("POST", f"/api/v1/staff/refunds/{r['id']}/retry", stack.admin_token).json()
    assert retried["status"] == "completed" and retried["attempt"] == 2
    methods = [(x["method"], x["idempotency_key"]) for x in fresh.requests]
    assert [m for m, _ in methods] == ["POST", "GET", "POST"]
    assert methods[0][1] != methods[2][1]
    assert [x["amount"] for x in fresh.refunds if x["payment_intent"] == intent] == [800]


def test_pending_refund_completed_by_stripes_webhook_once(stack, fresh):
    _, token, invoice, _intent = _paid_through_stripe(stack, 700)
    fresh.plan.append("pending")
    r = _refund(stack, invoice["id"], to="processor").json()
    assert r["status"] == "pending" and _status(stack, token, invoice["id"]) == "paid"
    made = fresh.refunds[-1]
    event = {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "type": "refund.updated",
        "data": {"object": dict(made, status="succeeded")},
    }
    first = _send(stack, event)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "refund_updated"
    assert _send(stack, event).json()["duplicate"] is True
    refund = stack.http("GET", f"/api/v1/staff/refunds/{r['id']}", stack.admin_token).json()
    assert refund["status"] == "completed" and refund["processor_refund_id"] == made["id"]
    detail = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert detail["status"] == "refunded"
    body = json.dumps(dict(event, id=f"evt_{uuid.uuid4().hex[:16]}")).encode()
    forged = stack.http(
        "POST",
        "/api/v1/payments/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": Stripe.sign("whsec_other", body, int(time.time()))},
    )
    assert forged.status_code == 401
    assert STRIPE_SECRET  # the stack's secret signs the genuine ones above


def test_credit_note_numbers_are_gapless_under_concurrent_refunds(stack):
    customers = [_customer_with_account(stack)[0] for _ in range(3)]
    invoices = []
    for i in range(9):
        c = customers[i % 3]
        invoice = _invoice(stack, c["id"], 100 + i)
        _pay_in(stack, c["id"], 100 + i, invoice_id=invoice["id"])
        invoices.append(invoice)
    pool = eventlet.GreenPool(9)
    answers = list(pool.imap(lambda inv: _refund(stack, inv["id"], amount=50), invoices))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    numbers = sorted(_cn_number({"number": a.json()["credit_note_number"]}) for a in answers)
    assert numbers == list(range(numbers[0], numbers[0] + 9))


def test_tenant_isolation_on_credit_notes(stack):
    _a, token_a = _customer_with_account(stack)
    b, token_b = _customer_with_account(stack)
    invoice = _invoice(stack, b["id"], 300)
    _pay_in(stack, b["id"], 300, invoice_id=invoice["id"])
    note = _note(stack, _refund(stack, invoice["id"]).json())
    for path in (
        f"/api/v1/client/credit-notes/{note['id']}",
        f"/api/v1/client/credit-notes/{note['id']}/pdf",
    ):
        assert stack.http("GET", path, token_a).status_code == 404
        assert stack.http("GET", path, token_b).status_code == 200
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/credit-notes", token_b).json()["total"] == 1,
        what="b's credit note listed",
    )
    assert stack.http("GET", "/api/v1/client/credit-notes", token_a).json()["total"] == 0
    assert stack.http("GET", "/api/v1/staff/credit-notes", token_a).status_code == 403
    assert (
        stack.http(
            "POST", f"/api/v1/staff/invoices/{invoice['id']}/refund", token_b, json={"reason": "x"}
        ).status_code
        == 403
    )
    _, support = stack.staff_member("support")
    r = stack.http(
        "POST", f"/api/v1/staff/invoices/{invoice['id']}/refund", support, json={"reason": "x"}
    )
    assert r.status_code == 403


def test_added_funds_go_back_out_through_stripe_and_leave_the_account(stack, fresh):
    _, token = _customer_with_account(stack)
    funds = stack.http(
        "POST",
        "/api/v1/client/account/funds",
        token,
        json={"amount": {"amount": 3000, "currency": "EUR"}},
    ).json()
    event = _event(funds["id"], 3000)
    assert _send(stack, event).json()["outcome"] == "paid"
    assert _balance(stack, token)["balance"]["amount"] == 3000
    r = _refund(stack, funds["id"], amount=1000, to="account")
    assert r.status_code == 409 and "to" in r.json()["error"]["fields"]
    r = _refund(stack, funds["id"], amount=1000, to="processor")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "completed"
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 2000
    assert account["entries"][-1]["kind"] == "withdrawal"
    assert account["entries"][-1]["reference"] == r.json()["credit_note_number"]
    # what was spent cannot go back out
    invoice = _invoice(stack, _customer_id(stack, token), 1500)
    assert (
        stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token).status_code == 200
    )
    r = _refund(stack, funds["id"], to="processor")
    assert r.status_code == 409
    assert [
        x["amount"] for x in fresh.refunds if x["payment_intent"] == event["data"]["object"]["id"]
    ] == [1000]
    assert _balance(stack, token)["balance"]["amount"] == 500


def _customer_id(stack, token):
    return stack.http("GET", "/api/v1/me", token).json()["customer_id"]
