"""The helpdesk through the gateway: tickets opened, responses added, a department's list.

- tickets: `POST /api/v1/client/tickets` (JSON, no files), client i opening tickets as
  customer i in one department, so every ticket draws a tracking number and claims it
  through its index aggregate;
- responses: `POST /api/v1/staff/tickets/{id}/replies` as admin, worker i answering
  ticket i (one ticket per worker: no two answers contend for one ticket's version);
- a department's list: 100,000 rows seeded straight into the helpdesk's read model table
  (`ticket_list`) with one COPY, then ANALYZE (no events, no Ticket aggregates: only the
  list has them); then `GET /api/v1/staff/tickets?department_id=...` (first page, and
  with `status=customer_reply`) through the gateway, and the service's two SQL
  statements (count, then the page) run bare on the helpdesk database.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from tests.bench.drive import Result, distribution_ms, drive, timed_list_reads

TICKETS_PATH = "/api/v1/client/tickets"
STAFF_TICKETS_PATH = "/api/v1/staff/tickets"
STATUSES = (("open", 0.2), ("answered", 0.3), ("customer_reply", 0.1), ("closed", 0.4))
COLUMNS = (
    "ticket_id, tracking_number, department_id, customer_id, guest_email, subject, status,"
    " archived, priority, assignee, opened_at, updated_at"
)


def bench_department(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Bench support {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    if r.status_code != 201:
        raise RuntimeError(f"POST /api/v1/staff/departments answered {r.status_code}: {r.text}")
    return r.json()


def _client_session(stack, customer: dict) -> requests.Session:
    creds = customer["credentials"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.login(creds['username'], creds['password'])}"
    return session


def tickets_opened(
    stack,
    department_id: str,
    customers: list[dict],
    concurrency: int,
    total: int,
    warmup: int,
    on_start=None,
) -> tuple[Result, list[str]]:
    """The run, and one ticket id per client (for the responses)."""
    url = stack.base_url + TICKETS_PATH
    assigned = itertools.count()
    firsts: list[str] = []

    def factory(resources: contextlib.ExitStack):
        customer = customers[next(assigned) % len(customers)]
        session = resources.enter_context(_client_session(stack, customer))
        mine: list[str] = []

        def open_ticket():
            body = {
                "department_id": department_id,
                "subject": "The site answers 502",
                "body": "Since 10:00, every page. " * 10,
            }
            r = session.post(url, json=body, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"POST {TICKETS_PATH} answered {r.status_code}: {r.text[:200]}")
            if not mine:
                mine.append(r.json()["id"])
                firsts.append(mine[0])

        return open_ticket

    result = drive(factory, concurrency, total=total, warmup=warmup, before_measure=on_start)
    return result, firsts


def responses_added(
    stack, ticket_ids: list[str], concurrency: int, total: int, warmup: int, on_start=None
) -> Result:
    assigned = itertools.count()

    def factory(resources: contextlib.ExitStack):
        ticket_id = ticket_ids[next(assigned) % len(ticket_ids)]
        session = resources.enter_context(requests.Session())
        session.headers["Authorization"] = f"Bearer {stack.admin_token}"
        url = f"{stack.base_url}{STAFF_TICKETS_PATH}/{ticket_id}/replies"

        def answer():
            r = session.post(url, json={"body": "We restarted the web server."}, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"POST .../replies answered {r.status_code}: {r.text[:200]}")

        return answer

    return drive(factory, concurrency, total=total, warmup=warmup, before_measure=on_start)


# -- a department's list at 100,000 tickets ----------------------------------------------------


def seed_list(stack, department_id: str, rows: int, other_rows: int, seed: int = 6) -> dict:
    """`rows` tickets of the department (and `other_rows` of other departments) into
    ticket_list with one COPY, then ANALYZE; timed."""
    rng = random.Random(seed)
    now = datetime.now(tz=UTC)
    others = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
    customers = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20_000)]
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    t0 = time.perf_counter()
    lines = []
    for i in range(rows + other_rows):
        opened = now - timedelta(seconds=rng.random() * 3 * 365 * 86400)
        updated = opened + timedelta(seconds=rng.random() * 7 * 86400)
        status = rng.choices(statuses, weights)[0]
        lines.append(
            "\t".join(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    f"BEN-{i:07d}",
                    department_id if i < rows else rng.choice(others),
                    rng.choice(customers),
                    r"\N",
                    f"Bench ticket {i}",
                    status,
                    "t" if status == "closed" else "f",
                    "normal",
                    r"\N",
                    opened.isoformat(),
                    updated.isoformat(),
                )
            )
        )
    data = ("\n".join(lines) + "\n").encode()
    generated = time.perf_counter()
    with stack.db("helpdesk") as conn:
        with conn.cursor() as cur, cur.copy(f"COPY ticket_list ({COLUMNS}) FROM STDIN") as copy:
            chunk = 1 << 20
            for start in range(0, len(data), chunk):
                copy.write(data[start : start + chunk])
        copied = time.perf_counter()
        # the read model keeps each department's count per status beside its rows
        conn.execute(
            "INSERT INTO ticket_counts (department_id, status, n)"
            " SELECT department_id, status, count(*) FROM ticket_list"
            " WHERE department_id = ANY(%s) GROUP BY department_id, status"
            " ON CONFLICT (department_id, status) DO UPDATE SET n = excluded.n",
            ([uuid.UUID(department_id), *(uuid.UUID(o) for o in others)],),
        )
        conn.execute("ANALYZE ticket_list")
        analyzed = time.perf_counter()
        total = conn.execute("SELECT count(*) FROM ticket_list").fetchone()[0]
        in_department = conn.execute(
            "SELECT count(*) FROM ticket_list WHERE department_id = %s", (department_id,)
        ).fetchone()[0]
    return {
        "method": "one COPY into the helpdesk read model table ticket_list, the counts per "
        "department and status into ticket_counts, then ANALYZE; not opened (no events, no "
        "aggregates)",
        "rows_seeded": rows + other_rows,
        "rows_in_table": total,
        "rows_in_department": in_department,
        "generate_seconds": round(generated - t0, 2),
        "copy_seconds": round(copied - generated, 2),
        "analyze_seconds": round(analyzed - copied, 2),
    }


def _statements(filters: dict, page: int = 1, size: int = 50) -> list[tuple[str, list]]:
    """The two statements of Helpdesk.ticket_list for these filters (department and
    status: the total comes from the counts the read model keeps)."""
    where = " AND ".join(f"{k} = %s" for k in filters)
    params = list(filters.values())
    return [
        (f"SELECT coalesce(sum(n), 0)::bigint AS n FROM ticket_counts WHERE {where}", params),
        (
            "SELECT ticket_id, tracking_number, department_id, customer_id, guest_email,"
            " subject, status, archived, priority, assignee, merged_into, opened_at,"
            f" updated_at FROM ticket_list WHERE {where}"
            " ORDER BY updated_at DESC, ticket_id DESC LIMIT %s OFFSET %s",
            [*params, size, (page - 1) * size],
        ),
    ]


def measure_list(stack, department_id: str, samples: int, warmup: int = 5) -> dict:
    out = {}
    for label, filters in (
        ("department", {"department_id": department_id}),
        ("department_and_status", {"department_id": department_id, "status": "customer_reply"}),
    ):
        out[label] = {
            "filters": filters,
            "http": timed_list_reads(stack, STAFF_TICKETS_PATH, filters, samples, warmup),
            "sql": _sql(stack, filters, samples, warmup),
        }
        http, sql = out[label]["http"], out[label]["sql"]
        if http["p50_ms"] and sql["p50_ms"]:
            out[label]["ratio_p50"] = round(http["p50_ms"] / sql["p50_ms"], 1)
    return out


def _sql(stack, filters: dict, samples: int, warmup: int) -> dict:
    statements = _statements(filters)
    times: list[float] = []
    with stack.db("helpdesk") as conn:
        for i in range(warmup + samples):
            t0 = time.perf_counter()
            with conn.transaction():
                conn.execute(*statements[0], prepare=False).fetchone()
                conn.execute(*statements[1], prepare=False).fetchall()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        plans = {
            name: [row[0] for row in conn.execute("EXPLAIN ANALYZE " + sql, params).fetchall()]
            for name, (sql, params) in zip(("count", "page"), statements, strict=True)
        }
    summary = {
        name: " > ".join(
            line.strip().removeprefix("->").strip().split("  (", 1)[0]
            for line in lines
            if "Scan" in line
        )
        for name, lines in plans.items()
    }
    return distribution_ms(times) | {"plan_summary": summary}
