"""`hostledger audit verify-chain [<service>]`: is each service's log as it was chained?

For each service, the chain is computed again from its event table (services/infra/
chain.py has the rule) and compared, position by position, with the hashes the service
stored as it went (`audit_chain`) and with every checkpoint of it the other services
keep as witnesses (`audit_witnesses` in their databases). The first event that was
edited, deleted, inserted or moved is named with its position, aggregate and version;
a chain recomputed to hide a change is caught by the witnesses, which it no longer
matches. Everything is read in batches (constant memory); a terminal shows a progress
bar. The exit status is 1 when anything does not fit.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
from psycopg import sql

from services.cli import CommandError, progress_bar
from services.infra.chain import (
    DELETED,
    REWRITTEN,
    ChainVerifier,
    Finding,
    Report,
    StoredRecord,
    Witness,
    merge,
)
from services.infra.settings import SERVICES, Settings, settings

BATCH = 5000
SHOWN = 20  # findings listed per service (all are counted)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify-chain",
        help="check each service's event log against its hash chain and the witnesses",
        description="Recompute each service's chain of hashes from its event log and "
        "compare it with the hashes the service stored and with the checkpoints the other "
        "services keep as witnesses. Names the first event edited, deleted, inserted or "
        "moved since it was chained; exits 1 when anything does not fit. Safe while the "
        "services run: what is chained when it starts is checked.",
    )
    p.add_argument("service", nargs="?", help=f"one of {', '.join(SERVICES)} (default: all)")
    p.set_defaults(run=cmd_verify_chain)


def cmd_verify_chain(args) -> int:
    cfg = settings()
    if args.service and args.service not in SERVICES:
        raise CommandError(f"no service named {args.service!r}; one of: {', '.join(SERVICES)}")
    services = [args.service] if args.service else list(SERVICES)
    with contextlib.ExitStack() as stack:
        conns = {s: stack.enter_context(_Database(cfg, s)) for s in SERVICES}
        total: dict[str, int] = {}
        checked = 0
        for service in services:
            outcome = verify_service(service, conns)
            print_outcome(outcome)
            if outcome.report is not None:
                checked += 1
                for kind, count in outcome.report.counts.items():
                    total[kind] = total.get(kind, 0) + count
    findings = sum(total.values())
    if findings:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(total.items()))
        print(f"{checked} service(s) verified: {findings} finding(s) ({kinds})")
        return 1
    print(f"{checked} service(s) verified: every chained event is as it was chained")
    return 0


# -- reading the databases --------------------------------------------------------------------


class _Database:
    """One service's database, opened on entry; `conn` is None (and `problem` says why)
    when it cannot be opened."""

    def __init__(self, cfg: Settings, service: str):
        self.service = service
        self.name = cfg.database_name(service)
        self.where = f"{cfg.database.host}:{cfg.database.port}"
        self.conninfo = cfg.database.conninfo(self.name)
        self.conn: psycopg.Connection | None = None
        self.problem: str | None = None

    def __enter__(self) -> _Database:
        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            self.conn.read_only = True
        except psycopg.OperationalError as exc:
            self.problem = f"cannot open {self.name} at {self.where}: {str(exc).strip()}"
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()

    def has_table(self, table: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None

    def value(self, query, params=()):
        return self.conn.execute(query, params).fetchone()[0]


def events_table(service: str) -> str:
    """The eventsourcing library names it after the application."""
    return f"{service}_events"


# Rows are read in batches with COPY's binary format, parsed here: the pure-Python
# driver's row parsing would be most of the work (docs/benchmarks.md, the hash chains).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_EVENT_HEAD = struct.Struct(">hiqi16siqi")  # fields, then id, originator, version, topic length
_CHAIN_ROW = struct.Struct(">hiqi")  # fields, then position, the hash's length
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def _copy(db: _Database, query: sql.SQL, **values) -> tuple[bytes, int]:
    """The binary COPY of `query`'s rows (its `{name}`s filled in from `values`: COPY takes
    no parameters), and the offset of the first row."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(
        query.format(
            **{k: v if isinstance(v, sql.Composable) else sql.Literal(v) for k, v in values.items()}
        )
    )
    data = bytearray()
    with db.conn.cursor() as curs, curs.copy(statement) as copy:
        for chunk in copy:
            data += chunk
    if not data.startswith(_COPY_SIGNATURE):
        raise CommandError(f"{db.name}: unexpected COPY output")
    return bytes(data), 19 + _INT32.unpack_from(data, 15)[0]


