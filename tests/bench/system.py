"""The system: registrations through the gateway, and how long billing takes to follow.

Propagation is read from the two event stores: each stored event carries the
`timestamp` its aggregate gave it (the services' one clock, wall-clock UTC, taken just
before the save that commits it). Lag = the billing `PersonalAccount.Opened` timestamp
minus the customers `Customer.Registered` timestamp, so no polling interval blurs it.
A queue of the bench's own on the events exchange (`BrokerTap`) also notes when each
`CustomerRegistered` integration event came out of RabbitMQ, which splits the lag into
the relay's part and the consumer's part.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from datetime import datetime
from uuid import UUID

import eventlet
import requests
from eventsourcing.utils import get_topic

from services.billing.domain import PersonalAccount
from services.customers.domain import Customer
from services.infra.amqp import events_exchange
from tests.bench.drive import Result, distribution_ms, drive

REGISTERED = get_topic(Customer.Registered)
OPENED = get_topic(PersonalAccount.Opened)
CURRENCY = "EUR"
REGISTER_PATH = "/api/v1/staff/customers"


def registration_body() -> dict:
    return {
        "kind": "individual",
        "email": f"bench-{uuid.uuid4().hex[:16]}@example.com",
        "country": "DE",
        "contact_person": "Bench Person",
        "currency": CURRENCY,
    }


class Registrar:
    """One HTTP client (its own keep-alive session) registering customers as admin."""

    def __init__(self, stack, sink: list[str]):
        self.url = stack.base_url + REGISTER_PATH
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {stack.admin_token}"
        self.sink = sink

    def __call__(self) -> str:
        r = self.session.post(self.url, json=registration_body(), timeout=60)
        if r.status_code != 201:
            raise RuntimeError(f"POST {REGISTER_PATH} answered {r.status_code}: {r.text[:200]}")
        customer_id = r.json()["id"]
        self.sink.append(customer_id)
        return customer_id

    def close(self) -> None:
        self.session.close()


def registrations(
    stack, concurrency: int, total: int, warmup: int, on_start=None
) -> tuple[Result, list[str]]:
    """`total` registrations from `concurrency` clients; the ids of the measured ones."""
    warm: list[str] = []
    measured: list[str] = []
    clients: list[Registrar] = []

    def factory(resources: contextlib.ExitStack):
        client = Registrar(stack, warm)
        resources.callback(client.close)
        clients.append(client)
        return client

    def switch_sink():
        for client in clients:
            client.sink = measured
        if on_start is not None:
            on_start()

    result = drive(factory, concurrency, total=total, warmup=warmup, before_measure=switch_sink)
    return result, measured


# -- store timestamps -------------------------------------------------------------------


def _timestamp(state: dict) -> float:
    return datetime.fromisoformat(state["timestamp"]["_data_"]).timestamp()


def registered_times(stack, customer_ids: list[str]) -> dict[str, float]:
    with stack.db("customers") as conn:
        rows = conn.execute(
            "SELECT originator_id, state FROM customers_events "
            "WHERE topic = %s AND originator_id = ANY(%s)",
            (REGISTERED, [UUID(c) for c in customer_ids]),
        ).fetchall()
    return {str(oid): _timestamp(json.loads(bytes(state))) for oid, state in rows}


def opened_times(stack) -> dict[str, float]:
    """customer id -> when billing's PersonalAccount.Opened event was stamped."""
    with stack.db("billing") as conn:
        rows = conn.execute(
            "SELECT state FROM billing_events WHERE topic = %s", (OPENED,)
        ).fetchall()
    opened: dict[str, float] = {}
    for (raw,) in rows:
        state = json.loads(bytes(raw))
        opened[str(UUID(state["customer_id"]["_data_"]))] = _timestamp(state)
    return opened


def wait_for_accounts(stack, customer_ids: list[str], timeout: float = 60) -> dict[str, float]:
    """Billing's opening times, once every account exists or `timeout` passed."""
    deadline = time.perf_counter() + timeout
    while True:
        opened = opened_times(stack)
        if all(c in opened for c in customer_ids) or time.perf_counter() > deadline:
            return opened
        eventlet.sleep(0.1)


