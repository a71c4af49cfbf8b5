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


THROUGHPUT_HEADER = f"   {'':44} {'ops':>6} {'seconds':>8} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}"
LATENCY_HEADER = f"   {'':50} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"


def _throughput_row(label: str, s: dict) -> str:
    lat = s["latency"]
    return (
        f"   {label:44} {s['ops']:>6} {s['seconds']:>8.2f} {_num(s['per_second']):>9} "
        f"{_num(lat['p50_ms']):>8} {_num(lat['p99_ms']):>8}"
        + (f"   ERRORS: {s['errors']} ({s['first_error']})" if s["errors"] else "")
    )


def _latency_row(label: str, d: dict) -> str:
    return (
        f"   {label:50} {d['n']:>5} {_num(d['p50_ms']):>8} {_num(d['p90_ms']):>8} "
        f"{_num(d['p99_ms']):>8} {_num(d['max_ms']):>8}"
    )


def _cpu_line(cpu: dict, unit: str) -> list[str]:
    per = cpu[f"cpu_ms_per_{unit}"]
    return [
        f"   CPU per {unit} (ms): " + ", ".join(f"{name} {_num(ms)}" for name, ms in per.items()),
        f"   machine CPU busy during the run: {_num(cpu['machine_busy_percent'], 0)} %",
    ]


def render(r: dict) -> str:
    m = r["machine"]
    a = r["argon2_parameters"]
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
        "stacks were running at the start; PostgreSQL connections in use with this stack up "
        f"{m['postgresql_connections_in_use']} of {m['postgresql_max_connections']}",
        f"argon2       {a['type']}, time_cost={a['time_cost']}, "
        f"memory_cost={a['memory_cost_kib']} KiB, parallelism={a['parallelism']}",
        f"sections     {', '.join(r['sections'])}",
    ]
    parts = []
    t = r["throughput"]
    if "registrations" in t:
        parts += [_registrations(r), _propagation(r)]
    if "logins" in t:
        parts.append(_logins(r))
    if "customer_list" in r:
        parts.append(_customer_list(r))
    if {"payments", "invoices"} & set(t) or "account_history" in r:
        parts.append(_billing(r))
    if "orders" in t or "renewals" in r:
        parts.append(_orders(r))
    if "tickets_opened" in t or "ticket_list" in r:
        parts.append(_helpdesk(r))
    if "mail" in r:
        from tests.bench.mail import report_lines

        parts.append(report_lines(r))
    if "pages" in r:
        parts.append(_pages(r))
    if "sessions" in r:
        from tests.bench.sessions import report_lines as session_lines

        parts.append(session_lines(r))
    if "audit" in r:
        from tests.bench.audit import report_lines as audit_lines

        parts.append(audit_lines(r))
    if "broadcast" in r:
        from tests.bench.broadcast import report_lines as broadcast_lines

        parts.append(broadcast_lines(r))
    if "rebuild" in r:
        from tests.bench.rebuild import report_lines as rebuild_lines

        parts.append(rebuild_lines(r))
    for number, part in enumerate(parts, 1):
        lines += ["", f"{number}. {part[0]}", *part[1:]]
    lines += ["", *_footer(r)]
    return "\n".join(lines)


def _registrations(r: dict) -> list[str]:
    c = r["concurrency"]
    lines = [
        f"REGISTRATIONS, {c} concurrent clients (green threads; argon2 in real threads)",
        "",
        THROUGHPUT_HEADER,
    ]
    for label, key in (
        ("registrations, HTTP POST via the gateway", "registrations"),
        ("bare argon2id hash", "argon2"),
        ("bare eventsourcing save, 1 aggregate", "eventsourcing_save"),
        ("bare eventsourcing save, 3 aggregates", "eventsourcing_save_3"),
        ("bare PostgreSQL single-row INSERT", "postgres_insert"),
        ("argon2id hash, one at a time (1 client)", "argon2_serial"),
    ):
        lines.append(_throughput_row(label, r["throughput"][key]))
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
    hash_cpu = r["throughput"]["argon2_serial"].get("cpu_ms_per_op")
    lines += [
        "",
        f"   one argon2id hash alone takes {_num(hash_cpu)} ms of CPU",
        *_cpu_line(cpu, "registration"),
        "   CPU of the idle services (their polling loops), ms per second: "
        + ", ".join(f"{k} {_num(v)}" for k, v in r["idle_cpu_ms_per_second"].items()),
    ]
    return lines


