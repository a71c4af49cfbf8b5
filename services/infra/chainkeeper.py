"""The service's side of the chain (services/infra/chain.py has the rule).

`ChainKeeper` hashes the service's notification log in order into `audit_chain`
(position, hash): one instance at a time (the event store runs it under an advisory
lock, as the relay), each batch in one transaction with the keeper's own state, so a
crash or a second instance can neither skip a position nor hash one twice (a second
instance's rows collide on the position and its transaction rolls back).

Every `HOSTLEDGER_CHAIN_CHECKPOINT_EVENTS` events, and `HOSTLEDGER_CHAIN_CHECKPOINT_INTERVAL`
seconds after the first event not covered by one, it takes a checkpoint: a
`ChainCheckpoint` saved in the same transaction as the hashes it covers, which the relay
publishes as the `ChainCheckpointed` integration event (contracts/chain.py). A
checkpoint's own event is not a reason for another one, so a quiet service stays quiet.

Every other service keeps those checkpoints as witnesses (`audit_witnesses`), in order
and once, through its consumer: a queue of its own per upstream bound to checkpoints
only, numbered by the checkpoints' `sequence` (the "checkpoint feed"), with gaps filled
over the upstream's `chain_checkpoints` RPC. `hostledger audit verify-chain` compares.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError as EsIntegrityError
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from contracts.chain import CHECKPOINT_CONTRACTS, CHECKPOINT_EVENT
from services.infra import clock
from services.infra.chain import GENESIS, StoredRecord, link
from services.infra.context import Actor, acting
from services.infra.domain import Aggregate

log = logging.getLogger(__name__)

CHAIN_TABLES = """
CREATE TABLE IF NOT EXISTS audit_chain (
    position bigint PRIMARY KEY,
    hash bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_chain_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    since_checkpoint bigint NOT NULL DEFAULT 0,
    substantive bigint NOT NULL DEFAULT 0,
    pending_since timestamptz
);
INSERT INTO audit_chain_state (id) VALUES (true) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    sequence bigint PRIMARY KEY,
    position bigint NOT NULL,
    hash bytea NOT NULL,
    taken_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_witnesses (
    upstream text NOT NULL,
    sequence bigint NOT NULL,
    position bigint NOT NULL,
    hash bytea NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (upstream, sequence)
);
CREATE INDEX IF NOT EXISTS audit_witnesses_position ON audit_witnesses (upstream, position);
"""

CHAIN_ACTOR = Actor("system", "audit-chain")
_CHECKPOINT_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/chain-checkpoint")


class ChainCheckpoint(Aggregate):
    """One checkpoint of a service's chain: the hash it had reached at `position`."""

    @staticmethod
    def create_id(service: str, sequence: int) -> UUID:
        return checkpoint_id(service, sequence)

    @event("Taken")
    def __init__(self, service: str, sequence: int, position: int, hash: str):
        self.service = service
        self.sequence = sequence
        self.position = position
        self.hash = hash


def checkpoint_id(service: str, sequence: int) -> UUID:
    """Two instances taking the same checkpoint collide on this id."""
    return uuid5(_CHECKPOINT_NS, f"{service}:{sequence}")


CHECKPOINT_TOPIC = get_topic(ChainCheckpoint.Taken)


def publications(service: str) -> dict[str, type]:
    """Topic -> contract of what the chain adds to a service's published events."""
    contract = CHECKPOINT_CONTRACTS.get(service)
    return {CHECKPOINT_TOPIC: contract} if contract is not None else {}


def stored_record(n: Notification) -> StoredRecord:
    return StoredRecord(n.id, n.originator_id, n.originator_version, n.topic, n.state)


@dataclass
class _State:
    head: int
    head_hash: bytes
    since: int
    substantive: int
    pending_since: datetime | None
    sequence: int


