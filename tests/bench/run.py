"""Orchestration: bring the system up, measure the substrate, then the system."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime

from services.infra.databases import drop_database, ensure_database
from services.infra.passwords import PARAMETERS
from services.infra.settings import SERVICES
from tests.bench import facts, report, substrate, system
from tests.bench.drive import CpuMeter, pids_named
from tests.stack import ROOT, Stack

IDLE_SERVICES = ("orders", "helpdesk", "mailgateway")  # no part in a registration
CAUGHT_UP = re.compile(r"caught up (\d+) events from")
JSON_PATH = ROOT / ".hostledger" / "bench" / "latest.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Throughput and propagation lag of hostledger against the bare substrate.",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once (8)")
    parser.add_argument(
        "--registrations",
        type=int,
        default=200,
        help="registrations measured in the throughput run (200)",
    )
    parser.add_argument(
        "--warmup", type=int, default=8, help="registrations before the throughput run (8)"
    )
    parser.add_argument(
        "--lag-samples",
        type=int,
        default=100,
        help="registrations one at a time for the propagation lag (100)",
    )
    parser.add_argument(
        "--api-samples",
        type=int,
        default=10,
        help="of those, how many wait by polling the account endpoint (10)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="duration of each PostgreSQL/eventsourcing baseline (2)",
    )
    parser.add_argument(
        "--hashes", type=int, default=32, help="argon2id hashes in the concurrent baseline (32)"
    )
    return parser.parse_args(argv)


class Phases:
    """Prints each phase as it starts and keeps how long each took."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        print(f"  {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    phase = Phases()
    results: dict = {
        "started_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "concurrency": args.concurrency,
        "argon2_parameters": dict(PARAMETERS),
        "settings": vars(args),
        "phases_seconds": phase.seconds,
    }
    # the services' production defaults, not the test suite's quick catch-up and file clock
    stack = Stack(extra_env={"HOSTLEDGER_CATCHUP_INTERVAL": "", "HOSTLEDGER_CLOCK_FILE": ""})
    scratch = f"{stack.settings.db_prefix}bench"
    results["other_nameko_processes_at_start"] = len(facts.nameko_processes())
    print(f"hostledger bench: logs of the services in {stack.logs}", flush=True)
    try:
        with phase("bringing the system up"):
            stack.up()
            stack.admin_token  # noqa: B018 - log in once, before anything is timed
        results["machine"] = facts.machine(stack)
        ensure_database(stack.settings, scratch)
        # the services sit idle while the substrate is measured: what do their loops cost?
        idle = CpuMeter({name: (lambda p=proc: [p.pid]) for name, proc in stack.procs.items()})
        idle.start()
        results["throughput"] = measure_substrate(stack, scratch, args, phase)
        with phase("RabbitMQ round trip"):
            results["rabbitmq"] = substrate.rabbitmq_roundtrip(stack.env["AMQP_URI"], 200)
        results["idle_cpu_ms_per_second"] = idle_summary(idle.stop())
        measure_system(stack, args, results, phase)
        results["log_problems"] = scan_logs(stack)
        results["logs"] = str(stack.logs.relative_to(ROOT))
    finally:
        with phase("tearing the system down"):
            try:
                drop_database(stack.settings, scratch)
                stop_all_at_once(stack)
            finally:
                stack.down()

    results["load_average_at_end"] = list(os.getloadavg())
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["json_path"] = str(JSON_PATH.relative_to(ROOT))
    add_ratios(results)
    report.write_json(results, JSON_PATH)
    print()
    print(report.render(results))
    return 0


def stop_all_at_once(stack, timeout: float = 15) -> None:
    """SIGTERM every service process together (Stack.down stops them one by one)."""
    procs = [p for p in stack.procs.values() if p.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_substrate(stack, scratch: str, args, phase: Phases) -> dict:
    server = stack.settings.database
    conninfo = server.conninfo(scratch)
    n = args.concurrency
    out = {}
    with phase("bare PostgreSQL INSERT"):
        out["postgres_insert"] = substrate.postgres_insert(conninfo, n, args.seconds).summary()
    with phase("bare eventsourcing save"):
        out["eventsourcing_save"] = substrate.eventsourcing_save(
            server, scratch, n, args.seconds
        ).summary()
    with phase("bare eventsourcing save of 3 aggregates"):
        out["eventsourcing_save_3"] = substrate.eventsourcing_save(
            server, scratch, n, args.seconds, aggregates_per_save=3
        ).summary()
    with phase("bare argon2id hashes"):
        out["argon2"] = substrate.argon2_hash(n, args.hashes, warmup=n).summary()
    with phase("bare argon2id hashes one at a time"):
        out["argon2_serial"] = substrate.argon2_hash(1, 5, warmup=1).summary()
    return out


def measure_system(stack, args, results: dict, phase: Phases) -> None:
    tap = system.BrokerTap(stack).start()
    try:
        meter = CpuMeter(cpu_sources(stack))
        with phase(f"{args.registrations} registrations from {args.concurrency} clients"):
            result, measured = system.registrations(
                stack, args.concurrency, args.registrations, args.warmup, on_start=meter.start
            )
            cpu = meter.stop()
        results["throughput"]["registrations"] = result.summary()
        results["throughput"]["registrations_cpu"] = cpu_summary(cpu, result.ops)
        under_load = system.lags(stack, measured, tap)
        with phase(f"{args.lag_samples} registrations one at a time"):
            isolated_ids, api = system.isolated_registrations(
                stack, args.lag_samples, min(args.api_samples, args.lag_samples)
            )
        isolated = system.lags(stack, isolated_ids, tap)
    finally:
        tap.stop()
    results["propagation"] = {
        "method": "store timestamps: billing_events PersonalAccount.Opened timestamp minus "
        "customers_events Customer.Registered timestamp; split where the bench's "
        "own queue on the events exchange received the integration event",
        "isolated": isolated,
        "under_load": under_load,
        "api_polling": api,
    }


def cpu_sources(stack) -> dict:
    """Whose CPU time is counted during the registration run."""

    def process(name):
        return lambda: [stack.procs[name].pid] if name in stack.procs else []

    def postgres_backends():
        with stack.db("customers") as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                ([stack.settings.database_name(s) for s in SERVICES],),
            ).fetchall()
        return [pid for (pid,) in rows]

    return {
        "customers": process("customers"),
        "gateway": process("gateway"),
        "billing": process("billing"),
        "bench client": lambda: [os.getpid()],
        "PostgreSQL backends": postgres_backends,
        "RabbitMQ server": lambda: pids_named("beam.smp"),
        "orders+helpdesk+mailgateway": lambda: [
            p.pid for name, p in stack.procs.items() if name in IDLE_SERVICES
        ],
    }


def cpu_summary(cpu: dict, registrations: int) -> dict:
    per = {
        name: round(seconds * 1000 / registrations, 1) if registrations else None
        for name, seconds in cpu["process_cpu_seconds"].items()
    }
    if registrations:
        rest = cpu["machine_busy_cpu_seconds"] - sum(cpu["process_cpu_seconds"].values())
        per["everything else"] = round(rest * 1000 / registrations, 1)
    busy = cpu["machine_busy_fraction"]
    return {
        "cpu_ms_per_registration": per,
        "machine_busy_percent": round(busy * 100, 1) if busy is not None else None,
        "wall_seconds": round(cpu["wall_seconds"], 3),
    }


def idle_summary(cpu: dict) -> dict:
    wall = cpu["wall_seconds"]
    return {
        name: round(seconds * 1000 / wall, 1)
        for name, seconds in cpu["process_cpu_seconds"].items()
    }


def add_ratios(results: dict) -> None:
    t = results["throughput"]
    rate = t["registrations"]["per_second"]

    def ratio(key):
        base = t[key]["per_second"]
        return round(rate / base, 4) if base else None

    results["ratios"] = {
        "registrations_per_eventsourcing_save": ratio("eventsourcing_save"),
        "registrations_per_insert": ratio("postgres_insert"),
        "registrations_per_argon2": ratio("argon2"),
    }


def scan_logs(stack) -> dict:
    """What the service logs say about the run, before shutdown adds its own lines.

    `problems`: ERROR/CRITICAL lines and tracebacks that nameko did not call expected;
    `expected_errors`: nameko's "(expected) error" warnings (each with a traceback);
    `caught_up`: events a consumer applied from its catch-up loop (over RPC) instead of
    receiving them from RabbitMQ.
    """
    problems: dict[str, list[str]] = {}
    expected: dict[str, int] = {}
    caught_up: dict[str, int] = {}
    for log in sorted(stack.logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        previous = ""
        for line in lines:
            if "(expected) error" in line:
                expected[log.stem] = expected.get(log.stem, 0) + 1
            elif (
                " ERROR " in line
                or " CRITICAL " in line
                or ("Traceback" in line and "(expected) error" not in previous)
            ):
                problems.setdefault(log.stem, []).append(line.rstrip())
            if match := CAUGHT_UP.search(line):
                caught_up[log.stem] = caught_up.get(log.stem, 0) + int(match.group(1))
            previous = line
    return {
        "lines": sum(len(v) for v in problems.values()),
        "problems": {name: hits[:20] for name, hits in problems.items()},
        "expected_errors": expected,
        "caught_up": caught_up,
    }
