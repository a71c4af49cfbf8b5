"""A rolling restart of billing under load: no client sees a 5xx, nothing is lost.

Billing runs as two instances. While clients pay into personal accounts, ask for
add-funds invoices, read their accounts (all through the gateway, each request sent
once) and staff register customers (whose accounts billing opens from the customers
service's events), instance A is asked to stop (SIGTERM), waited for and started again,
then instance B. Then: every request got a 2xx, none a 5xx or a broken connection;
every payment acknowledged is on its ledger once and the balance is their sum; every
invoice acknowledged exists once; every registration's account was opened once; no
event is parked; and each stopped instance exited with code 0 within the grace period,
its log saying it stopped cleanly.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
import uuid

import eventlet
import pytest
import requests

from tests.stack import Stack

GRACE = 10  # HOSTLEDGER_SHUTDOWN_GRACE of this stack's processes
PAYERS = 4
READERS = 2


@pytest.fixture(scope="module")
def own_stack():
    stack = Stack(extra_env={"HOSTLEDGER_SHUTDOWN_GRACE": str(GRACE)})
    try:
        stack.up()
        stack.start("billing", instance="2")
        _wait_for_rpc_consumers(stack, "billing", 2)
        yield stack
    finally:
        stack.down()


def _rpc_consumers(stack: Stack, service: str) -> int:
    out = stack.rabbitmqctl("list_queues", "-p", stack.vhost, "name", "consumers")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == f"rpc-{service}":
            return int(parts[1])
    return 0


def _wait_for_rpc_consumers(stack: Stack, service: str, count: int) -> None:
    stack.wait_until(
        lambda: _rpc_consumers(stack, service) == count,
        timeout=90,
        interval=0.3,
        what=f"{count} instances of {service} taking requests",
    )


class Client:
    """Sends each request once and remembers what came back."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.answers: list[tuple[str, int | str, str]] = []

    def send(self, what: str, method: str, path: str, token: str, **kwargs):
        try:
            r = self.stack.http(method, path, token, **kwargs)
        except requests.RequestException as exc:
            self.answers.append((what, type(exc).__name__, str(exc)))
            return None
        self.answers.append((what, r.status_code, r.text[:300] if r.status_code >= 300 else ""))
        return r if 200 <= r.status_code < 300 else None

    def failures(self) -> list:
        return [a for a in self.answers if not (isinstance(a[1], int) and 200 <= a[1] < 300)]


def _log_text(stack: Stack, key: str) -> str:
    return (stack.logs / f"{key}.log").read_text(errors="replace")