class ChainKeeper:
    """Hashes the log of `app` (an eventsourcing application on PostgreSQL)."""

    def __init__(self, app, every: int = 100, interval: float = 300.0, batch_size: int = 500):
        self.app = app
        self.every = max(1, every)
        self.interval = max(0.0, interval)
        self.batch_size = batch_size

    def state(self) -> _State:
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT s.since_checkpoint, s.substantive, s.pending_since,"
                " h.position AS head, h.hash AS head_hash,"
                " (SELECT coalesce(max(sequence), 0) FROM audit_checkpoints) AS sequence"
                " FROM audit_chain_state s"
                " LEFT JOIN LATERAL (SELECT position, hash FROM audit_chain"
                "  ORDER BY position DESC LIMIT 1) h ON true"
            )
            row = curs.fetchone()
        return _State(
            head=row["head"] or 0,
            head_hash=bytes(row["head_hash"]) if row["head_hash"] is not None else GENESIS,
            since=row["since_checkpoint"],
            substantive=row["substantive"],
            pending_since=row["pending_since"],
            sequence=row["sequence"],
        )

    def run_once(self) -> int:
        """Hash the next batch (and take a checkpoint when one is due); the number of
        events hashed (0: nothing new)."""
        state = self.state()
        batch = self.app.recorder.select_notifications(state.head + 1, self.batch_size)
        now = clock.now()
        rows: list[tuple[int, bytes]] = []
        since, substantive, pending_since = state.since, state.substantive, state.pending_since
        previous, due = state.head_hash, None
        for n in batch:
            previous = link(previous, stored_record(n))
            rows.append((n.id, previous))
            since += 1
            if n.topic != CHECKPOINT_TOPIC:
                substantive += 1
                if pending_since is None or pending_since > now:
                    pending_since = now
            if since >= self.every:
                due = rows[-1]
                break
        if pending_since is not None and pending_since > now:
            pending_since = now  # the clock went back: wait from now
        if (
            due is None
            and substantive
            and pending_since is not None
            and (now - pending_since).total_seconds() >= self.interval
        ):
            due = rows[-1] if rows else (state.head, state.head_hash)
        if due is not None:
            since = substantive = 0
            pending_since = None
        changed = (since, substantive, pending_since) != (
            state.since,
            state.substantive,
            state.pending_since,
        )
        if not rows and due is None and not changed:
            return 0
        statements = [
            (
                "UPDATE audit_chain_state SET since_checkpoint = %s, substantive = %s,"
                " pending_since = %s WHERE id",
                (since, substantive, pending_since),
            )
        ]
        if rows:
            statements.append(
                (
                    "INSERT INTO audit_chain (position, hash)"
                    " SELECT * FROM unnest(%s::bigint[], %s::bytea[])",
                    ([p for p, _ in rows], [h for _, h in rows]),
                )
            )
        try:
            if due is not None:
                self._checkpoint(state.sequence + 1, *due, statements)
            else:
                with self.app.datastore.transaction(commit=True) as curs:
                    for statement, params in statements:
                        curs.execute(statement, params)
        except (EsIntegrityError, psycopg.IntegrityError):
            # another instance hashed these positions (or took this checkpoint) first
            log.info("the chain of %s moved on meanwhile; reading it again", self.app.service)
            return 0
        return len(rows)

    def _checkpoint(self, sequence: int, position: int, hash_: bytes, statements: list) -> None:
        with acting(CHAIN_ACTOR):
            checkpoint = ChainCheckpoint(
                service=self.app.service, sequence=sequence, position=position, hash=hash_.hex()
            )
            statements.append(
                (
                    "INSERT INTO audit_checkpoints (sequence, position, hash, taken_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (sequence, position, hash_, checkpoint.created_on),
                )
            )
            self.app.save(checkpoint, also=statements)
        log.debug("chain of %s: checkpoint %d at position %d", self.app.service, sequence, position)


# -- the checkpoint feed: what another service keeps as witnesses --------------------------

FEED_SUFFIX = ".checkpoints"


def feed_name(source: str) -> str:
    """The name of `source`'s checkpoint feed in a consumer (its inbox, its tracking)."""
    return f"{source}{FEED_SUFFIX}"


def feed_envelope(raw):
    """A relayed `ChainCheckpointed` envelope numbered as the checkpoint feed numbers it:
    `position` is the checkpoint's sequence and follows the one before. Without a usable
    sequence it has no position (and is parked without moving the feed)."""
    if not isinstance(raw, dict):
        return raw
    payload = raw.get("payload")
    sequence = payload.get("sequence") if isinstance(payload, dict) else None
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        return dict(raw, position=None)
    return dict(raw, position=sequence, previous_position=sequence - 1)


def checkpoint_events(app, after: int, limit: int = 500, until: int | None = None) -> dict:
    """The checkpoints of `app`'s chain after sequence `after` (and up to `until`), as
    the checkpoint feed's envelopes: `{"events": [...], "scanned": N}` as
    `relay.integration_events` answers."""
    limit = max(1, min(int(limit), 1000))
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT sequence, position, hash, taken_at FROM audit_checkpoints"
            " WHERE sequence > %s AND (%s::bigint IS NULL OR sequence <= %s)"
            " ORDER BY sequence LIMIT %s",
            (after, until, until, limit),
        )
        rows = curs.fetchall()
    events = [
        {
            "source": app.service,
            "position": row["sequence"],
            "previous_position": row["sequence"] - 1,
            "type": CHECKPOINT_EVENT,
            "aggregate_id": str(checkpoint_id(app.service, row["sequence"])),
            "version": 1,
            "occurred_at": clock.isoformat(row["taken_at"]),
            "actor": CHAIN_ACTOR.to_dict(),
            "on_behalf_of": None,
            "cause": None,
            "payload": {
                "sequence": row["sequence"],
                "position": row["position"],
                "hash": bytes(row["hash"]).hex(),
            },
        }
        for row in rows
    ]
    return {"events": events, "scanned": events[-1]["position"] if events else after}


def witness_statement(source: str, payload: dict, received_at: datetime) -> tuple[str, tuple]:
    """Keep `source`'s checkpoint (a loaded `ChainCheckpointed` payload); once."""
    return (
        "INSERT INTO audit_witnesses (upstream, sequence, position, hash, received_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (upstream, sequence) DO NOTHING",
        (
            source,
            payload["sequence"],
            payload["position"],
            bytes.fromhex(payload["hash"]),
            received_at,
        ),
    )
