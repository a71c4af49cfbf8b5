"""The staff customer list at scale: 100,000 rows in its read model, filtered.

Registering 100,000 customers through the API would hash 100,000 passwords, so the rows
are seeded straight into the customers service's read model (`customer_list`) with one
`COPY`, then `ANALYZE`. No events, no Customer aggregates: only the list has them.

The same filtered page is then asked for through the gateway (`GET
/api/v1/staff/customers?...` as admin, one client, one request at a time), straight
from the customers service over RPC (`customers.list_customers`, no gateway, no session
check) and, as the bare substrate, by running the service's two SQL statements (count,
then the page) directly on the customers database in one transaction, like the service
does: planned each time (`prepare=False`), and prepared (psycopg's default from the
sixth run of a statement on a connection, after which PostgreSQL may choose a generic
plan that does not look at the values).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from services.customers.application import CUSTOMER_FILTERS
from tests.bench.drive import distribution_ms, timed_list_reads

LIST_PATH = "/api/v1/staff/customers"
FIRST_NAMES = (
    "Anna Ben Carla David Elena Felix Greta Hugo Ines Jonas Klara Lukas Marie Nico Olga Paul "
    "Quentin Rosa Sven Tanja Ulrich Vera Walter Xenia Yannick Zoe Amelie Bruno Chloe Dmitri "
    "Emma Fabien Gaston Helene Igor Julie Karim Lea Marco Nadia"
).split()
LAST_NAMES = (
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent "
    "Lefebvre Michel Garcia Muller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann "
    "Ivanov Smirnov Kuznetsov Popov Volkov Sokolov Smith Jones Taylor Brown Williams Wilson "
    "Johnson Davies Robinson Wright"
).split()
LANGUAGES = (("en", 0.60), ("ru", 0.25), ("fr", 0.15))
COUNTRIES = ("DE", "FR", "GB", "NL", "RU", "US", "ES", "IT")
YEARS_OF_REGISTRATIONS = 5
FIRST_NUMBER = 10_000_000  # far above the numbers the customers service hands out in a run
COLUMNS = (
    "customer_id, number, kind, name, username, email, country, language, project_id,"
    " group_ids, active_product_ids, attitude, deleted, registered_at, search"
)


def seed(stack, rows: int, rng_seed: int = 20261122) -> dict:
    """`rows` customers into `customer_list` with one COPY, then ANALYZE; timed."""
    rng = random.Random(rng_seed)
    now = datetime.now(tz=UTC)
    span = timedelta(days=365 * YEARS_OF_REGISTRATIONS).total_seconds()
    languages = [code for code, _ in LANGUAGES]
    weights = [w for _, w in LANGUAGES]
    t0 = time.perf_counter()
    lines = []
    for i in range(rows):
        number = FIRST_NUMBER + i
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        username = f"c{number}"
        email = f"{first}.{last}.{number}@example.com".lower()
        registered = now - timedelta(seconds=rng.random() * span)
        lines.append(
            "\t".join(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    str(number),
                    "individual",
                    name,
                    username,
                    email,
                    rng.choice(COUNTRIES),
                    rng.choices(languages, weights)[0],
                    r"\N",
                    "{}",
                    "{}",
                    "normal",
                    "t" if rng.random() < 0.01 else "f",
                    registered.isoformat(),
                    f"{name} {username} {email}".lower(),
                )
            )
        )
    data = ("\n".join(lines) + "\n").encode()
    generated = time.perf_counter()
    with stack.db("customers") as conn:
        with conn.cursor() as cur, cur.copy(f"COPY customer_list ({COLUMNS}) FROM STDIN") as copy:
            chunk = 1 << 20
            for start in range(0, len(data), chunk):
                copy.write(data[start : start + chunk])
        copied = time.perf_counter()
        conn.execute("ANALYZE customer_list")
        analyzed = time.perf_counter()
        total = conn.execute("SELECT count(*) FROM customer_list").fetchone()[0]
    return {
        "method": "one COPY into the customers read model table customer_list, then ANALYZE; "
        "not registered (no events, no aggregates, no password hashes)",
        "rows_seeded": rows,
        "rows_in_table": total,
        "languages": dict(LANGUAGES),
        "registered_over_years": YEARS_OF_REGISTRATIONS,
        "generate_seconds": round(generated - t0, 2),
        "copy_seconds": round(copied - generated, 2),
        "analyze_seconds": round(analyzed - copied, 2),
        "copy_rows_per_second": round(rows / (copied - generated), 0),
    }


def queries(now: datetime) -> dict[str, dict]:
    """The filter sets measured: three filters at once, and the name alone (trigram index)."""
    return {
        "three_filters": {
            "language": "fr",
            "registered_from": (now - timedelta(days=365)).isoformat(timespec="seconds"),
            "name": "mart",
        },
        "name_only": {"name": "mart"},
    }


def statements(filters: dict, page: int = 1, size: int = 50) -> list[tuple[str, list]]:
    """The service's two statements for `filters` (see list_customers), built the same way."""
    where, params = ["NOT deleted"], []
    for key, condition in CUSTOMER_FILTERS.items():
        if key in filters:
            where.append(condition)
            params.append(_like(filters[key]) if key == "name" else filters[key])
    clause = " AND ".join(where)
    return [
        (f"SELECT count(*) AS n FROM customer_list WHERE {clause}", params),
        (
            "SELECT customer_id, number, kind, name, username, email, country, language,"
            f" project_id, group_ids, attitude, registered_at FROM customer_list WHERE {clause}"
            " ORDER BY number DESC LIMIT %s OFFSET %s",
            [*params, size, (page - 1) * size],
        ),
    ]