def lags(stack, customer_ids: list[str], tap: BrokerTap) -> dict:
    """Registration -> account opened, from the store timestamps, split at RabbitMQ."""
    opened = wait_for_accounts(stack, customer_ids)
    registered = registered_times(stack, customer_ids)
    total, relay, consumer = [], [], []
    missing = [cid for cid in customer_ids if cid not in opened or cid not in registered]
    for cid in customer_ids:
        if cid in missing:
            continue
        total.append(opened[cid] - registered[cid])
        at_broker = tap.arrivals.get(cid)
        if at_broker is not None:
            relay.append(at_broker - registered[cid])
            consumer.append(opened[cid] - at_broker)
    # in registration order: a lag that grows from fifth to fifth is a queue building up
    ordered = sorted(
        (registered[c], opened[c] - registered[c]) for c in customer_ids if c not in missing
    )
    fifth = max(1, len(ordered) // 5)
    trend = (
        [
            distribution_ms([lag for _, lag in ordered[i : i + fifth]])["p50_ms"]
            for i in range(0, fifth * 5, fifth)
        ]
        if len(ordered) >= 5
        else []
    )
    present = [c for c in customer_ids if c not in missing]
    return {
        "total": distribution_ms(total),
        "p50_ms_by_fifth": trend,
        # billing's in-order consumer keeps up only while it opens accounts as fast as
        # customers registers them (first to last event of the set)
        "registered_per_second": _rate([registered[c] for c in present]),
        "opened_per_second": _rate([opened[c] for c in present]),
        "relay": distribution_ms(relay),
        "consumer": distribution_ms(consumer),
        "accounts_missing": len(missing),
    }


def _rate(times: list[float]) -> float | None:
    span = max(times) - min(times) if len(times) > 1 else 0
    return round((len(times) - 1) / span, 2) if span > 0 else None


# -- one registration at a time ----------------------------------------------------------


def isolated_registrations(stack, samples: int, api_samples: int) -> tuple[list[str], dict]:
    """Register one customer at a time and wait until billing opened its account.

    The first `api_samples` wait by polling the account endpoint every 5 ms (the lag a
    client sees: from the POST's answer to the first 200); the rest by polling billing's
    events table every 5 ms. Either way the next registration starts only afterwards,
    so every lag is measured on an otherwise idle system.
    """
    ids: list[str] = []
    client = Registrar(stack, ids)
    api_lags: list[float] = []
    poll_requests: list[float] = []
    timeouts = 0
    try:
        with stack.db("billing") as billing:
            for i in range(samples):
                customer_id = client()
                answered = time.perf_counter()
                account = f"/api/v1/staff/customers/{customer_id}/account"
                account_id = PersonalAccount.id_for(UUID(customer_id), CURRENCY)
                deadline = answered + 30
                while time.perf_counter() < deadline:
                    if i < api_samples:
                        t0 = time.perf_counter()
                        r = client.session.get(stack.base_url + account, timeout=30)
                        poll_requests.append(time.perf_counter() - t0)
                        if r.status_code == 200:
                            api_lags.append(time.perf_counter() - answered)
                            break
                        if r.status_code != 404:
                            raise RuntimeError(f"GET {account} answered {r.status_code}")
                    elif billing.execute(
                        "SELECT 1 FROM billing_events WHERE originator_id = %s", (account_id,)
                    ).fetchone():
                        break
                    eventlet.sleep(0.005)
                else:
                    timeouts += 1  # counted as missing by `lags`
    finally:
        client.close()
    return ids, {
        "lag": distribution_ms(api_lags),
        "poll_request": distribution_ms(poll_requests),
        "timeouts": timeouts,
    }


# -- RabbitMQ tap -------------------------------------------------------------------------


class BrokerTap:
    """Notes the wall-clock time each CustomerRegistered comes out of RabbitMQ.

    An exclusive queue of its own, bound to the stack's events exchange: it receives
    the same published message as billing's inbox queue, at the same moment.
    """

    def __init__(self, stack):
        self.amqp_uri = stack.env["AMQP_URI"]
        self.exchange = events_exchange(stack.settings)
        self.arrivals: dict[str, float] = {}
        self._running = False
        self._thread = None
        self._conn = None

    def start(self) -> BrokerTap:
        from kombu import Connection, Consumer, Queue

        self._conn = Connection(self.amqp_uri)
        channel = self._conn.channel()
        queue = Queue(
            f"bench.tap.{uuid.uuid4().hex[:8]}",
            exchange=self.exchange,
            routing_key="customers.CustomerRegistered",
            exclusive=True,
        )
        self._consumer = Consumer(
            channel, queues=[queue], callbacks=[self._on_message], accept=["json"], no_ack=True
        )
        self._consumer.consume()
        self._running = True
        self._thread = eventlet.spawn(self._loop)
        return self

    def _on_message(self, body, _message) -> None:
        self.arrivals[str(body["payload"]["customer_id"])] = time.time()

    def _loop(self) -> None:
        while self._running:
            with contextlib.suppress(socket.timeout):
                self._conn.drain_events(timeout=0.2)

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.wait()
        if self._conn is not None:
            self._conn.release()


# -- customers of the later sections ---------------------------------------------------


def bench_customers(stack, n: int, language: str = "en") -> list[dict]:
    """`n` customers registered through the gateway, with their generated credentials."""
    customers = []
    for _ in range(n):
        body = registration_body() | {"language": language}
        r = stack.http("POST", REGISTER_PATH, stack.admin_token, json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST {REGISTER_PATH} answered {r.status_code}: {r.text[:200]}")
        customers.append(r.json())
    return customers


def wait_for_billing_accounts(stack, customer_ids: list[str], timeout: float = 60) -> None:
    """Until `GET /api/v1/staff/customers/{id}/account` answers 200 for every customer."""
    deadline = time.perf_counter() + timeout
    pending = list(customer_ids)
    while pending:
        path = f"/api/v1/staff/customers/{pending[0]}/account"
        r = stack.http("GET", path, stack.admin_token)
        if r.status_code == 200:
            pending.pop(0)
            continue
        if r.status_code != 404 or time.perf_counter() > deadline:
            raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
        eventlet.sleep(0.05)


# -- logins ---------------------------------------------------------------------------------

LOGIN_PATH = "/api/v1/auth/login"


def logins(
    stack, customers: list[dict], concurrency: int, total: int, warmup: int, on_start=None
) -> Result:
    """`POST /api/v1/auth/login` with a customer's username and password, `concurrency` at once.

    Client i logs in as customer i (modulo their number), each with its own session.
    """
    credentials = [c["credentials"] for c in customers]
    url = stack.base_url + LOGIN_PATH
    assigned = iter(range(concurrency))

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(requests.Session())
        body = credentials[next(assigned) % len(credentials)]

        def login():
            r = session.post(url, json=body, timeout=60)
            if r.status_code != 200 or "token" not in r.json():
                raise RuntimeError(f"POST {LOGIN_PATH} answered {r.status_code}: {r.text[:200]}")

        return login

    return drive(factory, concurrency, total=total, warmup=warmup, before_measure=on_start)
