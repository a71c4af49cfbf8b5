"""`hostledger audit verify-replay [<service>]`: the event history gives the live state.

For each service (every one, or the one named):

- **Read models.** Each read model is rebuilt from the service's log into a scratch
  schema of the service's own database (`hostledger_replay_<service>_...`), with the
  model's own CREATE statements run with `search_path` set to the scratch schema first,
  and its tables are compared row by row with the live ones (services/audit_tables.py).
  The replay stops at the live model's own position, so a model that is behind the log
  is compared with exactly the events it has projected. It parks what fails, as the live
  model does: the events each skipped are compared too (a live event parked and still
  open, or resolved by someone without being projected, is one the live model skipped;
  one projected again or re-projected by a rebuild is not).
- **Aggregates.** Every aggregate is folded from its events alone and compared with the
  application's snapshot-based load (services/audit_aggregates.py).

A live model may move while it is compared. Its rows and its position are written in one
transaction, so one REPEATABLE READ snapshot of the live database shows rows that are
exactly the projection of the events up to the position it shows. The check is therefore:
note the live position, replay the scratch copy to it (committed), then open the
snapshot and read the position again; when it is the same, both sides are compared in
that snapshot (the scratch rows were committed before it began, so it sees them). When the
live model moved meanwhile, the scratch copy is caught up to the new position (only the
events in between) and the check is tried again. A model that moves on every try (a busy
service) is held for the last try: its advisory lock, the one its followers and a rebuild
take, keeps it still while the few events since the previous try are replayed and the
tables compared; the live service's follower picks up again when the lock is released.
If the live model was rebuilt meanwhile (its position went back), the scratch copy is
emptied and replayed again.

The replay never writes outside its scratch schema: each of its transactions checks that
it changed no table elsewhere (else it stops and says which), and the scratch schema is
dropped afterwards, also on failure or interruption. A run killed outright (SIGKILL)
leaves a `hostledger_replay_*` schema that can be dropped by hand.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from services.audit_aggregates import verify_aggregates
from services.audit_scratch import ReplayEscaped, ReplayFollower, ScratchApp
from services.audit_tables import compare_table
from services.cli import CommandError, open_application, progress_bar
from services.infra.parking import PARKED_TABLE

# how parked events of a read model are resolved when the model did project them after all
# (services/infra/readmodels.py: Follower.retry and Follower.rebuild)
PROJECTED_RESOLUTIONS = ("projected again", "rebuilt")
# tries with the live model left running before the one that holds it still
UNLOCKED_TRIES = 5


# -- results ------------------------------------------------------------------------------------


@dataclass
class ServiceResult:
    service: str
    models: int = 0
    tables: int = 0
    rows: int = 0
    events: int = 0
    aggregates: int = 0
    snapshotted: int = 0
    differences: int = 0
    seconds: float = 0.0


def say(line: str = "") -> None:
    print(line, flush=True)


# -- one service --------------------------------------------------------------------------------


class ServiceAudit:
    def __init__(self, service: str):
        from services.infra.settings import settings

        self.service = service
        self.module = importlib.import_module(f"services.{service}.service")
        self.cfg = settings()
        self.result = ServiceResult(service)

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.cfg.database.conninfo(self.cfg.database_name(self.service)),
            autocommit=True,
            connect_timeout=10,
        )
        # this connection holds a snapshot (or a cursor) while the replay works beside it
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        return conn

    def run(self) -> ServiceResult:
        started = time.monotonic()
        app = open_application(self.service, self.module.APPLICATION)
        try:
            models = tuple(getattr(self.module, "READ_MODELS", ()))
            if models:
                self.read_models(app, models)
            self.aggregates(app)
        finally:
            app.close()
        self.result.seconds = time.monotonic() - started
        return self.result

    def differ(self, where: str, line: str) -> None:
        self.result.differences += 1
        say(f"DIFFERENCE {where}: {line}")

    # -- read models ------------------------------------------------------------------------

    def read_models(self, app, models) -> None:
        with app.datastore.transaction() as curs:
            curs.execute("SHOW search_path")
            live_path = curs.fetchone()["search_path"]
        schema = f"hostledger_replay_{self.service}_{os.getpid()}_{secrets.token_hex(3)}"
        with self.connect() as snap:
            snap.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            try:
                search_path = f"{sql.Identifier(schema).as_string(snap)}, {live_path}"
                scratch = ScratchApp(app, schema, search_path)
                with scratch.datastore.transaction(commit=True) as curs:
                    curs.execute(PARKED_TABLE)
                quiet = logging.getLogger("services.infra.readmodels")
                was, quiet.disabled = quiet.disabled, True  # the replay's parking is reported
                try:
                    for model_cls in models:
                        self.read_model(app, snap, scratch, model_cls)
                finally:
                    quiet.disabled = was
            finally:
                self._drop(snap, schema)

    def _drop(self, snap, schema: str) -> None:
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        try:
            if snap.closed or snap.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with self.connect() as conn:
                    conn.execute(statement)
            else:
                snap.execute(statement)
        except psycopg.Error as exc:
            print(
                f"hostledger: the scratch schema {schema} could not be dropped ({exc}); "
                "drop it by hand",
                file=sys.stderr,
            )

    def read_model(self, app, snap, scratch: ScratchApp, model_cls) -> None:
        model = model_cls()
        where = f"{self.service}.{model.name}"
        follower = ReplayFollower(scratch, model)
        live_lock = f"readmodel:{app.service}:{model.name}"  # the live Follower.lock_key
        self.result.models += 1
        for attempt in range(UNLOCKED_TRIES + 1):
            hold = attempt == UNLOCKED_TRIES
            if hold:
                snap.execute("SELECT pg_advisory_lock(hashtext(%s))", (live_lock,))
            try:
                position = _live_position(snap, model.name)
                with progress_bar(position, f"replaying {where}") as bar:
                    follower.replay_to(position, progress=_advance(bar))
                with snap.transaction():
                    snap.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    if _live_position(snap, model.name) != position:
                        continue  # it moved: catch up and look again
                    lines, tables, rows, parked = self._compare(
                        snap, scratch.datastore.schema, model, follower.upstream, position
                    )
                break
            finally:
                if hold:
                    snap.execute("SELECT pg_advisory_unlock(hashtext(%s))", (live_lock,))
        else:  # held still, it cannot move: this would be a lock that does not hold
            raise CommandError(f"{where}: the live model moved while it was held; try again")
        for line in lines:
            self.differ(where, line)
        self.result.tables += tables
        self.result.rows += rows
        say(
            f"{where}: compared at position {position}: {_n(tables, 'table')}, "
            f"{_n(rows, 'row')}, {_n(parked, 'skipped event')}: {_verdict(len(lines))}"
        )

    def _compare(self, snap, schema: str, model, upstream: str, position: int):
        lines: list[str] = []
        rows = 0
        with snap.cursor() as curs:
            for table in model.table_names:
                diff = compare_table(curs, _live_schema(curs, table), schema, table)
                rows += diff.rows
                lines.extend(diff.lines())
            parked_lines, parked = _compare_parked(curs, schema, upstream, position)
        return lines + parked_lines, len(model.table_names), rows, parked

    # -- aggregates -------------------------------------------------------------------------

    def aggregates(self, app) -> None:
        head = app.recorder.max_notification_id() or 0
        with progress_bar(head, f"loading {self.service} aggregates") as bar:
            report = verify_aggregates(app, self.connect, progress=lambda n: bar.update(n - bar.n))
        for line in report.differences:
            self.differ(f"{self.service} aggregates", line)
        self.result.events += report.events
        self.result.aggregates += report.aggregates
        self.result.snapshotted += report.with_snapshots
        say(
            f"{self.service} aggregates: {_n(report.aggregates, 'aggregate')} loaded from "
            f"{_n(report.events, 'event')} alone, {report.with_snapshots} of them compared "
            f"with their snapshot-based load ({_n(report.snapshots, 'snapshot')}): "
            f"{_verdict(len(report.differences))}"
        )


def _n(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def _verdict(differences: int) -> str:
    return _n(differences, "difference") if differences else "equal"


def _advance(bar):
    def advance(position: int) -> None:
        if position > bar.total:
            bar.total = position
        bar.update(position - bar.n)

    return advance


def _live_schema(curs, table: str) -> str:
    """The schema the live service finds `table` in (its search path); the first schema
    of the path when there is no such table."""
    curs.execute(
        "SELECT coalesce((SELECT relnamespace::regnamespace::text FROM pg_class"
        " WHERE oid = to_regclass(%s)), (current_schemas(false))[1], 'public')",
        (table,),
    )
    return curs.fetchone()[0].strip('"')


def _live_position(snap, name: str) -> int:
    """The live model's position: 0 when it never ran (no positions table, or no row)."""
    if snap.execute("SELECT to_regclass('readmodel_positions')").fetchone()[0] is None:
        return 0
    row = snap.execute(
        "SELECT position FROM readmodel_positions WHERE name = %s", (name,)
    ).fetchone()
    return row[0] if row else 0