def _like(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def measure(stack, samples: int, warmup: int = 5) -> dict:
    """Each filter set `samples` times through the gateway, over RPC, then as bare SQL."""
    out = {}
    for label, filters in queries(datetime.now(tz=UTC)).items():
        out[label] = {
            "filters": filters,
            "http": timed_list_reads(stack, LIST_PATH, filters, samples, warmup),
            "rpc": _rpc(stack, filters, samples, warmup),
            "sql": _sql(stack, filters, samples, warmup, prepare=False),
            "sql_prepared": _sql(stack, filters, samples, warmup, prepare=None),
        }
        http, sql = out[label]["http"], out[label]["sql"]
        if http["p50_ms"] and sql["p50_ms"]:
            out[label]["ratio_p50"] = round(http["p50_ms"] / sql["p50_ms"], 1)
    return out


def _rpc(stack, filters: dict, samples: int, warmup: int) -> dict:
    times: list[float] = []
    with stack.rpc() as rpc:
        for i in range(warmup + samples):
            t0 = time.perf_counter()
            rpc.customers.list_customers(dict(filters))
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return distribution_ms(times)


def _sql(stack, filters: dict, samples: int, warmup: int, prepare: bool | None) -> dict:
    """`prepare=False`: planned with the values each time; None: psycopg's default."""
    statements_ = statements(filters)
    times: list[float] = []
    with stack.db("customers") as conn:
        for i in range(warmup + samples):
            t0 = time.perf_counter()
            with conn.transaction():
                total = conn.execute(*statements_[0], prepare=prepare).fetchone()[0]
                conn.execute(*statements_[1], prepare=prepare).fetchall()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        if prepare is not False:
            return distribution_ms(times)
        plans = {
            name: [row[0] for row in conn.execute("EXPLAIN ANALYZE " + sql, params).fetchall()]
            for name, (sql, params) in zip(("count", "page"), statements_, strict=True)
        }
    return distribution_ms(times) | {
        "matches": total,
        "plans": plans,
        "plan_summary": {name: plan_summary(lines) for name, lines in plans.items()},
    }


def plan_summary(plan: list[str]) -> str:
    """The scan nodes of an EXPLAIN, in order, without their costs: which indexes were used."""
    nodes = []
    for line in plan:
        node = line.strip().removeprefix("->").strip().split("  (", 1)[0]
        if "Scan" in node or node.startswith("BitmapAnd") or node.startswith("BitmapOr"):
            nodes.append(node.removesuffix(" on customer_list"))
    return " > ".join(nodes)
