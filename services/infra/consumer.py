"""RabbitMQ side of the consumer: `@handles(upstream, event_type)` service methods.

    class BillingService(ServiceBase):
        app = EventStore(Billing)

        @handles("customers", "CustomerRegistered")
        def open_account(self, event: IntegrationEvent):
            self.app.open_account(event.payload["customer_id"], ...)

All handlers of one service share an `InboxConsumer`: one durable queue per
upstream, consumed in order by a green thread of its own; each delivery goes
through the upstream's `Inbox` (in order, once, gaps filled over RPC, failures
retried then parked). A handler runs as an ordinary nameko worker; its one save
carries the tracking record, or the tracking is recorded alone when it saves
nothing.

Deliveries that are waiting together (the broker sends up to `prefetch_count` ahead)
are taken together: the consumer reads what has arrived, then hands each upstream's
deliveries to its inbox at once, which applies a run of them that follow each other
in one transaction (services.infra.inbox_batches) when their handlers say they
can (`@handles(upstream, event_type, batch=True)`: the handler changes state only through
its one `save()`), and acknowledges them once that transaction committed.

On start, and every `HOSTLEDGER_CATCHUP_INTERVAL` seconds, each inbox
catches up from the upstream's log, so events published while this service was
away (or lost on the way) are applied too.

A `Feed` says what one inbox reads: by default all of an upstream's events; the
checkpoint feeds (`@keeps_chain_witnesses`, services.infra.chainkeeper) read only
an upstream's chain checkpoints, on queues bound to that type alone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import eventlet
import eventlet.semaphore
from eventlet.event import Event
from eventsourcing.persistence import Tracking
from kombu.mixins import ConsumerMixin
from nameko.constants import (
    AMQP_URI_CONFIG_KEY,
    DEFAULT_HEARTBEAT,
    HEARTBEAT_CONFIG_KEY,
)
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension
from nameko.standalone.rpc import ClusterRpcProxy

from contracts.chain import CHAINED_SERVICES, CHECKPOINT_EVENT
from services.infra import context
from services.infra.amqp import declare_inbox_queue, inbox_queue
from services.infra.application import _USED
from services.infra.chainkeeper import feed_envelope, feed_name
from services.infra.failpoints import failpoint
from services.infra.inbox import Inbox, Transient
from services.infra.inbox_batches import Batch
from services.infra.settings import settings
from services.infra.store import CAUSE_HEADER, PARKED_HEADER, TRACKING_HEADER, EventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """What one inbox reads: `source`'s events routed by `binding`, read again over
    `source`'s RPC `method` (gaps, catch-up); `translate` turns a delivered envelope
    into the feed's numbering. `name` names the inbox (its tracking, its queue)."""

    name: str
    source: str
    binding: str
    method: str = "integration_events"
    translate: Callable[[dict], dict] | None = None

    @classmethod
    def everything(cls, upstream: str) -> Feed:
        return cls(upstream, upstream, f"{upstream}.#")

    @classmethod
    def checkpoints(cls, upstream: str) -> Feed:
        return cls(
            feed_name(upstream),
            upstream,
            f"{upstream}.{CHECKPOINT_EVENT}",
            method="chain_checkpoints",
            translate=feed_envelope,
        )


