"""Consumers' queues are quorum queues with a single active consumer
(services/infra/amqp.py), and a classic queue an earlier version declared under the same
name is replaced when nothing consumes it any more. On the shared RabbitMQ, in a vhost
of this test's own."""

from __future__ import annotations

import uuid

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue

from services.infra.amqp import declare_inbox_queue, events_exchange, inbox_queue
from services.infra.settings import Settings
from tests.stack import rabbitmqctl


@pytest.fixture
def vhost():
    name = f"hltest_quorum_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def _queues(vhost: str) -> dict[str, tuple[str, str]]:
    """name: (type, arguments) as the broker lists them."""
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "type", "arguments")
    rows = {}
    for line in out.splitlines():
        if line.strip():
            name, kind, arguments = line.split("\t")
            rows[name] = (kind, arguments)
    return rows


def _cfg() -> Settings:
    return Settings.from_env({})


def test_an_inbox_queue_is_a_quorum_queue_with_one_active_consumer(vhost):
    cfg = _cfg()
    queue = inbox_queue(cfg, "billing", "customers")
    with Connection(f"pyamqp://guest:guest@localhost:5672/{vhost}") as conn:
        declare_inbox_queue(conn.default_channel.connection, queue)
        declare_inbox_queue(conn.default_channel.connection, queue)  # again: nothing changes
        kind, arguments = _queues(vhost)[queue.name]
        assert kind == "quorum"
        assert "x-single-active-consumer" in arguments and "true" in arguments
        # it is bound: an upstream's event reaches it
        with conn.Producer() as producer:
            producer.publish(
                {"type": "CustomerRegistered"},
                exchange=events_exchange(cfg),
                routing_key="customers.CustomerRegistered",
                declare=[events_exchange(cfg)],
            )
        received = []
        with conn.Consumer([queue], callbacks=[lambda body, m: (received.append(body), m.ack())]):
            conn.drain_events(timeout=10)
        assert received == [{"type": "CustomerRegistered"}]


def test_a_classic_queue_of_an_earlier_version_is_replaced_once_unused(vhost):
    cfg = _cfg()
    queue = inbox_queue(cfg, "helpdesk", "customers")
    legacy = Queue(
        queue.name,
        exchange=Exchange(cfg.events_exchange, type="topic", durable=True),
        routing_key="customers.#",
        durable=True,
        queue_arguments={"x-single-active-consumer": True},
    )
    uri = f"pyamqp://guest:guest@localhost:5672/{vhost}"
    with Connection(uri) as old, Connection(uri) as new:
        legacy.bind(old.default_channel).declare()
        assert _queues(vhost)[queue.name][0] == "classic"
        # an instance of the earlier version still consumes it: it stays, and this says so
        consumer = old.Consumer([legacy], callbacks=[lambda body, message: None])
        consumer.consume()
        with pytest.raises(PreconditionFailed):
            declare_inbox_queue(new.default_channel.connection, queue)
        assert _queues(vhost)[queue.name][0] == "classic"
        consumer.cancel()
        # once it has stopped, the quorum queue takes its place
        declare_inbox_queue(new.default_channel.connection, queue)
        assert _queues(vhost)[queue.name][0] == "quorum"
