"""Auditors export the history: `hostledger audit export` and `GET /api/v1/staff/audit/export`
give a customer's events, or a time window's, of every service in the history's order,
as JSON Lines or CSV, the same rows the history route answers; the download streams the
same bytes as the command's file; only administrators and auditors may download it;
bad parameters are a 400 naming the field; every export is recorded."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from contracts import audit_export as export
from contracts.audit import sort_key
from tests.staff_api import AUDIT, client_with_account, issue_invoice, record_payment
from tests.staff_api import history as _history

EXPORT = f"{AUDIT}/export"
COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]


def _command(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), "audit", "export", *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _jsonl(data: bytes) -> list[dict]:
    text = data.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _csv(data: bytes) -> list[dict]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    assert tuple(reader.fieldnames) == export.COLUMNS
    return [export.parse_csv_row(cells) for cells in reader]


def _customer_with_a_past(stack) -> str:
    customer, _client = client_with_account(
        stack, email=f"export-{uuid.uuid4().hex[:8]}@example.com"
    )
    cid = customer["id"]
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{cid}",
        stack.admin_token,
        json={"contact_person": 'Zoë "Export", Tester', "reason": "a comma, a quote, é"},
    )
    assert r.status_code == 200, r.text
    record_payment(stack, cid, 5000)
    issue_invoice(stack, cid, 'Hosting, "premium"; ünïcode', 1999)
    return cid


def _indexes_caught_up(stack) -> bool:
    """Every service's audit index has indexed the whole of its log."""
    from services.infra.settings import SERVICES

    for service in SERVICES:
        with stack.db(service) as conn:
            head, position = conn.execute(
                f"SELECT (SELECT max(notification_id) FROM {service}_events),"
                " (SELECT position FROM readmodel_positions WHERE name = 'audit_index')"
            ).fetchone()
        if (head or 0) > (position or 0):
            return False
    return True


