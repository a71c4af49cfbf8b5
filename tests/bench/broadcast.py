"""A staff message to many customers: the tickets it opens per second.

- customers: `customers` customers are SEEDED in the bench process with the customers
  service's own application (`services.customers.application.Customers` on the stack's
  customers database), `batch` per save, while the customers service is stopped: each
  a `Customer.Registered` event (its name and e-mail sealed with a key of its own, the
  keys made beforehand in one statement), no password, no login name, no e-mail index
  (nobody logs in as them). The customers read models are then brought up to date in
  the bench process with the service's own read model code (a `Follower` per model),
  and the seeded stretch of the log is marked as published (relay position) and as
  applied by the consumers of customers' events (their tracking records): billing
  would otherwise open 10,000 personal accounts while the message is sent. Those
  consumers' services are stopped meanwhile too (each reads its position when it
  starts), and all are started again.
- the message: `POST /api/v1/staff/messages` as admin with `{"all": true}` to a
  department of its own: the request reads every customer from the customers
  service's event store, records the message and opens the first tickets; the helpdesk
  opens the rest in the background. Timed from just before the request to the last
  `Ticket.Opened` event in the helpdesk's store (counted there every 0.2 s: the events
  after the notification log's head at the start, of this department), and then until
  the message is `sent` and the department's ticket list shows every ticket (the read
  model following the log). The mail gateway sends each customer its notice meanwhile,
  as in production.
"""

from __future__ import annotations

import time
import uuid

from tests.bench.helpdesk import bench_department

MESSAGES_PATH = "/api/v1/staff/messages"
OPENED_TOPIC = "services.helpdesk.domain:Ticket.Opened"
LANGUAGES = ("en", "en", "en", "ru", "fr")
DOWNSTREAM = ("billing", "orders", "helpdesk", "mailgateway")


def seed_customers(stack, customers: int, batch: int = 1000) -> dict:
    """`customers` registered customers in the customers service's store, in-process
    (the customers service stopped meanwhile); timed."""
    from services.customers.application import Customers
    from services.customers.domain import Customer
    from services.customers.service import READ_MODELS
    from services.infra import clock
    from services.infra.personal_data import new_key
    from services.infra.readmodels import Follower

    # the consumers of customers' events stopped too: each reads where it is in that log
    # when it starts, after the seeded stretch was marked applied
    stopped = ["customers", *DOWNSTREAM]
    for name in stopped:
        stack.stop(name)
    try:
        app = Customers(cfg=stack.settings)
        try:
            t0 = time.perf_counter()
            with app.datastore.transaction(commit=True) as curs:
                curs.execute(
                    "SELECT nextval('customer_number_seq') AS n FROM generate_series(1, %s)",
                    (customers,),
                )
                numbers = [r["n"] for r in curs.fetchall()]
            now = clock.now()
            for start in range(0, customers, batch):
                made = []
                for k in range(start, min(customers, start + batch)):
                    number = numbers[k]
                    c = Customer(
                        number=number,
                        kind="individual",
                        email=f"bench-{number}@example.com",
                        username=f"c{number}",
                        country="DE",
                        contact_person=f"Bench Person {number}",
                        company_name=None,
                        language=LANGUAGES[k % len(LANGUAGES)],
                        project_id=None,
                        currency="EUR",
                        registered_at=now,
                        registration_ip=None,
                    )
                    made.append(c)
                # their keys in one statement (the mapper would make each on its own)
                with app.datastore.transaction(commit=True) as curs:
                    curs.execute(
                        "INSERT INTO personal_keys (customer_id, data_key, created_at)"
                        " SELECT unnest(%s::uuid[]), unnest(%s::bytea[]), now()",
                        ([c.id for c in made], [new_key() for _ in made]),
                    )
                app.save(*made)
            seeded = time.perf_counter() - t0
            with stack.db("customers") as conn:
                (last,) = conn.execute(
                    "SELECT max(notification_id) FROM customers_events"
                ).fetchone()
            t1 = time.perf_counter()
            projected = {m.name: Follower(app, m()).catch_up() for m in READ_MODELS}
            projection = time.perf_counter() - t1
        finally:
            app.close()
        skipped = skip_downstream(stack, "customers", last)
    finally:
        for name in stopped:
            stack.start(name)
        for name in stopped:
            stack.wait_for_service(name)
    return {
        "method": "in the bench process with the customers application: Customer "
        f"registered, {batch} per save, keys made in one statement; read models projected "
        "in-process; the stretch marked published and applied downstream",
        "customers": customers,
        "seed_seconds": round(seeded, 2),
        "customers_per_second": round(customers / seeded, 0) if seeded else None,
        "read_models_projected": projected,
        "projection_seconds": round(projection, 2),
        "last_position": last,
        "marked_applied_downstream": skipped,
    }


