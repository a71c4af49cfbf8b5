"""Read models rebuilt: events per second per read model, beside the bare read of the log.

For each service, with that service stopped (so that its own followers do not share the
work and the figures are the rebuild's alone), in the bench process:

- bare read: the service's whole notification log read in pages of 500
  (`recorder.select_notifications`), as stored records; then read again and each record
  turned into its domain event by the service's mapper (decompressed, decoded, personal
  fields opened with their customer's key), which every projection needs;
- rebuild: `Follower(app, model).rebuild()` per read model, what `hostledger readmodels
  rebuild <service> <model>` runs: the model's tables emptied, the whole log projected
  again in batches of 500, one transaction each.

Events per second are the log's length over the seconds taken. The service is started
again afterwards. When the `broadcast` section ran before, the customers and helpdesk
logs hold its 10,000 customers and tickets; alone, this section seeds the customers
first (as that section does) so that at least one log is long.
"""

from __future__ import annotations

import time

from tests.bench import broadcast

SERVICES = ("customers", "helpdesk", "billing", "orders", "mailgateway")


def _module(service: str):
    import importlib

    return importlib.import_module(f"services.{service}.service")


def bare_read(app, head: int, decode: bool, page: int = 500) -> dict:
    t0 = time.perf_counter()
    read, start = 0, 1
    while start <= head:
        batch = app.recorder.select_notifications(start, page)
        if not batch:
            break
        if decode:
            for n in batch:
                app.mapper.to_domain_event(n)
        read += len(batch)
        start = batch[-1].id + 1
    seconds = time.perf_counter() - t0
    return {
        "events": read,
        "seconds": round(seconds, 2),
        "events_per_second": round(read / seconds, 0) if seconds else None,
    }


def measure_service(stack, service: str) -> dict:
    from services.infra.readmodels import Follower

    module = _module(service)
    stack.stop(service)
    try:
        app = module.APPLICATION(cfg=stack.settings)
        try:
            head = app.recorder.max_notification_id() or 0
            out = {
                "log_events": head,
                "bare_read": bare_read(app, head, decode=False),
                "bare_read_and_decode": bare_read(app, head, decode=True),
                "read_models": {},
            }
            for model_cls in module.READ_MODELS:
                follower = Follower(app, model_cls())
                t0 = time.perf_counter()
                projected = follower.rebuild()
                seconds = time.perf_counter() - t0
                out["read_models"][model_cls.name] = {
                    "events": projected,
                    "seconds": round(seconds, 2),
                    "events_per_second": round(projected / seconds, 0) if seconds else None,
                }
        finally:
            app.close()
    finally:
        stack.start(service)
        stack.wait_for_service(service)
    bare = out["bare_read"]["events_per_second"]
    for model in out["read_models"].values():
        model["ratio_to_bare_read"] = (
            round(model["events_per_second"] / bare, 3)
            if bare and model["events_per_second"]
            else None
        )
    return out


def measure(stack, args, phase) -> dict:
    results: dict = {}
    if "broadcast" not in args.sections:
        with phase(f"seeding {args.broadcast_customers:,} customers in-process"):
            results["seeded"] = broadcast.seed_customers(stack, args.broadcast_customers)
    for service in SERVICES:
        with phase(f"{service}: its log read bare, then each read model rebuilt"):
            results[service] = measure_service(stack, service)
    return results


def report_lines(r: dict) -> list[str]:
    lines = [
        "READ MODELS REBUILT, in the bench process, each service stopped meanwhile",
        "",
        f"   {'':40} {'events':>8} {'seconds':>8} {'events/s':>9} {'/ bare read':>11}",
    ]
    for service in SERVICES:
        s = r["rebuild"].get(service)
        if not s:
            continue
        if not s["log_events"]:
            lines.append(f"   {service}: its log is empty in this run")
            continue
        bare, decoded = s["bare_read"], s["bare_read_and_decode"]
        lines += [
            f"   {service}: log of {s['log_events']:,} events",
            _row("  bare read of the notification log", bare, None),
            _row("  bare read, each event decoded", decoded, _ratio(decoded, bare)),
        ]
        for name, m in s["read_models"].items():
            lines.append(_row(f"  rebuild {name}", m, m.get("ratio_to_bare_read")))
    return lines


def _ratio(m: dict, bare: dict):
    if not bare["events_per_second"] or not m["events_per_second"]:
        return None
    return round(m["events_per_second"] / bare["events_per_second"], 3)


def _row(label: str, m: dict, ratio) -> str:
    per = "-" if m["events_per_second"] is None else f"{m['events_per_second']:,.0f}"
    share = "-" if ratio is None else f"{ratio:.3f}"
    return f"   {label:40} {m['events']:>8,} {m['seconds']:>8.2f} {per:>9} {share:>11}"
