"""A process asked to stop does not wait out its loops' pauses: nameko's RPC consumer
thread is woken when it is asked to stop consuming, and waits a second at a time for the
broker otherwise (services/infra/amqp.py), and the event store's
loops (services/infra/store.py) end as soon as `stop` is called, whatever they wait for."""

from __future__ import annotations

import contextlib
import inspect

import eventlet
import pytest
from kombu.mixins import ConsumerMixin
from nameko.messaging import QueueConsumer

from services.infra import amqp
from services.infra.store import EventStore

# a guard only: a loop that does not end on `stop` would wait an hour here
GUARD = 30


class _Connection:
    """The broker's side of a consumer thread: a wait for deliveries that lasts its whole
    timeout (nothing arrives), as py-amqp's does."""

    def __init__(self):
        self.waits = []
        self.heartbeat_checks = 0

    def drain_events(self, timeout=None):
        self.waits.append(timeout)
        eventlet.sleep(timeout)
        raise TimeoutError("nothing arrived")

    def heartbeat_check(self):
        self.heartbeat_checks += 1


class _Consumer:
    def __init__(self):
        self.cancelled = False

    def cancel(self):
        eventlet.sleep(0)  # py-amqp waits for the broker's answer here
        self.cancelled = True


class _QueueConsumer(QueueConsumer):
    """nameko's consumer thread, on `_Connection` instead of a broker."""

    def __init__(self, providers):
        super().__init__()
        self.conn = _Connection()
        for provider in providers:
            self.register_provider(provider)
            self._consumers[provider] = _Consumer()
        self._consumers_ready.send(None)

    @contextlib.contextmanager
    def consumer_context(self, **kwargs):
        yield self.conn, None, list(self._consumers.values())

    def start_thread(self, safety_interval):
        self._gt = eventlet.spawn(lambda: list(self.consume(safety_interval=safety_interval)))
        eventlet.sleep(0.05)  # in its wait for the broker
        return self._gt


def test_an_idle_rpc_consumer_waits_for_deliveries_a_second_at_a_time():
    queue_consumer = _QueueConsumer(["rpc"])
    thread = queue_consumer.start_thread(safety_interval=0.02)  # kombu's default is 1
    eventlet.sleep(0.3)
    # each wait lasts its whole interval, then the heartbeat is checked, and it waits again
    waits = queue_consumer.conn.waits
    assert len(waits) > 2 and set(waits) == {0.02}
    assert queue_consumer.conn.heartbeat_checks >= len(waits) - 1
    thread.kill()
    # nameko's thread runs as kombu's does: no shorter wait to look for a stop
    assert QueueConsumer.run is ConsumerMixin.run
    assert inspect.signature(QueueConsumer.consume).parameters["safety_interval"].default == 1


@pytest.mark.parametrize("providers", [["rpc"], ["rpc", "replies"]])
def test_a_consumer_asked_to_stop_is_cancelled_and_its_thread_ends_at_once(providers):
    queue_consumer = _QueueConsumer(providers)
    consumers = dict(queue_consumer._consumers)
    thread = queue_consumer.start_thread(safety_interval=3600)  # without a wake: an hour
    with eventlet.Timeout(GUARD):
        for provider in providers:
            queue_consumer.unregister_provider(provider)
            assert consumers[provider].cancelled
        thread.wait()
    # each stop ended the wait it came in (a wait ended so is a wait that timed out: the
    # thread goes on with the broker as usual), and no wait came after the last
    assert queue_consumer.conn.waits == [3600] * len(providers)
    assert queue_consumer.conn.heartbeat_checks == len(providers)


def test_stopping_twice_at_once_cancels_both_without_a_wait():
    queue_consumer = _QueueConsumer(["rpc", "replies"])
    thread = queue_consumer.start_thread(safety_interval=3600)
    with eventlet.Timeout(GUARD):
        stops = [eventlet.spawn(queue_consumer.unregister_provider, p) for p in ("rpc", "replies")]
        for stop in stops:
            stop.wait()
        thread.wait()


def test_nameko_has_the_prompt_stop_once():
    installed = QueueConsumer.unregister_provider, QueueConsumer.stop, QueueConsumer.consume
    assert installed[0].wakes_consumer and installed[1].wakes_consumer
    amqp.stop_promptly()
    assert (QueueConsumer.unregister_provider, QueueConsumer.stop, QueueConsumer.consume) == (
        installed
    )


class _Lock:
    def __init__(self, free: bool):
        self.free = free

    def try_acquire(self) -> bool:
        return self.free


def _store(monkeypatch) -> EventStore:
    monkeypatch.setattr(EventStore, "IDLE_POLL", 3600.0)
    store = EventStore(object)
    store._running = True
    return store


@pytest.mark.parametrize(
    "what, step, free",
    [
        ("nothing to do: it waits for the log to grow", lambda: 0, True),
        ("another instance holds the lock: it pauses", lambda: 0, False),
        ("its step fails: it pauses before trying again", lambda: 1 / 0, True),
    ],
)
def test_a_log_loop_ends_as_soon_as_the_store_stops(monkeypatch, what, step, free):
    store = _store(monkeypatch)
    store.app = type("App", (), {"service": "test", "close": lambda self: None})()
    loop = eventlet.spawn(store._keep_running, "test", step, _Lock(free))
    eventlet.sleep(0.05)  # the loop is in its wait
    assert not loop.dead, what
    store.stop()
    with eventlet.Timeout(GUARD):
        loop.wait()


def test_a_pause_ends_as_soon_as_the_store_stops(monkeypatch):
    store = _store(monkeypatch)
    pause = eventlet.spawn(store._pause, 3600.0)
    eventlet.sleep(0.05)
    assert not pause.dead
    store.stop()
    with eventlet.Timeout(GUARD):
        pause.wait()
    store._pause(3600.0)  # once stopped, no pause at all