def _propagation(r: dict) -> list[str]:
    c = r["concurrency"]
    p = r["propagation"]
    logs = r["log_problems"]
    lines = [
        "PROPAGATION: customer registered -> billing account opened",
        "   method: store timestamps (customers_events Customer.Registered `timestamp` vs",
        "   billing_events PersonalAccount.Opened `timestamp`); split at the moment a queue",
        "   of the bench's own on the events exchange received the integration event",
        "",
        LATENCY_HEADER,
        _latency_row("one registration at a time", p["isolated"]["total"]),
        _latency_row("  relay: registered -> out of RabbitMQ", p["isolated"]["relay"]),
        _latency_row("  consumer: out of RabbitMQ -> account opened", p["isolated"]["consumer"]),
        _latency_row(f"during the {c}-client throughput run", p["under_load"]["total"]),
        _latency_row("  relay: registered -> out of RabbitMQ", p["under_load"]["relay"]),
        _latency_row("  consumer: out of RabbitMQ -> account opened", p["under_load"]["consumer"]),
        _latency_row(
            "API-visible: POST answered -> first 200 (poll 5 ms)", p["api_polling"]["lag"]
        ),
        _latency_row("  one poll (GET .../account) took", p["api_polling"]["poll_request"]),
        _latency_row("bare RabbitMQ: publish persistent + confirm", r["rabbitmq"]["confirm"]),
        _latency_row("bare RabbitMQ: publish -> consumed", r["rabbitmq"]["delivered"]),
    ]
    caught = ", ".join(f"{k} {v}" for k, v in logs["caught_up"].items()) or "none"
    for label, key in (("one at a time", "isolated"), ("throughput run", "under_load")):
        if trend := p[key].get("p50_ms_by_fifth"):
            lines.append(
                f"   {label}: p50 lag by fifth of the run, in registration order (ms): "
                + ", ".join(_num(x, 0) for x in trend)
            )
        if key == "under_load" and p[key].get("opened_per_second"):
            lines.append(
                f"   {label}: customers registered {_num(p[key]['registered_per_second'])}/s, "
                f"billing opened accounts at {_num(p[key]['opened_per_second'])}/s"
            )
        if missing := p[key].get("accounts_missing"):
            lines.append(f"   MISSING: {missing} accounts never opened ({label})")
    lines += [
        "   (relay: customers' commit -> integration event out of RabbitMQ, on the customers side)",
        f"   events applied by a consumer's periodic catch-up (RPC), not from RabbitMQ: {caught}",
    ]
    return lines


def _logins(r: dict) -> list[str]:
    t = r["throughput"]
    a = r["argon2_parameters"]
    lines = [
        f"LOGINS, {r['concurrency']} concurrent clients, each a customer with its own password",
        "",
        THROUGHPUT_HEADER,
        _throughput_row("logins, POST /api/v1/auth/login (gateway)", t["logins"]),
        _throughput_row("bare argon2id verify, same parameters", t["argon2_verify"]),
        "",
        "   logins / argon2id verify             "
        + _ratio(r["ratios"]["logins_per_argon2_verify"]),
        f"   verify parameters: argon2id time_cost={a['time_cost']}, "
        f"memory_cost={a['memory_cost_kib']} KiB, parallelism={a['parallelism']}; "
        f"{_num(t['argon2_verify'].get('cpu_ms_per_op'))} ms of CPU a verify",
        *_cpu_line(t["logins_cpu"], "login"),
    ]
    return lines


