"""A test stack holds few PostgreSQL connections by design, and refuses to start when the
server has no room for it, rather than failing halfway with "too many clients"."""

import eventlet
import psycopg
import pytest

from services.infra.application import pool_limits
from services.infra.settings import SERVICES
from tests.stack import Stack, StackWontFit, connection_budget, rabbitmqctl


def test_a_stack_that_would_not_fit_is_refused_before_it_starts_anything():
    # a pool this large cannot fit any PostgreSQL with the default max_connections
    stack = Stack(extra_env={"HOSTLEDGER_DB_POOL_SIZE": "1000"})
    with pytest.raises(StackWontFit, match="connections free; a test stack may need"):
        stack.up()
    assert stack.procs == {}
    with psycopg.connect(stack.settings.database.conninfo("postgres")) as conn:
        assert not conn.execute(
            "SELECT 1 FROM pg_database WHERE starts_with(datname, %s)",
            (stack.settings.db_prefix,),
        ).fetchone()
    assert stack.vhost not in rabbitmqctl("list_vhosts", "name").split()


def test_a_stack_stays_within_its_budget_idle_and_under_a_burst(stack):
    _, pool_max = pool_limits(stack.settings)
    per_service = pool_max + 2  # its pool, its LISTEN connection, its session locks
    budget = connection_budget(stack.settings)
    assert budget <= 40  # what docs/benchmarks.md promises for the default settings

    def within_budget(counts):
        assert set(counts) <= set(SERVICES)
        for service, count in counts.items():
            if service != "mailgateway":  # its mail-in process: one per worker thread
                assert count <= per_service, counts
        assert sum(counts.values()) <= budget, counts

    within_budget(stack.connections())

    most = {}
    running = True

    def sample():
        while running:
            counts = stack.connections()
            if sum(counts.values()) > sum(most.values()):
                most.clear()
                most.update(counts)
            eventlet.sleep(0.05)

    stack.admin_token  # noqa: B018 - logged in once, before the burst
    sampler = eventlet.spawn(sample)
    try:
        # 20 registrations at once: every service projects, relays and consumes
        list(eventlet.GreenPool(20).imap(lambda _: stack.register_customer(), range(20)))
        eventlet.sleep(2)
    finally:
        running = False
        sampler.wait()
    within_budget(most)
