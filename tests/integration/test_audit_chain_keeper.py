"""The chain on the real database: each event hashed once and in order, checkpoints taken
and published with the events they cover, kept by another service as witnesses (in
order, once), and `hostledger audit verify-chain` reading all of it back."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from contracts.chain import CHECKPOINT_EVENT
from services.infra import clock
from services.infra.application import _USED
from services.infra.chain import StoredRecord, chain
from services.infra.chainkeeper import (
    CHAIN_ACTOR,
    ChainKeeper,
    checkpoint_events,
    feed_envelope,
    feed_name,
    witness_statement,
)
from services.infra.context import Actor, acting
from services.infra.inbox import Inbox
from services.infra.relay import integration_events
from tests.integration.test_cli import on_a_terminal

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fixed_clock():
    at = clock.FixedClock(datetime(2031, 5, 1, 12, 0, tzinfo=UTC))
    previous = clock.use_clock(at)
    yield at
    clock.use_clock(previous)


def _register(customers, n, tag="c"):
    with acting(Actor("staff", "auditor-test")):
        for i in range(n):
            customers.register_customer(
                {
                    "kind": "individual",
                    "email": f"{tag}{i}-{id(customers)}@example.com",
                    "country": "DE",
                    "contact_person": f"P{i}",
                    "password": "z" * 12,
                }
            )


def _run(keeper) -> int:
    total = 0
    while (n := keeper.run_once()) > 0:
        total += n
    return total


def _log(app) -> list[StoredRecord]:
    return [
        StoredRecord(n.id, n.originator_id, n.originator_version, n.topic, n.state)
        for n in app.recorder.select_notifications(1, 100000)
    ]


def _chain_rows(app) -> list[tuple[int, bytes]]:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT position, hash FROM audit_chain ORDER BY position")
        return [(r["position"], bytes(r["hash"])) for r in curs.fetchall()]


def _checkpoints(app) -> list[tuple[int, int]]:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT sequence, position FROM audit_checkpoints ORDER BY sequence")
        return [(r["sequence"], r["position"]) for r in curs.fetchall()]


def test_each_event_is_hashed_once_in_order_and_checkpoints_are_published(customers, fixed_clock):
    keeper = ChainKeeper(customers, every=5, interval=300, batch_size=3)
    _register(customers, 4)
    _run(keeper)
    log = _log(customers)
    assert _chain_rows(customers) == list(chain(log))

    checkpoints = _checkpoints(customers)
    chained = [p for p, _ in _chain_rows(customers)]
    # one every 5 events hashed (its own event counted among them)
    assert [pos for _, pos in checkpoints] == chained[4::5][: len(checkpoints)]
    assert [seq for seq, _ in checkpoints] == list(range(1, len(checkpoints) + 1))
    assert len(checkpoints) >= 2

    # each one is in the log, published to the others like any integration event
    published = [
        e for e in integration_events(customers, 0, 1000)["events"] if e["type"] == CHECKPOINT_EVENT
    ]
    rows = dict(_chain_rows(customers))
    assert [(e["payload"]["sequence"], e["payload"]["position"]) for e in published] == checkpoints
    for e in published:
        assert e["payload"]["hash"] == rows[e["payload"]["position"]].hex()
        assert e["actor"] == CHAIN_ACTOR.to_dict()
        assert e["position"] > e["payload"]["position"]
    # the feed answers the same checkpoints, numbered by sequence
    feed = checkpoint_events(customers, 0)
    assert [e["position"] for e in feed["events"]] == [s for s, _ in checkpoints]
    assert [e["payload"] for e in feed["events"]] == [e["payload"] for e in published]
    assert [feed_envelope(e)["position"] for e in published] == [s for s, _ in checkpoints]
    assert checkpoint_events(customers, 0, until=1)["events"] == feed["events"][:1]
    assert checkpoint_events(customers, 1, limit=1)["events"] == feed["events"][1:2]


def test_a_checkpoint_follows_new_events_after_the_interval_and_only_then(customers, fixed_clock):
    keeper = ChainKeeper(customers, every=1000, interval=300)
    _register(customers, 1)
    _run(keeper)
    assert _checkpoints(customers) == []
    fixed_clock.advance(timedelta(seconds=299))
    keeper.run_once()
    assert _checkpoints(customers) == []
    fixed_clock.advance(timedelta(seconds=2))
    keeper.run_once()
    head = _chain_rows(customers)[-1][0]
    assert _checkpoints(customers) == [(1, head)]
    # its own event is chained, but is no reason for another checkpoint
    _run(keeper)
    assert _chain_rows(customers)[-1][0] > head
    fixed_clock.advance(timedelta(hours=2))
    _run(keeper)
    keeper.run_once()
    assert len(_checkpoints(customers)) == 1
    # new events are
    _register(customers, 1, tag="later")
    _run(keeper)
    fixed_clock.advance(timedelta(seconds=301))
    keeper.run_once()
    assert len(_checkpoints(customers)) == 2


def test_two_instances_never_hash_a_position_twice_or_skip_one(customers, fixed_clock):
    first = ChainKeeper(customers, every=4, interval=300, batch_size=5)
    second = ChainKeeper(customers, every=4, interval=300, batch_size=7)
    _register(customers, 3)
    # the second reads the state, then the first moves on before the second writes
    stale_state = second.state()
    _run(first)
    second.state = lambda: stale_state
    assert second.run_once() == 0  # its write collided and was rolled back
    del second.state
    _register(customers, 2, tag="more")
    for _ in range(50):
        if first.run_once() + second.run_once() == 0:
            break
    log = _log(customers)
    assert _chain_rows(customers) == list(chain(log))
    sequences = [s for s, _ in _checkpoints(customers)]
    assert sequences == list(range(1, len(sequences) + 1))


def _witness_inbox(upstream_app, witness_app):
    def apply(event, tracking):
        with acting(Actor("service", witness_app.service), tracking=tracking) as cur:
            witness_app.save(also=[witness_statement(event.source, event.payload, clock.now())])
            assert cur.tracking is _USED

    return Inbox(
        witness_app,
        feed_name(upstream_app.service),
        apply=apply,
        fetch=lambda after, until: checkpoint_events(upstream_app, after, 500, until),
        backoff=(0.0,),
        source=upstream_app.service,
    )


def _witnesses(app, upstream):
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT sequence, position, hash FROM audit_witnesses WHERE upstream = %s"
            " ORDER BY sequence",
            (upstream,),
        )
        return [(r["sequence"], r["position"], bytes(r["hash"])) for r in curs.fetchall()]


def test_another_service_keeps_the_checkpoints_in_order_and_once(customers, billing, fixed_clock):
    keeper = ChainKeeper(customers, every=3, interval=300)
    _register(customers, 4)
    _run(keeper)
    relayed = [
        e for e in integration_events(customers, 0, 1000)["events"] if e["type"] == CHECKPOINT_EVENT
    ]
    assert len(relayed) >= 3
    inbox = _witness_inbox(customers, billing)
    # the second arrives first: the first is read from the feed before it
    assert inbox.receive(feed_envelope(relayed[1])) == "applied"
    assert inbox.stats.gaps_filled == 1
    assert inbox.receive(feed_envelope(relayed[0])) == "duplicate"
    assert inbox.receive(feed_envelope(relayed[1])) == "duplicate"
    assert inbox.catch_up() == len(relayed) - 2
    rows = dict(_chain_rows(customers))
    kept = _witnesses(billing, "customers")
    assert [(s, p) for s, p, _ in kept] == _checkpoints(customers)
    assert all(rows[p] == h for _, p, h in kept)
    assert inbox.last_position() == len(relayed)
    # a checkpoint from another source on this feed is parked, and the feed goes on
    stray = dict(feed_envelope(relayed[-1]), source="orders")
    assert inbox.receive(stray) == "parked"


def _cli(cfg, *args):
    env = dict(os.environ, HOSTLEDGER_DB_PREFIX=cfg.db_prefix)
    return subprocess.run(
        [str(COMMAND), "audit", "verify-chain", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verify_chain_reads_the_databases_and_names_what_was_changed(
    cfg, customers, billing, fixed_clock
):
    keeper = ChainKeeper(customers, every=4, interval=300)
    _register(customers, 6)
    _run(keeper)
    inbox = _witness_inbox(customers, billing)
    inbox.catch_up()
    assert _witnesses(billing, "customers")

    done = _cli(cfg, "customers")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "customers: " in done.stdout and ": OK" in done.stdout
    assert "checkpoints witnessed by billing (" in done.stdout
    # on a terminal, a progress bar counts the events checked
    status, written = on_a_terminal(
        dict(os.environ, HOSTLEDGER_DB_PREFIX=cfg.db_prefix), "audit", "verify-chain", "customers"
    )
    assert status == 0 and "customers chain:" in written and "%|" in written, written

    conninfo = cfg.database.conninfo(cfg.database_name("customers"))
    victim = _log(customers)[5]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE customers_events SET state = state || '\\x20'::bytea"
            " WHERE notification_id = %s",
            (victim.position,),
        )
    done = _cli(cfg, "customers")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"first: position {victim.position}, aggregate {victim.originator_id} "
        f"version {victim.version}: edited" in done.stdout
    ), done.stdout

    every = _cli(cfg)  # all services: the others have nothing chained and say so
    assert every.returncode == 1
    assert "billing: " in every.stdout and "orders: " in every.stdout