def _customer_list(r: dict) -> list[str]:
    cl = r["customer_list"]
    seeded = cl["seeded"]
    lines = [
        f"CUSTOMER LIST at {seeded['rows_in_table']:,} customers "
        "(GET /api/v1/staff/customers as admin, one request at a time)",
        f"   {seeded['rows_seeded']:,} rows were SEEDED into the read model table customer_list "
        "with one COPY,",
        "   not registered (no events, no aggregates, no password hashes); "
        f"COPY {seeded['copy_seconds']:.1f} s ({_num(seeded['copy_rows_per_second'], 0)} rows/s), "
        f"ANALYZE {seeded['analyze_seconds']:.1f} s",
        "   (the planner's choice follows ANALYZE's random sample: it can differ between runs)",
        "",
        LATENCY_HEADER,
    ]
    for key, label in (("three_filters", "three filters"), ("name_only", "name filter alone")):
        q = cl[key]
        filters = "&".join(f"{k}={v}" for k, v in q["filters"].items())
        lines += [
            f"   {label}: ?{filters}  ({q['http']['matches']:,} match)",
            _latency_row("  through the gateway", q["http"]),
            _latency_row("  customers.list_customers over RPC (no gateway)", q["rpc"]),
            _latency_row("  bare PostgreSQL: same count + page SQL, planned", q["sql"]),
            _latency_row("  bare PostgreSQL: the same, prepared (psycopg)", q["sql_prepared"]),
            f"   {'  gateway p50 / bare planned SQL p50':50} {_num(q.get('ratio_p50')):>5}",
        ]
        if plans := q["sql"].get("plan_summary"):
            lines += [f"     plan of the {k}: {v}" for k, v in plans.items()]
    return lines


def _billing(r: dict) -> list[str]:
    t = r["throughput"]
    q = r["ratios"]
    lines = [f"BILLING, {r['concurrency']} concurrent clients as admin", ""]
    if "payments" in t or "invoices" in t:
        lines.append(THROUGHPUT_HEADER)
    if "payments" in t:
        lines += [
            _throughput_row("payments, POST /api/v1/staff/payments", t["payments"]),
            _throughput_row(
                "bare eventsourcing: get+update 1, new 1, save", t["eventsourcing_update"]
            ),
        ]
    if "invoices" in t:
        lines += [
            _throughput_row("invoices, POST /api/v1/staff/invoices", t["invoices"]),
            _throughput_row(
                "bare eventsourcing: same, 1 shared, in turn", t["eventsourcing_series"]
            ),
        ]
    if "payments" in t:
        lines += [
            "",
            "   payments: client i pays into customer i's account (no contention for an account)",
            "   payments / bare update + new          "
            + _ratio(q["payments_per_eventsourcing_update"]),
            *_cpu_line(t["payments_cpu"], "payment"),
        ]
        if "payments_transactions" in t:  # PostgreSQL transactions per payment
            per = t["payments_transactions"]
            lines.append(
                "   PostgreSQL transactions per payment (a statement alone counts as one): "
                + ", ".join(f"{s} {_num(x)}" for s, x in per.items())
                + f", all {_num(sum(per.values()))}"
            )
    if "invoices" in t:
        n = t["invoice_numbers"]
        lines += [
            "",
            "   invoices: all in the default series, so every issuer contends for the next number",
            "   invoices / bare shared update + new   "
            + _ratio(q["invoices_per_eventsourcing_series"]),
            f"   numbers: {n['issued']} issued, {n['distinct_numbers']} distinct, "
            f"{n['gaps_between_first_and_last']} gaps from {n['first']} to {n['last']}; "
            f"p50 {_num(n['first_quarter']['p50_ms'])} ms in the first quarter of the run, "
            f"{_num(n['last_quarter']['p50_ms'])} ms in the last",
            f"   the series is replayed from its first event by every invoice, in its turn: "
            f"{n['series_load']['events']} events load in "
            f"{_num(n['series_load']['p50_ms'])} ms (p50, in-process, after the run)",
            *_cpu_line(t["invoices_cpu"], "invoice"),
        ]
    if "account_history" in r:
        h = r["account_history"]
        s = h["seeded"]
        lines += [
            "",
            f"   LONG ACCOUNT: {s['entries']:,} entries, seeded in-process with billing's "
            f"application in {s['seed_seconds']:.1f} s",
            f"   ({_num(s['entries_per_second'], 0)} entries/s, one save per {s['batch']}; "
            + (
                f"{s['snapshots_during_seeding']} snapshots during, as the service takes them; "
                f"one more of the final version: {s['snapshot_seconds'] * 1000:.1f} ms, "
                f"{s['snapshot_state_bytes']} bytes)"
                if "snapshots_during_seeding" in s
                else f"no snapshots during, then one snapshot of the final version: "
                f"{s['snapshot_seconds']:.1f} s)"
            ),
            "   the billing service then went through the new events for "
            f"{s['billing_service_busy_seconds']:.0f} s",
            *(
                [f"   its ledger read model had them {s['ledger_caught_up_seconds']:.0f} s later"]
                if "ledger_caught_up_seconds" in s
                else []
            ),
            "",
            LATENCY_HEADER,
        ]
        for key in ("at_middle", "at_start", "now", "now_last_page"):
            if key not in h:
                continue
            a = h[key]
            query = {"now": "", "now_last_page": f"?page={a.get('page')}"}.get(key, "?at=")
            lines += [
                _latency_row(
                    f"GET /api/v1/client/account{query} ({a['entries_answered']:,} entries)",
                    a["http"],
                ),
                f"   {'  answer size':50} {a['response_bytes'] / 1e6:>14.1f} MB",
                _latency_row(
                    "  bare: billing's account_view() for that at", a["bare_account_view"]
                ),
                _latency_row("  bare: json.dumps() of that view", a["bare_json_dumps"]),
                f"   {'  gateway p50 / bare get p50':50} {_num(a.get('ratio_p50_to_bare_get')):>5}",
            ]
        lines.append(_latency_row("bare: app.repository.get(account_id) in-process", h["bare_get"]))
    return lines


