"""The helpdesk's abuse action, as the orders service receives it: every active service of
the customer suspended, with the request's reason and actor, once however often delivered.

The request is published the way the helpdesk's relay publishes it: the next position of
the helpdesk's stream, chained to the last one the orders service applied. That takes a
position of the helpdesk's stream, so it runs on a stack of its own.
"""

import uuid
from datetime import UTC, datetime

import pytest

from tests.e2e.test_delivery import _publish_raw
from tests.e2e.test_orders import _order, _product


@pytest.fixture(scope="module")
def own_stack():
    from tests.stack import Stack

    s = Stack()
    try:
        s.up()
        yield s
    finally:
        s.down()


def _services(stack, customer_id):
    with stack.rpc() as rpc:
        return {s["id"]: s for s in rpc.orders.list("services", customer_id)["items"]}


def _active_customer(stack, items):
    """A new customer whose order of `items` is paid: its services are active."""
    order = _order(stack, f"abuse-{uuid.uuid4().hex[:8]}@example.com", items).json()
    with stack.rpc() as rpc:
        invoice = rpc.billing.get_invoice(order["invoice_id"])
        rpc.billing.record_payment(
            {
                "customer_id": order["customer_id"],
                "amount": invoice["total"],
                "method": "cash",
                "reference": "abuse test",
                "invoice_id": order["invoice_id"],
            }
        )
    stack.wait_until(
        lambda: (
            (s := _services(stack, order["customer_id"]))
            and len(s) == len(items)
            and all(x["status"] == "active" for x in s.values())
        ),
        what="active services",
    )
    return order["customer_id"]


def _helpdesk_position(stack):
    with stack.rpc() as rpc:
        return rpc.orders.consumer_stats()["helpdesk"]["position"]


def _suspensions(stack, service_ids):
    return [
        e
        for e in stack.published("orders")
        if e["type"] == "ServiceSuspended" and e["aggregate_id"] in service_ids
    ]


def test_abuse_request_suspends_every_active_service_of_the_customer_once(own_stack):
    stack = own_stack
    product = _product(stack)
    items = [
        {"product_id": product["id"], "billing_cycle": "monthly"},
        {"product_id": product["id"], "billing_cycle": "annually"},
    ]
    customer_id = _active_customer(stack, items)
    bystander_id = _active_customer(stack, items[:1])
    staff, _ = stack.staff_member("support")

    # the orders service has applied everything the helpdesk has published so far
    published = [e["position"] for e in stack.published("helpdesk")]
    last = stack.wait_until(
        lambda: (p := _helpdesk_position(stack)) == max(published, default=0) and (p,),
        what="the helpdesk stream caught up",
    )[0]
    ticket_id = str(uuid.uuid4())
    envelope = {
        "source": "helpdesk",
        "position": last + 1,
        # what the relay sends is chained to the last published position; before the first
        # one (0) the chain starts at 0 here, since this event is in no helpdesk log
        "previous_position": last,
        "type": "ServicesSuspensionRequested",
        "aggregate_id": ticket_id,
        "version": 3,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"kind": "staff", "id": staff["id"]},
        "on_behalf_of": None,
        "cause": None,
        "payload": {
            "ticket_id": ticket_id,
            "customer_id": customer_id,
            "reason": "spam sent from the server (abuse ticket)",
        },
    }
    _publish_raw(stack, [envelope])

    services = stack.wait_until(
        lambda: (
            (s := _services(stack, customer_id))
            and all(x["status"] == "suspended" for x in s.values())
            and s
        ),
        what="the customer's services suspended",
    )
    assert [s["status"] for s in _services(stack, bystander_id).values()] == ["active"]
    events = stack.wait_until(
        lambda: len(found := _suspensions(stack, set(services))) == 2 and found,
        what="the suspensions published",
    )
    for e in events:
        assert e["payload"]["why"] == "abuse"
        assert e["payload"]["reason"] == envelope["payload"]["reason"]
        assert e["actor"] == {"kind": "staff", "id": staff["id"]}
        assert e["cause"] == f"helpdesk:{last + 1}"

    # staff lift one suspension; the same request delivered again changes nothing
    lifted = sorted(services)[0]
    r = stack.http(
        "POST",
        f"/api/v1/staff/services/{lifted}/unsuspend",
        stack.admin_token,
        json={"reason": "customer cleaned the server"},
    )
    assert r.status_code == 200, r.text
    with stack.rpc() as rpc:
        duplicates = rpc.orders.consumer_stats()["helpdesk"]["duplicates"]
    _publish_raw(stack, [envelope, envelope])
    with stack.rpc() as rpc:
        stack.wait_until(
            lambda: rpc.orders.consumer_stats()["helpdesk"]["duplicates"] >= duplicates + 2,
            what="the redeliveries skipped",
        )
    assert _services(stack, customer_id)[lifted]["status"] == "active"
    assert len(_suspensions(stack, set(services))) == 2
    assert _helpdesk_position(stack) == last + 1


def test_abuse_request_for_a_customer_without_active_services_moves_the_stream_on(own_stack):
    stack = own_stack
    last = _helpdesk_position(stack)
    envelope = {
        "source": "helpdesk",
        "position": last + 1,
        "previous_position": last,
        "type": "ServicesSuspensionRequested",
        "aggregate_id": str(uuid.uuid4()),
        "version": 2,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"kind": "staff", "id": str(uuid.uuid4())},
        "payload": {
            "ticket_id": str(uuid.uuid4()),
            "customer_id": str(uuid.uuid4()),
            "reason": "abuse",
        },
    }
    _publish_raw(stack, [envelope])
    stack.wait_until(lambda: _helpdesk_position(stack) == last + 1, what="applied")
    with stack.rpc() as rpc:
        assert rpc.orders.parked_events() == []
