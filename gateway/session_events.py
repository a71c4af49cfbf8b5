"""Each gateway instance's own subscription to the customers service's events, which
keeps its session cache (gateway/session_cache.py) correct.

Every instance needs every event, so each has its own queue: exclusive to its
connection and deleted with it, bound to all of the customers service's events (the
services' inbox queues are shared by their instances and give each event to one). A
queue that did not exist missed what was published before it: the cache is trusted only
from the moment the queue is consumed (`on_consume_ready`), empty, and stops being
trusted the moment the connection is lost; the connection is checked by heartbeats of a
few seconds (HEARTBEAT), so a broker that vanishes without closing it is noticed too.

`resolve` is what a request calls: the cached principal, or the customers service's
answer (kept when the cache may keep it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid

import eventlet
from kombu import Connection, Queue
from kombu.mixins import ConsumerMixin
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import SharedExtension
from prometheus_client import Counter, Gauge

from gateway.session_cache import SessionCache, token_key
from services.infra.amqp import events_exchange
from services.infra.settings import settings

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "hostledger_gateway_session_lookups_total",
    "Sessions the gateway checked, by where the answer came from: `cache` (no RPC),"
    " `asked` (customers.session_entry, then kept), `uncached` (resolve_session: the"
    " cache is off or its event subscription is not up).",
    ["source"],
)
TRUSTED = Gauge(
    "hostledger_gateway_session_cache_trusted",
    "1 while this gateway's session cache follows the customers service's events (its"
    " queue consumed, no event missed since); 0 while every request asks the service.",
)

HEARTBEAT = 4  # seconds: a dead connection is noticed within about two of these


class SessionEvents(SharedExtension, ConsumerMixin):
    def __init__(self):
        super().__init__()
        self.cache = SessionCache(0)
        self.should_stop = False
        self._gt = None
        self.queue_name = ""
        self._connection = None

    def setup(self):
        TRUSTED.set_function(lambda: 1 if self.cache.usable else 0)
        cfg = settings()
        self.cache = SessionCache(cfg.session_cache_seconds, cfg.session_cache_size)
        self.queue_name = f"{cfg.events_exchange}.gateway.sessions.{uuid.uuid4().hex[:12]}"

    def start(self):
        if self.cache.enabled and self._gt is None:
            self.should_stop = False
            self._gt = self.container.spawn_managed_thread(self._run, "session-events")

    def stop(self):
        self.should_stop = True
        self.cache.disconnected()
        if self._gt is not None:
            self._gt.kill()
            self._gt = None

    kill = stop

    # -- kombu ----------------------------------------------------------------------------

    @property
    def connection(self):
        return Connection(
            self.container.config[AMQP_URI_CONFIG_KEY],
            heartbeat=HEARTBEAT,
            transport_options={
                "client_properties": {
                    "connection_name": f"session events pid={os.getpid()} queue={self.queue_name}"
                }
            },
        )

    def get_consumers(self, consumer_cls, channel):
        queue = Queue(
            self.queue_name,
            exchange=events_exchange(settings()),
            routing_key="customers.#",
            durable=False,
            exclusive=True,
            auto_delete=True,
        )
        consumer = consumer_cls(queues=[queue], callbacks=[self._on_message], accept=["json"])
        consumer.qos(prefetch_count=200)
        return [consumer]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.cache.connected()
        log.info("session cache: following the customers service's events on %s", self.queue_name)

    def on_connection_error(self, exc, interval):
        self.cache.disconnected()
        log.warning(
            "session cache off until the broker is back (%s); retrying in %ss", exc, interval
        )

    def on_iteration(self):
        # heartbeats go out (and a dead connection is noticed) while events flow too
        connection = getattr(self, "_connection", None)
        if connection is not None:
            try:
                connection.heartbeat_check()
            except Exception:
                self.cache.disconnected()
                raise

    @contextlib.contextmanager
    def Consumer(self):
        """kombu's, remembering the connection (heartbeats) and distrusting the cache the
        moment it ends, however it ends."""
        with ConsumerMixin.Consumer(self) as (connection, channel, consumers):
            self._connection = connection
            try:
                yield connection, channel, consumers
            finally:
                self._connection = None
                self.cache.disconnected()

    def _on_message(self, body, message):
        try:
            if isinstance(body, dict):
                outcome = self.cache.apply(body)
                if outcome == "gap":
                    log.warning(
                        "session cache emptied: customers events were missed before %s",
                        body.get("position"),
                    )
        except Exception:
            log.exception("session cache emptied: an event could not be read")
            self.cache.clear()
        message.ack()

    def _run(self):
        delay = 0.5
        while not self.should_stop:
            try:
                for _ in self.consume(limit=None):
                    delay = 0.5
            except Exception as exc:  # noqa: BLE001 - logged; tried again
                if self.should_stop:
                    break
                log.warning("session cache off: lost the broker (%s); reconnecting", exc)
            self.cache.disconnected()
            if not self.should_stop:
                eventlet.sleep(delay)
                delay = min(delay * 2, 5.0)


def resolve(services, token: str) -> dict:
    """Who holds `token` (customers.resolve_session's answer); Unauthorized when not a
    live session. From the cache when it holds the session, else asked (and kept)."""
    cache = getattr(services, "sessions", None)
    if cache is None or not cache.usable:
        LOOKUPS.labels("uncached").inc()
        return services.customers.resolve_session(token)
    key = token_key(token)
    principal = cache.get(key)
    if principal is not None:
        LOOKUPS.labels("cache").inc()
        return principal
    ticket = cache.ticket()
    try:
        entry = services.customers.session_entry(token)
    except Exception as exc:
        # a customers service of an earlier release (during an upgrade): not kept
        if "MethodNotFound" not in (type(exc).__name__, getattr(exc, "exc_type", None)):
            raise
        LOOKUPS.labels("uncached").inc()
        return services.customers.resolve_session(token)
    cache.put(key, entry, ticket)
    LOOKUPS.labels("asked").inc()
    return entry["principal"]


def forget(services, token: str) -> None:
    """Drop what this instance keeps of `token`'s session (its holder just changed
    something): the next request asks the service, and an answer asked before now is not
    kept."""
    cache = getattr(services, "sessions", None)
    if cache is not None:
        cache.evict((f"session:{token_key(token)}",))