def _orders(r: dict) -> list[str]:
    t = r["throughput"]
    lines = ["ORDERS", ""]
    if "orders" in t:
        lines += [
            THROUGHPUT_HEADER,
            _throughput_row("orders placed, POST /api/v1/orders", t["orders"]),
            f"   {r['concurrency']} clients, each order from a new e-mail: the customer is "
            "created (argon2id), the item priced, the invoice issued (one series)",
            "   orders / registrations                 "
            + _ratio(r["ratios"].get("orders_per_registration")),
            *_cpu_line(t["orders_cpu"], "order"),
        ]
    if "renewals" in r:
        rn = r["renewals"]
        s, p, run = rn["seeded"], rn["seeded"]["projection"], rn["run"]
        lines += [
            "",
            f"   RENEWAL RUN over {s['services']:,} active services, {s['due']:,} due "
            f"(SEEDED in-process, {s['batch']} per save, in {s['seed_seconds']:.1f} s: "
            f"{_num(s['services_per_second'], 0)} services/s)",
            f"   the orders read model projected them in-process: {p['events']:,} events in "
            f"{p['seconds']:.0f} s ({_num(p['events_per_second'], 0)}/s), its audit index and "
            f"hash chain after them ({p.get('audit_index_and_chain_seconds', 0):.0f} s); "
            "the seeded log was "
            "then marked as relayed and as applied downstream",
            f"   run_renewals: {run['renewal_invoices']:,} renewal invoices in "
            f"{run['seconds']:.1f} s = {_num(run['invoices_per_second'])} invoices/s "
            f"(services with a renewal invoice afterwards: "
            f"{run['services_with_a_renewal_invoice']:,})",
            f"   the same run again, nothing left to invoice: {run['second_run']['seconds']:.2f} s "
            f"({run['second_run']['renewal_invoices']} invoices)",
            f"   bare: the candidates' query over the read model, all pages: "
            f"{rn['bare_candidate_scan']['best_seconds'] * 1000:.0f} ms "
            f"({rn['bare_candidate_scan']['candidates']:,} candidates)",
            *_cpu_line(rn["cpu"], "renewal_invoice"),
        ]
        if "downstream" in rn:
            d, whole = rn["downstream"], rn["cpu_until_notices_settled"]
            lines += [
                f"   the mail gateway had settled every renewal invoice's notice "
                f"({d['notices_settled']:,}) {d['seconds_after_the_run']:.1f} s after the run "
                f"answered; from the run's start to then ({whole['wall_seconds']:.1f} s):",
                *_cpu_line(whole, "renewal_invoice"),
            ]
    return lines