def _settled(stack, cid: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """The customer's history through the route and the command's export of it, once the
    consequences of its last changes (mail, ...) are in every service's index: the two
    answer the same events."""
    out = tmp_path / "customer.jsonl"
    found: dict = {}
    stack.wait_until(
        lambda: _indexes_caught_up(stack), timeout=120, what="every service's audit index"
    )

    def same() -> bool:
        items = _history(stack, f"customers/{cid}")
        done = _command(stack, "--customer", cid, "--out", str(out))
        assert done.returncode == 0, done.stderr
        found["history"], found["export"] = items, _jsonl(out.read_bytes())
        return found["export"] == items and items == _history(stack, f"customers/{cid}")

    stack.wait_until(same, timeout=60, what="the export to answer the history's events")
    return found["history"], found["export"]


def test_a_customers_export_is_its_history_by_command_and_download(stack, tmp_path):
    cid = _customer_with_a_past(stack)
    history, exported = _settled(stack, cid, tmp_path)
    types = [i["type"] for i in exported]
    assert "Customer.Registered" in types and "PersonalAccount.Opened" in types
    assert {"customers", "billing"} <= {i["service"] for i in exported}
    assert [sort_key(i) for i in exported] == sorted(sort_key(i) for i in exported)
    corrected = next(i for i in exported if i["reason"] == "a comma, a quote, é")
    assert corrected["actor"]["kind"] == "staff"
    assert {
        "field": "contact_person",
        "before": "Test Person",
        "after": 'Zoë "Export", Tester',
    } in (corrected["changes"])

    # the command's CSV holds the same rows
    out = tmp_path / "customer.csv"
    done = _command(stack, "--customer", cid, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"exported {len(history)} events of customer {cid}" in done.stdout
    assert _csv(out.read_bytes()) == history

    # the download: the same rows, as an attachment, in either format
    r = stack.http("GET", EXPORT, stack.admin_token, params={"customer": cid})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-ndjson"
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="audit-customer-{cid}.jsonl"'
    )
    assert r.headers.get("Transfer-Encoding") == "chunked"  # streamed, not sized first
    assert _jsonl(r.content) == history
    assert r.content == (tmp_path / "customer.jsonl").read_bytes()
    r = stack.http("GET", EXPORT, stack.admin_token, params={"customer": cid, "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].endswith(f'filename="audit-customer-{cid}.csv"')
    assert r.content == out.read_bytes()

    # an auditor downloads it too; support and billing may not
    _, auditor = stack.staff_member("auditor")
    r = stack.http("GET", EXPORT, auditor, params={"customer": cid})
    assert r.status_code == 200 and _jsonl(r.content) == history
    for role in ("support", "billing"):
        _, token = stack.staff_member(role)
        r = stack.http("GET", EXPORT, token, params={"customer": cid})
        assert r.status_code == 403, (role, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    client = stack.register_customer()["credentials"]
    r = stack.http(
        "GET",
        EXPORT,
        stack.login(client["username"], client["password"]),
        params={"customer": cid},
    )
    assert r.status_code == 403

    # every export is recorded in the reader's history
    me = stack.http("GET", "/api/v1/me", stack.admin_token).json()["staff_id"]
    mine = [i for i in _history(stack, f"staff/{me}") if i["type"] == "AuditExport.Recorded"]
    summaries = {i["summary"] for i in mine}
    assert "Audit: customer history exported (jsonl, through the API)" in summaries
    assert "Audit: customer history exported (csv, through the API)" in summaries
    # the command's own exports are the system's, naming who ran them
    with stack.db("customers") as conn:
        operators = conn.execute(
            "SELECT changes FROM audit_events WHERE event_type = 'AuditExport.Recorded'"
            " AND actor->>'id' = 'audit-export'"
        ).fetchall()
    assert operators and all("@" in c["operator"][1] for (c,) in operators)


def test_a_time_windows_export_is_the_same_by_command_and_download(stack, tmp_path):
    cid = _customer_with_a_past(stack)
    history, _ = _settled(stack, cid, tmp_path)
    first, last = history[1], history[-1]
    since = first["occurred_at"]
    until = (datetime.fromisoformat(last["occurred_at"]) + timedelta(microseconds=1)).isoformat()

    r = stack.http(
        "GET", EXPORT, stack.admin_token, params={"since": since, "until": until, "format": "csv"}
    )
    assert r.status_code == 200, r.text
    downloaded = r.content
    out = tmp_path / "window.csv"
    done = _command(stack, "--since", since, "--until", until, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == downloaded

    rows = _csv(downloaded)
    keys = [sort_key(i) for i in rows]
    assert keys == sorted(keys)
    low, high = datetime.fromisoformat(since), datetime.fromisoformat(until)
    assert all(low <= datetime.fromisoformat(i["occurred_at"]) < high for i in rows)
    # every event of the customer's history in the window, in the same order, among the
    # rest of the log of that time (bookkeeping events too)
    wanted = history[1:]
    it = iter(rows)
    assert all(any(w == r for r in it) for w in wanted)
    assert len(rows) >= len(wanted)

    # from an instant on, without an end: as JSON Lines, what the window held and more
    r = stack.http("GET", EXPORT, stack.admin_token, params={"since": since})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Disposition"].startswith('attachment; filename="audit-since-')
    assert _jsonl(r.content)[: len(rows)] == rows


def test_bad_parameters_are_a_400_naming_the_field_and_an_unknown_customer_a_404(stack, tmp_path):
    token = stack.admin_token
    for params, field in (
        ({}, "customer"),
        ({}, "since"),
        ({"customer": "nobody"}, "customer"),
        ({"since": "2026-11-01"}, "since"),
        ({"since": "2026-11-01T00:00:00"}, "since"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"customer": str(uuid.uuid4()), "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"customer": str(uuid.uuid4()), "since": "2026-11-01T00:00:00Z"}, "since"),
        ({"customer": str(uuid.uuid4()), "format": "xlsx"}, "format"),
    ):
        r = stack.http("GET", EXPORT, token, params=params)
        assert r.status_code == 400, (params, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error" and field in error["fields"], (params, error)

    r = stack.http("GET", EXPORT, token, params={"customer": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    unknown = str(uuid.uuid4())
    done = _command(stack, "--customer", unknown, "--out", str(tmp_path / "x.jsonl"))
    assert done.returncode == 1 and f"no customer {unknown}" in done.stderr
    assert not list(tmp_path.iterdir())


def _seed_entries(stack, cid: str, entries: int) -> None:
    """`entries` entries of 1 EUR on the customer's account, saved in-process with billing's
    own application (as the bench seeds a long account): more events than one page."""
    from services.billing.application import Billing
    from services.infra.context import Actor, acting
    from services.infra.money import Money

    app = Billing(cfg=stack.settings)
    try:
        with acting(Actor("system", "test-seed")):
            account = app.account(uuid.UUID(cid), "EUR")
            at = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
            for k in range(entries):
                account.credit("payment", Money(1, "EUR"), f"SEED-{k}", None, at)
            app.save(account)
    finally:
        app.close()


def test_a_long_history_streams_page_after_page(stack, tmp_path):
    cid = _customer_with_a_past(stack)
    _seed_entries(stack, cid, 1200)  # six history pages of billing's, two window pages
    history, _ = _settled(stack, cid, tmp_path)
    credits = [i for i in history if i["type"] == "PersonalAccount.Credited"]
    assert len(credits) >= 1200

    r = stack.http("GET", EXPORT, stack.admin_token, params={"customer": cid}, stream=True)
    assert r.status_code == 200
    assert r.raw.read() == (tmp_path / "customer.jsonl").read_bytes()

    since = credits[0]["occurred_at"]
    until = (
        datetime.fromisoformat(credits[-1]["occurred_at"]) + timedelta(microseconds=1)
    ).isoformat()
    r = stack.http("GET", EXPORT, stack.admin_token, params={"since": since, "until": until})
    assert r.status_code == 200, r.text
    out = tmp_path / "window.jsonl"
    done = _command(stack, "--since", since, "--until", until, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert r.content == out.read_bytes()
    rows = _jsonl(r.content)
    assert [i for i in rows if i["type"] == "PersonalAccount.Credited"] == credits
