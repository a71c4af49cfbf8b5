"""Tamper evidence on the running system: every service chains its log, publishes
checkpoints that the others keep as witnesses, and `hostledger audit verify-chain`
finds an event edited, deleted, moved or slipped in with SQL, and a chain recomputed
to hide an edit. Every change made here is undone before the test ends (the stack is
shared with the other tests of the run)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from services.infra.chain import StoredRecord, link
from services.infra.clock import FileClock
from services.infra.settings import SERVICES

COMMAND = Path(sys.executable).parent / "hostledger"


def _verify(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), "audit", "verify-chain", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _value(stack, service, query, params=()):
    with stack.db(service) as conn:
        return conn.execute(query, params).fetchone()[0]


def _head(stack, service) -> int:
    return _value(stack, service, f"SELECT coalesce(max(notification_id), 0) FROM {service}_events")


def _chained(stack, service) -> int:
    return _value(stack, service, "SELECT coalesce(max(position), 0) FROM audit_chain")


def _witnessed(stack, holder, upstream) -> int:
    return _value(
        stack,
        holder,
        "SELECT coalesce(max(position), 0) FROM audit_witnesses WHERE upstream = %s",
        (upstream,),
    )


def _events_of(stack, aggregate_id) -> list[StoredRecord]:
    with stack.db("customers") as conn:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM customers_events WHERE originator_id = %s ORDER BY originator_version",
            (uuid.UUID(aggregate_id),),
        ).fetchall()
    return [StoredRecord(p, o, v, t, bytes(s)) for p, o, v, t, s in rows]


def _wait_chained(stack, services=SERVICES) -> dict[str, int]:
    heads = {s: _head(stack, s) for s in services}
    for service, head in heads.items():
        stack.wait_until(
            lambda s=service, h=head: _chained(stack, s) >= h,
            timeout=60,
            what=f"{service}'s chain to reach {head}",
        )
    return heads


def _settled(stack) -> None:
    """Until everything that reads customers' log has read all of it: its read models,
    its relay, and the services consuming its events. Tampering then reaches none of them
    (the verifier alone reads the log again)."""
    head = _head(stack, "customers")
    published = max(
        (e["position"] for e in stack.published("customers") if e["position"] <= head),
        default=0,
    )

    def read_up() -> bool:
        with stack.db("customers") as conn:
            models = conn.execute("SELECT min(position) FROM readmodel_positions").fetchone()[0]
            scanned = conn.execute("SELECT min(scanned) FROM relay_position").fetchone()[0]
        if (models or 0) < head or (scanned or 0) < head:
            return False
        return all(
            _value(
                stack,
                consumer,
                f"SELECT coalesce(max(notification_id), 0) FROM {consumer}_tracking"
                " WHERE application_name = 'customers'",
            )
            >= published
            for consumer in ("billing", "orders", "mailgateway")
        )

    stack.wait_until(read_up, timeout=60, what="customers' log read by all its readers")


@contextlib.contextmanager
def _restoring(stack, *statements):
    """Run `statements` (SQL, params) on customers' database on the way out."""
    try:
        yield
    finally:
        with stack.db("customers") as conn:
            for statement, params in statements:
                conn.execute(statement, params)


def _parked(stack) -> dict[str, int]:
    return {s: _value(stack, s, "SELECT count(*) FROM parked_events") for s in SERVICES}


