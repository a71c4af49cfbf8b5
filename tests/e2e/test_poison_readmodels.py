"""A bad event in a service's store, through the running system: the read model behind it
goes on, staff see the event parked and what each read model skipped, and retry it."""

import copy
import uuid

import pytest

from services.infra.parking import resolve_statement
from tests.stack import Stack


def read_models(stack, service="customers", token=None) -> dict:
    """GET /api/v1/staff/read-models: one service's models by name."""
    r = stack.http(
        "GET", "/api/v1/staff/read-models", token or stack.admin_token, params={"page_size": 200}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"]) and body["page"] == 1
    return {m["name"]: m for m in body["items"] if m["service"] == service}


def _record_copy(app, type_name: str, **fields) -> int:
    """A copy of the last `type_name` event with `fields` changed, recorded past every
    check as a new aggregate; its position."""
    for n in reversed(app.recorder.select_notifications(1, 100_000)):
        if n.topic.endswith(":" + type_name):
            event = app.mapper.to_domain_event(n)
            break
    bad = copy.copy(event)
    object.__setattr__(bad, "originator_id", uuid.uuid4())
    object.__setattr__(bad, "originator_version", 1)
    for name, value in fields.items():
        object.__setattr__(bad, name, value)
    app.recorder.insert_events([app.mapper.to_stored_event(bad)])
    return app.recorder.max_notification_id()


@pytest.fixture(scope="module")
def stack():
    """A stack of this module's own: its tests record events no command could make, which
    the session stack's last check (replay equals live) would rightly report."""
    s = Stack(name="pz" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def test_the_customer_list_goes_on_past_a_nul_and_staff_retry_it(stack):
    from services.customers.application import Customers

    stack.register_customer()
    app = Customers(cfg=stack.settings)
    try:
        position = _record_copy(
            app,
            "Customer.Registered",
            number=10**9,
            contact_person="Ann\x00",
            company_name=None,
            username=f"nul{uuid.uuid4().hex[:8]}",
            email=f"nul{uuid.uuid4().hex[:8]}@example.com",
        )
    finally:
        app.close()
    good = stack.register_customer(contact_person="Registered After The Bad One")

    def listed():
        r = stack.http(
            "GET", "/api/v1/staff/customers", stack.admin_token, params={"name": "after the bad"}
        )
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert stack.wait_until(listed, what="the customer after the bad event") == [good["id"]]

    def parked():
        r = stack.http("GET", "/api/v1/staff/parked-events", stack.admin_token)
        return [
            p
            for p in r.json()["items"]
            if p["service"] == "customers" and p["upstream"] == "readmodel:customer_list"
        ]

    [item] = stack.wait_until(parked, what="the parked event")
    assert item["position"] == position and item["type"] == "Customer.Registered"
    assert "NUL" in item["error"]
    # staff see which model skipped it, and that the others skipped nothing
    models = read_models(stack)
    assert models["customer_list"]["skipped"] == 1
    assert models["customer_list"]["skipped_positions"] == [position]
    assert models["customer_list"]["status"] == "ok"
    assert models["customer_list"]["position"] >= position
    assert models["staff_list"]["skipped"] == 0 and models["staff_list"]["skipped_positions"] == []
    with stack.rpc() as rpc:
        status = {s["read_model"]: s for s in rpc.customers.read_models()}
    assert status["customer_list"]["skipped"] == 1
    assert status["customer_list"]["skipped_events"][0]["position"] == position
    assert status["staff_list"]["skipped"] == 0

    # retried as it is, it fails again: still parked, the attempt counted
    r = stack.http(
        "POST", f"/api/v1/staff/parked-events/customers/{item['id']}/retry", stack.admin_token
    )
    assert r.status_code == 409, r.text
    [again] = parked()
    assert again["attempts"] == item["attempts"] + 1
    # a rebuild parks it again, the same row, and lists everyone else
    with stack.rpc() as rpc:
        rpc.customers.rebuild_read_model("customer_list")
        status = {s["read_model"]: s for s in rpc.customers.read_models()}
    assert status["customer_list"]["skipped"] == 1
    assert [p["id"] for p in parked()] == [item["id"]]
    assert listed() == [good["id"]]

    assert read_models(stack)["customer_list"]["skipped_positions"] == [position]
    # once staff resolve it, the model no longer counts it as skipped
    app = Customers(cfg=stack.settings)
    try:
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(*resolve_statement(item["id"], "resolved by staff"))
    finally:
        app.close()
    models = read_models(stack)
    assert models["customer_list"]["skipped"] == 0
    assert models["customer_list"]["skipped_positions"] == []
    assert parked() == []


def test_read_models_are_for_admins_and_list_a_silent_service_as_unavailable(stack):
    _, support = stack.staff_member("support")
    r = stack.http("GET", "/api/v1/staff/read-models", support)
    assert r.status_code == 403, r.text
    every = read_models(stack, "helpdesk")
    assert every and all(m["status"] == "ok" and m["lag"] >= 0 for m in every.values())
    stack.stop("orders")
    try:
        r = stack.http(
            "GET", "/api/v1/staff/read-models", stack.admin_token, params={"page_size": 200}
        )
        assert r.status_code == 200, r.text
        rows = r.json()["items"]
        assert [m["status"] for m in rows if m["service"] == "orders"] == ["unavailable"]
        # the others answer as before
        assert {m["service"] for m in rows if m["status"] != "ok"} == {"orders"}
        assert {m["service"] for m in rows if m["status"] == "ok"} == {
            "customers",
            "billing",
            "helpdesk",
            "mailgateway",
        }
    finally:
        stack.start("orders")
        stack.wait_for_service("orders")
