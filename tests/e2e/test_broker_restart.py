"""A RabbitMQ restart under load takes nothing down, loses nothing and doubles nothing.

The stack runs on a RabbitMQ node of its own (tests.broker.PrivateBroker), since the
shared broker carries every other run. While staff register customers and record
payments through the gateway, as a client would (each request repeated with its
Idempotency-Key until it has an answer, a 503 meaning "try again"), the node is
stopped and started again. Then: every process is still the one that was started,
none ever answered 500, every registration has its customer once and its personal
account once, every payment is on its account's ledger once, and every process still
stops cleanly when asked.
"""

from __future__ import annotations

import itertools
import time
import uuid

import eventlet
import pytest
import requests

from tests.broker import PrivateBroker
from tests.stack import MODULES, Stack

WORKERS = 8
# how long a client keeps repeating one request while the broker is away
GIVE_UP_AFTER = 180


@pytest.fixture(scope="module")
def broker():
    with PrivateBroker() as node:
        yield node


@pytest.fixture(scope="module")
def own_stack(broker):
    stack = Stack(broker=broker)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


class Client:
    """Repeats each request with its Idempotency-Key until it gets an answer that is not
    "unavailable", and remembers every status it saw."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.statuses: list[tuple[str, int | str]] = []

    def send(self, what: str, path: str, body: dict) -> dict:
        key = uuid.uuid4().hex
        deadline = time.monotonic() + GIVE_UP_AFTER
        while True:
            try:
                r = self.stack.http(
                    "POST",
                    path,
                    self.stack.admin_token,
                    json=body,
                    headers={"Idempotency-Key": key},
                )
            except requests.RequestException as exc:  # the gateway itself did not answer
                self.statuses.append((what, type(exc).__name__))
            else:
                self.statuses.append((what, r.status_code))
                if r.status_code == 503:
                    assert r.headers.get("Retry-After"), r.headers
                elif r.status_code == 409 and "still being answered" in r.text:
                    pass  # the first attempt with this key is running: ask again
                else:
                    assert r.status_code == 201, (what, r.status_code, r.text)
                    return r.json()
            assert time.monotonic() < deadline, f"{what} never answered: {self.statuses[-5:]}"
            eventlet.sleep(0.5)

    def register(self) -> dict:
        return self.send(
            "register",
            "/api/v1/staff/customers",
            {
                "kind": "individual",
                "email": f"restart-{uuid.uuid4().hex[:12]}@example.com",
                "country": "DE",
                "contact_person": "Broker Restart",
            },
        )

    def pay(self, customer_id: str, amount: int) -> dict:
        return self.send(
            "pay",
            "/api/v1/staff/payments",
            {
                "customer_id": customer_id,
                "amount": {"amount": amount, "currency": "EUR"},
                "method": "bank_transfer",
                "reference": f"TX-{uuid.uuid4().hex[:10]}",
            },
        )


def _registered_events(stack: Stack) -> dict[str, int]:
    """customer_id -> how many CustomerRegistered the customers service published for it."""
    counts: dict[str, int] = {}
    for event in stack.published("customers"):
        if event["type"] == "CustomerRegistered":
            counts[event["aggregate_id"]] = counts.get(event["aggregate_id"], 0) + 1
    return counts


def _ledger(stack: Stack, customer_id: str) -> tuple[int, list[dict]]:
    """The account's balance and all its entries."""
    entries: list[dict] = []
    with stack.rpc() as rpc:
        for page in itertools.count(1):
            account = rpc.billing.get_account(customer_id, "EUR", None, page, 100)
            entries += account["entries"]
            if len(entries) >= account["total"]:
                return account["balance"]["amount"], entries


def test_broker_restart_under_load(own_stack, broker):
    stack = own_stack
    started = {name: proc.pid for name, proc in stack.procs.items()}
    client = Client(stack)
    payers = [client.register()["id"] for _ in range(6)]
    stack.wait_until(
        lambda: set(payers) <= set(stack.billing_accounts_opened()),
        timeout=120,
        what="the payers' accounts",
    )
    before = set(_registered_events(stack))

    registered: list[str] = []
    paid: dict[str, list[int]] = {c: [] for c in payers}
    amounts = itertools.count(101)
    restarted = eventlet.event.Event()

    def load(n: int) -> None:
        # each worker goes on until the broker has been back a while
        while not restarted.ready() or time.monotonic() < restarted.wait() + 5:
            if n % 2:
                registered.append(client.register()["id"])
            else:
                customer = payers[n % len(payers)]
                amount = next(amounts)
                client.pay(customer, amount)
                paid[customer].append(amount)

    pool = eventlet.GreenPool(WORKERS)
    for n in range(WORKERS):
        pool.spawn(load, n)
    eventlet.sleep(3)  # load running
    assert registered and any(paid.values()), client.statuses
    restarts_before = len(client.statuses)
    broker.restart()
    restarted.send(time.monotonic())
    pool.waitall()
    assert len(client.statuses) > restarts_before

    # no process died and was replaced: each is the process the stack started
    dead = {name: proc.returncode for name, proc in stack.procs.items() if proc.poll() is not None}
    assert not dead, f"processes exited: {dead}; logs in {stack.logs}"
    assert {name: proc.pid for name, proc in stack.procs.items()} == started
    stack.wait_healthy()

    # transient trouble was a 503 (with Retry-After), never a 500
    assert not [s for s in client.statuses if s[1] == 500], client.statuses

    # nothing lost, nothing doubled: one customer per registration, one account each
    stack.wait_until(
        lambda: set(registered) <= set(stack.billing_accounts_opened()),
        timeout=180,
        interval=0.5,
        what="every registration's account",
    )
    opened = stack.billing_accounts_opened()
    assert {c: opened[c] for c in registered + payers} == dict.fromkeys(registered + payers, 1)
    events = _registered_events(stack)
    assert set(events) - before == set(registered)
    assert all(count == 1 for count in events.values()), events

    # every payment on its account's ledger once
    for customer, amounts_paid in paid.items():
        balance, entries = _ledger(stack, customer)
        payments = sorted(e["amount"]["amount"] for e in entries if e["kind"] == "payment")
        assert payments == sorted(amounts_paid), customer
        assert balance == sum(amounts_paid)

    # and each still stops cleanly when asked (SIGTERM), not killed for hanging. (Not the
    # mail gateway: its mail-in child, signalled with it, is started again while the
    # service stops and can outlast the stop's wait, broker restart or not.)
    for name in [m for m in MODULES if m != "mailgateway"]:
        proc = stack.procs[name]
        stack.stop(name)
        assert proc.returncode == 0, f"{name} ended with {proc.returncode}"
