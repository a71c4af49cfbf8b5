"""A process asked to stop does not wait out its loops' pauses: nameko's RPC consumer
looks often whether it was cancelled (services/infra/amqp.py), and the event store's
loops (services/infra/store.py) end as soon as `stop` is called, whatever they wait for."""

from __future__ import annotations

import eventlet
import pytest
from nameko.messaging import QueueConsumer

from services.infra import amqp
from services.infra.store import EventStore

# a guard only: a loop that does not end on `stop` would wait an hour here
GUARD = 30


def test_the_rpc_consumer_waits_for_deliveries_a_tenth_of_a_second_at_a_time():
    seen = {}

    class Connection:
        connection_errors = channel_errors = ()

    class Limit:
        def can_consume(self, tokens):
            return True

    class Consumer:
        should_stop = False
        restart_limit = Limit()
        connection = Connection()

        def consume(self, limit=None, **kwargs):
            seen.update(kwargs)
            self.should_stop = True
            return []

    QueueConsumer.run(Consumer())
    assert seen["safety_interval"] == amqp.STOP_CHECK_INTERVAL < 1


def test_nameko_has_the_prompt_stop_once():
    installed = QueueConsumer.run
    assert installed.looks_often
    amqp.stop_promptly()
    assert QueueConsumer.run is installed


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
