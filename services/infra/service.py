"""What every service answers over RPC, besides its own commands and queries."""

from __future__ import annotations

import contextlib

from nameko.extensions import DependencyProvider

from contracts import audit as audit_contract
from contracts.envelope import IntegrationEvent
from contracts.errors import Conflict, NotFound, Unavailable
from services.infra import audit, chainkeeper, clock, relay
from services.infra.consumer import Handles, InboxConsumer, keeps_chain_witnesses
from services.infra.inbox import PoisonEvent, Transient, is_transient, load_event
from services.infra.metrics import Metrics
from services.infra.parking import (
    get_parked,
    list_parked,
    note_failed_retry,
    original_envelope,
    release_statement,
)
from services.infra.rpc import load, rpc


class Runtime(DependencyProvider):
    """Gives a worker its container (to reach the event store and the inbox consumer)."""

    def get_dependency(self, worker_ctx):
        return self.container


class ServiceBase:
    """Mixin for nameko service classes that have `app = EventStore(...)`."""

    name = ""
    runtime = Runtime()
    # /metrics, /livez and /readyz on HOSTLEDGER_METRICS_PORT (services.infra.metrics)
    metrics = Metrics()

    @rpc
    def ping(self) -> str:
        return "ok"

    @rpc
    def integration_events(self, after: int, limit: int = 500, until: int | None = None) -> dict:
        """The published events of this service's log after `after` (its consumers' catch-up)."""
        return relay.integration_events(self.app, int(after), int(limit), until)

    @rpc
    def chain_checkpoints(self, after: int, limit: int = 500, until: int | None = None) -> dict:
        """The checkpoints of this service's chain after sequence `after` (the other
        services' witnesses catch up with them)."""
        return chainkeeper.checkpoint_events(
            self.app, int(after), int(limit), None if until is None else int(until)
        )

    @keeps_chain_witnesses
    def keep_chain_witness(self, event: IntegrationEvent) -> None:
        """Keep another service's checkpoint as a witness of its chain, once."""
        self.app.save(
            also=[chainkeeper.witness_statement(event.source, event.payload, clock.now())]
        )

    @rpc
    def parked_events(self, include_resolved: bool = False) -> list[dict]:
        """Events this service could not apply, for staff."""
        return list_parked(self.app, include_resolved=include_resolved)

    @rpc
    def retry_parked(self, parked_id: int) -> dict:
        """Apply a parked event again; on success it is marked resolved. A consumer's event
        runs its handler again, a read model's is projected again into the model, a
        scheduler's item is released to the job's next run."""
        row = get_parked(self.app, int(parked_id))
        if row is None:
            raise NotFound(f"no parked event {parked_id} in {self.name}")
        if row["resolved_at"] is not None:
            raise Conflict(f"parked event {parked_id} was already resolved")
        upstream = row["upstream"]
        if upstream.startswith("readmodel:"):
            self._retry_projection(row, upstream.partition(":")[2])
        elif upstream.startswith("scheduler:"):
            with self.app.datastore.transaction(commit=True) as curs:
                curs.execute(*release_statement(row["id"]))
        else:
            self._retry_handler(row)
        return list_parked(self.app, include_resolved=True, parked_id=row["id"])[0]

    def _retry_projection(self, row: dict, model: str) -> None:
        follower = _store(self).follower(model)
        try:
            follower.retry(row["id"])
        except LookupError as exc:  # another retry projected it meanwhile
            raise Conflict(str(exc)) from None
        except Exception as exc:
            if is_transient(exc):
                raise
            note_failed_retry(self.app, row["id"], f"{type(exc).__name__}: {exc}")
            raise Conflict(
                f"projecting the event failed again: {type(exc).__name__}: {exc}"
            ) from None

    def _retry_handler(self, row: dict) -> None:
        """Under the upstream's applier lock, as a delivery: two retries at once (from any
        instance) run the handler once; the second finds the event resolved."""
        consumer = _inbox_consumer(self)
        inbox = consumer.inboxes.get(row["upstream"])
        try:
            with inbox.locked() if inbox is not None else contextlib.nullcontext():
                fresh = get_parked(self.app, row["id"])
                if fresh is None or fresh["resolved_at"] is not None:
                    raise Conflict(f"parked event {row['id']} was already resolved")
                self._apply_parked(consumer, fresh)
        except Transient as exc:
            raise Unavailable(f"the event cannot be retried now: {exc}") from None

    def _apply_parked(self, consumer: InboxConsumer, row: dict) -> None:
        try:
            event = load_event(original_envelope(row))
        except PoisonEvent as exc:
            note_failed_retry(self.app, row["id"], str(exc))
            raise Conflict(f"the event still breaks its contract: {exc}") from None
        try:
            consumer.apply_event(row["upstream"], event, None, parked_id=row["id"])
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and answered
            note_failed_retry(self.app, row["id"], f"{type(exc).__name__}: {exc}")
            raise Conflict(f"the handler failed again: {type(exc).__name__}: {exc}") from None

    @rpc
    def read_models(self) -> list[dict]:
        """Each read model: its position in the log, and the events it skipped (parked)."""
        try:
            store = _store(self)
        except NotFound:
            return []
        return [follower.status() for follower in store.followers]

    @rpc
    def rebuild_read_model(self, name: str) -> dict:
        """Empty one read model and replay the whole log into it."""
        store = _store(self)
        count = store.follower(name).rebuild()
        return {"service": self.name, "read_model": name, "replayed": count}

    @rpc
    def consumer_stats(self) -> dict:
        """Per upstream: position reached and counters since this process started."""
        try:
            consumer = _inbox_consumer(self)
        except NotFound:
            return {}
        return {
            upstream: dict(inbox.stats.to_dict(), position=inbox.last_position())
            for upstream, inbox in consumer.inboxes.items()
        }

    # -- the audit index (services/infra/audit.py) ---------------------------------------------

    @rpc
    def audit_history(
        self,
        kind: str,
        object_id: str,
        cursor: dict | None = None,
        limit: int = 50,
        order: str = "oldest",
    ) -> list[dict]:
        """This service's events concerning one object (`kind`: customer, invoice, ticket,
        service, order, account, staff), in `(occurred_at, service, position)` order after
        `cursor` ({"occurred_at", "service", "position"}; None: from the first), at most
        `limit`: {"service", "position", "aggregate_id", "aggregate_type", "version",
        "type", "occurred_at", "actor", "on_behalf_of", "cause", "reason", "summary",
        "changes": {field: [before, after]}}; `order="newest"`: that order reversed, from
        the last (before `cursor`). A list: it may lag the log a moment."""
        query = load(
            audit_contract.HistoryQuery,
            {
                "kind": kind,
                "object_id": object_id,
                "cursor": cursor,
                "limit": limit,
                "order": order,
            },
        )
        _audit_index(self).run_once()  # what was just written, unless the index is busy
        return audit.history(
            self.app,
            query["kind"],
            query["object_id"],
            query["cursor"],
            query["limit"],
            query["order"],
        )

    @rpc
    def audit_events(
        self, since: str, until: str | None = None, cursor: dict | None = None, limit: int = 500
    ) -> list[dict]:
        """Every event of this service with `since <= occurred_at < until` (ISO 8601 with
        offsets; no `until`: no end), bookkeeping ones too, in `(occurred_at, service,
        position)` order after `cursor`, at most `limit` (1000): items as `audit_history`
        answers them. The pages of an export of a time window."""
        query = load(
            audit_contract.WindowQuery,
            {"since": since, "until": until, "cursor": cursor, "limit": limit},
        )
        _audit_index(self).run_once()  # what was just written, unless the index is busy
        return audit.window(
            self.app, query["since"], query["until"], query["cursor"], query["limit"]
        )

    @rpc
    def audit_state(self, kind: str, object_id: str, at: str | None = None) -> dict:
        """One object of this service as it stood at `at` (ISO 8601 with its offset; None:
        now), rebuilt from its events up to then: {"kind", "id", "service", "at", "type",
        "version", "as_of", "state"}. NotFound when it is not this service's or did not
        exist yet then."""
        query = load(audit_contract.StateQuery, {"kind": kind, "object_id": object_id, "at": at})
        follower = _audit_index(self)
        follower.catch_up()  # one object read by id never lags
        return audit.state(
            self.app,
            follower.model.mapping,
            query["kind"],
            query["object_id"],
            query["at"] or clock.now(),
        )


def catch_up_with(service, upstream: str) -> int:
    """Apply now whatever `upstream` has published that this service has not applied yet:
    for a command that needs the effect of an upstream event it may not have heard of."""
    return _inbox_consumer(service).inboxes[upstream].catch_up()


def catch_up_read_model(service, model: str) -> None:
    """Project into the read model `model` now whatever this service's log holds that it
    has not projected yet: for a handler that must see the service's own latest writes."""
    _store(service).follower(model).catch_up()


def _store(service):
    from services.infra.store import EventStore

    for dep in service.runtime.dependencies:
        if isinstance(dep, EventStore):
            return dep
    raise NotFound(f"{service.name} has no event store")


def _audit_index(service):
    return _store(service).follower(audit.AuditIndex.name)


def _inbox_consumer(service) -> InboxConsumer:
    for ext in service.runtime.entrypoints:
        if isinstance(ext, Handles):
            return ext.inbox_consumer
    raise NotFound(f"{service.name} consumes no integration events")
