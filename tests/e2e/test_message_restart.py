"""A message to many customers survives a helpdesk killed in the middle of sending it: after
the restart every customer has exactly one ticket of it (none twice, none missing)."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

# the suite's stack opens 2 tickets a save (HOSTLEDGER_BROADCAST_BATCH), 3 in the request
# itself (HOSTLEDGER_BROADCAST_INLINE): 80 recipients are 40 saves, of which the kill after
# the first KILL_AFTER tickets leaves most still to open
AUDIENCE = 80
KILL_AFTER = 10


def _recorded_in_store(stack, message_id: str) -> int:
    """Tickets the message recorded in the helpdesk's store (read while the helpdesk is
    down: what it saved before it died)."""
    with stack.db("helpdesk") as conn:
        rows = conn.execute(
            "SELECT state FROM helpdesk_events WHERE originator_id = %s AND topic LIKE %s",
            (message_id, "%Broadcast.TicketsOpened"),
        ).fetchall()
    return sum(len(json.loads(bytes(state))["tickets"]) for (state,) in rows)


def _listed(stack, department_id: str) -> list[dict]:
    items, page = [], 1
    while True:
        r = stack.http(
            "GET",
            "/api/v1/staff/tickets",
            stack.admin_token,
            params={"department_id": department_id, "page": page, "page_size": 50},
        )
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        if page * 50 >= r.json()["total"]:
            return items
        page += 1


def _listed_total(stack, department_id: str) -> int:
    r = stack.http(
        "GET",
        "/api/v1/staff/tickets",
        stack.admin_token,
        params={"department_id": department_id, "page": 1, "page_size": 1},
    )
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_a_helpdesk_killed_mid_message_resumes_where_it_stopped(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Notices {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    assert r.status_code == 201, r.text
    department = r.json()
    with ThreadPoolExecutor(8) as pool:
        customers = list(
            pool.map(
                lambda i: stack.register_customer(contact_person=f"Person {i}"), range(AUDIENCE)
            )
        )
    body = {
        "customer_ids": [c["id"] for c in customers],
        "department_id": department["id"],
        "subject": f"Maintenance {uuid.uuid4().hex[:6]}",
        "body": "Dear %client_person%, your server moves tonight.",
    }
    r = stack.http("POST", "/api/v1/staff/messages", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["status"] == "sending" and started["count"] == AUDIENCE
    path = f"/api/v1/staff/messages/{started['id']}"

    # killed outright (SIGKILL) while the background sender is under way
    stack.wait_until(
        lambda: stack.http("GET", path, stack.admin_token).json()["opened"] >= KILL_AFTER,
        interval=0.05,
        what="the first background batches",
    )
    stack.kill("helpdesk")
    try:
        # what it saved before it died: some of the tickets, not all
        at_kill = _recorded_in_store(stack, started["id"])
        assert KILL_AFTER <= at_kill < AUDIENCE, at_kill
    finally:
        stack.start("helpdesk")
        stack.wait_for_service("helpdesk")

    sent = stack.wait_until(
        lambda: (m := stack.http("GET", path, stack.admin_token).json())["status"] == "sent" and m,
        timeout=180,
        what="the message sent after the restart",
    )
    assert sent["count"] == AUDIENCE and sent["opened"] == AUDIENCE
    recorded = {t["customer_id"]: t for t in sent["tickets"]}
    assert set(recorded) == {c["id"] for c in customers}
    assert len({t["ticket_id"] for t in sent["tickets"]}) == AUDIENCE
    assert len({t["tracking_number"] for t in sent["tickets"]}) == AUDIENCE

    # the department's list: exactly one ticket per customer, the one the message recorded
    # the list is read page by page only once every ticket is in it: paging while tickets
    # are still being listed shifts the pages and can show one ticket twice
    stack.wait_until(
        lambda: _listed_total(stack, department["id"]) >= AUDIENCE,
        timeout=120,
        what="every ticket listed",
    )
    listed = _listed(stack, department["id"])
    assert len(listed) == AUDIENCE
    assert {t["customer_id"]: t["id"] for t in listed} == {
        c: t["ticket_id"] for c, t in recorded.items()
    }

    # and published once each
    def opened():
        return [
            e
            for e in stack.published("helpdesk")
            if e["type"] == "TicketOpened" and e["payload"]["department_id"] == department["id"]
        ]

    stack.wait_until(lambda: len(opened()) >= AUDIENCE, timeout=120, what="tickets published")
    published = opened()
    assert len(published) == AUDIENCE
    assert sorted(e["aggregate_id"] for e in published) == sorted(
        t["ticket_id"] for t in sent["tickets"]
    )
    # macros filled in per customer by the sender that took over
    last = sent["tickets"][-1]
    ticket = stack.http("GET", f"/api/v1/staff/tickets/{last['ticket_id']}", stack.admin_token)
    i = next(i for i, c in enumerate(customers) if c["id"] == last["customer_id"])
    assert ticket.json()["messages"][0]["body"] == f"Dear Person {i}, your server moves tonight."
