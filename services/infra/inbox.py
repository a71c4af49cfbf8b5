"""The consumer: each upstream's integration events, applied in position order, once.

`Inbox` is the rule, free of the transport: `receive(envelope)` skips a duplicate,
fills a gap from the upstream's log (`fetch`), applies the event with its tracking
record in the same transaction as the handler's events, retries a failing handler
and then parks the event (with its tracking record, so the stream goes on) where
staff can list and retry it. `receive_many(envelopes)` does the same for the
deliveries waiting together, and a run of events that follow each other (there, or
read from the upstream's log) is applied as one batch: one transaction with the
tracking record of its last event (`apply_batch`, services.infra.inbox_batches);
when the batch fails, its events are applied one at a time as above. Errors of the
infrastructure (database or broker down, upstream not answering) are raised as
`Transient`: the transport requeues and the event is applied later.
`InboxConsumer` (services.infra.consumer) feeds it from RabbitMQ.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import amqp.exceptions
import eventlet
import kombu.exceptions
import psycopg
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.persistence import InterfaceError as EsInterfaceError
from eventsourcing.persistence import OperationalError as EsOperationalError
from marshmallow import ValidationError

from contracts.envelope import EnvelopeSchema, IntegrationEvent
from contracts.errors import Unavailable
from contracts.registry import payload_schema
from services.infra import context
from services.infra.parking import (  # noqa: F401 - also imported from here
    PARKED_TABLE,
    get_parked,
    list_parked,
    note_failed_retry,
    park_statement,
    resolve_statement,
    storable_position,
)

log = logging.getLogger(__name__)


class Transient(Exception):
    """The event could not be applied now for a reason outside it; try again later."""


class PoisonEvent(Exception):
    """The event itself is wrong (it breaks its contract); retrying cannot help."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    EsOperationalError,
    EsInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    ConnectionError,
    socket.timeout,
    eventlet.Timeout,
    Transient,
    # the broker away (a restart): py-amqp's connection errors, kombu giving up reconnecting
    amqp.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    # another service answered "try again" (services.infra.amqp)
    Unavailable,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    # nameko's UnknownService / RpcTimeout: the upstream is not there right now
    return type(exc).__name__ in ("UnknownService", "RpcTimeout", "RpcConnectionError")


def load_event(raw: dict) -> IntegrationEvent:
    """Validate an envelope and its payload against the contract; PoisonEvent when wrong."""
    try:
        data = EnvelopeSchema().load(raw)
    except ValidationError as err:
        raise PoisonEvent(f"envelope breaks the contract: {err.messages}") from None
    schema_cls = payload_schema(data["source"], data["type"])
    payload = data["payload"]
    if schema_cls is not None:
        try:
            payload = schema_cls().load(payload)
        except ValidationError as err:
            raise PoisonEvent(
                f"{data['source']}.{data['type']} payload breaks the contract: {err.messages}"
            ) from None
    data["payload"] = payload
    return IntegrationEvent(**data)


@dataclass
class InboxStats:
    applied: int = 0
    duplicates: int = 0
    gaps_filled: int = 0
    parked: int = 0
    retried: int = 0
    # batches applied in one transaction (their events count in `applied`), and batches
    # applied one event at a time instead: not events, so not in `to_dict`
    batches: int = 0
    batches_failed: int = 0

    def to_dict(self) -> dict:
        """The counts of events, by outcome."""
        counts = dict(vars(self))
        counts.pop("batches")
        counts.pop("batches_failed")
        return counts