def _compare_parked(curs, schema: str, upstream: str, position: int) -> tuple[list[str], int]:
    """Events the live model skipped against those the replay could not project."""
    live_table = sql.SQL("{}.parked_events").format(
        sql.Identifier(_live_schema(curs, "parked_events"))
    )
    live: dict[int, tuple] = {}
    curs.execute("SELECT to_regclass('parked_events') IS NOT NULL")
    if curs.fetchone()[0]:
        curs.execute(
            sql.SQL(
                "SELECT position, type, error, resolution FROM {} WHERE upstream = %s"
                " AND position <= %s AND (resolved_at IS NULL OR resolution IS NULL"
                " OR resolution <> ALL(%s))"
            ).format(live_table),
            (upstream, position, list(PROJECTED_RESOLUTIONS)),
        )
        live = {r[0]: r[1:] for r in curs.fetchall()}
    curs.execute(
        sql.SQL("SELECT position, type, error FROM {}.parked_events WHERE upstream = %s").format(
            sql.Identifier(schema)
        ),
        (upstream,),
    )
    replayed = {r[0]: r[1:] for r in curs.fetchall()}
    lines = []
    for pos in sorted(set(live) - set(replayed)):
        type_, error, resolution = live[pos]
        how = f"resolved as {resolution!r} without being projected" if resolution else "parked"
        lines.append(
            f"event {pos} ({type_}): the live model skipped it ({how}; {error}), "
            "the replay projected it"
        )
    for pos in sorted(set(replayed) - set(live)):
        type_, error = replayed[pos]
        lines.append(
            f"event {pos} ({type_}): the replay could not project it ({error}), the live model did"
        )
    return lines, len(live)