def skip_downstream(stack, upstream: str, last_position: int) -> dict:
    """Mark `upstream`'s log up to `last_position` as published by its relay and applied by
    every other service's consumer of it. Only while `upstream` is stopped."""
    done = {}
    with stack.db(upstream) as conn:
        conn.execute(
            "UPDATE relay_position SET scanned = %s, published = %s"
            " WHERE name = %s AND scanned < %s",
            (last_position, last_position, f"relay:{upstream}", last_position),
        )
    for name in ("customers", "billing", "orders", "mailgateway", "helpdesk"):
        if name == upstream:
            continue
        with stack.db(name) as conn:
            table = f"{name}_tracking"
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                continue
            conn.execute(
                f"INSERT INTO {table} (application_name, notification_id) VALUES (%s, %s)"
                " ON CONFLICT (application_name) DO UPDATE SET notification_id ="
                f" greatest({table}.notification_id, excluded.notification_id)",
                (upstream, last_position),
            )
            done[name] = last_position
    return done


def send_to_all(stack, department_id: str, timeout: float = 3600) -> dict:
    """The message to every customer, timed until its last ticket is in the store (or
    `timeout` seconds: then the tickets so far)."""
    with stack.db("helpdesk") as conn:
        (head,) = conn.execute(
            "SELECT coalesce(max(notification_id), 0) FROM helpdesk_events"
        ).fetchone()
    body = {
        "all": True,
        "department_id": department_id,
        "subject": f"Maintenance {uuid.uuid4().hex[:6]}",
        "body": "Dear %client_person%, your server moves tonight between 01:00 and 03:00.",
    }
    t0 = time.perf_counter()
    r = _post(stack, body)
    answered = time.perf_counter() - t0
    if r.status_code == 201:
        started = r.json()
    elif r.status_code == 503:
        # the gateway gave up waiting (HOSTLEDGER_RPC_TIMEOUT); the helpdesk goes on with
        # the request: the message is recorded when the recipients are found
        started = _recorded_message(stack, head)
    else:
        raise RuntimeError(f"POST {MESSAGES_PATH} answered {r.status_code}: {r.text[:300]}")
    wanted = started["count"]
    timeline = []
    deadline = time.monotonic() + timeout
    with stack.db("helpdesk") as conn:
        conn.autocommit = True
        while True:
            (count,) = conn.execute(
                "SELECT count(*) FROM helpdesk_events WHERE notification_id > %s AND topic = %s",
                (head, OPENED_TOPIC),
            ).fetchone()
            now = time.perf_counter() - t0
            if not timeline or timeline[-1][1] != count:
                timeline.append((round(now, 2), count))
            if count >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    opened_seconds = time.perf_counter() - t0
    opened = timeline[-1][1] if timeline else 0
    if opened < wanted:
        # stopped at `timeout`: the rate so far
        return {
            "recipients": wanted,
            "request_status": r.status_code,
            "request_seconds": round(answered, 2),
            "tickets_in_answer": len(started.get("tickets") or ()),
            "tickets_opened": opened,
            "stopped_after_seconds": round(opened_seconds, 2),
            "tickets_per_second": round(opened / opened_seconds, 1),
            "timeline": _thin(timeline),
        }
    path = f"{MESSAGES_PATH}/{started['id']}"
    sent = stack.wait_until(
        lambda: (m := stack.http("GET", path, stack.admin_token).json())["status"] == "sent" and m,
        timeout=300,
        interval=0.5,
        what="the message sent",
    )
    sent_seconds = time.perf_counter() - t0
    with stack.db("helpdesk") as conn:
        conn.autocommit = True

        def listed():
            return conn.execute(
                "SELECT count(*) FROM ticket_list WHERE department_id = %s", (department_id,)
            ).fetchone()[0]

        stack.wait_until(lambda: listed() >= wanted, timeout=600, interval=0.5, what="listed")
    listed_seconds = time.perf_counter() - t0
    customers = [t["customer_id"] for t in sent["tickets"]]
    return {
        "recipients": wanted,
        "request_status": r.status_code,
        "request_seconds": round(answered, 2),
        "tickets_in_answer": len(started.get("tickets") or ()),
        "tickets_opened": timeline[-1][1] if timeline else 0,
        "opened_seconds": round(opened_seconds, 2),
        "tickets_per_second": round(wanted / opened_seconds, 1) if opened_seconds else None,
        "tickets_per_second_after_answer": round(
            (wanted - len(started.get("tickets") or ())) / (opened_seconds - answered), 1
        )
        if opened_seconds > answered
        else None,
        "sent_seconds": round(sent_seconds, 2),
        "listed_seconds": round(listed_seconds, 2),
        "one_ticket_each": len(customers) == len(set(customers)) == wanted,
        "timeline": _thin(timeline),
    }


