"""The relay: the service's notification log, published to RabbitMQ in order.

The log is the outbox (DESIGN.md, "Event flow"). The relay reads it from the last
position it recorded, publishes each published-kind event with publisher confirms
(a batch at a time, its confirms awaited together), and records the new position only
after RabbitMQ confirmed all of them. A crash between the
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
from services.infra.amqp import routing_key
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
    """Publishes the log of `app` with `publish_all(envelopes)`, which returns once RabbitMQ
    confirmed every one of them (`ConfirmedPublisher`); the position is recorded after.

    While it keeps publishing, the next batch is read from where its last one left the
    position, without asking the database first; the position's update checks that it
    was still there (another instance, or someone resetting it, moved it: the next round
    asks again). A stale position can only make it publish again what consumers skip."""

    def __init__(self, app, publish_all: Callable[[list[dict]], None], batch_size: int = 200):
        self.app = app
        self.publish_all = publish_all
        self.batch_size = batch_size
        self.name = f"relay:{app.service}"
        self._known: tuple[int, int | None] | None = None
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
        known, self._known = self._known, None
        scanned, published = self.position() if known is None else known
        batch = self.app.recorder.select_notifications(scanned + 1, self.batch_size)
        if not batch:
            return 0
        envelopes = []
        last_published = published
        for n in batch:
            envelope = envelope_for(self.app, n, last_published)
            if envelope is not None:
                envelopes.append(envelope)
                last_published = n.id
        if envelopes:
            self.publish_all(envelopes)  # returns once all are confirmed
        failpoint("relay.after_publish")
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE relay_position SET scanned = %s, published = %s"
                " WHERE name = %s AND scanned = %s",
                (batch[-1].id, last_published, self.name, scanned),
            )
            if curs.rowcount == 1:
                self._known = (batch[-1].id, last_published)
        if envelopes:
            log.debug("relayed %d events up to position %d", len(envelopes), batch[-1].id)
        return len(batch)


class ConfirmedPublisher:
    """Publishes integration events to `exchange` on one channel in confirm mode: every
    event of a batch is sent, then RabbitMQ's confirms of all of them are awaited at once
    (instead of one round trip to the broker per event). Any failure (a nack, no confirm
    within `confirm_timeout` seconds, a lost connection) closes the connection and raises:
    the relay records nothing and publishes the batch again."""

    def __init__(self, amqp_uri: str, exchange, confirm_timeout: float = 10.0):
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self._connection = None
        self._channel = None
        self._sent = 0  # delivery tags given out on this channel (confirm mode counts from 1)
        self._unconfirmed: set[int] = set()
        self._nacked = False

    def __call__(self, envelopes: list[dict]) -> None:
        try:
            self._publish(envelopes)
        except Exception:
            self.close()
            raise

    def _publish(self, envelopes: list[dict]) -> None:
        import time

        from kombu import Producer

        channel = self._open()
        producer = Producer(channel, exchange=self.exchange, serializer="json", auto_declare=False)
        for envelope in envelopes:
            with context.tracing(envelope["request_id"]):  # its lines name its request
                producer.publish(
                    envelope,
                    routing_key=routing_key(envelope["source"], envelope["type"]),
                    message_id=f"{envelope['source']}:{envelope['position']}",
                    delivery_mode=2,
                    retry=False,
                )
            self._sent += 1
            self._unconfirmed.add(self._sent)
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed and not self._nacked:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"RabbitMQ confirmed {len(envelopes) - len(self._unconfirmed)} of "
                    f"{len(envelopes)} events within {self.confirm_timeout:g}s"
                )
            self._connection.drain_events(timeout=left)
        if self._nacked:
            raise RuntimeError("RabbitMQ refused (nacked) an event of the batch")

    def _open(self):
        if self._channel is not None:
            return self._channel
        from kombu import Connection

        connection = Connection(self.amqp_uri, transport_options={"confirm_publish": False})
        connection.connect()
        channel = connection.channel()
        channel.confirm_select()
        self.exchange(channel).declare()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._connection, self._channel = connection, channel
        self._sent = 0
        self._unconfirmed = set()
        self._nacked = False
        return channel

    def _confirmed(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_ack(self, delivery_tag, multiple) -> None:
        self._confirmed(delivery_tag, multiple)

    def _on_nack(self, delivery_tag, multiple) -> None:
        self._nacked = True
        self._confirmed(delivery_tag, multiple)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:  # noqa: BLE001 - it is being dropped anyway
                log.debug("closing the relay's broker connection: %s", exc)
