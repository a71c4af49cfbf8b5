"""A consumer that dies inside a batch of an upstream's events loses and doubles nothing.

Billing applies the customers' events that wait together in one transaction (a batch,
services.infra.inbox_batches). Here billing is frozen (SIGSTOP) while customers are
registered, so that their events wait in its socket together; once it runs again it
applies them as one batch and dies (a failpoint: `os._exit`, as a crash) at a point
inside it: after its handlers ran and before the commit, or after the commit and
before the deliveries were acknowledged. Started again, billing has opened each
account exactly once, in registration order, parked nothing, and its tracking of the
customers log is the last event published.
"""

from __future__ import annotations

import os
import signal

import eventlet
import pytest


def _register_many(stack, n, concurrency=8):
    pool = eventlet.GreenPool(concurrency)
    return list(pool.imap(lambda _: stack.register_customer()["id"], range(n)))


def _queue(stack) -> tuple[int, int]:
    """Billing's queue from customers: (ready, delivered and not acknowledged)."""
    return stack.consumer_queue("billing", "customers")


def _stats(stack) -> dict:
    with stack.rpc() as rpc:
        return rpc.billing.consumer_stats()["customers"]


def _parked_customers_events(stack) -> list:
    with stack.db("billing") as conn:
        return conn.execute(
            "SELECT position FROM parked_events WHERE upstream = 'customers'"
            " AND resolved_at IS NULL"
        ).fetchall()


@pytest.mark.parametrize("point", ["consumer.batch_before_commit", "consumer.batch_before_ack"])
def test_a_crash_inside_a_batch_loses_and_doubles_nothing(stack, point):
    parked_before = _parked_customers_events(stack)
    # no periodic catch-up (the one at start aside): the batch comes from the deliveries
    stack.restart(
        "billing", {"HOSTLEDGER_FAILPOINTS": point, "HOSTLEDGER_CATCHUP_INTERVAL": "3600"}
    )
    stack.wait_for_service("billing")
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="billing up to date")
    proc = stack.procs["billing"]
    before = set(stack.billing_accounts_opened())

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        ids = _register_many(stack, 20)
        # all of them sent to billing (in its socket), none acknowledged (with them, perhaps
        # a checkpoint of the customers log's chain)
        stack.wait_until(
            lambda: (q := _queue(stack))[0] == 0 and q[1] >= 20, what="20 deliveries in flight"
        )
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=60) == 70, f"billing did not stop at {point}"
    if point == "consumer.batch_before_commit":
        # nothing of the batch was written
        assert not set(ids) & set(stack.billing_accounts_opened())
    else:
        # the batch was written, every account of it at once
        opened = set(stack.billing_accounts_opened()) - before
        assert len(opened) >= 2 and opened <= set(ids)

    ids += _register_many(stack, 5)  # while billing is down, more wait for it
    stack.start("billing")
    stack.wait_for_service("billing")

    stack.wait_until(
        lambda: set(ids) <= set(stack.billing_accounts_opened()),
        timeout=120,
        interval=0.3,
        what="every account",
    )
    opened = stack.billing_accounts_opened()
    assert all(opened[c] == 1 for c in ids), {c: opened[c] for c in ids if opened[c] != 1}
    # in the order customers recorded them
    upstream = stack.published("customers")
    order = [e["aggregate_id"] for e in upstream if e["type"] == "CustomerRegistered"]
    assert [c for c in opened if c in set(ids)] == [c for c in order if c in set(ids)]
    # the tracking of the customers log is its last event, and nothing was parked
    last = upstream[-1]["position"]
    stack.wait_until(lambda: _stats(stack)["position"] == last, what="tracking at the last")
    assert _parked_customers_events(stack) == parked_before
    if point == "consumer.batch_before_ack":
        # the batch came again and was recognised as applied
        stack.wait_until(lambda: _stats(stack)["duplicates"] >= 2, what="the batch again")
    # every delivery taken (the next test starts from an empty queue)
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="billing's queue empty")