class InboxConsumer(SharedExtension, ProviderCollector, ConsumerMixin):
    prefetch_count = 100
    # how long the consumer looks for more deliveries after one arrived, before it applies
    # what it has: only what is already on its way is taken together, nothing is waited for
    MORE_DELIVERIES_WAIT = 0.001

    def __init__(self):
        super().__init__()
        self.inboxes: dict[str, Inbox] = {}
        self.feeds: dict[str, Feed] = {}
        self.handlers: dict[tuple[str, str], Handles] = {}
        self._gt = None
        self._catchup_gts: list = []
        # per RPC method the feeds are read with (a "lane": an upstream's events, its chain
        # checkpoints), one proxy that the lane's greenlets (deliveries, catch-up) share, one
        # call at a time: a slow lane (an upstream away) holds up no other
        self._rpcs: dict[str, tuple] = {}
        self._rpc_locks: dict[str, eventlet.semaphore.Semaphore] = {}
        self._last_delivery: dict[str, float] = {}
        self._pausing: set[str] = set()  # catch-up lanes between rounds (safe to end)
        self._fetching: set = set()  # green threads waiting for an upstream's log (RPC)
        # deliveries read from the broker and not yet applied, per upstream, in order
        self._waiting: dict[str, list] = {}
        self._applying = False  # the consumer applies deliveries (else: nothing in hand)
        self._stop_event = Event()  # sent once stopping: every pause ends then
        self.should_stop = False

    # -- lifecycle ----------------------------------------------------------------------

    def store(self) -> EventStore:
        """The service's event store (a method: nameko's introspection reads properties)."""
        store = self._store()
        if store is None:
            raise RuntimeError(
                f"{self.container.service_name} handles events but has no EventStore"
            )
        return store

    def _store(self) -> EventStore | None:
        for dep in self.container.dependencies:
            if isinstance(dep, EventStore):
                return dep
        return None

    def start(self):
        if self._store() is None:
            # `nameko run` also runs ServiceBase itself when a service module imports it
            # (a class with entrypoints): that one has no event store and consumes nothing
            return
        # after every setup: the event store's application exists only from then on
        if not self.inboxes:
            self._make_inboxes()
        if self._gt is None and self.inboxes:
            self.should_stop = False
            if self._stop_event.ready():
                self._stop_event = Event()
            self._gt = self.container.spawn_managed_thread(self.run, "inbox-consumer")
            self._catchup_gts = [
                self.container.spawn_managed_thread(
                    partial(self._catch_up_loop, lane), f"catch-up:{lane}"
                )
                for lane in sorted(self._rpc_locks)
            ]

    def _make_inboxes(self):
        cfg = settings()
        app = self.store().app
        for provider in self._providers:
            for feed, event_type in provider.feeds():
                key = (feed.name, event_type)
                if key in self.handlers:
                    raise RuntimeError(f"two handlers for {feed.name}.{event_type}")
                self.handlers[key] = provider
                self.feeds[feed.name] = feed
                self._rpc_locks.setdefault(feed.method, eventlet.semaphore.Semaphore())
        for name in sorted(self.feeds):
            self.inboxes[name] = Inbox(
                app,
                name,
                apply=partial(self.apply_event, name),
                fetch=partial(self._fetch, name),
                attempts=cfg.handler_attempts,
                lock_conninfo=cfg.database.conninfo(cfg.database_name(app.service)),
                source=self.feeds[name].source,
                apply_batch=partial(self.apply_batch, name),
                can_batch=partial(self.can_batch, name),
                pause=self._pause,
            )

    def unregister_provider(self, provider):
        super().unregister_provider(provider)
        if not self._providers:
            # the service is stopping (its last handler's entrypoint stopped): no new
            # deliveries, before its workers are waited for and its event store closes
            self._stop_consuming()

    def _stop_consuming(self):
        """Stop at a safe point: the delivery being applied finishes (its event and its
        tracking record commit together) and is acknowledged; the prefetched ones are not,
        so the broker gives them to another instance once this connection closes; the
        catch-up loops end between two events. Idempotent."""
        self._signal_stop()
        if self._gt is None:
            return
        log.info(
            "taking no more events from %s; the one being applied finishes", ", ".join(self.inboxes)
        )
        for lane, gt in zip(sorted(self._rpc_locks), self._catchup_gts, strict=False):
            if lane in self._pausing or gt in self._fetching:
                # between rounds, or waiting for an upstream's log over RPC (after a
                # broker restart, for as long as the proxy's timeout): nothing to finish
                gt.kill()
            else:
                gt.wait()  # the inbox stops catching up after its current event
        if self._gt in self._fetching or not self._applying:
            # filling a gap (its delivery is not acknowledged, nor applied), or waiting for
            # the broker (or for it to come back) with nothing in hand
            self._gt.kill()
        else:
            self._gt.wait()
        self._gt, self._catchup_gts = None, []
        log.info("no event in flight any more")

    def stop(self):
        self._stop_consuming()
        for inbox in self.inboxes.values():
            inbox.close()
        for lane in list(self._rpcs):
            self._drop_proxy(lane)
        super().stop()

    def kill(self):
        self._signal_stop()
        for gt in [*self._catchup_gts, self._gt]:
            if gt is not None:
                gt.kill()

    def _signal_stop(self) -> None:
        self.should_stop = True
        if not self._stop_event.ready():
            self._stop_event.send(True)

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less when this instance is asked to stop meanwhile; True when
        it is stopping."""
        if not self.should_stop and seconds > 0:
            with eventlet.Timeout(seconds, False):
                self._stop_event.wait()
        return self.should_stop

    # -- kombu --------------------------------------------------------------------------

    @property
    def connection(self):
        from kombu import Connection

        heartbeat = self.container.config.get(HEARTBEAT_CONFIG_KEY, DEFAULT_HEARTBEAT)
        return Connection(self.container.config[AMQP_URI_CONFIG_KEY], heartbeat=heartbeat)

    def get_consumers(self, consumer_cls, channel):
        cfg = settings()
        consumers = []
        for upstream in self.inboxes:
            feed = self.feeds[upstream]
            queue = inbox_queue(cfg, self.container.service_name, upstream, feed.binding)
            declare_inbox_queue(channel.connection, queue)
            consumer = consumer_cls(
                queues=[queue],
                callbacks=[partial(self._on_message, upstream)],
                accept=["json"],
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            consumers.append(consumer)
        return consumers

    def on_connection_error(self, exc, interval):
        log.warning("broker connection lost (%s); retrying in %ss", exc, interval)

    def consume(self, limit=None, timeout=None, safety_interval=1, **kwargs):
        """kombu's loop, taking the deliveries that arrived together before applying them:
        after each one, what is already readable is read too (up to a batch per
        upstream), and then each upstream's deliveries go to its inbox at once."""
        with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
            while not self.should_stop:
                # deliveries may be in hand already: those that came while the consumers
                # were being set up (answers to the set-up's calls are read meanwhile)
                if not self._waiting:
                    try:
                        conn.drain_events(timeout=safety_interval)
                    except TimeoutError:
                        conn.heartbeat_check()
                        continue
                    except OSError:
                        if not self.should_stop:
                            raise
                        break
                while not self.should_stop and self._room_for_more():
                    try:
                        conn.drain_events(timeout=self.MORE_DELIVERIES_WAIT)
                    except TimeoutError:
                        break
                self._apply_waiting()
                yield

    def on_connection_revived(self):
        # what was read on a connection that was lost comes again on the new one
        self._waiting.clear()

    def _room_for_more(self) -> bool:
        return all(len(w) < Inbox.batch_size for w in self._waiting.values())

    def _on_message(self, upstream, body, message):
        if self.should_stop:
            # stopping (kombu still dispatches the prefetched deliveries while it cancels
            # the consumers): left unacknowledged, for the broker to deliver again once this
            # connection closes, to the instance that goes on
            return
        self._last_delivery[upstream] = time.monotonic()
        self._waiting.setdefault(upstream, []).append((body, message))

    def _apply_waiting(self) -> None:
        """Hand each upstream's waiting deliveries to its inbox; acknowledge those it applied
        (or found duplicate, or parked), give back those it could not apply now, and leave
        unacknowledged those left when this instance stopped meanwhile."""
        self._applying = True
        try:
            self._apply_each_upstream()
        finally:
            self._applying = False
            self._waiting.clear()  # left by a failure: delivered again

    def _apply_each_upstream(self) -> None:
        while self._waiting:
            upstream = next(iter(self._waiting))
            deliveries = self._waiting.pop(upstream)
            if self.should_stop:
                continue  # not acknowledged: delivered again, to the instance that goes on
            translate = self.feeds[upstream].translate
            bodies = [translate(b) if translate is not None else b for b, _ in deliveries]
            outcomes, error = self.inboxes[upstream].receive_many(
                bodies, stopping=lambda: self.should_stop
            )
            if outcomes.count("applied") > 1:
                failpoint("consumer.batch_before_ack")  # tests: a crash between commit and ack
            for (body, message), outcome in zip(deliveries, outcomes, strict=False):
                log.debug("%s event %s: %s", upstream, body.get("position"), outcome)
                message.ack()
            rest = deliveries[len(outcomes) :]
            if error is None or not rest:
                continue  # all applied, or stopping: the rest stays unacknowledged
            if isinstance(error, Transient):
                log.warning(
                    "%s event not applied now (%s); it will be redelivered", upstream, error
                )
            else:
                log.error(
                    "unexpected failure consuming a %s event; it will be redelivered",
                    upstream,
                    exc_info=(type(error), error, error.__traceback__),
                )
            for _, message in rest:
                message.requeue()
            self._pause(1.0)

    # -- catch up -----------------------------------------------------------------------

    def _catch_up_loop(self, lane: str):
        interval = settings().catchup_interval
        delay = 0.0
        while not self.should_stop:
            self._pausing.add(lane)
            stopping = self._pause(delay)
            self._pausing.discard(lane)
            if stopping:
                break
            delay = interval
            for upstream, inbox in self.inboxes.items():
                if self.feeds[upstream].method != lane:
                    continue
                if time.monotonic() - self._last_delivery.get(upstream, -1e9) < interval:
                    # deliveries are flowing: the next one shows any gap by itself
                    continue
                try:
                    applied = inbox.catch_up(stopping=lambda: self.should_stop)
                except Exception as exc:  # noqa: BLE001 - logged; the loop tries again
                    log.info("catching up with %s later: %s", upstream, exc)
                    delay = min(delay, 2.0)
                    continue
                if applied:
                    log.info("caught up %d events from %s", applied, upstream)

    # -- the inbox's two hooks -----------------------------------------------------------

    def _fetch(self, upstream: str, after: int, until: int | None) -> dict:
        """Read an upstream's log over RPC. nameko's standalone proxy reads its replies in
        the calling greenlet, so two calls at once on it would read one socket twice:
        deliveries and catch-up take turns (fetches are rare: gaps and catch-up only)."""
        feed = self.feeds[upstream]
        lane = feed.method
        if self.should_stop:
            raise Transient("this instance is stopping")  # no new RPC once stopping
        current = eventlet.getcurrent()
        self._fetching.add(current)
        try:
            return self._fetch_locked(feed, lane, after, until)
        finally:
            self._fetching.discard(current)

    def _fetch_locked(self, feed: Feed, lane: str, after: int, until: int | None) -> dict:
        with self._rpc_locks[lane]:
            if lane not in self._rpcs:
                proxy = ClusterRpcProxy(self.container.config, timeout=30)
                try:
                    self._rpcs[lane] = (proxy, proxy.start())
                except Exception:
                    with contextlib.suppress(Exception):
                        proxy.stop()
                    raise
            try:
                service = getattr(self._rpcs[lane][1], feed.source)
                return getattr(service, lane)(after, 500, until)
            except Exception:
                self._drop_proxy(lane)
                raise

    def _drop_proxy(self, lane: str) -> None:
        proxy, _ = self._rpcs.pop(lane, (None, None))
        if proxy is not None:
            try:
                proxy.stop()
            except Exception:
                log.debug("closing the RPC proxy failed", exc_info=True)

    def apply_event(self, upstream: str, event, tracking, parked_id: int | None = None) -> None:
        """Run the handler of `event` as a worker; with `tracking` its save records the
        position, with `parked_id` it resolves that parked event (staff retry)."""
        provider = self.handlers.get((upstream, event.type))
        if provider is None:
            # nobody here cares about this type; it still counts as applied, in order
            if tracking is not None:
                self.store().app.recorder.record_alone(tracking=tracking)
            return
        self._run_handler(provider, event, tracking, parked_id)

    def can_batch(self, upstream: str, event) -> bool:
        """May `event` be applied in a batch (services.infra.inbox_batches)? When no handler
        here takes it, or its handler says so."""
        provider = self.handlers.get((upstream, event.type))
        return provider is None or provider.batch

    def apply_batch(self, upstream: str, events: list, tracking) -> None:
        """Run the handlers of `events` (which follow each other), in order, each as its own
        worker, and write all they saved with `tracking` (the last event's) in one
        transaction. Raises the first failure; then nothing is written."""
        app = self.store().app
        batch = Batch(app, upstream, [event.position for event in events])
        with app.batches.applying(batch):
            for event in events:
                provider = self.handlers.get((upstream, event.type))
                if provider is not None:
                    self._run_handler(
                        provider, event, Tracking(upstream, event.position), batch=batch
                    )
        failpoint("consumer.batch_before_commit")
        batch.commit(tracking)

    def _run_handler(
        self, provider, event, tracking, parked_id: int | None = None, batch: Batch | None = None
    ) -> None:
        """Run `provider`'s method for `event` as a worker and wait for it; its context
        carries `tracking` (the event's: its save records it, or, in `batch`, saves into the
        batch)."""
        app = self.store().app
        context_data = {
            context.ACTOR_HEADER: context.Actor("service", app.service).header(),
            CAUSE_HEADER: event.ref,
        }
        if event.request_id:  # the handler logs and stores as part of the same request
            context_data[context.REQUEST_ID_HEADER] = event.request_id
        if tracking is not None:
            context_data[TRACKING_HEADER] = (
                f"{tracking.application_name}:{tracking.notification_id}"
            )
        if parked_id is not None:
            context_data[PARKED_HEADER] = str(parked_id)
        done = Event()
        self.container.spawn_worker(
            provider,
            (event,),
            {},
            context_data=context_data,
            handle_result=partial(provider.finish, done, batch),
        )
        _, exc_info = done.wait()
        if exc_info is not None:
            raise exc_info[1]