def _pages(r: dict) -> list[str]:
    p = r["pages"]
    ratio = {}
    pairs = (("dashboard_page", "dashboard_json"), ("invoice_list_page", "invoice_list_json"))
    for page, api in pairs:
        a, b = p[page]["latency"]["p50_ms"], p[api]["latency"]["p50_ms"]
        ratio[page] = a / b if a and b else None
    return [
        "CLIENT AREA PAGES beside the same data through the JSON API",
        "",
        THROUGHPUT_HEADER,
        _throughput_row("GET /dashboard (page, session cookie)", p["dashboard_page"]),
        _throughput_row("the dashboard's 4 JSON reads, one by one", p["dashboard_json"]),
        _throughput_row("GET /invoices (page of 20)", p["invoice_list_page"]),
        _throughput_row("GET /api/v1/client/invoices (page of 20)", p["invoice_list_json"]),
        f"   {p['clients']} clients at once, each logged in with its own session and holding "
        f"{p['invoices_per_client']} unpaid invoices",
        f"   p50 page / p50 JSON: dashboard {_ratio(ratio['dashboard_page'])}, "
        f"invoice list {_ratio(ratio['invoice_list_page'])}",
    ]


def _footer(r: dict) -> list[str]:
    logs = r["log_problems"]
    return [
        f"JSON: {r['json_path']}",
        f"service logs: {r['logs']}",
        f"  {logs['lines']} ERROR/CRITICAL/unexpected traceback lines before shutdown"
        + "".join(f"; {name}: {hits[0][:120]}" for name, hits in logs["problems"].items()),
        "  nameko '(expected) error' warnings (with tracebacks): "
        + (", ".join(f"{k} {v}" for k, v in logs["expected_errors"].items()) or "none"),
        "phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases_seconds"].items()),
    ]


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def _helpdesk(r: dict) -> list[str]:
    t = r["throughput"]
    lines = [f"HELPDESK, {r['concurrency']} concurrent clients", ""]
    if "tickets_opened" in t:
        lines += [
            THROUGHPUT_HEADER,
            _throughput_row("tickets opened, POST /api/v1/client/tickets", t["tickets_opened"]),
            _throughput_row("staff responses, POST .../tickets/{id}/replies", t["responses_added"]),
        ]
    if "ticket_list" in r:
        tl = r["ticket_list"]
        seeded = tl["seeded"]
        lines += [
            "",
            f"   TICKET LIST of one department at {seeded['rows_in_department']:,} tickets "
            f"({seeded['rows_in_table']:,} in the table), GET /api/v1/staff/tickets as admin",
            f"   rows SEEDED into the read model table ticket_list with one COPY "
            f"({seeded['copy_seconds']:.1f} s), not opened (no events, no aggregates)",
            "",
            LATENCY_HEADER,
        ]
        for key in ("department", "department_and_status"):
            q = tl[key]
            filters = "&".join(f"{k}={v}" for k, v in q["filters"].items() if k != "department_id")
            lines += [
                f"   {key.replace('_', ' ')} {filters and '?' + filters} "
                f"({q['http']['matches']:,} match)",
                _latency_row("  through the gateway", q["http"]),
                _latency_row("  bare PostgreSQL: same count + page SQL", q["sql"]),
                f"   {'  gateway p50 / bare SQL p50':50} {_num(q.get('ratio_p50')):>5}",
            ]
            lines += [f"     plan of the {k}: {v}" for k, v in q["sql"]["plan_summary"].items()]
    return lines
