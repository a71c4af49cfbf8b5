"""The results as a table on stdout and as JSON in .hostledger/bench/latest.json."""

from __future__ import annotations

import json
from pathlib import Path


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(r: dict) -> str:
    m = r["machine"]
    a = r["argon2_parameters"]
    c = r["concurrency"]
    lines = [
        f"hostledger bench, {r['started_at']} (took {r['total_seconds']:.0f} s)",
        f"machine      {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}",
        f"software     Python {m['python']}, PostgreSQL {m['postgresql']} "
        f"(synchronous_commit={m['postgresql_synchronous_commit']}), RabbitMQ {m['rabbitmq']}, "
        f"psycopg {m['libraries']['psycopg']} ({m['psycopg_implementation']}), "
        f"eventsourcing {m['libraries']['eventsourcing']}",
        f"load average {' '.join(f'{x:.2f}' for x in m['load_average_at_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in r['load_average_at_end'])} at end "
        "(anything else running on these CPUs lowers every figure)",
        f"             {r['other_nameko_processes_at_start']} `nameko run` processes of other "
        "stacks were running when the bench started",
        f"argon2       {a['type']}, time_cost={a['time_cost']}, "
        f"memory_cost={a['memory_cost_kib']} KiB, parallelism={a['parallelism']}",
        "",
        f"1. THROUGHPUT, {c} concurrent clients (green threads; argon2 in real threads)",
        "",
        f"   {'':44} {'ops':>6} {'seconds':>8} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for label, key in (
        ("registrations, HTTP POST via the gateway", "registrations"),
        ("bare argon2id hash", "argon2"),
        ("bare eventsourcing save, 1 aggregate", "eventsourcing_save"),
        ("bare eventsourcing save, 3 aggregates", "eventsourcing_save_3"),
        ("bare PostgreSQL single-row INSERT", "postgres_insert"),
        ("argon2id hash, one at a time (1 client)", "argon2_serial"),
    ):
        s = r["throughput"][key]
        lat = s["latency"]
        lines.append(
            f"   {label:44} {s['ops']:>6} {s['seconds']:>8.2f} {_num(s['per_second']):>9} "
            f"{_num(lat['p50_ms']):>8} {_num(lat['p99_ms']):>8}"
            + (f"   ERRORS: {s['errors']} ({s['first_error']})" if s["errors"] else "")
        )
    q = r["ratios"]
    lines += [
        "",
        "   registrations / eventsourcing save   "
        + _ratio(q["registrations_per_eventsourcing_save"]),
        f"   registrations / PostgreSQL INSERT    {_ratio(q['registrations_per_insert'])}",
        f"   registrations / argon2id hash        {_ratio(q['registrations_per_argon2'])}",
        "   Every registration hashes a password with argon2id: the bare hash rate is the",
        "   real ceiling of registrations on this machine, not the database.",
    ]
    cpu = r["throughput"]["registrations_cpu"]
    per = cpu["cpu_ms_per_registration"]
    hash_cpu = r["throughput"]["argon2_serial"].get("cpu_ms_per_op")
    lines += [
        "",
        f"   one argon2id hash alone takes {_num(hash_cpu)} ms of CPU",
        "   CPU per registration (ms): "
        + ", ".join(f"{name} {_num(ms)}" for name, ms in per.items()),
        f"   machine CPU busy during the run: {_num(cpu['machine_busy_percent'], 0)} %",
        "   CPU of the idle services (their polling loops), ms per second: "
        + ", ".join(f"{k} {_num(v)}" for k, v in r["idle_cpu_ms_per_second"].items()),
    ]
    p = r["propagation"]
    logs = r["log_problems"]
    lines += [
        "",
        "2. PROPAGATION: customer registered -> billing account opened",
        "   method: store timestamps (customers_events Customer.Registered `timestamp` vs",
        "   billing_events PersonalAccount.Opened `timestamp`); split at the moment a queue",
        "   of the bench's own on the events exchange received the integration event",
        "",
        f"   {'':50} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]

    def row(label, d):
        return (
            f"   {label:50} {d['n']:>5} {_num(d['p50_ms']):>8} {_num(d['p90_ms']):>8} "
            f"{_num(d['p99_ms']):>8} {_num(d['max_ms']):>8}"
        )

    lines += [
        row("one registration at a time", p["isolated"]["total"]),
        row("  relay: registered -> out of RabbitMQ", p["isolated"]["relay"]),
        row("  consumer: out of RabbitMQ -> account opened", p["isolated"]["consumer"]),
        row(f"during the {c}-client throughput run", p["under_load"]["total"]),
        row("  relay: registered -> out of RabbitMQ", p["under_load"]["relay"]),
        row("  consumer: out of RabbitMQ -> account opened", p["under_load"]["consumer"]),
        row("API-visible: POST answered -> first 200 (poll 5 ms)", p["api_polling"]["lag"]),
        row("  one poll (GET .../account) took", p["api_polling"]["poll_request"]),
        row("bare RabbitMQ: publish persistent + confirm", r["rabbitmq"]["confirm"]),
        row("bare RabbitMQ: publish -> consumed", r["rabbitmq"]["delivered"]),
    ]
    caught = ", ".join(f"{k} {v}" for k, v in logs["caught_up"].items()) or "none"
    for label, key in (("one at a time", "isolated"), ("throughput run", "under_load")):
        if trend := p[key].get("p50_ms_by_fifth"):
            lines.append(
                f"   {label}: p50 lag by fifth of the run, in registration order (ms): "
                + ", ".join(_num(x, 0) for x in trend)
            )
        if missing := p[key].get("accounts_missing"):
            lines.append(f"   MISSING: {missing} accounts never opened ({label})")
    lines += [
        "   (the relay polls the customers log every 50 ms when it finds nothing to publish)",
        f"   events applied by a consumer's periodic catch-up (RPC), not from RabbitMQ: {caught}",
        "",
        f"JSON: {r['json_path']}",
        f"service logs: {r['logs']}",
        f"  {logs['lines']} ERROR/CRITICAL/unexpected traceback lines before shutdown"
        + "".join(f"; {name}: {hits[0][:120]}" for name, hits in logs["problems"].items()),
        "  nameko '(expected) error' warnings (with tracebacks): "
        + (", ".join(f"{k} {v}" for k, v in logs["expected_errors"].items()) or "none"),
        "phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases_seconds"].items()),
    ]
    return "\n".join(lines)


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
