"""Billing through the gateway: payments, invoices, and reading a long account.

- payments: `POST /api/v1/staff/payments` as admin, client i paying into customer i's
  account (their accounts exist first), so clients do not contend for one account;
- invoices: `POST /api/v1/staff/invoices` as admin, every invoice in the default series
  (no project), so every issuer contends for the next gapless number;
- account history: one customer's personal account given `entries` entries, then
  `GET /api/v1/client/account` (now, and `?at=...`) as that customer. The entries are
  seeded in the bench process with billing's own application
  (`services.billing.application.Billing` on the stack's billing database): one
  `credit("payment", ...)` per entry on one aggregate object, saved every `batch`
  entries, with the snapshots the service itself takes (one every 20 versions: the
  aggregate holds the balance, not the entries, so a snapshot stays small). The
  billing service's ledger read model then projects the new events; the entries are
  answered from it, a page at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import psycopg
import requests

from tests.bench.drive import CpuMeter, Result, distribution_ms, drive

PAYMENTS_PATH = "/api/v1/staff/payments"
INVOICES_PATH = "/api/v1/staff/invoices"
ACCOUNT_PATH = "/api/v1/client/account"
CURRENCY = "EUR"
ENTRY_STEP = timedelta(minutes=5)


def _admin_session(stack) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.admin_token}"
    return session


def payments(
    stack, customer_ids: list[str], concurrency: int, total: int, warmup: int, on_start=None
) -> Result:
    url = stack.base_url + PAYMENTS_PATH
    assigned = itertools.count()

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(_admin_session(stack))
        customer_id = customer_ids[next(assigned) % len(customer_ids)]

        def pay():
            body = {
                "customer_id": customer_id,
                "amount": {"amount": 100, "currency": CURRENCY},
                "method": "bank_transfer",
                "reference": f"bench-{uuid.uuid4().hex[:12]}",
            }
            r = session.post(url, json=body, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"POST {PAYMENTS_PATH} answered {r.status_code}: {r.text[:200]}")

        return pay

    return drive(factory, concurrency, total=total, warmup=warmup, before_measure=on_start)


def transactions(stack) -> dict[str, int]:
    """PostgreSQL's count of committed and rolled back transactions (a statement run alone
    counts as one) in each service's database. Backends report theirs within a second or
    so of going idle: read it after a pause."""
    from services.infra.settings import SERVICES

    names = {stack.settings.database_name(s): s for s in SERVICES}
    with psycopg.connect(stack.settings.database.conninfo("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = ANY(%s)",
            (list(names),),
        ).fetchall()
    return {names[name]: count for name, count in rows}


def invoices(
    stack, customer_ids: list[str], concurrency: int, total: int, warmup: int, on_start=None
) -> tuple[Result, dict]:
    """The run, and what the numbers handed out look like (unique, gapless?)."""
    url = stack.base_url + INVOICES_PATH
    assigned = itertools.count()
    numbers: list[str] = []
    order: list[tuple[float, float]] = []  # (started, seconds) of each measured invoice
    measuring = []

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(_admin_session(stack))
        customer_id = customer_ids[next(assigned) % len(customer_ids)]

        def issue():
            body = {
                "customer_id": customer_id,
                "lines": [
                    {"description": "x", "unit_price": {"amount": 100, "currency": CURRENCY}}
                ],
            }
            t0 = time.perf_counter()
            r = session.post(url, json=body, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"POST {INVOICES_PATH} answered {r.status_code}: {r.text[:200]}")
            if measuring:
                numbers.append(r.json()["number"])
                order.append((t0, time.perf_counter() - t0))

        return issue

    def start():
        measuring.append(True)
        if on_start is not None:
            on_start()

    result = drive(factory, concurrency, total=total, warmup=warmup, before_measure=start)
    digits = sorted(int("".join(ch for ch in n if ch.isdigit())) for n in numbers)
    expected = set(range(digits[0], digits[-1] + 1)) if digits else set()
    order.sort()
    quarter = max(1, len(order) // 4)
    return result, {
        "issued": len(numbers),
        "distinct_numbers": len(set(numbers)),
        "gaps_between_first_and_last": len(expected - set(digits)),
        "first": digits[0] if digits else None,
        "last": digits[-1] if digits else None,
        "first_quarter": distribution_ms([s for _, s in order[:quarter]]),
        "last_quarter": distribution_ms([s for _, s in order[-quarter:]]),
    }


def series_load(stack, samples: int = 5) -> dict:
    """Load the default invoice series in-process, as every invoice does in its turn."""
    from services.billing.application import Billing
    from services.billing.domain import InvoiceSeries

    app = Billing(cfg=stack.settings)
    try:
        series_id = InvoiceSeries.id_for("default")
        series = app.repository.get(series_id)
        return {"events": series.version} | _timed(lambda: app.repository.get(series_id), samples)
    finally:
        app.close()


# -- a long account -------------------------------------------------------------------


def seed_account(stack, customer_id: str, entries: int, batch: int) -> tuple[object, dict]:
    """Credit `entries` entries of 1 EUR to the customer's account in-process; timed.

    Returns billing's application (left open for the bare reads) and the figures.
    """
    from services.billing.application import Billing
    from services.billing.domain import PersonalAccount
    from services.infra.money import Money

    app = Billing(cfg=stack.settings)
    account = app.account(uuid.UUID(customer_id), CURRENCY)
    first_at = datetime.now(tz=UTC).replace(microsecond=0) - ENTRY_STEP * (entries + 1)
    one = Money(1, CURRENCY)
    t0 = time.perf_counter()
    batch_seconds = []
    for start in range(0, entries, batch):
        tb = time.perf_counter()
        for k in range(start, min(entries, start + batch)):
            account.credit("payment", one, None, None, first_at + ENTRY_STEP * k)
        app.save(account)  # snapshots every 20 versions, as the service takes them
        batch_seconds.append(time.perf_counter() - tb)
    saved = time.perf_counter()
    snapshot = PersonalAccount.Snapshot.take(account)
    app.snapshots.put([snapshot])
    snapshotted = time.perf_counter()
    interval = type(app).snapshotting_intervals[PersonalAccount]
    return app, {
        "method": "in the bench process with billing's application: credit('payment', 1 EUR) "
        f"on one PersonalAccount object, save every {batch} entries, with the service's "
        f"snapshots (every {interval} versions); then one more snapshot, timed",
        "entries": entries,
        "batch": batch,
        "version": account.version,
        "snapshots_during_seeding": account.version // interval,
        "first_entry_at": first_at.isoformat(),
        "entry_step_seconds": ENTRY_STEP.total_seconds(),
        "seed_seconds": round(saved - t0, 2),
        "entries_per_second": round(entries / (saved - t0), 0),
        "save_of_one_batch": distribution_ms(batch_seconds),
        "snapshot_seconds": round(snapshotted - saved, 4),
        "snapshot_state_bytes": len(json.dumps(snapshot.state, default=str)),
    }


def wait_for_ledger(stack, app, customer_id: str, timeout: float = 600) -> float:
    """Seconds until billing's ledger read model has projected the whole account."""
    account = app.account(uuid.UUID(customer_id), CURRENCY)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        with app.datastore.transaction() as curs:
            curs.execute("SELECT version FROM ledger_accounts WHERE account_id = %s", (account.id,))
            row = curs.fetchone()
        if row and row["version"] >= account.version:
            break
        time.sleep(0.5)
    return round(time.perf_counter() - t0, 1)


