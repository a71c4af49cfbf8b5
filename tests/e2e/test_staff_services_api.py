"""Staff and services: one service with the reasons of its lifecycle, the services of one
product, and a deleted customer keeping no pending (or, forced, running) service."""

import uuid

from tests.e2e.test_orders import _order, _paid_order, _product


def _services(stack, customer_id):
    with stack.rpc() as rpc:
        return {s["id"]: s for s in rpc.orders.list("services", customer_id)["items"]}


def test_a_service_for_staff_shows_why_it_was_suspended(stack):
    product, order = _paid_order(stack, "detail")
    [service] = stack.wait_until(
        lambda: [
            s for s in _services(stack, order["customer_id"]).values() if s["status"] == "active"
        ],
        what="active service",
    )
    base = f"/api/v1/staff/services/{service['id']}"
    r = stack.http("POST", base + "/suspend", stack.admin_token, json={"reason": "spam sent"})
    assert r.status_code == 200, r.text
    r = stack.http("GET", base, stack.admin_token)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "suspended" and answer["invoice_ids"] == [order["invoice_id"]]
    assert [(h["event"], h["reason"]) for h in answer["history"]] == [
        ("activated", "invoice paid"),
        ("suspended", "spam sent"),
    ]
    assert answer["history"][1]["why"] == "staff"
    _, auditor = stack.staff_member("auditor")
    assert stack.http("GET", base, auditor).status_code == 200
    assert stack.http("GET", f"/api/v1/staff/services/{uuid.uuid4()}", auditor).status_code == 404

    # the services of one product
    def listed():
        r = stack.http(
            "GET",
            "/api/v1/staff/services",
            stack.admin_token,
            params={"product_id": product["id"]},
        )
        assert r.status_code == 200, r.text
        return r.json()["items"]

    items = stack.wait_until(listed, what="services of the product")
    assert [s["id"] for s in items] == [service["id"]]
    r = stack.http(
        "GET", "/api/v1/staff/orders", stack.admin_token, params={"product_id": product["id"]}
    )
    assert r.status_code == 400 and "product_id" in r.json()["error"]["fields"]


def test_a_deleted_customer_keeps_no_pending_service(stack):
    product = _product(stack)
    order = _order(
        stack,
        f"gone-{uuid.uuid4().hex[:8]}@example.com",
        [{"product_id": product["id"], "billing_cycle": "monthly"}],
    ).json()
    customer_id = order["customer_id"]
    [pending] = stack.wait_until(lambda: list(_services(stack, customer_id)), what="pending")
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{customer_id}?confirm=true", stack.admin_token
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: _services(stack, customer_id)[pending]["status"] == "cancelled",
        what="cancelled with its customer",
    )
    r = stack.http("GET", f"/api/v1/staff/services/{pending}", stack.admin_token)
    assert r.json()["history"][-1] == {
        "event": "cancelled",
        "at": r.json()["history"][-1]["at"],
        "reason": "the customer was deleted",
    }


def test_a_forced_deletion_terminates_the_running_services(stack):
    _, order = _paid_order(stack, "forced")
    customer_id = order["customer_id"]
    [active] = stack.wait_until(
        lambda: [s for s, x in _services(stack, customer_id).items() if x["status"] == "active"],
        what="active service",
    )
    path = f"/api/v1/staff/customers/{customer_id}?confirm=true"
    r = stack.http("DELETE", path + "&force=true", stack.admin_token)
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: _services(stack, customer_id)[active]["status"] == "terminated",
        what="terminated with its customer",
    )
