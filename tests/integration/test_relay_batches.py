"""The relay publishes a batch of events and awaits RabbitMQ's confirms once for the batch;
its position moves only after every event of the batch was confirmed, and a stale idea of
its position can make it publish again, never skip."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from services.infra.relay import ConfirmedPublisher, Relay


class _Sink:
    """publish_all that keeps what it was given, or fails while `failing`."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.failing = False

    def __call__(self, envelopes):
        if self.failing:
            raise ConnectionError("the broker is away")
        self.batches.append([e["position"] for e in envelopes])


def _published(sink) -> list[int]:
    return [p for batch in sink.batches for p in batch]


def _accounts(billing, n: int) -> None:
    for _ in range(n):
        billing.open_account(uuid.uuid4(), "EUR")


def test_one_call_per_batch_and_the_position_after_it(billing):
    sink = _Sink()
    relay = Relay(billing, sink, batch_size=500)
    _accounts(billing, 3)
    assert relay.run_once() == billing.recorder.max_notification_id()
    assert len(sink.batches) == 1
    assert relay.position()[0] == billing.recorder.max_notification_id()
    first = _published(sink)
    assert first and first == sorted(first)
    assert relay.run_once() == 0


def test_a_batch_not_confirmed_is_published_again_not_skipped(billing):
    sink = _Sink()
    relay = Relay(billing, sink)
    _accounts(billing, 2)
    relay.run_once()
    before = relay.position()
    _accounts(billing, 2)
    sink.failing = True
    with pytest.raises(ConnectionError):
        relay.run_once()
    assert relay.position() == before  # nothing recorded for the failed batch
    sink.failing = False
    assert relay.run_once() > 0
    published = _published(sink)
    assert published == sorted(set(published))  # each once, in order
    assert relay.position()[0] == billing.recorder.max_notification_id()


def test_a_position_moved_by_another_instance_is_asked_again(billing):
    mine, theirs = _Sink(), _Sink()
    relay, other = Relay(billing, mine), Relay(billing, theirs)
    _accounts(billing, 1)
    relay.run_once()  # it knows where it left the position
    _accounts(billing, 1)
    other.run_once()  # another instance (after a lock change) published the next ones
    # a second instance resets the position, as staff would to republish
    with billing.datastore.transaction(commit=True) as curs:
        curs.execute("UPDATE relay_position SET scanned = 0, published = NULL")
    _accounts(billing, 1)
    relay.run_once()  # from its stale idea: its update finds the position moved
    assert relay.position()[0] == 0
    relay.run_once()  # asks the database: the whole log again (consumers skip repeats)
    assert relay.position()[0] == billing.recorder.max_notification_id()
    assert relay.position()[1] == _published(mine)[-1]  # the last one it published
    first = _published(mine)[0]
    assert _published(mine).count(first) == 2  # published again from the start, none skipped


def test_confirmed_publisher_sends_every_event_in_order(cfg):
    name = f"hl-relay-test-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=False, auto_delete=True)
    with Connection(cfg.amqp_uri) as conn:
        queue = Queue(name, exchange=exchange, routing_key="billing.#", auto_delete=False)
        queue(conn.channel()).declare()
        publisher = ConfirmedPublisher(cfg.amqp_uri, exchange)
        try:
            envelopes = [
                {"source": "billing", "type": "PaymentReceived", "position": p, "request_id": None}
                for p in range(1, 301)
            ]
            publisher(envelopes[:120])
            publisher(envelopes[120:])
            assert publisher._sent == 300
            assert not publisher._unconfirmed  # confirmed before each call returned
            channel = conn.channel()
            got = []
            while (message := queue(channel).get(no_ack=True)) is not None:
                got.append((message.payload["position"], message.properties["message_id"]))
            assert got == [(p, f"billing:{p}") for p in range(1, 301)]
        finally:
            publisher.close()
            queue(conn.channel()).delete()
