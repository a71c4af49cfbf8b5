"""A process's session locks share one connection, and still exclude: one applier per
upstream (in a process and across instances), one relay publisher."""

import uuid

import eventlet
import psycopg
import pytest

from services.infra.application import _USED
from services.infra.context import Actor, acting
from services.infra.databases import session_locks
from services.infra.inbox import Inbox
from services.infra.relay import AdvisoryLock, integration_events
from tests.integration.test_inbox import _chain, _opened, _published, _register


def _conninfo(cfg, instance: str) -> str:
    """billing's database, as one instance (process) of billing connects to it."""
    return f"{cfg.database.conninfo(cfg.database_name('billing'))} application_name={instance}"


def _connections(cfg, instance: str) -> int:
    with psycopg.connect(cfg.database.conninfo("postgres")) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (instance,)
        ).fetchone()[0]


class _Appliers:
    """billing's handler of CustomerRegistered, counting how many run at once."""

    def __init__(self, billing):
        self.billing = billing
        self.running = 0
        self.most = 0

    def apply(self, event, tracking):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            eventlet.sleep(0.02)  # long enough for another applier to come in
            with acting(Actor("service", "billing"), cause=event.ref, tracking=tracking) as cur:
                self.billing.open_account(event.payload["customer_id"], event.payload["currency"])
                if cur.tracking is not _USED:
                    self.billing.recorder.record_alone(tracking=cur.tracking)
        finally:
            self.running -= 1


def _inbox(customers, billing, appliers, conninfo):
    return Inbox(
        billing,
        "customers",
        apply=appliers.apply,
        fetch=lambda after, until: integration_events(customers, after, 500, until),
        backoff=(0.0,),
        lock_conninfo=conninfo,
    )


@pytest.mark.parametrize("instances", ["one process", "two processes"])
def test_two_appliers_of_one_upstream_never_apply_at_once(customers, billing, cfg, instances):
    ids = _register(customers, 8)
    first = f"hl-{uuid.uuid4().hex[:8]}"
    second = first if instances == "one process" else f"hl-{uuid.uuid4().hex[:8]}"
    appliers = _Appliers(billing)
    inboxes = [
        _inbox(customers, billing, appliers, _conninfo(cfg, first)),
        _inbox(customers, billing, appliers, _conninfo(cfg, second)),
    ]
    relay_lock = AdvisoryLock(_conninfo(cfg, first), "relay:billing")
    assert relay_lock.try_acquire()
    envelopes = _chain(_published(customers))
    most_connections = 0

    def deliver(inbox):
        # both instances get every event: the queue redelivers, a catch-up reads the log
        return [inbox.receive(env) for env in envelopes]

    try:
        pool = eventlet.GreenPool()
        runs = [pool.spawn(deliver, inbox) for inbox in inboxes]
        while not all(run.dead for run in runs):
            most_connections = max(most_connections, _connections(cfg, first))
            eventlet.sleep(0.01)
        outcomes = [run.wait() for run in runs]
    finally:
        for inbox in inboxes:
            inbox.close()
        relay_lock.release()

    assert appliers.most == 1
    assert [str(c) for c in _opened(billing)] == ids
    for position in range(len(envelopes)):
        assert sorted(o[position] for o in outcomes) == ["applied", "duplicate"]
    # the relay's lock and both inboxes' locks of a process: one connection
    assert most_connections == 1
    assert _connections(cfg, first) == 0  # closed with its last holder


def test_one_relay_publisher_per_service(cfg):
    here, there = f"hl-{uuid.uuid4().hex[:8]}", f"hl-{uuid.uuid4().hex[:8]}"
    publisher = AdvisoryLock(_conninfo(cfg, here), "relay:billing")
    same_process = AdvisoryLock(_conninfo(cfg, here), "relay:billing")
    other_process = AdvisoryLock(_conninfo(cfg, there), "relay:billing")
    outbox = AdvisoryLock(_conninfo(cfg, here), "outbox:billing")
    try:
        assert publisher.try_acquire()
        assert outbox.try_acquire()  # another lock of the same process
        # PostgreSQL would give the same session the lock again: the process does not
        assert not same_process.try_acquire()
        assert not other_process.try_acquire()
        assert publisher.held and not same_process.held
        assert _connections(cfg, here) == 1

        publisher.release()
        assert other_process.try_acquire()
        assert not same_process.try_acquire()
        other_process.release()
        assert same_process.try_acquire()
    finally:
        for lock in (publisher, same_process, other_process, outbox):
            lock.release()
    assert _connections(cfg, here) == 0


def test_a_lost_lock_connection_loses_the_lock_and_its_holder_sees_it(cfg):
    here, there = f"hl-{uuid.uuid4().hex[:8]}", f"hl-{uuid.uuid4().hex[:8]}"
    publisher = AdvisoryLock(_conninfo(cfg, here), "relay:billing")
    other_process = AdvisoryLock(_conninfo(cfg, there), "relay:billing")
    try:
        assert publisher.try_acquire()
        session_locks(_conninfo(cfg, here)).check_interval = 0
        with psycopg.connect(cfg.database.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (here,),
            )
        assert other_process.try_acquire()
        assert not publisher.held
        assert not publisher.try_acquire()  # a new connection, and the lock is taken
        other_process.release()
        assert publisher.try_acquire()
    finally:
        publisher.release()
        other_process.release()
