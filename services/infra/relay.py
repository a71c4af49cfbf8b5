"""The relay: the service's notification log, published to RabbitMQ in order.

The log is the outbox (DESIGN.md, "Event flow"). The relay reads it from the last
position it recorded, publishes each published-kind event with publisher confirms,
and records the new position only after RabbitMQ confirmed. A crash between the
two republishes; consumers skip what they already applied. Only the instance
holding the service's relay advisory lock publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification

from services.infra import context
from services.infra.clock import isoformat
from services.infra.failpoints import failpoint

log = logging.getLogger(__name__)

RELAY_TABLE = """
CREATE TABLE IF NOT EXISTS relay_position (
    name text PRIMARY KEY,
    scanned bigint NOT NULL DEFAULT 0,
    published bigint
)
"""


def envelope_for(app, notification: Notification, previous_position: int | None) -> dict | None:
    """The integration event for one notification, or None when the event stays inside."""
    schema_cls = app.published_schema(notification.topic)
    if schema_cls is None:
        return None
    event = app.mapper.to_domain_event(notification)
    state = dict(vars(event))
    id_field = getattr(schema_cls, "id_field", None)
    if id_field:
        state[id_field] = notification.originator_id
    return {
        "source": app.service,
        "position": notification.id,
        "previous_position": previous_position,
        "type": schema_cls.event_type,
        "aggregate_id": str(notification.originator_id),
        "version": notification.originator_version,
        "occurred_at": isoformat(event.timestamp),
        "actor": state.get("actor") or {"kind": "system", "id": None},
        "on_behalf_of": state.get("on_behalf_of"),
        "cause": state.get("cause"),
        "request_id": state.get("request_id"),
        "payload": _jsonable(schema_cls().dump(state)),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    return value


def integration_events(app, after: int, limit: int = 500, until: int | None = None) -> dict:
    """Published events with position > after (and <= until), oldest first.

    Answers `{"events": [...], "scanned": N}`: `scanned` is the last position read,
    so a caller can go on from there when a long stretch held nothing published.
    """
    limit = max(1, min(int(limit), 1000))
    events: list[dict] = []
    scanned = after
    previous = None
    start = after + 1
    while len(events) < limit:
        batch = app.recorder.select_notifications(start, 500, stop=until)
        if not batch:
            break
        for n in batch:
            scanned = n.id
            env = envelope_for(app, n, previous)
            if env is not None:
                events.append(env)
                previous = n.id
                if len(events) >= limit:
                    break
        start = batch[-1].id + 1
    return {"events": events, "scanned": scanned}


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock of this process, taken without waiting.

    Held on the process's one lock connection to that database (`databases.SessionLocks`,
    shared with its other such locks) until released or until that connection dies (a
    crashed holder frees it); `held` notices a lost connection within `check_interval`
    seconds. Publishing on a stale lock can only duplicate events, which consumers skip.
    """

    def __init__(self, conninfo: str, name: str):
        self.conninfo = conninfo
        self.name = name
        self._locks = None

    @property
    def held(self) -> bool:
        return self._locks is not None and self._locks.holds(self.name, self)

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            return self._session().try_lock(self.name, self)
        except psycopg.Error as exc:
            log.warning("cannot take lock %s: %s", self.name, exc)
            return False

    def release(self) -> None:
        if self._locks is not None:
            self._locks.detach(self)
            self._locks = None

    def _session(self):
        if self._locks is None:
            from services.infra.databases import session_locks

            self._locks = session_locks(self.conninfo)
            self._locks.attach(self)
        return self._locks


class Relay:
    """Publishes the log of `app` with `publish(envelope)`; `publish` returns once confirmed."""

    def __init__(self, app, publish: Callable[[dict], None], batch_size: int = 200):
        self.app = app
        self.publish = publish
        self.batch_size = batch_size
        self.name = f"relay:{app.service}"
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(RELAY_TABLE)
            curs.execute(
                "INSERT INTO relay_position (name) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.name,),
            )

    def position(self) -> tuple[int, int | None]:
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT scanned, published FROM relay_position WHERE name = %s", (self.name,)
            )
            row = curs.fetchone()
        return row["scanned"], row["published"]

    def run_once(self) -> int:
        """Publish the next batch; the number of notifications read (0: nothing new)."""
        scanned, published = self.position()
        batch = self.app.recorder.select_notifications(scanned + 1, self.batch_size)
        if not batch:
            return 0
        sent = 0
        for n in batch:
            envelope = envelope_for(self.app, n, published)
            if envelope is not None:
                with context.tracing(envelope["request_id"]):  # its lines name its request
                    self.publish(envelope)
                published = n.id
                sent += 1
        failpoint("relay.after_publish")
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE relay_position SET scanned = %s, published = %s WHERE name = %s",
                (batch[-1].id, published, self.name),
            )
        if sent:
            log.debug("relayed %d events up to position %d", sent, batch[-1].id)
        return len(batch)