def test_tampering_with_a_log_is_named_and_witnessed(stack):
    parked = _parked(stack)
    customers = [stack.register_customer(contact_person=f"Chain {i}") for i in range(4)]
    stack.wait_until(
        lambda: all(c["id"] in stack.billing_accounts_opened() for c in customers),
        what="the accounts",
    )
    heads = _wait_chained(stack)

    # a few minutes on, each service checkpoints what it chained since its last checkpoint
    FileClock.set_offset(stack.clock_file, timedelta(minutes=10))
    try:
        for upstream in ("customers", "billing"):
            for holder in SERVICES:
                if holder != upstream:
                    stack.wait_until(
                        lambda h=holder, u=upstream: _witnessed(stack, h, u) >= heads[u],
                        timeout=90,
                        what=f"{holder} to keep {upstream}'s checkpoint",
                    )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    # each holder keeps every checkpoint, in order and once
    for holder in ("billing", "mailgateway"):
        with stack.db(holder) as conn:
            sequences = [
                r[0]
                for r in conn.execute(
                    "SELECT sequence FROM audit_witnesses WHERE upstream = 'customers'"
                    " ORDER BY sequence"
                )
            ]
        assert sequences == list(range(1, len(sequences) + 1))

    clean = _verify(stack)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for service in SERVICES:
        assert f"{service}: " in clean.stdout
    assert "every chained event is as it was chained" in clean.stdout

    _settled(stack)
    first, second, third, fourth = (_events_of(stack, c["id"]) for c in customers)
    assert all(len(events) >= 1 for events in (first, second, third, fourth))

    # -- an event's stored state edited ------------------------------------------------------
    edited = first[0]
    with _restoring(
        stack,
        (
            "UPDATE customers_events SET state = %s WHERE notification_id = %s",
            (edited.state, edited.position),
        ),
    ):
        with stack.db("customers") as conn:
            conn.execute(
                "UPDATE customers_events SET state = %s WHERE notification_id = %s",
                (edited.state + b" ", edited.position),
            )
        found = _verify(stack, "customers")
    assert found.returncode == 1, found.stdout + found.stderr
    assert (
        f"first: position {edited.position}, aggregate {edited.originator_id} "
        f"version {edited.version}: edited" in found.stdout
    ), found.stdout

    # -- an event deleted ---------------------------------------------------------------------
    deleted = second[-1] if len(second) > 1 else second[0]
    with _restoring(
        stack,
        (
            "INSERT INTO customers_events (originator_id, originator_version, topic, state,"
            " notification_id) VALUES (%s, %s, %s, %s, %s)",
            (
                deleted.originator_id,
                deleted.version,
                deleted.topic,
                deleted.state,
                deleted.position,
            ),
        ),
    ):
        with stack.db("customers") as conn:
            conn.execute(
                "DELETE FROM customers_events WHERE notification_id = %s", (deleted.position,)
            )
        found = _verify(stack, "customers")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"first: position {deleted.position}" in found.stdout, found.stdout
    assert ": deleted: the event chained here is gone" in found.stdout

    # -- two events swapped --------------------------------------------------------------------
    a, b = third[0].position, fourth[0].position
    swap = [
        ("UPDATE customers_events SET notification_id = -1 WHERE notification_id = %s", (a,)),
        ("UPDATE customers_events SET notification_id = %s WHERE notification_id = %s", (a, b)),
        ("UPDATE customers_events SET notification_id = %s WHERE notification_id = -1", (b,)),
    ]
    with _restoring(stack, *swap):
        with stack.db("customers") as conn:
            for statement, params in swap:
                conn.execute(statement, params)
        found = _verify(stack, "customers")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"first: position {a}" in found.stdout, found.stdout
    assert f"reordered: swapped with the event at position {b}" in found.stdout

    # -- an event slipped into a gap of the log ------------------------------------------------
    with stack.db("customers") as conn:
        gap = conn.execute(
            "SELECT nextval(pg_get_serial_sequence('customers_events', 'notification_id'))"
        ).fetchone()[0]
    later = stack.register_customer(contact_person="Chain after the gap")
    _wait_chained(stack, ["customers"])
    _settled(stack)
    assert _events_of(stack, later["id"])[0].position > gap
    forged = uuid.uuid4()
    with _restoring(stack, ("DELETE FROM customers_events WHERE notification_id = %s", (gap,))):
        with stack.db("customers") as conn:
            conn.execute(
                "INSERT INTO customers_events (originator_id, originator_version, topic, state,"
                " notification_id) VALUES (%s, 1, %s, %s, %s)",
                (forged, edited.topic, edited.state, gap),
            )
        found = _verify(stack, "customers")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"first: position {gap}, aggregate {forged} version 1: inserted" in found.stdout

    # -- an edit hidden by recomputing the chain: the witnesses disagree -----------------------
    with stack.db("customers") as conn:
        original = conn.execute(
            "SELECT position, hash FROM audit_chain WHERE position >= %s ORDER BY position",
            (edited.position,),
        ).fetchall()
        previous = conn.execute(
            "SELECT hash FROM audit_chain WHERE position < %s ORDER BY position DESC LIMIT 1",
            (edited.position,),
        ).fetchone()
        tail = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM customers_events WHERE notification_id >= %s AND notification_id <= %s"
            " ORDER BY notification_id",
            (edited.position, original[-1][0]),
        ).fetchall()
    witnessed_at = _value(
        stack,
        "orders",
        "SELECT min(position) FROM audit_witnesses WHERE upstream = 'customers' AND position >= %s",
        (edited.position,),
    )
    assert witnessed_at is not None
    restore = [
        (
            "UPDATE customers_events SET state = %s WHERE notification_id = %s",
            (edited.state, edited.position),
        )
    ] + [
        ("UPDATE audit_chain SET hash = %s WHERE position = %s", (bytes(h), p)) for p, h in original
    ]
    with _restoring(stack, *restore):
        forged_state = edited.state + b" "
        prev = bytes(previous[0]) if previous else bytes(32)
        with stack.db("customers") as conn, conn.transaction():
            conn.execute(
                "UPDATE customers_events SET state = %s WHERE notification_id = %s",
                (forged_state, edited.position),
            )
            for p, o, v, t, s in tail:
                state = forged_state if p == edited.position else bytes(s)
                prev = link(prev, StoredRecord(p, o, v, t, state))
                conn.execute("UPDATE audit_chain SET hash = %s WHERE position = %s", (prev, p))
        found = _verify(stack, "customers")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"{witnessed_at}: rewritten:" in found.stdout, found.stdout
    assert "the chain recomputed to match" in found.stdout

    # everything undone: the log is as it was chained, and nothing else read the changes
    again = _verify(stack, "customers")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _parked(stack) == parked