def wait_until_quiet(pid: int, busy_below: float = 0.25, timeout: float = 120) -> float:
    """Seconds until a process used less than `busy_below` of a CPU over one second."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        meter = CpuMeter({"p": lambda: [pid]}).start()
        time.sleep(1.0)
        if meter.stop()["process_cpu_seconds"]["p"] < busy_below:
            break
    return round(time.perf_counter() - t0, 1)


def account_reads(
    stack, app, customer: dict, seeded: dict, samples: int, entries_answered: dict[str, int]
) -> dict:
    """`GET /api/v1/client/account?at=...` as the customer, and the bare in-process reads.

    `entries_answered`: label -> how many entries stood on the account at that `at`.
    Also `now` (no `at`: the balance from the aggregate, the first page of entries) and
    `now_last_page` (the newest entries).
    """
    # the entries are answered from billing's ledger read model: once it has them all
    seeded["ledger_caught_up_seconds"] = wait_for_ledger(stack, app, customer["id"])
    creds = customer["credentials"]
    token = stack.login(creds["username"], creds["password"])
    first_at = datetime.fromisoformat(seeded["first_entry_at"])
    account_id = app.account(uuid.UUID(customer["id"]), CURRENCY).id
    last_page = -(-seeded["entries"] // 50)
    queries = {
        label: {"at": (first_at + ENTRY_STEP * (n - 1) + ENTRY_STEP / 2).isoformat()}
        for label, n in entries_answered.items()
    }
    queries["now"] = {}
    queries["now_last_page"] = {"page": last_page}
    out: dict = {}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        for label, params in queries.items():
            url = f"{stack.base_url}{ACCOUNT_PATH}?{urlencode(params)}"
            times, size, answer = [], 0, None
            for i in range(samples + 1):  # the first one warms up
                t0 = time.perf_counter()
                r = session.get(url, timeout=120)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(
                        f"GET {ACCOUNT_PATH} answered {r.status_code}: {r.text[:200]}"
                    )
                if i:
                    times.append(elapsed)
                size = len(r.content)
                answer = r.json()
            out[label] = {
                "at": params.get("at"),
                "page": answer["page"],
                "entries_answered": answer["total"],
                "entries_on_page": len(answer["entries"]),
                "balance": answer["balance"]["amount"],
                "response_bytes": size,
                "http": distribution_ms(times),
            }
    out["bare_get"] = _timed(lambda: app.repository.get(account_id), samples)
    account = app.repository.get(account_id)
    for label, params in queries.items():
        at = datetime.fromisoformat(params["at"]) if params.get("at") else None
        page = params.get("page", 1)
        out[label]["bare_account_view"] = _timed(
            lambda at=at, page=page: app.account_view(account, at, page), samples
        )
        view = app.account_view(account, at, page)
        out[label]["bare_json_dumps"] = _timed(lambda v=view: json.dumps(v, default=str), 3)
        base = out["bare_get"]["p50_ms"]
        if base and out[label]["http"]["p50_ms"]:
            out[label]["ratio_p50_to_bare_get"] = round(out[label]["http"]["p50_ms"] / base, 1)
    return out


def _timed(fn, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return distribution_ms(times)
