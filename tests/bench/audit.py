"""The audit history and its export for a customer with many events.

One customer's personal account is given `events` entries, seeded in the bench process
with billing's own application (one `credit` per entry, one save per `batch`, as the long
account of the billing section is), so that the customer's history holds that many
events and a few more. Once billing's audit index has indexed them all:

- history: every page of `GET /api/v1/staff/audit/customers/{id}/history` (the default
  50 a page) as admin, one request at a time, each from the cursor of the one before;
  p50 and p99 of a page. Each page asks all five services (51 events each) and records
  the read in the customers service first. Bare: the same page's SQL on billing's
  database (the index's range scan from the same cursor, LIMIT 51), one at a time.
- export: the customer's export written by the command's code in the bench process
  (`services.audit_export`: the five databases read through server-side cursors,
  merged, JSON Lines to /dev/null; without the command's start-up and the record of the
  export), and downloaded through the gateway (`GET /api/v1/staff/audit/export?customer=`,
  the body read to its end), in events per second. Bare: billing's notification log read
  from its first position to its head by the eventsourcing recorder
  (`select_notifications`, 1,000 a call: rows, not yet domain events), in events per
  second, from the same store.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from tests.bench.drive import distribution_ms

HISTORY = "/api/v1/staff/audit/customers/{id}/history"
EXPORT = "/api/v1/staff/audit/export"
CURRENCY = "EUR"
PAGE = 50


def seed(stack, customer_id: str, events: int, batch: int = 1000) -> dict:
    """`events` account entries of the customer, in-process; timed."""
    from services.billing.application import Billing
    from services.infra.context import Actor, acting
    from services.infra.money import Money

    app = Billing(cfg=stack.settings)
    try:
        account = app.account(uuid.UUID(customer_id), CURRENCY)
        at = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=1)
        one = Money(1, CURRENCY)
        t0 = time.perf_counter()
        with acting(Actor("system", "bench")):
            for start in range(0, events, batch):
                for k in range(start, min(events, start + batch)):
                    account.credit("payment", one, f"BENCH-{k}", None, at)
                app.save(account)
        seconds = time.perf_counter() - t0
    finally:
        app.close()
    return {
        "events": events,
        "batch": batch,
        "seed_seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
    }


def _positions(stack, service: str) -> tuple[int, int]:
    with stack.db(service) as conn:
        head, position = conn.execute(
            f"SELECT (SELECT max(notification_id) FROM {service}_events),"
            " (SELECT position FROM readmodel_positions WHERE name = 'audit_index')"
        ).fetchone()
    return head or 0, position or 0


def wait_for_index(stack, service: str = "billing", timeout: float = 600) -> float:
    """Seconds until the service's audit index has indexed its whole log."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        head, position = _positions(stack, service)
        if position >= head:
            return round(time.perf_counter() - t0, 1)
        time.sleep(0.5)
    raise TimeoutError(f"the {service} audit index did not catch up in {timeout} s")


def history_pages(stack, customer_id: str) -> dict:
    """Every page of the customer's history, one request at a time."""
    from contracts.audit import decode_cursor

    url = stack.base_url + HISTORY.format(id=customer_id)
    times, cursors, events = [], [None], 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {stack.admin_token}"
        session.get(url, params={"limit": PAGE}, timeout=60)  # warm up
        cursor = None
        while True:
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            t0 = time.perf_counter()
            r = session.get(url, params=params, timeout=60)
            times.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"the history answered {r.status_code}: {r.text[:200]}")
            page = r.json()
            events += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(decode_cursor(cursor))
    return {"events": events, "pages": len(times), "http": distribution_ms(times)}, cursors


def bare_pages(stack, customer_id: str, cursors: list) -> dict:
    """The same pages' SQL on billing's database, one at a time."""
    from services.infra import audit

    times = []
    with stack.db("billing") as conn:
        for cursor in cursors:
            statement, params = audit.history_statement(
                "billing", "customer", uuid.UUID(customer_id), cursor
            )
            t0 = time.perf_counter()
            conn.execute(f"{statement} LIMIT %s", (*params, PAGE + 1)).fetchall()
            times.append(time.perf_counter() - t0)
    return distribution_ms(times)


def export_by_command(stack, customer_id: str) -> dict:
    from contracts import audit_export as export
    from services import audit_export as command

    query = export.ExportQuery().load({"customer": customer_id})
    t0 = time.perf_counter()
    with command.Sources(stack.settings, query) as sources, open("/dev/null", "wb") as out:
        written = command.write(out, query, sources)
    seconds = time.perf_counter() - t0
    events = sum(written.values())
    return {"events": events, "seconds": round(seconds, 3), "per_second": round(events / seconds)}


