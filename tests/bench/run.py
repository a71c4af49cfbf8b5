"""Orchestration: bring the system up, measure the substrate, then the system."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime

import psycopg

from services.infra.databases import drop_database, ensure_database
from services.infra.passwords import PARAMETERS
from services.infra.settings import SERVICES, Settings
from tests.bench import (
    audit,
    billing,
    broadcast,
    customer_list,
    facts,
    helpdesk,
    mail,
    orders,
    pages,
    report,
    substrate,
    system,
)
from tests.bench.drive import CpuMeter, pids_named
from tests.stack import ROOT, Stack

IDLE_SERVICES = ("orders", "helpdesk", "mailgateway")  # no part in a registration
CAUGHT_UP = re.compile(r"caught up (\d+) events from")
JSON_PATH = ROOT / ".hostledger" / "bench" / "latest.json"
PRODUCTION_DEFAULTS = (
    "HOSTLEDGER_BROADCAST_BATCH",
    "HOSTLEDGER_BROADCAST_INLINE",
    "HOSTLEDGER_BROADCAST_INTERVAL",
    "HOSTLEDGER_CATCHUP_INTERVAL",
    "HOSTLEDGER_CLOCK_FILE",
    "HOSTLEDGER_RPC_TIMEOUT",
    "HOSTLEDGER_SCHEDULER_INTERVAL",
    "HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES",
)
SECTIONS = (
    "registrations",
    "logins",
    "customer-list",
    "payments",
    "invoices",
    "account",
    "orders",
    "renewals",
    "helpdesk",
    "mail",
    "pages",
    "audit",
    "sessions",
    "broadcast",
    "rebuild",
)


def _sections(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown)} (sections: {', '.join(SECTIONS)})"
        )
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Throughput, latency and propagation lag of hostledger against the bare "
        "substrate. Sections: " + ", ".join(SECTIONS) + " (all by default).",
    )
    parser.add_argument(
        "--only",
        type=_sections,
        default=None,
        metavar="SECTION[,SECTION]",
        help="run only these sections",
    )
    parser.add_argument(
        "--skip",
        type=_sections,
        default=[],
        metavar="SECTION[,SECTION]",
        help="leave these sections out",
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
        "--hashes",
        type=int,
        default=32,
        help="argon2id hashes in the concurrent baseline (32)",
    )
    parser.add_argument(
        "--verifies",
        type=int,
        default=96,
        help="argon2id verifies in the baseline of the logins (96)",
    )
    parser.add_argument("--logins", type=int, default=200, help="logins measured (200)")
    parser.add_argument(
        "--list-rows",
        type=int,
        default=100_000,
        help="customers seeded into the customer list read model (100000)",
    )
    parser.add_argument(
        "--list-samples",
        type=int,
        default=100,
        help="requests, and bare queries, per customer list filter set (100)",
    )
    parser.add_argument("--payments", type=int, default=300, help="payments measured (300)")
    parser.add_argument("--invoices", type=int, default=200, help="invoices measured (200)")
    parser.add_argument(
        "--account-entries",
        type=int,
        default=100_000,
        help="entries seeded into one personal account (100000)",
    )
    parser.add_argument(
        "--account-batch", type=int, default=1000, help="entries per save while seeding (1000)"
    )
    parser.add_argument(
        "--account-samples",
        type=int,
        default=10,
        help="requests per `at` of the long account, after one to warm up (10)",
    )
    parser.add_argument("--orders", type=int, default=100, help="orders placed measured (100)")
    parser.add_argument(
        "--renewal-services",
        type=int,
        default=100_000,
        help="active services seeded for the renewal run (100000)",
    )
    parser.add_argument(
        "--renewals-due",
        type=int,
        default=1000,
        help="of those, how many are due for a renewal invoice (1000)",
    )
    parser.add_argument(
        "--renewal-seed-batch", type=int, default=1000, help="services per save while seeding"
    )
    parser.add_argument("--tickets", type=int, default=200, help="tickets opened measured (200)")
    parser.add_argument("--mail-in", type=int, default=200, help="incoming messages measured (200)")
    parser.add_argument(
        "--mail-out", type=int, default=500, help="notifications sent measured (500)"
    )
    parser.add_argument("--responses", type=int, default=300, help="staff responses measured (300)")
    parser.add_argument(
        "--ticket-list-rows",
        type=int,
        default=100_000,
        help="tickets of one department seeded into the ticket list read model (100000)",
    )
    parser.add_argument(
        "--ticket-list-samples",
        type=int,
        default=100,
        help="requests, and bare queries, per ticket list filter set (100)",
    )
    parser.add_argument(
        "--page-requests",
        type=int,
        default=400,
        help="requests of each client-area page, and of its JSON, measured (400)",
    )
    parser.add_argument(
        "--session-requests",
        type=int,
        default=3000,
        help="authenticated GETs per run with the session cache off, and on (3000)",
    )
    parser.add_argument(
        "--page-invoices", type=int, default=25, help="unpaid invoices of each page client (25)"
    )
    parser.add_argument(
        "--audit-events",
        type=int,
        default=10_000,
        help="account entries seeded for the customer whose history is read (10000)",
    )
    parser.add_argument(
        "--chain-events",
        type=int,
        default=200_000,
        help="events in the log whose hash chain is verified (200000)",
    )
    parser.add_argument(
        "--broadcast-customers",
        type=int,
        default=10_000,
        help="customers seeded for the message to all customers (10000)",
    )
    parser.add_argument(
        "--broadcast-timeout",
        type=float,
        default=1800,
        help="seconds the message is followed at most; then the tickets so far (1800)",
    )
    args = parser.parse_args(argv)
    chosen = args.only if args.only is not None else list(SECTIONS)
    args.sections = [name for name in SECTIONS if name in chosen and name not in args.skip]
    return args


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
        "sections": args.sections,
        "phases_seconds": phase.seconds,
    }
    # the services' production defaults, not the test suite's quick catch-up, file clock,
    # short RPC timeout and every-second scheduler
    stack = Stack(extra_env=dict.fromkeys(PRODUCTION_DEFAULTS, ""))
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
        if "registrations" in args.sections:
            with phase("RabbitMQ round trip"):
                results["rabbitmq"] = substrate.rabbitmq_roundtrip(stack.env["AMQP_URI"], 200)
        results["idle_cpu_ms_per_second"] = idle_summary(idle.stop())
        if "registrations" in args.sections:
            measure_system(stack, args, results, phase)
        measure_more(stack, args, results, phase)
        results["log_problems"] = scan_logs(stack)
        results["logs"] = str(stack.logs.relative_to(ROOT))
    finally:
        with phase("tearing the system down"):
            stop_all_at_once(stack)  # first: their connections free PostgreSQL's slots
            try:
                drop_database(stack.settings, scratch)
            except psycopg.Error as exc:
                print(f"could not drop the scratch database {scratch}: {exc}", flush=True)
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
    if "registrations" in args.sections:
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
    if "payments" in args.sections:
        with phase("bare eventsourcing update + new aggregate"):
            out["eventsourcing_update"] = substrate.eventsourcing_update(
                server, scratch, n, args.seconds
            ).summary()
    if "invoices" in args.sections:
        with phase("bare eventsourcing update of one shared aggregate + new aggregate"):
            out["eventsourcing_series"] = substrate.eventsourcing_update(
                server, scratch, n, args.seconds, shared=True
            ).summary()
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
        results["throughput"]["registrations_cpu"] = cpu_summary(cpu, result.ops, "registration")
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


def measure_more(stack, args, results: dict, phase: Phases) -> None:
    """Logins, the customer list at scale, payments, invoices, a long account."""
    n = args.concurrency
    sections = args.sections
    customers: list[dict] = []
    if {"logins", "payments", "invoices"} & set(sections):
        with phase(f"registering {n} customers for logins and billing"):
            customers = system.bench_customers(stack, n)
            if {"payments", "invoices"} & set(sections):
                system.wait_for_billing_accounts(stack, [c["id"] for c in customers])
    ids = [c["id"] for c in customers]
    t = results["throughput"]

    def timed(key: str, unit: str, run):
        meter = CpuMeter(cpu_sources(stack))
        result = run(meter.start)
        cpu = meter.stop()
        t[key] = result.summary()
        t[f"{key}_cpu"] = cpu_summary(cpu, result.ops, unit)
        return result

    if "logins" in sections:
        # right before the logins, so that both meet the same machine
        with phase("bare argon2id verifies"):
            t["argon2_verify"] = substrate.argon2_verify(n, args.verifies, warmup=n).summary()
        with phase(f"{args.logins} logins from {n} clients"):
            timed(
                "logins",
                "login",
                lambda start: system.logins(
                    stack, customers, n, args.logins, warmup=n, on_start=start
                ),
            )
    if "customer-list" in sections:
        with phase(f"seeding {args.list_rows:,} customers into the customer list read model"):
            seeded = customer_list.seed(stack, args.list_rows)
        with phase(f"customer list: {args.list_samples} requests and bare queries per filter set"):
            results["customer_list"] = {
                "seeded": seeded,
                **customer_list.measure(stack, args.list_samples),
            }
    if "payments" in sections:
        with phase(f"{args.payments} payments from {n} clients"):
            counted: dict = {}

            def payments_run(start_meter):
                def on_start():
                    time.sleep(2.0)  # the warm-up's backends report their transactions
                    counted["before"] = billing.transactions(stack)
                    start_meter()

                return billing.payments(stack, ids, n, args.payments, warmup=n, on_start=on_start)

            paid = timed("payments", "payment", payments_run)
            time.sleep(2.0)  # and the run's
            after = billing.transactions(stack)
            t["payments_transactions"] = {
                s: round((after[s] - counted["before"].get(s, 0)) / max(paid.ops, 1), 1)
                for s in sorted(after)
            }
    if "invoices" in sections:
        with phase(f"{args.invoices} invoices from {n} clients, one series"):
            numbers: dict = {}

            def run(start):
                result, found = billing.invoices(
                    stack, ids, n, args.invoices, warmup=n, on_start=start
                )
                numbers.update(found)
                return result

            timed("invoices", "invoice", run)
            numbers["series_load"] = billing.series_load(stack)
            t["invoice_numbers"] = numbers
    if "account" in sections:
        measure_account(stack, args, results, phase)
    if "orders" in sections:
        with phase("a product for the orders"):
            product = orders.bench_product(stack)
        with phase(f"{args.orders} orders placed from {n} clients"):
            timed(
                "orders",
                "order",
                lambda start: orders.orders_placed(
                    stack, product["id"], n, args.orders, warmup=n, on_start=start
                ),
            )
    if "renewals" in sections:
        measure_renewals(stack, args, results, phase)
    if "helpdesk" in sections:
        measure_helpdesk(stack, args, results, phase)
    if "pages" in sections:
        with phase(f"{n} clients with {args.page_invoices} unpaid invoices each, logged in"):
            clients = pages.bench_clients(stack, n, args.page_invoices)
            pages.wait_for_invoices(stack, clients, args.page_invoices)
        with phase(f"client-area pages and their JSON: {args.page_requests} each from {n} clients"):
            results["pages"] = {
                "clients": n,
                "invoices_per_client": args.page_invoices,
                **pages.measure(stack, clients, args.page_requests),
            }
    if "audit" in sections:
        with phase("registering the customer of the long history"):
            (customer,) = system.bench_customers(stack, 1)
            system.wait_for_billing_accounts(stack, [customer["id"]])
        results["audit"] = audit.measure(stack, customer["id"], args.audit_events, phase)
        with phase(f"verify-chain over {args.chain_events:,} events beside bare SHA-256"):
            from tests.bench import audit_chain

            cfg = Settings.from_env(
                dict(stack.env, HOSTLEDGER_DB_PREFIX=f"hlbench_{uuid.uuid4().hex[:8]}_")
            )
            results["audit"]["chain"] = audit_chain.measure(cfg, args.chain_events)
    if "sessions" in sections:
        with phase(
            f"session check, cache off and on: {args.session_requests} GETs a run from {n} clients"
        ):
            from tests.bench import sessions

            results["sessions"] = sessions.measure(stack, n, args.session_requests)
    if "broadcast" in sections:
        results["broadcast"] = broadcast.measure(
            stack, args.broadcast_customers, phase, args.broadcast_timeout
        )
    if "rebuild" in sections:
        from tests.bench import rebuild

        results["rebuild"] = rebuild.measure(stack, args, phase)
    if "mail" in sections:
        results["mail"] = {}
        with phase(f"mail in: {args.mail_in} messages by SMTP to tickets visible"):
            results["mail"]["incoming"] = mail.incoming(stack, n, args.mail_in)
        with phase(f"mail out: {args.mail_out} notifications sent"):
            results["mail"]["outgoing"] = mail.outgoing(stack, args.mail_out)


def measure_helpdesk(stack, args, results: dict, phase: Phases) -> None:
    n = args.concurrency
    t = results["throughput"]
    with phase(f"registering {n} customers and a department for the helpdesk"):
        customers = system.bench_customers(stack, n)
        department = helpdesk.bench_department(stack)
    meter = CpuMeter(cpu_sources(stack))
    with phase(f"{args.tickets} tickets opened from {n} clients"):
        result, ticket_ids = helpdesk.tickets_opened(
            stack, department["id"], customers, n, args.tickets, warmup=n, on_start=meter.start
        )
        cpu = meter.stop()
    t["tickets_opened"] = result.summary()
    t["tickets_opened_cpu"] = cpu_summary(cpu, result.ops, "ticket")
    meter = CpuMeter(cpu_sources(stack))
    with phase(f"{args.responses} staff responses from {n} clients, one ticket each"):
        result = helpdesk.responses_added(
            stack, ticket_ids, n, args.responses, warmup=n, on_start=meter.start
        )
        cpu = meter.stop()
    t["responses_added"] = result.summary()
    t["responses_added_cpu"] = cpu_summary(cpu, result.ops, "response")
    rows = args.ticket_list_rows
    with phase(f"seeding {rows:,} tickets of one department into the ticket list read model"):
        list_department = helpdesk.bench_department(stack)
        seeded = helpdesk.seed_list(stack, list_department["id"], rows, rows)
    with phase(f"ticket list: {args.ticket_list_samples} requests and bare queries per filter"):
        results["ticket_list"] = {
            "seeded": seeded,
            **helpdesk.measure_list(stack, list_department["id"], args.ticket_list_samples),
        }


def measure_account(stack, args, results: dict, phase: Phases) -> None:
    entries = args.account_entries
    with phase("registering the customer of the long account"):
        (customer,) = system.bench_customers(stack, 1)
        system.wait_for_billing_accounts(stack, [customer["id"]])
    with phase(f"seeding {entries:,} account entries in-process"):
        app, seeded = billing.seed_account(stack, customer["id"], entries, args.account_batch)
    try:
        with phase("waiting for the billing service to go through the new events"):
            seeded["billing_service_busy_seconds"] = billing.wait_until_quiet(
                stack.procs["billing"].pid
            )
        answered = {"at_middle": max(1, entries // 2), "at_start": min(entries, 100)}
        with phase(f"long account: {args.account_samples} requests per `at`, and bare reads"):
            reads = billing.account_reads(
                stack, app, customer, seeded, args.account_samples, answered
            )
    finally:
        app.close()
    results["account_history"] = {"seeded": seeded, **reads}


def measure_renewals(stack, args, results: dict, phase: Phases) -> None:
    n = args.concurrency
    total, due = args.renewal_services, min(args.renewals_due, args.renewal_services)
    with phase(f"registering {n} customers for the renewals"):
        customers = system.bench_customers(stack, n)
        system.wait_for_billing_accounts(stack, [c["id"] for c in customers])
        product = orders.bench_product(stack)
    stack.stop("orders")
    try:
        with phase(f"seeding {total:,} active services in-process"):
            seeded = orders.seed_services(
                stack,
                [c["id"] for c in customers],
                product["id"],
                total,
                due,
                args.renewal_seed_batch,
            )
        with phase("the orders read model, projected in-process"):
            seeded["projection"] = orders.project_in_process(stack)
        seeded["marked_applied_downstream"] = orders.skip_downstream(stack, seeded["last_position"])
        # a consumer's catch-up with the orders log that began before the mark (its RPC
        # waiting for the stopped orders service) would go through the whole seeded log
        # once orders answers, every event a duplicate: they start afresh from the mark
        for name in orders.DOWNSTREAM:
            stack.restart(name)
    finally:
        # only the bench starts the renewal run: the timer waits an hour
        stack.start("orders", {"HOSTLEDGER_SCHEDULER_INTERVAL": "3600"})
        stack.wait_for_service("orders")
        for name in orders.DOWNSTREAM:
            stack.wait_for_service(name)
    with phase("bare: the renewal candidates' query"):
        bare = orders.bare_candidate_scan(stack)
    meter = CpuMeter(cpu_sources(stack))
    notices_before = orders.last_notice_id(stack)
    with phase(f"renewal run over {total:,} active services, {due:,} due"):
        meter.start()
        run = orders.renewal_run(stack, due)
        cpu = meter.stop()
    results["renewals"] = {
        "seeded": seeded,
        "bare_candidate_scan": bare,
        "run": run,
        "cpu": cpu_summary(cpu, run["renewal_invoices"], "renewal_invoice"),
    }
    print(f"  the run: {run['renewal_invoices']:,} invoices in {run['seconds']:.1f} s", flush=True)
    with phase("until the mail gateway has settled every renewal invoice's notice"):
        downstream = orders.renewal_notices_settled(stack, run["renewal_invoices"], notices_before)
        cpu_downstream = meter.stop()  # from the run's start
    results["renewals"]["downstream"] = downstream
    results["renewals"]["cpu_until_notices_settled"] = cpu_summary(
        cpu_downstream, run["renewal_invoices"], "renewal_invoice"
    )


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


def cpu_summary(cpu: dict, ops: int, unit: str) -> dict:
    per = {
        name: round(seconds * 1000 / ops, 1) if ops else None
        for name, seconds in cpu["process_cpu_seconds"].items()
    }
    if ops:
        rest = cpu["machine_busy_cpu_seconds"] - sum(cpu["process_cpu_seconds"].values())
        per["everything else"] = round(rest * 1000 / ops, 1)
    busy = cpu["machine_busy_fraction"]
    return {
        f"cpu_ms_per_{unit}": per,
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

    def ratio(key, base_key):
        if key not in t or base_key not in t:
            return None
        base = t[base_key]["per_second"]
        return round(t[key]["per_second"] / base, 4) if base else None

    results["ratios"] = {
        "registrations_per_eventsourcing_save": ratio("registrations", "eventsourcing_save"),
        "registrations_per_insert": ratio("registrations", "postgres_insert"),
        "registrations_per_argon2": ratio("registrations", "argon2"),
        "logins_per_argon2_verify": ratio("logins", "argon2_verify"),
        "payments_per_eventsourcing_update": ratio("payments", "eventsourcing_update"),
        "invoices_per_eventsourcing_series": ratio("invoices", "eventsourcing_series"),
        "orders_per_registration": ratio("orders", "registrations"),
    }


def _json_level(line: str) -> str | None:
    """The level of a JSON log line (services.infra.logs), None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line).get("level")
    except (ValueError, AttributeError):
        return None


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
            level = _json_level(line)  # the stack logs one JSON object a line
            if "(expected) error" in line:
                expected[log.stem] = expected.get(log.stem, 0) + 1
            elif (
                " ERROR " in line
                or " CRITICAL " in line
                or level in ("ERROR", "CRITICAL")
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
