"""The eventsourcing Application base every service uses.

- persistence: the service's own PostgreSQL database, pure-Python psycopg, a lock timeout;
- every new event is stamped with who did it (`actor`, `on_behalf_of`, `cause`);
- while an integration event is being consumed, the first save also writes the
  consumer's tracking record in the same transaction (and only one save is allowed);
- `also`: extra SQL that must commit or roll back with the events (parking, ...).

Idempotency-Key (API.md). The gateway hands every service a key already bound to the
caller (`staff:<id>|<key>`, `client:<customer id>|<key>`, `public|<key>`), so one
caller's key never meets another's. A command that keeps its key with its own events
uses `idempotent_answer`/`idempotency_record` (atomic with the command). For every other
route that creates something, the gateway keeps the first answer in `request_keys`
(the customers service's database) through `claim_request_key` / `finish_request_key`
/ `release_request_key`: one claim per key, so two concurrent requests with one key run
the command once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, ProcessRecorder, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import get_topic

from services.infra.chainkeeper import CHAIN_TABLES
from services.infra.chainkeeper import publications as chain_publications
from services.infra.context import SYSTEM, current
from services.infra.inbox import PARKED_TABLE
from services.infra.inbox_batches import OpenBatches
from services.infra.personal_data import (
    NOTHING,
    PERSONAL_KEYS_TABLE,
    SUBJECT,
    KeyStore,
    PersonalFields,
    PersonalMapper,
)
from services.infra.requests import (
    HANDLED_REQUESTS_INDEX,
    HANDLED_REQUESTS_TABLE,
    AlreadyHandled,
    check_deadline,
    record_statement,
)
from services.infra.settings import Settings, settings


class HostledgerRecorder(PostgresProcessRecorder):
    """The process recorder, plus `also=[(sql, params), ...]` run in the insert's transaction."""

    def _insert_events(self, curs, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        for statement, params in kwargs.get("also") or ():
            curs.execute(statement, params)

    def record_alone(self, tracking=None, also: list | None = None) -> None:
        """Write a tracking record and/or extra SQL with no events, atomically."""
        self.insert_events([], tracking=tracking, also=also or [])


REQUEST_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS request_keys (
    key text PRIMARY KEY,
    request_hash text NOT NULL,
    status integer,
    answer jsonb,
    claimed_at timestamptz NOT NULL
)
"""
# the customer a kept first answer concerns (its erasure turns the answer into a 409)
REQUEST_KEYS_CUSTOMER = "ALTER TABLE request_keys ADD COLUMN IF NOT EXISTS customer_id uuid"


# the first answer kept with a command's Idempotency-Key (idempotency_record): sealed with
# the key of the customer it concerns; erased, it reads as the text placeholder
IDEMPOTENCY_PERSONAL = {"IdempotencyKey.Used": PersonalFields.fields("answer")}


class OneSavePerEvent(RuntimeError):
    """A consumer handler saved twice; only the first save could carry the tracking record."""


def pool_limits(cfg: Settings) -> tuple[int, int]:
    """(kept open, most open at once) for the connection pool of a service process.

    One connection stays open; HOSTLEDGER_DB_POOL_SIZE more are opened under load. Under
    eventlet, more connections barely add throughput (DESIGN.md), while every process
    of every instance holds its own: PostgreSQL's connections are the scarce resource.
    Beside its pool a process holds one LISTEN connection and one for its session locks
    (databases.SessionLocks).
    """
    return 1, 1 + max(cfg.pool_size, 0)


def postgres_env(service: str, cfg: Settings | None = None) -> dict[str, str]:
    cfg = cfg or settings()
    kept, most = pool_limits(cfg)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": cfg.database_name(service),
        "POSTGRES_HOST": cfg.database.host,
        "POSTGRES_PORT": str(cfg.database.port),
        "POSTGRES_USER": cfg.database.user,
        "POSTGRES_PASSWORD": cfg.database.password,
        "POSTGRES_LOCK_TIMEOUT": str(cfg.lock_timeout_seconds),
        "POSTGRES_POOL_SIZE": str(kept),
        "POSTGRES_MAX_OVERFLOW": str(most - kept),
        # no ping before each transaction: databases.check_idle_connection instead (set
        # in HostledgerApplication.__init__)
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "PROCESS_RECORDER_TOPIC": get_topic(HostledgerRecorder),
        "CREATE_TABLE": "y",
    }


class HostledgerApplication(Application):
    """Base of each service's application. Subclasses set `service` and `publications`."""

    service: ClassVar[str] = ""
    # domain event class -> contract schema class: what the relay publishes
    publications: ClassVar[dict[type, type]] = {}
    # SQL run once at start (read-model tables, sequences ...)
    schema_statements: ClassVar[Sequence[str]] = ()
    # the personal fields of its events, sealed with each customer's key
    # (services.infra.personal_data)
    personal: ClassVar[PersonalFields] = NOTHING

    def __init__(self, env: dict[str, str] | None = None, cfg: Settings | None = None):
        base = postgres_env(self.service, cfg)
        base.update(env or {})
        # the first answers kept with an Idempotency-Key are sealed in every service
        self.personal = PersonalFields({**IDEMPOTENCY_PERSONAL, **self.personal.rules})
        self._key_cache_seconds = (cfg or settings()).personal_key_cache_seconds
        # the batches of integration events being applied now (services.infra.inbox_batches)
        self.batches = OpenBatches()
        super().__init__(env=base)
        self._topics_published = {
            get_topic(cls): schema for cls, schema in self.publications.items()
        }
        # the checkpoints of the log's chain (services.infra.chainkeeper)
        self._topics_published.update(chain_publications(self.service))
        from services.infra.databases import run_each

        # every service can list its parked events, whether it consumes any or not; every
        # service chains its log and keeps the others' checkpoints. Each statement in a
        # transaction of its own (run_each): an instance starting while another writes
        # never deadlocks with it
        run_each(
            self,
            [
                (statement, ())
                for statement in (
                    PARKED_TABLE,
                    CHAIN_TABLES,
                    REQUEST_KEYS_TABLE,
                    REQUEST_KEYS_CUSTOMER,
                    HANDLED_REQUESTS_TABLE,
                    HANDLED_REQUESTS_INDEX,
                    PERSONAL_KEYS_TABLE,
                    *self.schema_statements,
                )
            ],
        )
        from services.infra.databases import without_pre_ping

        without_pre_ping(self.datastore)

    def construct_env(self, name, env=None):
        # Only our own settings count: a stray POSTGRES_* variable in the process
        # environment must not point a service at another database.
        from eventsourcing.utils import Environment

        _env = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            _env["IS_SNAPSHOTTING_ENABLED"] = "y"
        _env.update(env or {})
        return Environment(name, _env)

    def construct_mapper(self):
        env = self.env

        def conninfo() -> str:
            parts = [
                f"host={env.get('POSTGRES_HOST')}",
                f"port={env.get('POSTGRES_PORT')}",
                f"user={env.get('POSTGRES_USER')}",
                f"dbname={env.get('POSTGRES_DBNAME')}",
            ]
            if env.get("POSTGRES_PASSWORD"):
                parts.append(f"password={env.get('POSTGRES_PASSWORD')}")
            return " ".join(parts)

        self.personal_keys = KeyStore(conninfo, ttl=self._key_cache_seconds)
        return PersonalMapper(
            transcoder=self.construct_transcoder(),
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
            personal=self.personal,
            keys=self.personal_keys,
        )

    def close(self) -> None:
        self.personal_keys.close()
        super().close()

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def repository(self):
        """The library's repository; the handler of an integration event applied in a batch
        sees it as the batch's handlers left it so far (services.infra.inbox_batches)."""
        batch = self.batches.of(current.tracking)
        return self._repository if batch is None else batch.repository

    @property
    def datastore(self):
        return self.recorder.datastore

    # -- Idempotency-Key (API.md): the same key and request answer the first answer again --

    def idempotent_answer(
        self, scope: str, key: str | None, request: dict, *, key_names_it: bool = False
    ) -> dict | None:
        """The first answer given to this key, or None when it is new; 409 when the key
        came with another request, unless the key itself names what was asked
        (`key_names_it`: a key the system makes, such as a renewal's
        `renewal:<service>:<due date>`, which the first answer stands for whatever the
        request says now)."""
        if not key:
            return None
        from eventsourcing.application import AggregateNotFoundError

        from contracts.errors import Conflict
        from services.infra.domain import IdempotencyKey

        try:
            used = self.repository.get(IdempotencyKey.id_for(scope, key))
        except AggregateNotFoundError:
            return None
        if not key_names_it and used.request_hash != request_hash(request):
            raise Conflict(
                "This Idempotency-Key was used with a different request.",
                {"Idempotency-Key": ["Already used for another request."]},
            )
        if not isinstance(used.answer, dict):  # sealed, and its customer erased since
            raise Conflict(ERASED_ANSWER, {"Idempotency-Key": [ERASED_ANSWER_FIELD]})
        return used.answer

    @staticmethod
    def idempotency_record(
        scope: str, key: str | None, request: dict, answer: dict, customer_id=None
    ):
        """The aggregate to save with the command's own, or None without a key. The answer
        is sealed with the key of `customer_id`, the customer it concerns (it may show its
        personal data): once that customer is erased, a repeat is answered 409
        (`ERASED_ANSWER`), not done again. Without a customer it is kept as it is."""
        if not key:
            return None
        from services.infra.domain import IdempotencyKey

        record = IdempotencyKey(
            scope=scope, key=key, request_hash=request_hash(request), answer=answer
        )
        if customer_id is not None:
            for pending in record.pending_events:
                object.__setattr__(pending, SUBJECT, customer_id)
        return record

    # -- the gateway's first answers to an Idempotency-Key (routes without their own) --

    def claim_request_key(self, key: str, request_hash: str, stale_seconds: float) -> dict:
        """Claim `key` for a request: `{"state": "new"}` (run it, then finish or release),
        `{"state": "done", "status", "answer"}` (the first answer), or `{"state": "busy"}`
        (the first request is still being answered). 409 when the key came with another
        request. A claim older than `stale_seconds` with no answer was abandoned (its
        gateway died): it is taken over."""
        from contracts.errors import Conflict
        from services.infra.clock import now

        at = now()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO request_keys (key, request_hash, claimed_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, request_hash, at),
            )
            if curs.fetchone() is not None:
                return {"state": "new"}
            curs.execute(
                "SELECT request_hash, status, answer, claimed_at FROM request_keys "
                "WHERE key = %s FOR UPDATE",
                (key,),
            )
            row = curs.fetchone()
            if row is None:  # released meanwhile: claim it now
                curs.execute(
                    "INSERT INTO request_keys (key, request_hash, claimed_at) "
                    "VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING key",
                    (key, request_hash, at),
                )
                return {"state": "new" if curs.fetchone() is not None else "busy"}
            if row["request_hash"] != request_hash:
                raise Conflict(
                    "This Idempotency-Key was used with a different request.",
                    {"Idempotency-Key": ["Already used for another request."]},
                )
            if row["status"] is not None:
                return {"state": "done", "status": row["status"], "answer": row["answer"]}
            if (at - row["claimed_at"]).total_seconds() > stale_seconds:
                curs.execute("UPDATE request_keys SET claimed_at = %s WHERE key = %s", (at, key))
                return {"state": "new"}
            return {"state": "busy"}

    def finish_request_key(
        self, key: str, request_hash: str, status: int, answer, customer_id=None
    ) -> None:
        """Keep the first answer to a claimed key, with the customer it concerns (if any):
        that customer's erasure replaces it with a 409 (`ERASED_ANSWER`)."""
        import json
        from uuid import UUID

        try:
            customer = UUID(str(customer_id)) if customer_id else None
        except ValueError:
            customer = None
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE request_keys SET status = %s, answer = %s::jsonb, customer_id = %s "
                "WHERE key = %s AND request_hash = %s AND status IS NULL",
                (status, json.dumps(answer, default=str), customer, key, request_hash),
            )

    def release_request_key(self, key: str, request_hash: str) -> None:
        """Give up a claim whose request failed (the key may be used again)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM request_keys WHERE key = %s AND request_hash = %s AND status IS NULL",
                (key, request_hash),
            )

    # -- erasure of a customer's personal data (services.infra.personal_data) --

    def erase_personal_data(
        self, customer_id, reason: str, *others, snapshot_ids=(), also=(), mentions=()
    ) -> bool:
        """Destroy the customer's key here and record `PersonalData.Erased` (with `others`,
        the aggregates that change with it), in one transaction; the snapshots of
        `snapshot_ids` go too (they are derived, not chained, and may hold personal
        values). False when it was erased here before: nothing is done again."""
        from eventsourcing.application import AggregateNotFoundError
        from eventsourcing.persistence import IntegrityError

        from services.infra.clock import now
        from services.infra.personal_data import PersonalData, destroy_statement

        try:
            self.repository.get(PersonalData.id_for(customer_id))
            return False
        except AggregateNotFoundError:
            pass
        at = now()
        statements = [
            destroy_statement(customer_id, at, (current.actor or SYSTEM).to_dict(), reason),
            *_forget_answers(customer_id, *mentions),
            *also,
        ]
        if snapshot_ids and getattr(self, "snapshots", None) is not None:
            table = self.snapshots.recorder.events_table_name
            statements.append(
                (
                    f'DELETE FROM "{table}" WHERE originator_id = ANY(%s)',  # our own table
                    (list(snapshot_ids),),
                )
            )
        try:
            self.save(
                PersonalData(customer_id=customer_id, reason=reason, at=at),
                *others,
                also=statements,
            )
        except IntegrityError:
            return False  # erased meanwhile by another request
        finally:
            self.personal_keys.forget(customer_id)
        return True

    def published_schema(self, topic: str):
        return self._topics_published.get(topic)

    def save(self, *objs, **kwargs):
        """Save atomically, stamping the current actor on each new event. A handler of an
        integration event applied in a batch saves into the batch (services.infra.
        inbox_batches), which is written at once after the batch's last handler."""
        tracking = current.tracking
        batch = self.batches.of(tracking)  # the handler of an event applied in a batch
        if tracking is not None:
            if tracking is _USED or (batch is not None and batch.has_saved(tracking)):
                raise OneSavePerEvent(
                    "a handler of an integration event may save only once; "
                    "pass every changed aggregate to one save()"
                )
            if batch is None:
                current.tracking = _USED
        also = list(current.also or ())
        current.also = None
        also.extend(kwargs.pop("also", ()) or ())
        if current.deadline is not None:
            check_deadline()
        recording_command = current.command_key is not None and not current.command_recorded
        if recording_command:
            # the command's request, recorded with its first save (services.infra.requests),
            # with its answer when the command gave it already (answer_with_save)
            answered = current.command_answer
            also.append(record_statement(current.command_key, answered[1] if answered else None))
        # in a batch, the tracking of the batch's last event is written with it
        processing_event = ProcessingEvent(tracking=tracking if batch is None else None)
        processing_event.collect_events(*objs, also=also, **kwargs)
        actor = (current.actor or SYSTEM).to_dict()
        on_behalf_of = current.on_behalf_of.to_dict() if current.on_behalf_of else None
        for event in processing_event.events:
            if self.personal.of(type(event)) and "customer_id" not in vars(event):
                # whose key seals its personal fields: the aggregate's customer
                aggregate = processing_event.aggregates.get(event.originator_id)
                subject = getattr(aggregate, "customer_id", None)
                if subject is not None:
                    object.__setattr__(event, SUBJECT, subject)
            if "actor" not in vars(event):
                object.__setattr__(event, "actor", actor)
                object.__setattr__(event, "on_behalf_of", on_behalf_of)
                if current.cause:
                    object.__setattr__(event, "cause", current.cause)
                if current.request_id:
                    object.__setattr__(event, "request_id", current.request_id)
        if batch is not None:
            batch.collect(tracking, processing_event)
            return []
        try:
            recordings = self._record(processing_event)
        except IntegrityError as exc:
            if recording_command and "handled_requests" in str(exc):
                # another delivery of this request recorded its command first: saving
                # again cannot succeed, so no caller's retry on a conflict should try
                # (once_per_request answers that delivery's answer)
                raise AlreadyHandled(current.command_key) from exc
            raise
        if recording_command:
            current.command_recorded = True
            current.command_answer_kept = current.command_answer is not None
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings


def request_hash(request: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class _Used:
    def __repr__(self) -> str:
        return "<tracking already used>"


_USED = _Used()


ERASED_ANSWER = (
    "This request was carried out already; its answer held personal data that was erased "
    "since, so it is not given again."
)
ERASED_ANSWER_FIELD = "Used before; the first answer was erased with its customer's data."


def _forget_answers(customer_id, *mentions) -> list[tuple[str, tuple]]:
    """The kept first answers that concern the customer (recorded with it, asked by it)
    or name it or one of `mentions` (its tickets ...: they may show its personal data): a
    repeat of their request is told it was carried out (409), as for a session handed out
    once (services/infra/requests.py), and is not done again."""
    import json

    like = [f"%{m}%" for m in (customer_id, *mentions)]
    return [
        (
            "UPDATE handled_requests SET answer = %s::jsonb WHERE answer::text LIKE ANY(%s)",
            (
                json.dumps(
                    {
                        "error": {
                            "type": "Conflict",
                            "args": [ERASED_ANSWER, {"Idempotency-Key": [ERASED_ANSWER_FIELD]}],
                        }
                    }
                ),
                like,
            ),
        ),
        (
            "UPDATE request_keys SET status = 409, answer = %s::jsonb WHERE status IS NOT NULL"
            " AND (customer_id = %s OR key LIKE %s OR answer::text LIKE ANY(%s))",
            (
                json.dumps(
                    {
                        "error": {
                            "code": "conflict",
                            "message": ERASED_ANSWER,
                            "fields": {"Idempotency-Key": [ERASED_ANSWER_FIELD]},
                        }
                    }
                ),
                str(customer_id),
                f"client:{customer_id}|%",  # the customer's own requests (gateway/http.py)
                like,
            ),
        ),
    ]
