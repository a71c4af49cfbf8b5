"""`hostledger audit export` at scale, against scratch databases: 200,000 events of one
customer in two services' audit indexes (inserted with SQL, every one at the same instant
as one of the other service's, so the order rests on the tie-breaks too) are written in
the history's order while the memory in use stays that of a few pages; a time window
holds exactly its events; and the command leaves no file behind when it fails."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from contracts import audit_export as export
from contracts.audit import sort_key
from services import audit_export as command
from services.infra.audit import AuditIndex
from services.infra.settings import SERVICES

EVENTS_PER_SERVICE = 100_000
FILLED = ("billing", "customers")
START = datetime(2026, 1, 1, tzinfo=UTC)
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]
# how much more memory the command may take for 200,000 events than for 18: a few pages
# of rows; the rows themselves as Python objects take about 2 KB each (400 MB for these)
GROWTH_BYTES = 40 * 1024 * 1024
# rows of the orders service's index with every column set, at a time before the others'
SPECIAL = [
    (1, "2025-12-31T00:00:00+00:00", {"kind": "staff", "id": "a"}, None, None, None, "Plain"),
    (
        2,
        "2025-12-31T00:00:00.000001+00:00",
        {"kind": "client", "id": str(OTHER)},
        {"kind": "staff", "id": "b"},
        "billing:12",
        "asked on the phone",
        'Café \u00e9 "quoted" \\ tab\there',
    ),
]


def _fill(cfg, customer: uuid.UUID) -> None:
    for service in SERVICES:
        with psycopg.connect(
            cfg.database.conninfo(cfg.database_name(service)), autocommit=True
        ) as conn:
            for statement in AuditIndex.tables:
                conn.execute(statement)
            if service == "orders":
                for position, at, actor, behalf, cause, reason, summary in SPECIAL:
                    conn.execute(
                        "INSERT INTO audit_events VALUES (%s, %s, 'Order', %s, 'Order.Placed',"
                        " %s, %s::json, %s::json, %s, %s, %s, %s::json)",
                        (
                            position,
                            OTHER,
                            position,
                            at,
                            json.dumps(actor),
                            json.dumps(behalf) if behalf else None,
                            cause,
                            reason,
                            summary,
                            json.dumps({"total.amount": [None, 2**62], "note": ["é", None]}),
                        ),
                    )
            if service not in FILLED:
                continue
            conn.execute(
                "INSERT INTO audit_events (position, aggregate_id, aggregate_type, version,"
                " event_type, occurred_at, actor, on_behalf_of, cause, reason, summary, changes)"
                " SELECT g, %s, 'PersonalAccount', g, 'PersonalAccount.Credited',"
                " %s + g * interval '1 second',"
                " json_build_object('kind', 'staff', 'id', %s::text), NULL, NULL, NULL,"
                " 'Personal account credited',"
                " json_build_object('balance', json_build_array(g - 1, g),"
                " 'entry.reference', json_build_array(NULL, 'TX-' || g))"
                " FROM generate_series(1, %s) g",
                (uuid.uuid4(), START, str(OTHER), EVENTS_PER_SERVICE),
            )
            conn.execute(
                "INSERT INTO audit_refs (kind, object_id, occurred_at, position)"
                " SELECT 'customer', %s, occurred_at, position FROM audit_events",
                (customer,),
            )
            # events of another customer, and a bookkeeping one of nobody's, in between
            conn.execute(
                "INSERT INTO audit_events (position, aggregate_id, aggregate_type, version,"
                " event_type, occurred_at, summary, changes)"
                " SELECT %s + g, %s, 'LoginName', g, 'LoginName.Created',"
                " %s + g * interval '10 seconds' + interval '1 millisecond', 'Login name created',"
                " '{}'::json FROM generate_series(1, 100) g",
                (EVENTS_PER_SERVICE, uuid.uuid4(), START),
            )
            conn.execute(
                "INSERT INTO audit_refs (kind, object_id, occurred_at, position)"
                " SELECT 'customer', %s, occurred_at, position FROM audit_events"
                " WHERE position > %s AND position <= %s",
                (OTHER, EVENTS_PER_SERVICE, EVENTS_PER_SERVICE + 50),
            )
            conn.execute("VACUUM ANALYZE audit_events")
            conn.execute("VACUUM ANALYZE audit_refs")


@pytest.fixture
def customer(cfg):
    ident = uuid.uuid4()
    _fill(cfg, ident)
    return ident


def _query(**values) -> dict:
    return export.ExportQuery().load(values)


def _ordered_lines(path: Path):
    """(count, first row, last row), checking the order line by line (constant memory)."""
    count, first, previous = 0, None, None
    with path.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = sort_key(r)
            assert previous is None or key > previous, (previous, key)
            previous, count = key, count + 1
            first = first or r
    return count, first, r


def _peak_rss(cfg, *args) -> tuple[subprocess.CompletedProcess, int]:
    """Run the command; what it said, and its peak resident memory in bytes."""
    proc = subprocess.Popen(
        [str(COMMAND), "audit", "export", *args],
        env=_env(cfg),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, "", stderr
    ), usage.ru_maxrss * 1024


def test_two_hundred_thousand_events_stream_in_order_in_constant_memory(cfg, customer, tmp_path):
    # the command's memory beside its own for an export of 18 events
    small, small_peak = _peak_rss(
        cfg,
        "--since",
        START.isoformat(),
        "--until",
        "2026-01-01T00:00:10Z",
        "--out",
        str(tmp_path / "small.jsonl"),
    )
    assert small.returncode == 0, small.stderr
    out = tmp_path / "customer.jsonl"
    done, peak = _peak_rss(cfg, "--customer", str(customer), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert peak - small_peak < GROWTH_BYTES, (
        f"{peak / 1e6:.0f} MB for 200,000 events, {small_peak / 1e6:.0f} MB for 18"
    )

    count, first, last = _ordered_lines(out)
    assert count == 2 * EVENTS_PER_SERVICE
    # at each instant, billing's event before the customers service's (by name)
    assert (first["service"], first["position"]) == ("billing", 1)
    assert (last["service"], last["position"]) == ("customers", EVENTS_PER_SERVICE)
    assert first["occurred_at"] == "2026-01-01T00:00:01.000000Z"
    assert first["changes"] == [
        {"field": "balance", "before": 0, "after": 1},
        {"field": "entry.reference", "before": None, "after": "TX-1"},
    ]
    assert first["actor"] == {"kind": "staff", "id": str(OTHER)}
    assert first["aggregate"]["type"] == "PersonalAccount"


def test_the_export_reads_what_the_history_answers_counted_first(cfg, customer):
    """The rows the command reads as JSON made by PostgreSQL are the items the services'
    history answers (services.infra.audit: ITEM_JSON and _item); the counts come first."""
    from psycopg.rows import dict_row

    from services.infra import audit

    conninfo = cfg.database.conninfo(cfg.database_name("orders"))
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM audit_events ORDER BY position").fetchall()
        texts = conn.execute(
            f"SELECT {audit.ITEM_JSON} AS j FROM audit_events e ORDER BY position"
        ).fetchall()
    assert len(rows) == len(SPECIAL) > 0
    for row, text in zip(rows, texts, strict=True):
        assert audit.item_of_json("orders", text["j"]) == audit._item("orders", row)

    query = _query(since=START.isoformat(), until="2026-01-01T00:00:10Z")
    progressed = []
    with command.Sources(cfg, query) as sources:
        assert sources.counts == {
            "billing": 9,
            "customers": 9,
            "helpdesk": 0,
            "mailgateway": 0,
            "orders": 0,
        }
        out = io.BytesIO()
        written = command.write(out, query, sources, progressed.append)
    assert written["billing"] == written["customers"] == 9 and sum(progressed) == 18
    assert len(out.getvalue().splitlines()) == 18


def test_a_time_window_holds_its_events_bookkeeping_ones_too(cfg, customer):
    since = START + timedelta(seconds=100)
    until = START + timedelta(seconds=200)
    query = _query(since=since.isoformat(), until=until.isoformat(), format="csv")
    out = io.BytesIO()
    with command.Sources(cfg, query) as sources:
        # 100..199 of each service, and the bookkeeping events at 100.001 .. 190.001
        assert sources.counts["billing"] == sources.counts["customers"] == 110
        command.write(out, query, sources)
    import csv

    rows = [export.parse_csv_row(r) for r in csv.DictReader(io.StringIO(out.getvalue().decode()))]
    assert len(rows) == 220
    assert [sort_key(r) for r in rows] == sorted(sort_key(r) for r in rows)
    assert rows[0]["occurred_at"] == "2026-01-01T00:01:40.000000Z"
    assert rows[-1]["occurred_at"] == "2026-01-01T00:03:19.000000Z"
    assert sum(r["type"] == "LoginName.Created" for r in rows) == 20


def _env(cfg) -> dict:
    return dict(os.environ, HOSTLEDGER_DB_PREFIX=cfg.db_prefix, HOSTLEDGER_DB_POOL_SIZE="2")


def _run(cfg, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), "audit", "export", *args],
        env=_env(cfg),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_records_the_export_and_leaves_no_file_when_it_fails(cfg, customer, tmp_path):
    out = tmp_path / "window.csv"
    done = _run(
        cfg, "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01T00:00:10Z", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    # 1 .. 9 s of each service
    assert "exported 18 events of events from 2026-01-01T00:00:00Z to" in done.stdout
    assert out.read_text().splitlines()[0] == ",".join(export.COLUMNS)  # csv, by its name
    assert len(out.read_text().splitlines()) == 19
    assert os.listdir(tmp_path) == ["window.csv"]
    with psycopg.connect(cfg.database.conninfo(cfg.database_name("customers"))) as conn:
        [(state,)] = conn.execute(
            "SELECT state FROM customers_events WHERE topic LIKE %s", ("%AuditExport.Recorded",)
        ).fetchall()
    recorded = json.loads(bytes(state))
    assert recorded["via"] == "command" and recorded["format"] == "csv"
    assert recorded["actor"] == {"kind": "system", "id": "audit-export"}
    assert "@" in recorded["operator"]

    # an earlier file stays as it was when an export fails
    before = out.read_bytes()
    unknown = uuid.uuid4()
    done = _run(cfg, "--customer", str(unknown), "--out", str(out))
    assert done.returncode == 1
    assert f"no customer {unknown}" in done.stderr
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["window.csv"]

    done = _run(cfg, "--customer", str(customer), "--out", str(tmp_path / "nowhere" / "x.jsonl"))
    assert done.returncode == 1 and "cannot write" in done.stderr
    assert "No such file or directory" in done.stderr

    done = _run(cfg, "--since", "last tuesday", "--out", str(out))
    assert done.returncode == 1 and "--since: Not an instant" in done.stderr
    assert os.listdir(tmp_path) == ["window.csv"]
