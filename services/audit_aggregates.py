"""Every aggregate of a service rebuilt from its events alone, against its snapshots.

The service's whole log is read once, in aggregate order (one server-side cursor, up to
the head noted at the start), and each aggregate is folded from its own events: an event
that cannot be decoded or applied is a difference. An aggregate the application
snapshots (services/infra/application.py: `snapshotting_intervals`) is also loaded the
way the application loads it (its repository: the latest snapshot plus the events after
it) at the same version, and every snapshot it has is compared with the state the events
give at that snapshot's version. Aggregates without a snapshot are loaded by the
repository from their events alone, as here, so there is nothing else to compare.
States are compared as the aggregates' attribute dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from psycopg import sql

VALUE_WIDTH = 160
FETCH = 2000


@dataclass
class AggregateReport:
    aggregates: int = 0
    events: int = 0
    with_snapshots: int = 0
    snapshots: int = 0
    differences: list[str] = field(default_factory=list)


def state(aggregate) -> dict:
    """What an aggregate is: its attributes, without the events not yet saved."""
    return {k: _plain(v) for k, v in vars(aggregate).items() if k != "_pending_events"}


def _plain(value):
    """Tuples and lists are one thing once stored (JSON arrays)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def state_differences(from_events: dict, other: dict, other_name: str) -> list[str]:
    out = []
    for name in sorted(set(from_events) | set(other), key=str):
        if name not in other:
            out.append(f"{name}: events {_short(from_events[name])}, not in the {other_name}")
        elif name not in from_events:
            out.append(f"{name}: not from the events, {other_name} {_short(other[name])}")
        elif from_events[name] != other[name]:
            out.append(
                f"{name}: events {_short(from_events[name])}, {other_name} {_short(other[name])}"
            )
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _rows(conn, app, head: int) -> Iterator[tuple]:
    """(originator_id, version, topic, state) of every event up to `head`, by aggregate."""
    recorder = app.recorder
    query = sql.SQL(
        "SELECT originator_id, originator_version, topic, state FROM {}.{}"
        " WHERE notification_id <= %s ORDER BY originator_id, originator_version"
    ).format(sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name))
    with conn.transaction(), conn.cursor(name="audit_events") as curs:
        curs.itersize = FETCH
        curs.execute(query, (head,))
        yield from curs


def _by_aggregate(rows: Iterator[tuple]) -> Iterator[tuple[UUID, list[tuple]]]:
    current, events = None, []
    for row in rows:
        if row[0] != current:
            if events:
                yield current, events
            current, events = row[0], []
        events.append(row)
    if events:
        yield current, events


def _snapshotted(app) -> set:
    if app.snapshots is None:
        return set()
    recorder = app.snapshots.recorder
    with app.datastore.transaction() as curs:
        curs.execute(
            sql.SQL("SELECT DISTINCT originator_id FROM {}.{}").format(
                sql.Identifier(recorder.datastore.schema),
                sql.Identifier(recorder.events_table_name),
            )
        )
        return {r["originator_id"] for r in curs.fetchall()}


def verify_aggregates(
    app, connect: Callable, progress: Callable[[int], None] | None = None
) -> AggregateReport:
    """Fold every aggregate of `app` from its events; compare the snapshotted ones with
    their snapshots. `connect()` opens a connection of its own to the service's database
    (the log is read through it while the application's pool loads snapshots)."""
    report = AggregateReport()
    head = app.recorder.max_notification_id() or 0
    snapshotted = _snapshotted(app)
    with connect() as conn:
        for originator_id, rows in _by_aggregate(_rows(conn, app, head)):
            report.aggregates += 1
            report.events += len(rows)
            _check(app, originator_id, rows, originator_id in snapshotted, report)
            if progress is not None:
                progress(report.events)
    return report


def _check(app, originator_id, rows: list[tuple], snapshotted: bool, report) -> None:
    snapshots = {}
    if snapshotted:
        report.with_snapshots += 1
        for snapshot in app.snapshots.get(originator_id):
            snapshots[snapshot.originator_version] = snapshot
        report.snapshots += len(snapshots)
    aggregate = None
    name = "aggregate"
    for originator_id_, version, topic, data in rows:
        try:
            event = app.mapper.to_domain_event(
                StoredEvent(originator_id_, version, topic, bytes(data))
            )
            aggregate = event.mutate(aggregate)
        except Exception as exc:  # noqa: BLE001 - what fails is the finding
            report.differences.append(
                f"aggregate {originator_id} ({topic.rpartition(':')[2]}): event version "
                f"{version} cannot be applied from the events alone: {type(exc).__name__}: {exc}"
            )
            return
        if aggregate is not None:
            name = type(aggregate).__name__
        snapshot = snapshots.pop(version, None)
        if snapshot is not None and aggregate is not None:
            for line in _against(aggregate, lambda s=snapshot: s.mutate(None), "snapshot"):
                report.differences.append(
                    f"aggregate {originator_id} ({name}) snapshot at version {version}: {line}"
                )
    last = rows[-1][1]
    for version in sorted(snapshots):
        # a snapshot past the events read: taken since, or of events that are not there
        if not any(
            e.originator_version == version
            for e in app.events.get(originator_id, gt=last, lte=version)
        ):
            report.differences.append(
                f"aggregate {originator_id} ({name}) has a snapshot at version {version}"
                f" but no event of that version"
            )
    if snapshotted and aggregate is not None:
        lines = _against(
            aggregate,
            lambda: app.repository.get(originator_id, version=aggregate.version),
            "snapshot-based load",
        )
        for line in lines:
            report.differences.append(
                f"aggregate {originator_id} ({name}) version {aggregate.version}: {line}"
            )


def _against(aggregate, load: Callable, name: str) -> list[str]:
    """How the aggregate folded from its events differs from `load()`'s."""
    try:
        other = load()
    except Exception as exc:  # noqa: BLE001 - what fails is the finding
        return [f"the {name} fails: {type(exc).__name__}: {exc}"]
    return state_differences(state(aggregate), state(other), name)
