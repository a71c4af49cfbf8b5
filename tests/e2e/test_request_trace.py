"""One request followed across the processes by its X-Request-Id: registering a customer
through the gateway runs the customers service's command, whose CustomerRegistered event
billing applies by opening the customer's account. The gateway's, the customers
service's and billing's logs each have JSON lines naming the request, and the events
it stored in both services carry it, as does the integration event billing published."""

from __future__ import annotations

import json
import re
import uuid

import pytest

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
INSTANCE = re.compile(r"^[^\s:]+:\d+$")


def _lines(stack, process: str, request_id: str) -> list[dict]:
    """The lines of `process`'s log that name the request; each must be one JSON object
    with every field a line has."""
    found = []
    path = stack.logs / f"{process}.log"
    for line in path.read_text(errors="replace").splitlines():
        if request_id not in line:
            continue
        data = json.loads(line)  # one JSON object a line, nothing around it
        assert isinstance(data, dict), line
        assert ISO_UTC.match(data["time"]), line
        assert data["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        assert data["logger"] and isinstance(data["message"], str), line
        assert data["service"] == process, line
        assert INSTANCE.match(data["instance"]), line
        assert data["request_id"] == request_id, line
        found.append(data)
    return found


def _stored_with(stack, service: str, request_id: str) -> list[str]:
    """The topics of the events `service` stored for the request (from its event table)."""
    with stack.db(service) as conn:
        rows = conn.execute(
            f"SELECT topic, state FROM {service}_events ORDER BY notification_id DESC LIMIT 500"
        ).fetchall()
    topics = []
    for topic, state in rows:
        try:
            stored = json.loads(bytes(state))
        except ValueError:  # compressed or sealed whole: not one of ours here
            continue
        if stored.get("request_id") == request_id:
            topics.append(topic)
    return topics


@pytest.mark.slow
def test_a_request_id_is_followed_from_the_gateway_to_the_handlers_downstream(stack):
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "email": f"{uuid.uuid4().hex[:12]}@example.com",
            "country": "DE",
            "contact_person": "Traced Person",
        },
        headers={"X-Request-Id": request_id},
    )
    assert r.status_code == 201, r.text
    assert r.headers["X-Request-Id"] == request_id
    customer_id = r.json()["id"]

    # billing applied CustomerRegistered: its handler's line names the request (a try
    # that failed and was retried has a line of its own, and names it too)
    def billing_applied():
        return [
            line
            for line in _lines(stack, "billing", request_id)
            if line.get("entrypoint") == "event:open_account" and line["outcome"] == "ok"
        ]

    (handler,) = stack.wait_until(billing_applied, timeout=60, what="billing's handler line")
    assert handler["logger"] == "hostledger.work" and handler["level"] == "INFO"
    assert "customers.CustomerRegistered by billing.open_account ok" in handler["message"]
    assert handler["actor"] == "service:billing"
    assert re.fullmatch(r"customers:\d+", handler["cause"]), handler

    # the gateway: its access line, with the route's fields
    access = [g for g in _lines(stack, "gateway", request_id) if g["logger"] == "hostledger.access"]
    assert len(access) == 1, access
    assert access[0]["method"] == "POST" and access[0]["path"] == "/api/v1/staff/customers"
    assert access[0]["status"] == 201 and access[0]["duration_ms"] >= 0

    # the customers service: the command it served, as the staff member who sent it
    served = [
        c
        for c in _lines(stack, "customers", request_id)
        if c.get("entrypoint") == "rpc:register_customer"
    ]
    assert len(served) == 1, served
    assert served[0]["outcome"] == "ok" and served[0]["actor"].startswith("staff:")

    # the events: the customer's in the customers service, the account's in billing
    assert any(
        t.endswith("Customer.Registered") for t in _stored_with(stack, "customers", request_id)
    )
    assert _stored_with(stack, "billing", request_id), "billing stored nothing with the request id"

    # and onwards: billing's integration event about the account names the request too
    def account_published():
        return [
            e
            for e in stack.published("billing")
            if e["payload"].get("customer_id") == customer_id and e["type"] == "AccountOpened"
        ]

    (opened,) = stack.wait_until(account_published, timeout=30, what="AccountOpened published")
    assert opened["request_id"] == request_id
    assert opened["cause"] == handler["cause"]


def test_a_request_id_that_is_not_one_is_replaced_and_a_missing_one_made(stack):
    bad = stack.http("GET", "/health", headers={"X-Request-Id": "x" * 200})
    made = stack.http("GET", "/health")
    for r in (bad, made):
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"]), r.headers
    assert bad.headers["X-Request-Id"] != made.headers["X-Request-Id"]
    assert _lines(stack, "gateway", made.headers["X-Request-Id"])
    assert "x" * 200 not in (stack.logs / "gateway.log").read_text()
