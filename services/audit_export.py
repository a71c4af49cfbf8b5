"""`hostledger audit export`: a customer's whole history, or every event of a time window,
from every service, in one file.

    hostledger audit export --customer <id> --out FILE [--format jsonl|csv]
    hostledger audit export --since <instant> [--until <instant>] --out FILE [--format ...]

Each service's audit index is read from its own database, in one read-only snapshot per
service, through a server-side cursor (BATCH rows at a time); the services' streams are
merged in the history's order as they are read and written out at once. Memory stays
the same however many events there are. The rows, their order and their encoding are
the export route's too (contracts/audit_export.py).

The file is written under a temporary name beside it and renamed when complete: a failed
export (an unknown customer, a bad instant, a service's database away, a full disk,
Ctrl-C) leaves no file behind, and an earlier file of that name as it was. `--out -`
writes to standard output. The export is recorded in the customers service's log before
it starts (an `AuditExport` by the system, naming who ran it), as every audit read is.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from contracts import audit_export as export
from contracts.audit import OWNERS, SERVICES
from contracts.errors import ValidationFailed
from services.cli import CommandError, progress_bar
from services.infra.rpc import load

BATCH = 500  # rows a service's server-side cursor fetches at a time
PROGRESS_STEP = 1000
OPTIONS = {"customer": "--customer", "since": "--since", "until": "--until", "format": "--format"}
# who an export by the command is recorded as (with the operator's name)
EXPORT_ACTOR = ("system", "audit-export")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a customer's history or a time window's events to a file (JSON Lines, CSV)",
        description="Write every event of every service concerning one customer (its "
        "invoices, account, services, orders and tickets too), or every event with "
        "SINCE <= occurred_at < UNTIL, to FILE, in time order (then service, then position "
        "in its log): service, position, type, occurred_at, actor, on_behalf_of, cause, "
        "reason, summary, changes and aggregate of each. JSON Lines: one object a line; "
        "CSV: a header, nested values as JSON text. Reads each service's audit index "
        "directly (it may lag its log by a moment: a note says so), in constant memory; "
        "the file appears only when complete (readable by you only). The export is "
        "recorded in the audit history.",
    )
    chosen = p.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--customer", metavar="ID", help="a customer's id (deleted ones too)")
    chosen.add_argument(
        "--since",
        metavar="INSTANT",
        help="the window's first instant, ISO 8601 with its offset (2026-11-01T00:00:00Z)",
    )
    p.add_argument("--until", metavar="INSTANT", help="the window's end, not included")
    p.add_argument(
        "--format",
        choices=export.FORMATS,
        help="jsonl or csv (default: csv when FILE ends in .csv, else jsonl)",
    )
    p.add_argument("--out", metavar="FILE", required=True, help="where to write; - for stdout")
    p.set_defaults(run=cmd_export)


def cmd_export(args) -> int:
    import psycopg

    from services.infra.settings import settings

    query = parse_query(args)
    cfg = settings()
    output = Output(args.out)
    try:
        with Sources(cfg, query) as sources:
            if query["customer"] is not None and sources.counts[OWNERS["customer"]] == 0:
                raise CommandError(
                    f"no customer {query['customer']}: the customers service's audit index "
                    "has no event of it"
                )
            for note in sources.lag_notes():
                print(f"note: {note}", file=sys.stderr)
            record(cfg, query)
            with progress_bar(sources.total, "audit export") as bar:
                try:
                    written = write(output.stream, query, sources, bar.update)
                except OSError as exc:
                    raise CommandError(f"cannot write {output.name}: {exc.strerror or exc}")
                except psycopg.Error as exc:
                    raise CommandError(f"reading the audit indexes failed: {exc}") from exc
        output.commit()
    except BaseException:
        output.discard()
        raise
    per_service = ", ".join(f"{s} {n:,}" for s, n in written.items() if n)
    print(
        f"exported {sum(written.values()):,} events of {export.describe(query)}"
        + (f" ({per_service})" if per_service else "")
        + f" to {output.name}",
        file=sys.stderr if output.target is None else sys.stdout,
    )
    return 0


def parse_query(args) -> dict:
    """The options as contracts.audit_export.ExportQuery loads them; CommandError naming
    the option at fault."""
    fmt = args.format or ("csv" if str(args.out).lower().endswith(".csv") else "jsonl")
    raw = {"customer": args.customer, "since": args.since, "until": args.until, "format": fmt}
    try:
        return load(export.ExportQuery, raw)
    except ValidationFailed as exc:
        problems = "; ".join(
            f"{OPTIONS.get(name, name)}: {' '.join(messages)}"
            for name, messages in exc.fields.items()
        )
        for name, option in OPTIONS.items():  # the route's words for them: `since`
            problems = problems.replace(f"`{name}`", option)
        raise CommandError(problems) from None


def operator() -> str:
    """Who runs the command, as the machine knows them: `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def record(cfg, query: dict) -> None:
    """The export in the customers service's log, before it starts (as every audit read)."""
    import psycopg

    from services.customers.application import Customers
    from services.customers.audit import record_export
    from services.infra.context import Actor, acting

    data = load(export.ExportRecord, export.record_payload(query, "command", operator()))
    try:
        app = Customers(cfg=cfg)
    except psycopg.Error as exc:
        raise CommandError(
            f"cannot record the export in the customers service's database: {exc}"
        ) from exc
    try:
        with acting(Actor(*EXPORT_ACTOR)):
            record_export(app, data, None)
    finally:
        app.close()


# -- reading the services' audit indexes ------------------------------------------------------


class Sources:
    """Each service's database in a read-only snapshot: how many events the export holds
    there (`counts`) and, in order, the events (`streams`). CommandError when a database
    cannot be opened or has no audit index."""

    def __init__(self, cfg, query: dict, services=SERVICES):
        self.cfg = cfg
        self.query = query
        self.services = tuple(services)
        self.conns: dict = {}
        self.counts: dict[str, int] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Sources:
        import psycopg

        try:
            for service in self.services:
                dbname = self.cfg.database_name(service)
                try:
                    conn = psycopg.connect(
                        self.cfg.database.conninfo(dbname), connect_timeout=5, autocommit=False
                    )
                except psycopg.OperationalError as exc:
                    raise CommandError(
                        f"cannot open the {service} service's database {dbname} at "
                        f"{self.cfg.database.host}:{self.cfg.database.port} "
                        f"({str(exc).strip()})"
                    ) from exc
                self._stack.enter_context(conn)
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                self.conns[service] = conn
                if not self._has(conn, "audit_events") or not self._has(conn, "audit_refs"):
                    raise CommandError(
                        f"the {service} service's database {dbname} has no audit index yet: "
                        f"start the service, or run `hostledger readmodels rebuild {service} "
                        "audit_index`"
                    )
                statement, params = self._statement(service, count=True)
                self.counts[service] = conn.execute(statement, params).fetchone()[0]
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @staticmethod
    def _has(conn, table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None

    def _statement(self, service: str, count: bool = False) -> tuple[str, list]:
        from services.infra import audit

        q = self.query
        columns = audit.ITEM_JSON
        if q["customer"] is not None:
            return audit.history_statement(
                service, "customer", q["customer"], count=count, columns=columns
            )
        return audit.window_statement(service, q["since"], q["until"], count=count, columns=columns)

    def lag_notes(self) -> list[str]:
        """Services whose audit index has not yet indexed all of their log."""
        notes = []
        for service, conn in self.conns.items():
            if not self._has(conn, "readmodel_positions") or not self._has(
                conn, f"{service}_events"
            ):
                continue
            row = conn.execute(
                "SELECT (SELECT max(notification_id) FROM "
                + f"{service}_events"
                + "), (SELECT position FROM readmodel_positions WHERE name = 'audit_index')"
            ).fetchone()
            head, position = row[0] or 0, row[1] or 0
            if head > position:
                notes.append(
                    f"the {service} audit index is {head - position:,} events behind its "
                    "log; those are not in this export"
                )
        return notes

    def stream(self, service: str) -> Iterator[dict]:
        """The service's events of the export, in order, BATCH rows at a time (each row one
        column, its item as JSON text: the driver parses one value a row, not twelve)."""
        from services.infra import audit

        statement, params = self._statement(service)
        with self.conns[service].cursor(name=f"audit_export_{service}") as curs:
            curs.itersize = BATCH
            curs.execute(statement, params)
            for (text,) in curs:
                yield audit.item_of_json(service, text)

    def streams(self) -> list[Iterator[dict]]:
        return [self.stream(service) for service in self.services]


def write(
    out: BinaryIO,
    query: dict,
    sources: Sources,
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Write the export to `out`; how many events of each service it holds."""
    written = dict.fromkeys(sources.services, 0)
    pending = 0

    def rows() -> Iterator[dict]:
        nonlocal pending
        for item in export.merged(sources.streams()):
            written[item["service"]] += 1
            pending += 1
            if progress is not None and pending >= PROGRESS_STEP:
                progress(pending)
                pending = 0
            yield export.row(item)

    for chunk in export.encode(rows(), query["format"]):
        out.write(chunk)
    if progress is not None and pending:
        progress(pending)
    return written


# -- the file ---------------------------------------------------------------------------------


class Output:
    """Where the export goes: a temporary file beside FILE, renamed to it by `commit`,
    removed by `discard`; or standard output for `-`. CommandError when FILE cannot be
    written, before anything is read."""

    def __init__(self, path: str):
        self.name = path
        self.temp: Path | None = None
        if path == "-":
            self.target = None
            self.stream: BinaryIO = sys.stdout.buffer
            return
        self.target = Path(path)
        if self.target.is_dir():
            raise CommandError(f"cannot write {path}: it is a directory")
        try:
            fd, temp = tempfile.mkstemp(
                prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent
            )
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.temp = Path(temp)
        self.stream = os.fdopen(fd, "wb")

    def commit(self) -> None:
        if self.temp is None:
            self.stream.flush()
            return
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.replace(self.temp, self.target)
        except OSError as exc:
            raise CommandError(f"cannot write {self.name}: {exc.strerror or exc}") from None
        self.temp = None

    def discard(self) -> None:
        if self.temp is None:
            return
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            self.temp.unlink()
        self.temp = None
