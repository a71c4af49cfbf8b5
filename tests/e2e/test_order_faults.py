"""An order that fails after billing issued its invoice leaves no invoice a client can pay
by mistake, and a payment that arrives before its order is not lost (issue 12, rule 2).

Faults are injected in the orders service (services/infra/failpoints.py): its save fails
after the invoice was issued, or the process dies there.
"""

from __future__ import annotations

import contextlib
import uuid

from tests.e2e.test_orders import _product
from tests.sealed_values import opened, stored

PASSWORD = "buyer-password-1"


def _order(stack) -> tuple[dict, dict, dict, dict]:
    """A product, a customer with a password, an order form for one month of the product
    as that customer, and the Idempotency-Key its retries carry."""
    product = _product(stack)
    email = f"faults-{uuid.uuid4().hex[:8]}@example.com"
    customer = stack.register_customer(email=email, password=PASSWORD)
    person = {
        "email": email,
        "kind": "individual",
        "contact_person": "Test Person",
        "country": "DE",
        "password": PASSWORD,
    }
    body = {
        "customer": person,
        "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
    }
    return product, customer, body, {"Idempotency-Key": f"order-{uuid.uuid4()}"}


@contextlib.contextmanager
def _orders_failing_at(stack, failpoint: str):
    """The orders service runs with `failpoint` inside the block, as usual after it."""
    stack.restart("orders", {"HOSTLEDGER_FAILPOINTS": failpoint})
    try:
        stack.wait_for_service("orders")
        yield
    finally:
        stack.restart("orders")
    stack.wait_for_service("orders")


def _invoices(stack, customer_id: str) -> list[dict]:
    with stack.rpc() as rpc:
        return rpc.billing.list("invoices", customer_id)["items"]


def _services(stack, customer_id: str) -> list[dict]:
    with stack.rpc() as rpc:
        return rpc.orders.list("services", customer_id)["items"]


def _cancellations(stack, invoice_id: str) -> list[str]:
    """The reasons of the invoice's Cancelled events, as billing's event store keeps them
    (sealed with the customer's key, opened with it)."""
    return [
        opened(stack, "billing", invoice_id, version, state, "reason")
        for version, state in stored(stack, "billing", invoice_id, "Invoice.Cancelled")
    ]


def _pay(stack, customer_id: str, invoice_id: str, amount: int):
    return stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "amount": {"amount": amount, "currency": "EUR"},
            "method": "bank_transfer",
            "reference": f"pay-{uuid.uuid4().hex[:6]}",
            "invoice_id": invoice_id,
        },
    )


def test_an_order_whose_save_fails_voids_its_invoice_and_its_retry_places_it(stack):
    _, customer, body, key = _order(stack)
    with _orders_failing_at(stack, "orders.place_order.save=raise"):
        r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
        assert r.status_code >= 500, r.text
        # the list (a read model) may show the invoice a moment before its voiding
        [voided] = stack.wait_until(
            lambda: (
                (found := _invoices(stack, customer["id"]))
                and all(i["status"] == "cancelled" for i in found)
                and found
            ),
            what="the order's invoice listed as voided",
        )

    # billing issued it, and it was voided with the reason, recorded
    assert voided["purpose"] == "order" and voided["status"] == "cancelled"
    [reason] = _cancellations(stack, voided["id"])
    assert "InjectedFault" in reason
    r = _pay(stack, customer["id"], voided["id"], 1500)
    assert r.status_code == 409, r.text
    assert _services(stack, customer["id"]) == []

    # the same request again places the order, with an invoice of its own
    r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["invoice_id"] != voided["id"]
    again = stack.http("POST", "/api/v1/orders", json=body, headers=key)
    assert again.status_code == 201 and again.json()["order_id"] == placed["order_id"]
    listed = stack.wait_until(
        lambda: (found := _invoices(stack, customer["id"])) and len(found) == 2 and found,
        what="the second invoice listed",
    )
    assert sorted(i["status"] for i in listed) == ["cancelled", "unpaid"]
    [service] = stack.wait_until(
        lambda: _services(stack, customer["id"]), what="the order's service listed"
    )
    assert service["status"] == "pending"


def test_an_order_whose_process_died_is_finished_when_its_invoice_was_paid_meanwhile(stack):
    """The live case: the order did not get saved, the client paid the invoice billing had
    issued, InvoicePaid reached orders before any order did. Once orders is back, the
    unfinished attempt is found by itself; its invoice, paid, cannot be voided, so the
    order is placed, and the payment waiting for it activates its service."""
    product, customer, body, key = _order(stack)
    with _orders_failing_at(stack, "orders.place_order.after_invoice"):
        r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
        assert r.status_code == 503, r.text  # orders died with the request
        [invoice] = stack.wait_until(
            lambda: _invoices(stack, customer["id"]), what="the order's invoice listed"
        )
        assert invoice["status"] == "unpaid"
        r = _pay(stack, customer["id"], invoice["id"], invoice["total"]["amount"])
        assert r.status_code == 201, r.text

    [service] = stack.wait_until(
        lambda: [s for s in _services(stack, customer["id"]) if s["status"] == "active"],
        timeout=120,
        what="the service active",
    )
    assert service["product_id"] == product["id"]
    assert _cancellations(stack, invoice["id"]) == []

    r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
    assert r.status_code == 201, r.text
    assert r.json()["invoice_id"] == invoice["id"]
    with stack.rpc() as rpc:
        [order] = rpc.orders.list("orders", customer["id"])["items"]
    assert order["status"] == "paid" and order["invoice_id"] == invoice["id"]