def _stop_gracefully(stack: Stack, key: str) -> tuple[int, float, str]:
    """SIGTERM to instance `key`; its exit code, how long it took, and what it logged."""
    proc = stack.procs.pop(key)
    logged_before = len(_log_text(stack, key))
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(GRACE + 10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{key} did not exit within {GRACE + 10}s of SIGTERM") from None
    return proc.returncode, time.monotonic() - started, _log_text(stack, key)[logged_before:]


def _ledger(stack: Stack, customer_id: str) -> tuple[int, list[dict]]:
    entries: list[dict] = []
    with stack.rpc() as rpc:
        for page in itertools.count(1):
            account = rpc.billing.get_account(customer_id, "EUR", None, page, 100)
            entries += account["entries"]
            if len(entries) >= account["total"]:
                return account["balance"]["amount"], entries


def test_rolling_restart_of_billing_under_load(own_stack):
    stack = own_stack
    client = Client(stack)
    admin = stack.admin_token

    payers = []
    for _ in range(PAYERS):
        customer = stack.register_customer()
        token = stack.login(
            customer["credentials"]["username"], customer["credentials"]["password"]
        )
        payers.append((customer["id"], token))
    stack.wait_until(
        lambda: {c for c, _ in payers} <= set(stack.billing_accounts_opened()),
        timeout=60,
        what="the payers' accounts",
    )

    paid: dict[str, list[int]] = {c: [] for c, _ in payers}
    invoices: dict[str, list[str]] = {c: [] for c, _ in payers}
    registered: list[str] = []
    reads = [0]
    amounts = itertools.count(101)
    done = eventlet.event.Event()

    def pay(customer_id: str) -> None:
        while not done.ready():
            amount = next(amounts)
            r = client.send(
                "pay",
                "POST",
                "/api/v1/staff/payments",
                admin,
                json={
                    "customer_id": customer_id,
                    "amount": {"amount": amount, "currency": "EUR"},
                    "method": "bank_transfer",
                    "reference": f"TX-{uuid.uuid4().hex[:10]}",
                },
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            if r is not None:
                paid[customer_id].append(amount)
            eventlet.sleep(0.05)

    def top_up(customer_id: str, token: str) -> None:
        while not done.ready():
            r = client.send(
                "add funds",
                "POST",
                "/api/v1/client/account/funds",
                token,
                json={"amount": {"amount": 1000, "currency": "EUR"}},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            if r is not None:
                invoices[customer_id].append(r.json()["id"])
            eventlet.sleep(0.2)

    def read(customer_id: str) -> None:
        while not done.ready():
            if client.send("read", "GET", f"/api/v1/staff/customers/{customer_id}/account", admin):
                reads[0] += 1
            eventlet.sleep(0.05)

    def register() -> None:
        while not done.ready():
            r = client.send(
                "register",
                "POST",
                "/api/v1/staff/customers",
                admin,
                json={
                    "kind": "individual",
                    "email": f"rolling-{uuid.uuid4().hex[:12]}@example.com",
                    "country": "DE",
                    "contact_person": "Rolling Restart",
                },
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            if r is not None:
                registered.append(r.json()["id"])
            eventlet.sleep(0.2)

    pool = eventlet.GreenPool()
    for customer_id, _ in payers:
        pool.spawn(pay, customer_id)
    for customer_id, token in payers[:2]:
        pool.spawn(top_up, customer_id, token)
    for customer_id, _ in payers[:READERS]:
        pool.spawn(read, customer_id)
    pool.spawn(register)

    stops = {}
    try:
        eventlet.sleep(3)  # the load runs against both instances
        for key, instance in (("billing", None), ("billing-2", "2")):
            stops[key] = _stop_gracefully(stack, key)
            eventlet.sleep(1)  # the other instance alone carries the load a moment
            stack.start("billing", instance=instance)
            _wait_for_rpc_consumers(stack, "billing", 2)
            eventlet.sleep(2)
    finally:
        done.send(True)
        pool.waitall()

    # every request answered with a 2xx: no 5xx, no broken connection
    assert not client.failures(), client.failures()[:20]
    assert reads[0] > 0 and registered and all(paid.values()) and any(invoices.values())
    assert len(client.answers) > 100, len(client.answers)

    # each instance stopped by itself, cleanly, within the grace period
    for key, (code, took, logged) in stops.items():
        assert code == 0, f"{key} exited with {code} after {took:.1f}s:\n{logged[-3000:]}"
        assert took < GRACE, f"{key} took {took:.1f}s to stop"
        assert re.search(r"SIGTERM received", logged), logged[-3000:]
        assert re.search(r"billing stopped cleanly in", logged), logged[-3000:]
        assert "killing" not in logged, logged[-3000:]

    # every payment acknowledged is on its ledger once, and nothing else is
    for customer_id, amounts_paid in paid.items():
        balance, entries = _ledger(stack, customer_id)
        payments = sorted(e["amount"]["amount"] for e in entries if e["kind"] == "payment")
        assert payments == sorted(amounts_paid), customer_id
        assert balance == sum(amounts_paid)

    # every invoice acknowledged exists once (the list may lag a write a moment)
    def listed_invoices(customer_id: str) -> list[str]:
        listed: list[str] = []
        with stack.rpc() as rpc:
            for page in itertools.count(1):
                answer = rpc.billing.list("invoices", customer_id, None, page, 200)
                listed += [item["id"] for item in answer["items"]]
                if not answer["items"] or len(listed) >= answer["total"]:
                    return listed

    for customer_id, ids in invoices.items():
        stack.wait_until(
            lambda c=customer_id, ids=ids: sorted(listed_invoices(c)) == sorted(ids),
            timeout=30,
            interval=0.5,
            what=f"the invoices of {customer_id}",
        )

    # every registration's account opened once
    stack.wait_until(
        lambda: set(registered) <= set(stack.billing_accounts_opened()),
        timeout=60,
        interval=0.5,
        what="every registration's account",
    )
    opened = stack.billing_accounts_opened()
    everyone = registered + [c for c, _ in payers]
    assert {c: opened[c] for c in everyone} == dict.fromkeys(everyone, 1)

    # nothing parked anywhere
    with stack.rpc() as rpc:
        for service in ("billing", "customers"):
            assert getattr(rpc, service).parked_events() == [], service
