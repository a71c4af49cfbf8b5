"""A payment processor's webhook (Stripe's format), verified as Stripe documents it."""

import json
import time
import uuid

from services.billing.processors import Stripe
from tests.e2e.test_billing import _balance, _customer_with_account, _invoice
from tests.stack import STRIPE_SECRET


def _event(invoice_id, amount, event_id=None, kind="payment_intent.succeeded"):
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "type": kind,
        "data": {
            "object": {
                "id": f"pi_{uuid.uuid4().hex[:12]}",
                "amount_received": amount,
                "currency": "eur",
                "metadata": {"invoice_id": invoice_id},
            }
        },
    }


def _send(stack, event, secret=STRIPE_SECRET, timestamp=None, signature=None):
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["Stripe-Signature"] = signature or Stripe.sign(
            secret, body, timestamp or int(time.time())
        )
    return stack.http("POST", "/api/v1/payments/webhooks/stripe", data=body, headers=headers)


def test_bad_signatures_are_401_and_change_nothing(stack):
    _, token = _customer_with_account(stack)
    funds = stack.http(
        "POST",
        "/api/v1/client/account/funds",
        token,
        json={"amount": {"amount": 3000, "currency": "EUR"}},
    ).json()
    event = _event(funds["id"], 3000)
    for response in (
        _send(stack, event, signature=False),
        _send(stack, event, secret="whsec_someone_else"),
        _send(stack, event, timestamp=int(time.time()) - 3600),
        _send(stack, event, signature="t=123,v0=abc"),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert _balance(stack, token)["balance"]["amount"] == 0
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{funds['id']}", token).json()["status"]
        == "unpaid"
    )


def test_add_funds_paid_through_stripe_once(stack):
    _, token = _customer_with_account(stack)
    funds = stack.http(
        "POST",
        "/api/v1/client/account/funds",
        token,
        json={"amount": {"amount": 3000, "currency": "EUR"}},
    ).json()
    event = _event(funds["id"], 3000)
    first = _send(stack, event)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "paid"
    again = _send(stack, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert _balance(stack, token)["balance"]["amount"] == 3000
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{funds['id']}", token).json()["status"]
        == "paid"
    )


def test_service_invoice_paid_through_stripe(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 1500)
    r = _send(stack, _event(invoice["id"], 1500))
    assert r.status_code == 200 and r.json()["outcome"] == "paid"
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 0
    assert [e["kind"] for e in account["entries"]] == ["payment", "invoice_payment"]


def test_payment_for_an_unknown_invoice_is_kept_for_staff(stack):
    event = _event(str(uuid.uuid4()), 999)
    r = _send(stack, event)
    assert r.status_code == 200 and r.json()["outcome"] == "kept_for_staff"

    def kept():
        items = stack.http("GET", "/api/v1/staff/payments/unmatched", stack.admin_token).json()
        return [i for i in items["items"] if i["event_id"] == event["id"]]

    [item] = stack.wait_until(kept, what="the kept payment")
    assert item["amount"] == {"amount": 999, "currency": "EUR"}
    assert _send(stack, event).json()["duplicate"] is True
    assert len(kept()) == 1


def test_unknown_processor_is_404(stack):
    r = stack.http(
        "POST",
        "/api/v1/payments/webhooks/nopay",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 404