class Inbox:
    """In-order, once-only application of one upstream's events to one application.

    `apply(event, tracking)` must run the handler so that its save carries `tracking`
    (or record `tracking` alone when it saves nothing). `fetch(after, until)` reads
    the upstream's published events (its `integration_events` RPC). `upstream` names
    the stream here (tracking, lock, parked events); `source`, when it is another name,
    is the service its events come from (a feed of some of an upstream's events,
    numbered on its own: services.infra.chainkeeper).

    `apply_batch(events, tracking)`, when given, applies several events that follow each
    other in one transaction carrying `tracking` (the last one's), or raises and writes
    nothing; `can_batch(event)` says which events may take part. `pause(seconds)` waits
    between attempts of a failing handler (a process that stops ends the wait).
    """

    # the most events applied in one transaction
    batch_size = 100

    def __init__(
        self,
        app,
        upstream: str,
        apply: Callable[[IntegrationEvent, Tracking], None],
        fetch: Callable[[int, int | None], dict],
        attempts: int = 3,
        backoff: tuple[float, ...] = (0.1, 0.5, 2.0),
        lock_conninfo: str | None = None,
        source: str | None = None,
        apply_batch: Callable[[list[IntegrationEvent], Tracking], None] | None = None,
        can_batch: Callable[[IntegrationEvent], bool] | None = None,
        pause: Callable[[float], None] | None = None,
    ):
        self.app = app
        self.upstream = upstream
        self.source = source or upstream
        self.apply = apply
        self.fetch = fetch
        self.apply_batch = apply_batch
        self.can_batch = can_batch or (lambda event: True)
        self.pause = pause or eventlet.sleep
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.stats = InboxStats()
        self._local_lock = eventlet.semaphore.Semaphore()
        self._lock_conninfo = lock_conninfo
        self._locks = None  # databases.SessionLocks, from the first lock on

    # -- position -----------------------------------------------------------------------

    def last_position(self) -> int:
        return self.app.recorder.max_tracking_id(self.upstream) or 0

    # -- entry points -------------------------------------------------------------------

    def receive(self, raw: dict, stopping: Callable[[], bool] | None = None) -> str:
        """Apply one delivered envelope (and any gap before it). Returns what happened.

        A delivered envelope is trusted as it is only when it follows the last one
        applied. Otherwise (a gap, or an envelope that breaks its contract) the
        upstream's own log decides: the gap is filled from it, and the event at that
        position is taken from it too; an envelope whose position is not in the log
        is parked without moving the position, so a stray message cannot stall the
        stream.
        """
        outcomes, error = self.receive_many([raw], stopping)
        if error is not None:
            raise error
        return outcomes[0]

    def receive_many(
        self, raws: list, stopping: Callable[[], bool] | None = None
    ) -> tuple[list[str], Exception | None]:
        """Apply delivered envelopes in the order given, each as `receive` does; those that
        follow each other go in batches. Returns what happened to each of the first ones
        and the error that kept the next one from being applied now (the transport gives
        those back), or None: all were applied, or the process is stopping (`stopping`
        says so, asked between two batches or events once something was applied) and the
        rest is left for later."""
        outcomes: list[str] = []

        def stop_now() -> bool:
            return bool(outcomes) and stopping is not None and stopping()

        try:
            # a process that is stopping does not wait for another instance's applier
            with self._locked(give_up=stopping):
                last = self.last_position()
                run: list[tuple[IntegrationEvent, dict]] = []
                for raw in raws:
                    event = self._next_in_line(raw, last)
                    if event is not None:
                        run.append((event, raw))
                        last = event.position
                        continue
                    if not self._apply_run(run, outcomes, stop_now) or stop_now():
                        return outcomes, None
                    run = []
                    outcomes.append(self._receive_locked(raw))
                    last = self.last_position()
                self._apply_run(run, outcomes, stop_now)
        except Exception as exc:  # noqa: BLE001 - handed to the transport with what was done
            return outcomes, exc
        return outcomes, None

    def _next_in_line(self, raw, last: int) -> IntegrationEvent | None:
        """The event of `raw` when it is a valid envelope right after position `last`."""
        if not isinstance(raw, dict) or raw.get("source") != self.source:
            return None
        position = raw.get("position")
        if not isinstance(position, int) or isinstance(position, bool) or position <= last:
            return None
        if raw.get("previous_position") != last:
            return None
        try:
            event = load_event(raw)
        except PoisonEvent:
            return None
        return event if event.previous_position == last else None

    def _receive_locked(self, raw) -> str:
        """`receive`, under the applier lock, for an envelope that does not simply follow."""
        try:
            event, poison = load_event(raw), None
        except PoisonEvent as exc:
            event, poison = None, exc
        position = raw.get("position") if isinstance(raw, dict) else None
        if not isinstance(position, int) or isinstance(position, bool):
            self._park(raw, None, str(poison), attempts=1, track=False)
            return "parked"
        if raw.get("source") != self.source:
            reason = f"an event of {raw.get('source')!r} on the queue of {self.upstream!r}"
            self._park(raw, None, reason, attempts=1, track=False)
            return "parked"
        last = self.last_position()
        if position <= last:
            self.stats.duplicates += 1
            return "duplicate"
        if poison is not None or event.previous_position != last:
            self._fill_gap(last, position - 1)
            if position <= self.last_position():
                self.stats.duplicates += 1
                return "duplicate"
            original = self._fetch_one(position)
            if original is None:
                reason = f"position {position} is not in the log of {self.upstream}"
                if poison is not None:
                    reason += f"; {poison}"
                self._park(raw, position, reason, attempts=1, track=False)
                return "parked"
            raw = original
            try:
                event = load_event(raw)
            except PoisonEvent as exc:
                self._park(raw, position, str(exc), attempts=1, track=True)
                return "parked"
        return self._apply_one(event, raw)

    def catch_up(self, stopping: Callable[[], bool] | None = None) -> int:
        """Apply everything the upstream published after our position; how many were applied.
        `stopping`: asked between events; once it says True, the rest is left for later
        (the position stays at the last event applied: a process stopping ends here)."""
        with self._locked(give_up=stopping):
            before = self.stats.applied + self.stats.parked
            self._fill_gap(self.last_position(), None, stopping)
            return self.stats.applied + self.stats.parked - before

    # -- the rule -----------------------------------------------------------------------

    def _read_log(self, after: int, until: int | None) -> dict:
        try:
            return self.fetch(after, until)
        except Exception as exc:
            if is_transient(exc):
                raise Transient(f"{self.upstream} log unreachable: {exc}") from exc
            raise

    def _fetch_one(self, position: int) -> dict | None:
        for raw in self._read_log(position - 1, position).get("events") or []:
            if raw.get("position") == position:
                return raw
        return None

    def _fill_gap(
        self, after: int, until: int | None, stopping: Callable[[], bool] | None = None
    ) -> None:
        """Apply the upstream's events after `after` (up to `until`) from its log, each run
        of them in batches."""
        last = self.last_position()
        while until is None or after < until:
            if stopping is not None and stopping():
                return
            answer = self._read_log(after, until)
            # what the position passed while the page was asked for (the upstream may
            # have been slow or away for long; a tool that skips events may have moved
            # it) is passed over, not tried event by event
            last = max(last, self.last_position())
            events = answer.get("events") or []
            run: list[tuple[IntegrationEvent, dict]] = []
            for raw in events:
                position = raw.get("position")
                if not isinstance(position, int) or position <= last:
                    continue
                try:
                    event = load_event(raw)
                except PoisonEvent as exc:
                    if not self._fill_run(run, stopping) or (stopping is not None and stopping()):
                        return
                    run = []
                    self._park(raw, position, str(exc), attempts=1, track=True)
                    last = position
                    continue
                run.append((event, raw))
                last = position
            if not self._fill_run(run, stopping):
                return
            scanned = answer.get("scanned", after)
            if not events or scanned <= after:
                break
            after = max(scanned, last)

    def _fill_run(self, run: list, stopping: Callable[[], bool] | None) -> bool:
        done: list[str] = []
        try:
            return self._apply_run(run, done, stopping)
        finally:
            self.stats.gaps_filled += len(done)

    def _apply_run(
        self,
        run: list[tuple[IntegrationEvent, dict]],
        outcomes: list[str],
        stopping: Callable[[], bool] | None = None,
    ) -> bool:
        """Apply events that follow each other, in order: those that can go together in
        batches of up to `batch_size`, the others (and the events of a batch that failed)
        one at a time. Appends what happened to each to `outcomes`; False when `stopping`
        said to leave the rest."""
        i = 0
        while i < len(run):
            if stopping is not None and stopping():
                return False
            chunk = []
            if self.apply_batch is not None:
                while (
                    i + len(chunk) < len(run)
                    and len(chunk) < self.batch_size
                    and self.can_batch(run[i + len(chunk)][0])
                ):
                    chunk.append(run[i + len(chunk)])
            passed = 0
            if len(chunk) > 1:
                if self._apply_together(chunk):
                    outcomes.extend(["applied"] * len(chunk))
                    i += len(chunk)
                    continue
                # what the position passed meanwhile (written by something else than this
                # applier: a tool that skips events) is not applied again
                passed = self.last_position()
            else:
                chunk = run[i : i + 1]
            for n, (event, raw) in enumerate(chunk):
                if n and stopping is not None and stopping():
                    return False
                if event.position <= passed:
                    self.stats.duplicates += 1
                    outcomes.append("duplicate")
                else:
                    outcomes.append(self._apply_one(event, raw))
                i += 1
        return True

    def _apply_together(self, chunk: list[tuple[IntegrationEvent, dict]]) -> bool:
        """One transaction for the whole chunk; False (nothing written) when it failed for
        a reason of its own (a handler failed, a conflict at commit)."""
        first, last = chunk[0][0], chunk[-1][0]
        try:
            self.apply_batch([event for event, _ in chunk], Tracking(self.upstream, last.position))
        except Exception as exc:
            if is_transient(exc):
                raise Transient(str(exc)) from exc
            self.stats.batches_failed += 1
            log.warning(
                "a batch of %d %s events (positions %d to %d) failed (%r);"
                " applying them one at a time",
                len(chunk),
                self.upstream,
                first.position,
                last.position,
                exc,
            )
            return False
        self.stats.applied += len(chunk)
        self.stats.batches += 1
        return True

    def _apply_one(self, event: IntegrationEvent, raw: dict) -> str:
        # what is logged about it (failures, parking) names the request that stored it
        with context.tracing(event.request_id):
            return self._apply_tracked(event, raw)

    def _apply_tracked(self, event: IntegrationEvent, raw: dict) -> str:
        tracking = Tracking(self.upstream, event.position)
        error: BaseException | None = None
        for attempt in range(self.attempts):
            try:
                self.apply(event, tracking)
            except IntegrityError as exc:
                if event.position <= self.last_position():
                    self.stats.duplicates += 1
                    return "duplicate"
                error = exc
            except BaseException as exc:
                if is_transient(exc):
                    raise Transient(str(exc)) from exc
                if isinstance(exc, PoisonEvent):
                    error = exc
                    break
                if not isinstance(exc, Exception):
                    raise
                error = exc
            else:
                self.stats.applied += 1
                return "applied"
            log.warning(
                "handling %s (%s) failed, attempt %d of %d: %r",
                event.ref,
                event.type,
                attempt + 1,
                self.attempts,
                error,
            )
            if attempt + 1 < self.attempts and self.pause(
                self.backoff[min(attempt, len(self.backoff) - 1)]
            ):
                # the process is stopping: tried again later (here or elsewhere), not
                # parked for want of the attempts left
                raise Transient(f"stopping while handling {event.ref} failed: {error!r}")
        self._park(raw, event.position, _describe(error), attempts=self.attempts, track=True)
        return "parked"

    def _park(self, raw, position: int | None, error: str, attempts: int, track: bool) -> None:
        """Record the event as parked (and, with `track`, its position as passed). Nothing in
        the event can make this fail: what PostgreSQL cannot store is replaced in the copy
        staff see, and the original is kept as escaped JSON."""
        log.error("parking %s event at position %s: %s", self.upstream, position, error)
        fits = storable_position(position)
        if position is not None and fits is None:
            error = f"{error}; its position {position} is out of range"
        also = [
            park_statement(
                self.upstream,
                fits,
                raw.get("type") if isinstance(raw, dict) else None,
                raw,
                error,
                attempts,
            )
        ]
        tracking = Tracking(self.upstream, fits) if track and fits else None
        try:
            try:
                self.app.recorder.record_alone(tracking=tracking, also=also)
            except IntegrityError:
                # the failing handler got its first save (with the tracking) through before
                # it failed: the position is passed, but staff must still see the event
                self.app.recorder.record_alone(also=also)
        except Exception as exc:
            if is_transient(exc):
                raise Transient(str(exc)) from exc
            raise
        self.stats.parked += 1

    # how long an applier waits for another instance's applier before the event counts
    # as not applicable now (Transient: redelivered later)
    LOCK_WAIT = 60.0

    def locked(self):
        """Hold this upstream's applier lock (a staff retry of one of its parked events
        takes it as a delivery does); Transient when it cannot be taken in time."""
        return self._locked()

    @contextmanager
    def _locked(self, give_up: Callable[[], bool] | None = None) -> Iterator[None]:
        """One applier per upstream: in this process, and across instances of the service
        (a session advisory lock, on the process's one lock connection to its database)."""
        with self._local_lock:
            if self._lock_conninfo is None:
                yield
                return
            locks = self._lock_connection()
            key = f"inbox:{self.app.service}:{self.upstream}"
            try:
                locks.lock(key, self, timeout=self.LOCK_WAIT, give_up=give_up)
            except (psycopg.Error, TimeoutError) as exc:
                raise Transient(f"cannot take the inbox lock: {exc}") from exc
            try:
                yield
            finally:
                locks.unlock(key, self)

    def _lock_connection(self):
        """This process's session locks on the service's database (shared, see
        databases.SessionLocks)."""
        if self._locks is None:
            from services.infra.databases import session_locks

            self._locks = session_locks(self._lock_conninfo)
            self._locks.attach(self)
        return self._locks

    def close(self) -> None:
        if self._locks is not None:
            self._locks.detach(self)
            self._locks = None


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}"[:2000]