class Handles(Entrypoint):
    """Entrypoint: this method applies `upstream`'s `event_type` integration events.

    `batch=True`: its events may be applied in a batch with the events before and after
    them (services.infra.inbox_batches): the method changes state only through its one
    `save()` (extra SQL passed to it, or left in `context.current.also`), writes nothing
    itself and has no effect outside this service's database that must not be repeated
    (a failed batch is applied again one event at a time)."""

    inbox_consumer = InboxConsumer()

    def __init__(self, upstream: str, event_type: str, batch: bool = False, **kwargs):
        self.upstream = upstream
        self.event_type = event_type
        self.batch = batch
        super().__init__(**kwargs)

    def setup(self):
        self.inbox_consumer.register_provider(self)

    def feeds(self) -> list[tuple[Feed, str]]:
        """The feeds this entrypoint takes events from, each with the event type."""
        return [(Feed.everything(self.upstream), self.event_type)]

    def stop(self):
        self.inbox_consumer.unregister_provider(self)
        super().stop()

    def finish(self, done: Event, batch: Batch | None, worker_ctx, result, exc_info):
        """Runs in the worker's green thread, before its context is torn down. `batch`: the
        batch the event was applied in, if any."""
        if exc_info is None:
            tracking, also = context.current.tracking, context.current.also
            if batch is not None:
                # in a batch: its tracking is the batch's, written with the batch
                if also:
                    batch.add_also(also)
                    context.current.also = None
            elif (tracking is not None and tracking is not _USED) or also:
                # the handler saved nothing: record the event as applied all the same
                try:
                    self.inbox_consumer.store().app.recorder.record_alone(
                        tracking=None if tracking is _USED else tracking, also=also
                    )
                except Exception as exc:  # noqa: BLE001 - handed to the inbox, which decides
                    exc_info = (type(exc), exc, exc.__traceback__)
        done.send((result, exc_info))
        return result, exc_info


handles = Handles.decorator


class KeepsChainWitnesses(Handles):
    """Entrypoint: this method keeps the chain checkpoints of every other service
    (`ChainCheckpointed`), each upstream's on a checkpoint feed of its own."""

    def __init__(self, **kwargs):
        super().__init__("", CHECKPOINT_EVENT, **kwargs)  # one event at a time

    def feeds(self) -> list[tuple[Feed, str]]:
        own = self.container.service_name
        return [
            (Feed.checkpoints(upstream), CHECKPOINT_EVENT)
            for upstream in CHAINED_SERVICES
            if upstream != own
        ]


keeps_chain_witnesses = KeepsChainWitnesses.decorator
