"""An invoice issued alone is priced with billing's discount book, as renewal batches
are, brought up to date with the customers service's log first: a discount given (or
ended) a moment before the invoice counts, even while its event has not reached billing
through the broker.

Billing's queue of the customers service's events is unbound from the exchange for the
while (the broker's management API), so billing hears of the discount only by reading
the customers service's log when the invoice is issued."""

from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import quote

import requests

from tests.stack import RABBITMQ_MANAGEMENT_URL
from tests.staff_api import issue_invoice


def _management(method: str, path: str, body: dict | None = None) -> requests.Response:
    r = requests.request(
        method, f"{RABBITMQ_MANAGEMENT_URL}/api/{path}", auth=("guest", "guest"), json=body
    )
    assert r.status_code in (200, 201, 204), (method, path, r.status_code, r.text)
    return r


@contextmanager
def _billing_deaf_to_customers(stack):
    """Billing's queue from the customers service gets none of its events meanwhile."""
    vhost = quote(stack.vhost, safe="")
    exchange = quote(stack.settings.events_exchange, safe="")
    queue = quote(f"{stack.settings.events_exchange}.billing.from.customers", safe="")
    bindings = [
        b
        for b in _management("GET", f"queues/{vhost}/{queue}/bindings").json()
        if b["source"] == stack.settings.events_exchange
    ]
    assert [b["routing_key"] for b in bindings] == ["customers.#"]
    for b in bindings:
        _management("DELETE", f"bindings/{vhost}/e/{exchange}/q/{queue}/{b['properties_key']}")
    try:
        yield
    finally:
        for b in bindings:
            _management(
                "POST",
                f"bindings/{vhost}/e/{exchange}/q/{queue}",
                {"routing_key": b["routing_key"], "arguments": b["arguments"]},
            )


def _client(stack) -> dict:
    c = stack.register_customer()
    token = stack.login(c["credentials"]["username"], c["credentials"]["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    return c


def _discount(stack, **body) -> dict:
    r = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _billing_heard(stack, discount_id: str) -> bool:
    with stack.db("billing") as conn:
        return (
            conn.execute(
                "SELECT 1 FROM discount_book WHERE discount_id = %s", (discount_id,)
            ).fetchone()
            is not None
        )


def test_a_discount_given_or_ended_just_before_an_invoice_prices_it(stack):
    c = _client(stack)
    other = _client(stack)
    # no periodic catch-up: billing reads the customers service's log when invoicing only
    stack.restart("billing", {"HOSTLEDGER_CATCHUP_INTERVAL": "3600"})
    try:
        stack.wait_for_service("billing")
        _priced_with_the_book(stack, c, other)
    finally:
        stack.restart("billing")
        stack.wait_for_service("billing")


def _priced_with_the_book(stack, c: dict, other: dict) -> None:
    with _billing_deaf_to_customers(stack):
        given = _discount(stack, name="Loyal", kind="percentage", percent="10", customer_id=c["id"])
        assert not _billing_heard(stack, given["id"])  # not delivered: read when invoicing
        invoice = issue_invoice(stack, c["id"], amount=1000)
        assert _billing_heard(stack, given["id"])
        assert invoice["total"]["amount"] == 900, invoice
        [line] = invoice["lines"]
        assert line["discount"]["name"] == "Loyal"
        # another customer's invoice is not priced with it
        assert issue_invoice(stack, other["id"], amount=1000)["total"]["amount"] == 1000

        r = stack.http("DELETE", f"/api/v1/staff/discounts/{given['id']}", stack.admin_token)
        assert r.status_code in (200, 204), r.text
        assert issue_invoice(stack, c["id"], amount=1000)["total"]["amount"] == 1000

    # an unknown customer is still refused, naming the field
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": "00000000-0000-4000-8000-000000000000",
            "lines": [
                {
                    "description": "Hosting",
                    "quantity": 1,
                    "unit_price": {"amount": 100, "currency": "EUR"},
                }
            ],
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["fields"] == {"customer_id": ["No such customer."]}
