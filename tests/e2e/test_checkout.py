"""Paying an invoice online through Stripe Checkout:
`POST /api/v1/client/invoices/{id}/checkout` opens a Checkout Session at the
Stripe-format test server (tests/fake_stripe.py) and answers its hosted page; the money
counts only from Stripe's signed webhook, once, however often (and through however many
of Stripe's events) it is told."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from tests.e2e.test_billing import _balance, _customer_with_account, _invoice, _pay_in
from tests.fake_stripe import FakeStripe
from tests.stack import STRIPE_API_KEY, STRIPE_SECRET

WEBHOOK = "/api/v1/payments/webhooks/stripe"


@pytest.fixture(scope="module")
def stripe(stack):
    fake = FakeStripe(
        stack.stripe_api_port, STRIPE_API_KEY, STRIPE_SECRET, stack.base_url + WEBHOOK
    ).start()
    yield fake
    fake.stop()


def _client(stack):
    customer, token = _customer_with_account(stack)
    return customer, token


def _checkout(stack, token, invoice_id, return_url=None, processor="stripe", **headers):
    body = {"processor": processor, "return_url": return_url}
    if return_url is None:
        body["return_url"] = f"{stack.base_url}/invoices/{invoice_id}"
    return stack.http(
        "POST",
        f"/api/v1/client/invoices/{invoice_id}/checkout",
        token,
        json=body,
        headers=headers,
    )


def _invoice_status(stack, token, invoice_id) -> str:
    return stack.http("GET", f"/api/v1/client/invoices/{invoice_id}", token).json()["status"]


def _sessions_made(stripe: FakeStripe) -> list[dict]:
    return [
        r for r in stripe.requests if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions"
    ]


def test_checkout_answers_the_hosted_page_and_the_webhook_pays_once(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 2599, "Web hosting M")
    return_url = f"{stack.base_url}/invoices/{invoice['id']}?from=mail"

    r = _checkout(stack, token, invoice["id"], return_url)
    assert r.status_code == 200, r.text
    answer = r.json()
    session = stripe.sessions[answer["session_id"]]
    assert answer["redirect_url"] == session["url"]
    assert answer["redirect_url"].startswith(stripe.base_url + "/c/pay/cs_test_")
    assert answer["processor"] == "stripe" and answer["invoice_id"] == invoice["id"]
    # what billing sent Stripe, as its API documents it
    [made] = [
        r for r in _sessions_made(stripe) if r["form"]["client_reference_id"] == invoice["id"]
    ]
    form = made["form"]
    assert made["content_type"] == "application/x-www-form-urlencoded"
    assert made["authorization"] == f"Bearer {STRIPE_API_KEY}"
    assert made["idempotency_key"]
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["line_items[0][price_data][unit_amount]"] == "2599"
    assert form["line_items[0][quantity]"] == "1"
    assert invoice["number"] in form["line_items[0][price_data][product_data][name]"]
    assert form["metadata[invoice_id]"] == invoice["id"]
    assert form["metadata[customer_id]"] == customer["id"]
    assert form["payment_intent_data[metadata][invoice_id]"] == invoice["id"]
    assert form["customer_email"] == customer["email"]
    success, cancel = urlsplit(form["success_url"]), urlsplit(form["cancel_url"])
    assert form["success_url"].startswith(f"{stack.base_url}/invoices/{invoice['id']}?")
    assert parse_qs(success.query) == {"from": ["mail"], "checkout": ["success"]}
    assert parse_qs(cancel.query) == {"from": ["mail"], "checkout": ["cancel"]}
    assert int(form["expires_at"]) - time.time() > 3000

    # asking again (a second click) opens the same page, not a second one to pay
    again = _checkout(stack, token, invoice["id"], return_url)
    assert again.status_code == 200 and again.json()["redirect_url"] == answer["redirect_url"]

    # the client pays on the hosted page, which sends the browser back to our page
    page = requests.get(answer["redirect_url"], timeout=30)
    assert page.status_code == 200 and "25.99 EUR" in page.text
    paid = requests.post(
        f"{answer['redirect_url']}/pay", data={"card": "4242"}, allow_redirects=False, timeout=30
    )
    assert paid.status_code == 303 and paid.headers["Location"] == form["success_url"]
    # nothing counts until Stripe's signed webhook arrives
    assert _invoice_status(stack, token, invoice["id"]) == "unpaid"
    assert _balance(stack, token)["balance"]["amount"] == 0

    # Stripe delivers each event twice: checkout.session.completed and the payment
    # intent's payment_intent.succeeded, both for the same payment
    deliveries = stripe.deliver(times=2)
    assert [d["status"] for d in deliveries] == [200, 200, 200, 200], deliveries
    outcomes = [(d["type"], d["answer"]["outcome"]) for d in deliveries]
    assert outcomes == [
        ("checkout.session.completed", "paid"),
        ("checkout.session.completed", "paid"),
        ("payment_intent.succeeded", "already_counted"),
        ("payment_intent.succeeded", "already_counted"),
    ]
    assert [d["answer"].get("duplicate", False) for d in deliveries] == [False, True, True, True]
    assert _invoice_status(stack, token, invoice["id"]) == "paid"
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 0
    kinds = [(e["kind"], e["amount"]["amount"]) for e in account["entries"]]
    assert kinds == [("payment", 2599), ("invoice_payment", -2599)]

    def stripe_payments():
        items = stack.http("GET", "/api/v1/client/payments", token).json()["items"]
        return items if items else None

    [payment] = stack.wait_until(stripe_payments, what="the payment listed")
    assert payment["method"] == "stripe" and payment["invoice_id"] == invoice["id"]
    assert payment["amount"] == {"amount": 2599, "currency": "EUR"}
    assert payment["reference"] == stripe.sessions[answer["session_id"]]["payment_intent"]

    # paid now: no page to pay it again
    r = _checkout(stack, token, invoice["id"], return_url)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict" and "paid" in r.json()["error"]["message"]


def test_a_payment_intent_event_first_pays_and_the_session_event_then_counts_nothing(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 1500)
    answer = _checkout(stack, token, invoice["id"]).json()
    stripe.complete(answer["session_id"])
    with stripe.lock:
        stripe.held.reverse()  # Stripe does not promise any order between events
    deliveries = stripe.deliver()
    assert [(d["type"], d["answer"]["outcome"]) for d in deliveries] == [
        ("payment_intent.succeeded", "paid"),
        ("checkout.session.completed", "already_counted"),
    ]
    assert _invoice_status(stack, token, invoice["id"]) == "paid"
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 0
    kinds = [(e["kind"], e["amount"]["amount"]) for e in account["entries"]]
    assert kinds == [("payment", 1500), ("invoice_payment", -1500)]


def test_an_unsigned_or_forged_webhook_pays_nothing(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 1800)
    answer = _checkout(stack, token, invoice["id"]).json()
    [completed, _] = stripe.complete(answer["session_id"])
    with stripe.lock:
        stripe.held.clear()  # these go only as the tests send them below
    body, headers = stripe.signed(completed)

    def post(data, **changed):
        sent = dict(headers, **changed)
        return stack.http("POST", WEBHOOK, data=data, headers=sent)

    unsigned = {k: v for k, v in headers.items() if k != "Stripe-Signature"}
    tampered = json.loads(body)
    tampered["data"]["object"]["amount_total"] = 1  # signed for 1800, says 1
    forged = FakeStripe.__new__(FakeStripe)
    forged.webhook_secret = "whsec_not_ours"
    forged_body, forged_headers = forged.signed(completed)
    for r in (
        stack.http("POST", WEBHOOK, data=body, headers=unsigned),
        post(json.dumps(tampered).encode()),
        stack.http("POST", WEBHOOK, data=forged_body, headers=forged_headers),
        post(body, **{"Stripe-Signature": f"t={int(time.time()) - 3600},v1=00"}),
    ):
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
    assert _invoice_status(stack, token, invoice["id"]) == "unpaid"
    assert _balance(stack, token)["balance"]["amount"] == 0
    # the genuine one still pays it
    r = post(body)
    assert r.status_code == 200 and r.json()["outcome"] == "paid", r.text
    assert _invoice_status(stack, token, invoice["id"]) == "paid"


def test_a_return_address_elsewhere_is_refused(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 1200)
    port = urlsplit(stack.base_url).port
    before = len(_sessions_made(stripe))
    for elsewhere in (
        "https://evil.example/invoices/1",
        f"http://127.0.0.1:{port + 1}/invoices/1",
        f"https://127.0.0.1:{port}/invoices/1",
        f"http://evil@127.0.0.1:{port}/invoices/1",
        f"http://127.0.0.2:{port}/invoices/1",
        "javascript:alert(1)",
        "/invoices/1",
    ):
        r = _checkout(stack, token, invoice["id"], elsewhere)
        assert r.status_code == 400, (elsewhere, r.text)
        assert list(r.json()["error"]["fields"]) == ["return_url"], (elsewhere, r.text)
    r = _checkout(stack, token, invoice["id"], processor="paypal")
    assert r.status_code == 400 and list(r.json()["error"]["fields"]) == ["processor"], r.text
    r = stack.http(
        "POST",
        f"/api/v1/client/invoices/{invoice['id']}/checkout",
        token,
        json={"processor": "stripe"},
    )
    assert r.status_code == 400 and "return_url" in r.json()["error"]["fields"], r.text
    assert len(_sessions_made(stripe)) == before  # Stripe was never asked


def test_a_paid_or_someone_elses_invoice_gets_no_payment_page(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 900)
    r = _pay_in(stack, customer["id"], 900, invoice_id=invoice["id"])
    assert r.status_code == 201, r.text
    before = len(_sessions_made(stripe))
    r = _checkout(stack, token, invoice["id"])
    assert r.status_code == 409, r.text
    assert "already paid" in r.json()["error"]["message"]
    other, _ = _client(stack)
    theirs = _invoice(stack, other["id"], 700)
    r = _checkout(stack, token, theirs["id"])
    assert r.status_code == 404, r.text
    r = _checkout(stack, token, str(uuid.uuid4()))
    assert r.status_code == 404, r.text
    assert len(_sessions_made(stripe)) == before


def test_the_answer_is_as_the_openapi_document_says(stack, stripe):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 1100)
    r = _checkout(stack, token, invoice["id"], **{"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    document = stack.http("GET", "/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/client/invoices/{invoice_id}/checkout"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(body["required"]) == {"processor", "return_url"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = OAS30Validator({**schema, "components": document["components"]})
    assert not list(validator.iter_errors(r.json()))
    assert r.json()["redirect_url"].startswith(stripe.base_url + "/c/pay/")