def read_events(db: _Database, upto: int) -> Iterator[StoredRecord]:
    query = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {table}"
        " WHERE notification_id > {after} AND notification_id <= {upto}"
        " ORDER BY notification_id LIMIT {limit}"
    )
    table = sql.Identifier(events_table(db.service))
    head, length, int16 = _EVENT_HEAD.unpack_from, _INT32.unpack_from, _INT16.unpack_from
    after = 0
    while True:
        data, offset = _copy(db, query, table=table, after=after, upto=upto, limit=BATCH)
        view = memoryview(data)
        count = 0
        while int16(data, offset)[0] != -1:
            _, _, position, _, originator, _, version, size = head(data, offset)
            offset += _EVENT_HEAD.size
            topic = str(view[offset : offset + size], "utf-8")
            offset += size
            size = length(data, offset)[0]
            offset += 4
            state = data[offset : offset + size] if size >= 0 else b""
            offset += max(size, 0)
            count += 1
            yield StoredRecord(position, UUID(bytes=originator), version, topic, state)
        if count < BATCH:
            return
        after = position


def read_chain(db: _Database, upto: int) -> Iterator[tuple[int, bytes]]:
    query = sql.SQL(
        "SELECT position, hash FROM audit_chain WHERE position > {after} AND position <= {upto}"
        " ORDER BY position LIMIT {limit}"
    )
    row, int16 = _CHAIN_ROW.unpack_from, _INT16.unpack_from
    after = 0
    while True:
        data, offset = _copy(db, query, after=after, upto=upto, limit=BATCH)
        count = 0
        while int16(data, offset)[0] != -1:
            _, _, position, size = row(data, offset)
            offset += _CHAIN_ROW.size
            yield position, data[offset : offset + max(size, 0)]
            offset += max(size, 0)
            count += 1
        if count < BATCH:
            return
        after = position


def read_witnesses(holder: _Database, upstream: str, upto: int) -> Iterator[Witness]:
    after = (0, 0)
    while True:
        rows = holder.conn.execute(
            "SELECT position, sequence, hash FROM audit_witnesses"
            " WHERE upstream = %s AND (position, sequence) > (%s, %s) AND position <= %s"
            " ORDER BY position, sequence LIMIT %s",
            (upstream, *after, upto, BATCH),
        ).fetchall()
        for position, sequence, hash_ in rows:
            yield Witness(holder.service, position, bytes(hash_), sequence)
        if len(rows) < BATCH:
            return
        after = rows[-1][:2]


# -- one service --------------------------------------------------------------------------


@dataclass
class Outcome:
    service: str
    report: Report | None = None
    unchained: int = 0
    notes: list[str] = field(default_factory=list)


def verify_service(service: str, conns: dict[str, _Database]) -> Outcome:
    db = conns[service]
    outcome = Outcome(service)
    if db.conn is None:
        raise CommandError(db.problem)
    if not db.has_table(events_table(service)):
        outcome.notes.append("no event log yet (the service has not run)")
        return outcome
    verifier = ChainVerifier(service, keep=1000)
    if not db.has_table("audit_chain"):
        verifier.add(Finding("chain missing", 0, "the table of the chain's hashes is gone"))
        outcome.report = verifier.finish()
        return outcome
    head = db.value("SELECT coalesce(max(position), 0) FROM audit_chain")
    outcome.unchained = db.value(
        sql.SQL("SELECT count(*) FROM {} WHERE notification_id > %s").format(
            sql.Identifier(events_table(service))
        ),
        (head,),
    )
    holders = []
    for other in SERVICES:
        holder = conns[other]
        if other == service:
            continue
        if holder.conn is None:
            outcome.notes.append(f"{other}'s witnesses not checked: {holder.problem}")
        elif not holder.has_table("audit_witnesses"):
            outcome.notes.append(f"{other} keeps no witnesses yet")
        else:
            holders.append(holder)
    positions = merge(
        read_events(db, head),
        read_chain(db, head),
        [read_witnesses(holder, service, head) for holder in holders],
    )
    with progress_bar(head, f"{service} chain") as bar:
        done = 0
        for at in positions:
            verifier.feed(at)
            if at.position - done >= BATCH:
                bar.update(at.position - done)
                done = at.position
        bar.update(max(0, head - done))
    _witnesses_past(verifier, db, holders, service, head)
    report = verifier.finish()
    if report.counts.get(DELETED):
        _name_deleted(db, report)
    outcome.report = report
    return outcome


