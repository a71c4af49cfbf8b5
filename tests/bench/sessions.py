"""The session check, with the gateway's session cache off and on, in the same run.

A second gateway instance is started beside the stack's with
HOSTLEDGER_SESSION_CACHE_SECONDS=0: every request asks `customers.resolve_session`
over RPC, as every request did before the cache. The stack's own gateway keeps the
default (30 s). `n` clients, each logged in with a session of its own, send
authenticated GETs through one gateway, then the other, then the first again, and so
on (`rounds` each, so that a drift of the machine meets both alike):

- `GET /api/v1/me`: the session check and nothing else;
- `GET /api/v1/client/profile`: the session check and one RPC to the customers service.

Counted per request: CPU of the gateway process that answered, of the customers
process, of the PostgreSQL backends and of RabbitMQ (what the RPC also costs), and the
latency.
"""

from __future__ import annotations

import contextlib
import itertools
import time

import requests

from tests.bench.drive import CpuMeter, Result, drive, pids_named
from tests.bench.system import bench_customers
from tests.stack import _free_port

PATHS = {"me": "/api/v1/me", "profile": "/api/v1/client/profile"}
MODES = ("off", "on")


def measure(stack, n: int, total: int, rounds: int = 2) -> dict:
    customers = bench_customers(stack, n)
    tokens = []
    for customer in customers:
        r = stack.http("POST", "/api/v1/auth/login", json=customer["credentials"])
        if r.status_code != 200:
            raise RuntimeError(f"a client's login answered {r.status_code}: {r.text[:200]}")
        tokens.append(r.json()["token"])
    port = _free_port()
    stack.start(
        "gateway",
        {"HOSTLEDGER_HTTP_PORT": str(port), "HOSTLEDGER_SESSION_CACHE_SECONDS": "0"},
        instance="nocache",
    )
    try:
        _wait_up(f"http://127.0.0.1:{port}")
        _wait_trusted(stack, "gateway")
        gateways = {
            "off": (f"http://127.0.0.1:{port}", "gateway-nocache"),
            "on": (stack.base_url, "gateway"),
        }
        runs: dict = {(mode, name): [] for mode in MODES for name in PATHS}
        for _ in range(rounds):
            for name, path in PATHS.items():
                for mode in MODES:
                    base, proc = gateways[mode]
                    runs[mode, name].append(_run(stack, base + path, proc, tokens, total))
        out = {
            "clients": n,
            "requests_per_run": total,
            "rounds": rounds,
            "cache_seconds_on": float(stack.env.get("HOSTLEDGER_SESSION_CACHE_SECONDS") or 30),
        }
        for (mode, name), parts in runs.items():
            out.setdefault(name, {})[mode] = _combine(parts)
        out["lookups_on"] = _lookups(stack, "gateway")
        return out
    finally:
        stack.stop("gateway-nocache")


def _run(stack, url: str, proc: str, tokens: list[str], total: int) -> dict:
    assigned = itertools.count()

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(requests.Session())
        session.headers["Authorization"] = f"Bearer {tokens[next(assigned) % len(tokens)]}"

        def read():
            r = session.get(url, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"GET {url} answered {r.status_code}: {r.text[:200]}")

        return read

    def customers_db_backends():
        with stack.db("customers") as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (stack.settings.database_name("customers"),),
            ).fetchall()
        return [pid for (pid,) in rows]

    meter = CpuMeter(
        {
            "gateway": lambda: [stack.procs[proc].pid],
            "customers": lambda: [stack.procs["customers"].pid],
            "PostgreSQL (customers)": customers_db_backends,
            "RabbitMQ server": lambda: pids_named("beam.smp"),
        }
    )
    result: Result = drive(
        factory, len(tokens), total=total, warmup=len(tokens) * 4, before_measure=meter.start
    )
    cpu = meter.stop()
    if result.errors:
        raise RuntimeError(f"{len(result.errors)} errors, the first: {result.errors[0]}")
    return {"result": result, "cpu": cpu}


def _combine(parts: list[dict]) -> dict:
    ops = sum(p["result"].ops for p in parts)
    seconds = sum(p["result"].seconds for p in parts)
    latencies = sorted(x for p in parts for x in p["result"].latencies)
    cpu: dict[str, float] = {}
    for p in parts:
        for name, used in p["cpu"]["process_cpu_seconds"].items():
            cpu[name] = cpu.get(name, 0.0) + used
    per = {name: round(used * 1e6 / ops) / 1000 for name, used in cpu.items()}  # ms
    per["gateway + customers"] = round((cpu["gateway"] + cpu["customers"]) * 1e6 / ops) / 1000
    busy = [p["cpu"]["machine_busy_fraction"] for p in parts if p["cpu"]["machine_busy_fraction"]]

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "ops": ops,
        "per_second": round(ops / seconds, 1) if seconds else None,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99)},
        "cpu_ms_per_request": per,
        "machine_busy_percent": round(100 * sum(busy) / len(busy), 1) if busy else None,
    }


def _wait_up(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(base + "/health", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the gateway at {base} did not come up")


def _metric(stack, proc: str, line_start: str) -> float:
    for line in stack.metrics(proc).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def _wait_trusted(stack, proc: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _metric(stack, proc, "hostledger_gateway_session_cache_trusted") != 1.0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc}'s session cache does not follow the events")
        time.sleep(0.2)


def _lookups(stack, proc: str) -> dict:
    return {
        source: _metric(
            stack, proc, f'hostledger_gateway_session_lookups_total{{source="{source}"}}'
        )
        for source in ("cache", "asked", "uncached")
    }


def report_lines(r: dict) -> list[str]:
    s = r["sessions"]
    lines = [
        "SESSION CHECK: the gateway's session cache off (an RPC per request) and on",
        "",
        f"   {s['clients']} clients at once, each with its own session; {s['requests_per_run']} "
        f"requests per run, {s['rounds']} runs of each, off and on in turn",
        "   request                      cache  req/s    p50 ms  p99 ms   CPU ms per request: "
        "gateway  customers  gw+cust  PostgreSQL  RabbitMQ",
    ]
    for name, label in (("me", "GET /api/v1/me"), ("profile", "GET /api/v1/client/profile")):
        for mode in MODES:
            m = s[name][mode]
            c = m["cpu_ms_per_request"]
            lines.append(
                f"   {label:<28} {mode:<5} {m['per_second']:>6}  {m['latency_ms']['p50']:>7} "
                f"{m['latency_ms']['p99']:>7}   {'':>20}{c['gateway']:>7} {c['customers']:>10} "
                f"{c['gateway + customers']:>8} {c['PostgreSQL (customers)']:>11} "
                f"{c['RabbitMQ server']:>9}"
            )
    lines.append(
        "   lookups of the cached gateway: "
        + ", ".join(f"{k} {int(v)}" for k, v in s["lookups_on"].items())
    )
    return lines
