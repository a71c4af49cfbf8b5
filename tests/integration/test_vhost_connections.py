"""A test that cuts its stack's broker connections cuts only those of its own vhost: other
runs share the broker (tests/stack.py, `Stack.close_connections`). On a RabbitMQ node of
this test's own, with a second vhost standing for another run."""

from __future__ import annotations

import time

import pytest
from kombu import Connection

from tests.broker import PrivateBroker
from tests.stack import Stack


@pytest.fixture(scope="module")
def broker():
    with PrivateBroker() as node:
        yield node


def _connections(broker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in broker.ctl("list_connections", "vhost", "state").splitlines()[1:]:
        vhost, state = row.split("\t")
        if state == "running":
            counts[vhost] = counts.get(vhost, 0) + 1
    return counts


def test_closing_a_stacks_connections_leaves_other_vhosts_alone(broker):
    stack = Stack(broker=broker)  # not started: its vhost and its broker are enough here
    other = "another_run"
    for vhost in (stack.vhost, other):
        broker.add_vhost(vhost)
    ours = [Connection(broker.amqp_uri(stack.vhost)) for _ in range(3)]
    theirs = [Connection(broker.amqp_uri(other)) for _ in range(2)]
    try:
        for conn in ours + theirs:
            conn.connect()
        assert _connections(broker) == {stack.vhost: 3, other: 2}

        assert stack.close_connections() == 3

        deadline = time.monotonic() + 30
        while _connections(broker).get(stack.vhost) and time.monotonic() < deadline:
            for conn in ours:  # the client reads the broker's close
                try:
                    conn.drain_events(timeout=0.1)
                except Exception:  # closed, or nothing to read yet
                    pass
        assert _connections(broker) == {other: 2}
        for conn in theirs:  # the other run's connections still work
            conn.default_channel.queue_declare("still-here", auto_delete=True)
    finally:
        for conn in ours + theirs:
            conn.release()