def _witnesses_past(
    verifier: ChainVerifier, db: _Database, holders: list[_Database], service: str, head: int
) -> None:
    """Each holder's last witness beyond what was checked: the chain must reach it now
    (it moved on meanwhile) with the same hash."""
    for holder in holders:
        row = holder.conn.execute(
            "SELECT position, sequence, hash FROM audit_witnesses"
            " WHERE upstream = %s AND position > %s ORDER BY position DESC, sequence DESC LIMIT 1",
            (service, head),
        ).fetchone()
        if row is None:
            continue
        witness = Witness(holder.service, row[0], bytes(row[2]), row[1])
        now = db.value("SELECT coalesce(max(position), 0) FROM audit_chain")
        if witness.position > now:
            verifier.beyond_head(witness, now)
            continue
        verifier.report.witnesses[holder.service] = (
            verifier.report.witnesses.get(holder.service, 0) + 1
        )
        stored = db.conn.execute(
            "SELECT hash FROM audit_chain WHERE position = %s", (witness.position,)
        ).fetchone()
        if stored is None or bytes(stored[0]) != witness.hash:
            verifier.add(
                Finding(
                    REWRITTEN,
                    witness.position,
                    f"the chain's hash here differs from {holder.service}'s witness "
                    f"(checkpoint {witness.sequence}), chained after this check began",
                    since=head + 1,
                )
            )


def _name_deleted(db: _Database, report: Report) -> None:
    """For each deleted event: the aggregate whose versions now skip one there, when one
    does (the event's record is gone, its aggregate and version are not in the chain)."""
    table = sql.Identifier(events_table(db.service))
    holes = db.conn.execute(
        sql.SQL(
            "SELECT e.originator_id, e.originator_version - 1, e.notification_id,"
            " p.notification_id FROM {t} e"
            " LEFT JOIN {t} p ON p.originator_id = e.originator_id"
            "  AND p.originator_version = e.originator_version - 2"
            " WHERE e.originator_version > 1 AND NOT EXISTS (SELECT 1 FROM {t} q"
            "  WHERE q.originator_id = e.originator_id"
            "  AND q.originator_version = e.originator_version - 1)"
            " LIMIT 1000"
        ).format(t=table)
    ).fetchall()
    for finding in report.findings:
        if finding.kind != DELETED:
            continue
        around = [
            (after - finding.position, originator_id, version)
            for originator_id, version, after, before in holes
            if (before is None or before < finding.position) and finding.position < after
        ]
        if around:
            _, originator_id, version = min(around)
            finding.originator_id, finding.version = originator_id, version
            finding.detail += "; its aggregate's versions skip this one now"


# -- saying it --------------------------------------------------------------------------------


def print_outcome(outcome: Outcome) -> None:
    report = outcome.report
    if report is None:
        print(f"{outcome.service}: " + "; ".join(outcome.notes))
        return
    witnessed = (
        ", ".join(f"{holder} ({count})" for holder, count in sorted(report.witnesses.items()))
        or "no other service yet"
    )
    status = "OK" if report.ok else f"{report.total_findings} FINDING(S)"
    head = (
        f"chain head at position {report.head_position} ({report.head_hash.hex()})"
        if report.chained
        else "nothing chained yet"
    )
    print(
        f"{outcome.service}: {report.events} events checked, {head}, checkpoints witnessed "
        f"by {witnessed}: {status}"
    )
    if outcome.unchained:
        print(f"  {outcome.unchained} newer event(s) not chained yet (the service chains them)")
    for note in outcome.notes:
        print(f"  note: {note}")
    if not report.ok:
        first = report.first
        print(f"  first: {first.describe()}")
        for finding in report.findings[1:SHOWN]:
            print(f"  {finding.describe()}")
        if report.total_findings > SHOWN:
            print(f"  ... and {report.total_findings - SHOWN} more")
