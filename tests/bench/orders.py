"""Orders: the order form through the gateway, and a renewal run over many active services.

- orders placed: `POST /api/v1/orders` with no token, each from a new e-mail, one monthly
  item with a setup fee: the gateway creates the customer (an argon2id hash), prices the
  item, billing issues the first invoice (one series), orders saves the order and its
  pending service;
- renewal run: `services` active services are SEEDED in the bench process with the orders
  service's own application (`services.orders.application.Orders` on the stack's orders
  database): per service the Created and Activated events it would have, saved `batch`
  services per save. `due` of them fall due in 3 days (inside the default 7-day renewal
  window) and belong to customers registered through the gateway (billing needs their
  accounts); the others fall due 30 to 400 days ahead and belong to random customer
  ids. The orders service is stopped meanwhile. Its read model is then brought up to
  date in the bench process with the service's own read model code (a `Follower` over
  `OrderLists`), and the seeded stretch of the log is marked as published (relay
  position) and as applied by the consumers of orders' events (their tracking
  records): on a 2-CPU machine those consumers take minutes per 10,000 activations,
  and they would run during the measurement. The orders service is started again
  (its timer set to an hour), and the bench calls its `run_renewals` RPC (what the
  timer runs) and times it; then once more, with nothing left to invoice. The services
  downstream of billing go on after the run answers (the mail gateway queues and sends
  an invoice notice per renewal invoice): the bench then waits until every notice of the
  run is settled (sent, or skipped) and counts the CPU up to there too.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from datetime import date, timedelta

import requests

from tests.bench.drive import Result, drive

ORDER_PATH = "/api/v1/orders"
PRODUCT_PATH = "/api/v1/staff/products"


def bench_product(stack) -> dict:
    r = stack.http(
        "POST",
        PRODUCT_PATH,
        stack.admin_token,
        json={
            "name": "Bench VPS",
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
            "setup_fee": {"amount": 1000, "currency": "EUR"},
        },
    )
    if r.status_code != 201:
        raise RuntimeError(f"POST {PRODUCT_PATH} answered {r.status_code}: {r.text[:200]}")
    return r.json()


def orders_placed(
    stack, product_id: str, concurrency: int, total: int, warmup: int, on_start=None
) -> Result:
    url = stack.base_url + ORDER_PATH

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(requests.Session())

        def place():
            body = {
                "customer": {
                    "email": f"bench-order-{uuid.uuid4().hex[:12]}@example.com",
                    "kind": "individual",
                    "contact_person": "Bench Buyer",
                    "country": "DE",
                },
                "items": [{"product_id": product_id, "billing_cycle": "monthly"}],
            }
            r = session.post(url, json=body, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"POST {ORDER_PATH} answered {r.status_code}: {r.text[:200]}")

        return place

    return drive(factory, concurrency, total=total, warmup=warmup, before_measure=on_start)


# -- a renewal run -------------------------------------------------------------------------


def seed_services(
    stack, customer_ids: list[str], product_id: str, services: int, due: int, batch: int
) -> dict:
    """`services` active services in-process, `due` of them due in 3 days; timed."""
    from services.orders.application import Orders
    from services.orders.domain import Service

    app = Orders(cfg=stack.settings)
    today = date.today()
    rng = random.Random(5)
    product = uuid.UUID(product_id)
    t0 = time.perf_counter()
    try:
        for start in range(0, services, batch):
            made = []
            for k in range(start, min(services, start + batch)):
                is_due = k < due
                s = Service(
                    customer_id=uuid.UUID(customer_ids[k % len(customer_ids)])
                    if is_due
                    else uuid.uuid4(),
                    order_id=uuid.uuid4(),
                    product_id=product,
                    name="Bench VPS",
                    billing_cycle="monthly",
                    price=500,
                    currency="EUR",
                    provisioning={"kind": "manual", "url": None},
                )
                days = 3 if is_due else rng.randint(30, 400)
                s.activate(next_due_date=(today + timedelta(days=days)).isoformat(), reason="seed")
                made.append(s)
            app.save(*made)
        seconds = time.perf_counter() - t0
        with stack.db("orders") as conn:
            (last,) = conn.execute("SELECT max(notification_id) FROM orders_events").fetchone()
    finally:
        app.close()
    return {
        "method": "in the bench process with the orders application: Service created and "
        f"activated, {batch} services per save; {due} due in 3 days (customers registered "
        "through the gateway), the rest due in 30-400 days (customer ids unknown elsewhere)",
        "services": services,
        "due": due,
        "batch": batch,
        "seed_seconds": round(seconds, 2),
        "services_per_second": round(services / seconds, 0),
        "last_position": last,
    }


def project_in_process(stack) -> dict:
    """Bring the orders read models up to date in the bench process (the service is
    stopped): the service's own read model code, through a Follower each. The lists
    are timed; the audit index and the log's hash chain (which the service would
    otherwise index and hash during the measured run) are brought up to date after
    them."""
    from services.infra.chainkeeper import ChainKeeper
    from services.infra.readmodels import Follower
    from services.orders.application import Orders
    from services.orders.audit import OrdersAuditIndex
    from services.orders.readmodels import OrderLists, PromoLists

    app = Orders(cfg=stack.settings)
    try:
        t0 = time.perf_counter()
        events = Follower(app, OrderLists()).catch_up()
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        others = {
            model.__name__: Follower(app, model()).catch_up()
            for model in (PromoLists, OrdersAuditIndex)
        }
        # and the log's hash chain (services.infra.chainkeeper), as the service's own
        # chain keeper would have hashed it long ago; no checkpoint is taken here (each
        # would be an event every other service keeps a witness of during the run): the
        # service takes the next one when it is due
        keeper = ChainKeeper(app, every=10**9, interval=10**9)
        while keeper.run_once():
            pass
        others_seconds = time.perf_counter() - t1
    finally:
        app.close()
    return {
        "events": events,
        "seconds": round(seconds, 1),
        "events_per_second": round(events / seconds, 0) if seconds else None,
        "other_read_models": others,
        "audit_index_and_chain_seconds": round(others_seconds, 1),
    }


# the services that consume the orders service's events
DOWNSTREAM = ("customers", "billing", "mailgateway", "helpdesk")


def skip_downstream(stack, last_position: int) -> dict:
    """Mark the orders log up to `last_position` as published by the relay and applied by
    every consumer of orders' events (customers, billing, mail gateway, helpdesk): the
    seeded history stays out of their way. Only while the orders service is stopped."""
    done = {}
    with stack.db("orders") as conn:
        conn.execute(
            "UPDATE relay_position SET scanned = %s, published = %s"
            " WHERE name = 'relay:orders' AND scanned < %s",
            (last_position, last_position, last_position),
        )
    for name in DOWNSTREAM:
        with stack.db(name) as conn:
            table = f"{name}_tracking"
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
            if exists is None:
                continue
            conn.execute(
                f"INSERT INTO {table} (application_name, notification_id) VALUES ('orders', %s)"
                " ON CONFLICT (application_name) DO UPDATE SET notification_id ="
                f" greatest({table}.notification_id, excluded.notification_id)",
                (last_position,),
            )
            done[name] = last_position
    return done


def renewal_run(stack, due: int, timeout: float = 7200) -> dict:
    """The orders service's `run_renewals`, timed from the bench: once with `due` services
    to invoice, once more with none."""
    from nameko.standalone.rpc import ClusterRpcProxy

    import services.infra.rpc  # noqa: F401 - typed errors

    with ClusterRpcProxy({"AMQP_URI": stack.env["AMQP_URI"]}, timeout=timeout) as rpc:
        t0 = time.perf_counter()
        first = rpc.orders.run_renewals()
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = rpc.orders.run_renewals()
        seconds_again = time.perf_counter() - t1
    # the count is read from the orders service's list, once it shows what was recorded
    stack.wait_projected("orders", timeout=600)
    with stack.db("orders") as conn:
        (invoiced,) = conn.execute(
            "SELECT count(*) FROM service_list WHERE renewal_invoice_id IS NOT NULL"
        ).fetchone()
    return {
        "renewal_invoices": first["renewal_invoices"],
        "seconds": round(seconds, 2),
        "invoices_per_second": round(first["renewal_invoices"] / seconds, 2) if seconds else None,
        "service_reported": first,
        "due": due,
        "services_with_a_renewal_invoice": invoiced,
        "second_run": {"seconds": round(seconds_again, 2), **again},
    }


def bare_candidate_scan(stack, repeats: int = 3) -> dict:
    """The renewal candidates' query alone (all pages), in the bench process."""
    from services.orders.application import Orders

    app = Orders(cfg=stack.settings)
    try:
        times, found = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            found = sum(len(page) for page in app.renewal_candidates(date.today(), 7, 500))
            times.append(time.perf_counter() - t0)
    finally:
        app.close()
    return {"candidates": found, "best_seconds": round(min(times), 3)}


def last_notice_id(stack) -> int:
    """The mail gateway's last outbox row so far (the run's notices come after it)."""
    with stack.db("mailgateway") as conn:
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM mail_outbox").fetchone()
    return int(last)


def renewal_notices_settled(stack, invoices: int, after_id: int, timeout: float = 1800) -> dict:
    """Waits until the mail gateway has settled (sent, skipped, failed) an invoice notice
    for each of the run's `invoices` (outbox rows after `after_id`); how long after the run
    answered, and how many were settled then."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    settled = 0
    with stack.db("mailgateway") as conn:
        while True:
            (settled,) = conn.execute(
                "SELECT count(*) FROM mail_outbox WHERE id > %s AND kind = 'invoice_issued'"
                " AND status NOT IN ('pending', 'sending')",
                (after_id,),
            ).fetchone()
            conn.commit()
            if settled >= invoices or time.perf_counter() > deadline:
                break
            time.sleep(0.2)
    return {
        "notices_settled": int(settled),
        "seconds_after_the_run": round(time.perf_counter() - t0, 2),
    }