def export_by_api(stack, customer_id: str) -> dict:
    t0 = time.perf_counter()
    events = size = 0
    with requests.get(
        stack.base_url + EXPORT,
        params={"customer": customer_id},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        stream=True,
        timeout=120,
    ) as r:
        if r.status_code != 200:
            raise RuntimeError(f"the export answered {r.status_code}: {r.text[:200]}")
        for chunk in r.iter_content(64 * 1024):
            events += chunk.count(b"\n")
            size += len(chunk)
    seconds = time.perf_counter() - t0
    return {
        "events": events,
        "bytes": size,
        "seconds": round(seconds, 3),
        "per_second": round(events / seconds),
    }


def bare_log_read(stack, service: str = "billing", limit: int = 1000) -> dict:
    """The service's notification log read by the recorder, first to last position."""
    from services.billing.application import Billing

    app = Billing(cfg=stack.settings)
    try:
        t0 = time.perf_counter()
        events, start = 0, 1
        while True:
            batch = app.recorder.select_notifications(start, limit)
            if not batch:
                break
            events += len(batch)
            start = batch[-1].id + 1
        seconds = time.perf_counter() - t0
    finally:
        app.close()
    return {"events": events, "seconds": round(seconds, 3), "per_second": round(events / seconds)}


def measure(stack, customer_id: str, events: int, phase) -> dict:
    with phase(f"seeding {events:,} account entries of one customer in-process"):
        seeded = seed(stack, customer_id, events)
    with phase("waiting for billing's audit index to index them"):
        seeded["index_caught_up_seconds"] = wait_for_index(stack)
    with phase("the customer's history, page after page, and the bare page SQL"):
        history, cursors = history_pages(stack, customer_id)
        history["bare_sql"] = bare_pages(stack, customer_id, cursors)
    with phase("the customer's export: by the command's code, through the API, bare log read"):
        out = {
            "command": export_by_command(stack, customer_id),
            "api": export_by_api(stack, customer_id),
            "bare_log_read": bare_log_read(stack),
        }
    bare = out["bare_log_read"]["per_second"]
    ratios = {
        f"{key}_per_bare_log_read": round(out[key]["per_second"] / bare, 3) if bare else None
        for key in ("command", "api")
    }
    p50, bare_p50 = history["http"]["p50_ms"], history["bare_sql"]["p50_ms"]
    history["ratio_p50_to_bare_sql"] = round(p50 / bare_p50, 1) if p50 and bare_p50 else None
    return {"seeded": seeded, "history": history, "export": out, "ratios": ratios}


def report_lines(r: dict) -> list[str]:
    from tests.bench.report import LATENCY_HEADER, _latency_row, _num

    a = r["audit"]
    s, h, e = a["seeded"], a["history"], a["export"]
    return [
        f"AUDIT: a customer's history and export, {h['events']:,} events",
        f"   {s['events']:,} account entries SEEDED in-process with billing's application in "
        f"{s['seed_seconds']:.1f} s ({_num(s['events_per_second'], 0)}/s); billing's audit "
        f"index had them {s['index_caught_up_seconds']:.0f} s later",
        "",
        LATENCY_HEADER,
        _latency_row(f"history, a page of {PAGE} through the gateway", h["http"]),
        _latency_row("  bare: the page's SQL on billing's index", h["bare_sql"]),
        f"   {'  gateway p50 / bare SQL p50':50} {_num(h.get('ratio_p50_to_bare_sql')):>5}",
        f"   {h['pages']} pages, one at a time; each asks all five services and records the read",
        "",
        f"   {'':44} {'events':>8} {'seconds':>8} {'per s':>9} {'/ bare':>7}",
        *(
            f"   {label:44} {e[key]['events']:>8,} {e[key]['seconds']:>8.2f} "
            f"{_num(e[key]['per_second'], 0):>9} "
            + (f"{a['ratios'][f'{key}_per_bare_log_read']:>7.3f}" if key != "bare_log_read" else "")
            for label, key in (
                ("export, the command's code (JSON Lines)", "command"),
                ("export, GET /api/v1/staff/audit/export", "api"),
                ("bare: billing's select_notifications, 1,000", "bare_log_read"),
            )
        ),
        "   (the bare read is of billing's whole log, from the same store; the export's "
        "rows are the index's, merged from five databases, each made into the row the "
        "history answers and encoded)",
        *_chain_lines(a.get("chain")),
    ]


def _chain_lines(c: dict | None) -> list[str]:
    if not c:
        return []
    return [
        "",
        f"   verify-chain over {c['events']:,} events of one service's log (scratch database)",
        f"   {'':44} {'per s':>9} {'verify /':>9}",
        f"   {'hostledger audit verify-chain':44} {c['verify_per_s']:>9,}",
        f"   {'  bare: SHA-256 over the same bytes':44} {c['sha256_per_s']:>9,} "
        f"{c['verify_vs_sha256']:>9.3f}",
        f"   {'  bare: reading the events and hashes':44} {c['read_per_s']:>9,} "
        f"{c['verify_vs_read']:>9.3f}",
    ]
