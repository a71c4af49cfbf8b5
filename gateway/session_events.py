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
answer (kept when the cache may keep it). A request's calls that end sessions or change
what one shows drop what they concern from this instance's cache at once
(`SessionChanges`), before the events do it on every instance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from functools import partial

import eventlet
from kombu import Connection, Queue
from kombu.mixins import ConsumerMixin
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import SharedExtension
from prometheus_client import Counter, Gauge

from contracts.errors import HostledgerError
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


# -- what a call of the customers service ends or changes ----------------------------------
#
# The customers service's events drop what every gateway keeps of a session that ended or
# changed, within a second. The gateway that carried the request does not wait for them:
# each call that ends sessions or changes what a session shows drops what it concerns from
# this instance's cache as soon as it is answered (before the request that made it is
# answered), so the next request through this gateway asks the service again. No other call
# drops anything. Each entry: the method, and what of its arguments (or of who calls it)
# names the sessions concerned, as the event it records will (`event_refs`): a session,
# an account (every session of it and every session it acts in), or None: every session
# (the staff policy; a password reset, whose account the caller does not know).


def _arg(args: tuple, kwargs: dict, index: int, name: str):
    return args[index] if len(args) > index else kwargs.get(name)


def _session(index: int, name: str = "token"):
    def refs(args, kwargs, actor):
        token = _arg(args, kwargs, index, name)
        return (f"session:{token_key(token)}",) if isinstance(token, str) else ()

    return refs


def _account(prefix: str, index: int, name: str):
    def refs(args, kwargs, actor):
        value = _arg(args, kwargs, index, name)
        return (f"{prefix}:{value}",) if value else ()

    return refs


def _callers_account(args, kwargs, actor):
    """The account of the session that calls (two-factor authentication of one's own)."""
    kind, _, ident = (actor or "").partition(":")
    prefix = {"staff": "staff", "client": "customer"}.get(kind)
    return (f"{prefix}:{ident}",) if prefix and ident else ()


def _every_session(args, kwargs, actor):
    return None


ENDS_OR_CHANGES_SESSIONS = {
    # sessions that end: a logout (and the client panels entered from it), leaving a
    # client's panel
    "logout": _session(0),
    "end_impersonation": _session(0),
    # accounts whose other sessions end, or whose sessions end or show something else
    "change_password": _account("customer", 0, "customer_id"),
    "change_staff_password": _account("staff", 0, "staff_id"),
    "remove_user": _account("user", 1, "user_id"),
    "disable_staff": _account("staff", 0, "staff_id"),
    "edit_staff": _account("staff", 0, "staff_id"),
    "edit_own_staff_account": _account("staff", 0, "staff_id"),
    "edit_customer": _account("customer", 0, "customer_id"),
    "edit_profile": _account("customer", 0, "customer_id"),
    "confirm_email_change": _account("customer", 0, "customer_id"),
    "delete_customer": _account("customer", 0, "customer_id"),
    "erase_customer": _account("customer", 0, "customer_id"),
    # a staff member's own two-factor authentication (the staff policy's refusal)
    "confirm_two_factor": _callers_account,
    "disable_two_factor": _callers_account,
    "set_staff_policy": _every_session,
    "confirm_password_reset": _every_session,
}


class SessionChanges:
    """The customers service's proxy for one request: a call named in
    `ENDS_OR_CHANGES_SESSIONS` drops what it concerns from `cache` once it is answered,
    or once its outcome is unknown (it failed otherwise than by the service's refusal);
    every other call is the proxy's own."""

    def __init__(self, proxy, cache: SessionCache, actor: str | None):
        self._proxy = proxy
        self._cache = cache
        self._actor = actor

    def __getattr__(self, method: str):
        target = getattr(self._proxy, method)
        refs_of_call = ENDS_OR_CHANGES_SESSIONS.get(method)
        if refs_of_call is None:
            return target
        return partial(self._call, target, refs_of_call)

    def _call(self, target, refs_of_call, *args, **kwargs):
        try:
            answer = target(*args, **kwargs)
        except HostledgerError:
            raise  # refused: nothing changed
        except BaseException:
            self._drop(refs_of_call(args, kwargs, self._actor))
            raise
        self._drop(refs_of_call(args, kwargs, self._actor))
        return answer

    def _drop(self, refs) -> None:
        if refs is None:
            self._cache.clear()
        elif refs:
            self._cache.evict(refs)