# -- the command --------------------------------------------------------------------------------


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def cmd_verify_replay(args) -> int:
    from services.infra.settings import SERVICES

    if args.service and args.service not in SERVICES:
        raise CommandError(f"no service named {args.service!r}; one of: {', '.join(SERVICES)}")
    # a stopped run still drops its scratch schema
    signal.signal(signal.SIGTERM, _interrupted)
    results = []
    for service in [args.service] if args.service else list(SERVICES):
        try:
            results.append(ServiceAudit(service).run())
        except ReplayEscaped as exc:
            raise CommandError(f"{service}: {exc}") from None
    say()
    say(
        f"{'service':<12} {'read models':>11} {'tables':>7} {'rows':>9} {'events':>9} "
        f"{'aggregates':>10} {'snapshotted':>11} {'differences':>11} {'seconds':>8}"
    )
    for r in results:
        say(
            f"{r.service:<12} {r.models:>11} {r.tables:>7} {r.rows:>9} {r.events:>9} "
            f"{r.aggregates:>10} {r.snapshotted:>11} {r.differences:>11} {r.seconds:>8.1f}"
        )
    total = sum(r.differences for r in results)
    say()
    if total:
        say(f"verify-replay: {_n(total, 'difference')} between the history and the live state")
        return 1
    say("verify-replay: replaying the history gives the live state")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify-replay",
        help="replay each service's history and compare it with the live state",
        description="Rebuild every read model from the service's event log into a scratch "
        "schema, up to the live model's own position, and compare it row by row with the "
        "live tables (and the events each skipped); fold every aggregate from its events "
        "alone and compare it with its snapshot-based load. Prints each difference and a "
        "summary per service; exits 1 when anything differs. Read-only for the live "
        "state; safe while the services run.",
    )
    p.add_argument("service", nargs="?", help="one service (default: every service)")
    p.set_defaults(run=cmd_verify_replay)