def _recorded_message(stack, head: int, timeout: float = 600) -> dict:
    """The message the helpdesk recorded after log position `head`, as GET shows it then."""
    with stack.db("helpdesk") as conn:
        conn.autocommit = True
        row = stack.wait_until(
            lambda: conn.execute(
                "SELECT originator_id FROM helpdesk_events WHERE notification_id > %s"
                " AND topic LIKE %s ORDER BY notification_id LIMIT 1",
                (head, "%:Broadcast.Created"),
            ).fetchone(),
            timeout=timeout,
            interval=0.2,
            what="the message recorded",
        )
    r = stack.http("GET", f"{MESSAGES_PATH}/{row[0]}", stack.admin_token)
    return dict(r.json(), tickets=[])  # none in an answer that was never given


def _post(stack, body: dict):
    import requests

    return requests.post(
        stack.base_url + MESSAGES_PATH,
        json=body,
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=600,
    )


def _thin(timeline: list, points: int = 20) -> list:
    """At most `points` (seconds, tickets) pairs, evenly picked, the last one kept."""
    if len(timeline) <= points:
        return timeline
    step = len(timeline) / points
    picked = [timeline[int(i * step)] for i in range(points)]
    return [*picked[:-1], timeline[-1]]


def measure(stack, customers: int, phase, timeout: float = 3600) -> dict:
    with phase("a department for the message"):
        department = bench_department(stack)
    with phase(f"seeding {customers:,} customers in-process"):
        seeded = seed_customers(stack, customers)
    with phase(f"a message to all customers ({customers:,} and the bench's own)"):
        sent = send_to_all(stack, department["id"], timeout)
    return {"seeded": seeded, "message": sent}


def report_lines(r: dict) -> list[str]:
    b = r["broadcast"]
    s, m = b["seeded"], b["message"]
    if "stopped_after_seconds" in m:
        return [
            f"MESSAGE TO CUSTOMERS: one staff message to all {m['recipients']:,} customers",
            f"   stopped after {m['stopped_after_seconds']:.0f} s (--broadcast-timeout) with "
            f"{m['tickets_opened']:,} tickets: {_num(m['tickets_per_second'])} tickets/s",
        ]
    lines = [
        f"MESSAGE TO CUSTOMERS: one staff message to all {m['recipients']:,} customers",
        f"   customers SEEDED in-process: {s['customers']:,} in {s['seed_seconds']:.1f} s "
        f"({_num(s['customers_per_second'])}/s), read models projected in "
        f"{s['projection_seconds']:.1f} s",
        f"   POST /api/v1/staff/messages answered {m.get('request_status', 201)} in "
        f"{m['request_seconds']:.2f} s with {m['tickets_in_answer']} tickets",
        f"   every ticket in the helpdesk's store after {m['opened_seconds']:.1f} s: "
        f"{_num(m['tickets_per_second'])} tickets/s "
        f"({_num(m['tickets_per_second_after_answer'])}/s after the answer)",
        f"   message `sent` after {m['sent_seconds']:.1f} s, every ticket in the "
        f"department's list after {m['listed_seconds']:.1f} s; one ticket each: "
        f"{m['one_ticket_each']}",
        "   tickets in the store over time (s: tickets): "
        + ", ".join(f"{t:.0f}: {n:,}" for t, n in m["timeline"]),
    ]
    return lines


def _num(value) -> str:
    return "-" if value is None else f"{value:,.0f}"
