"""A customer with 10,000 events: its history pages from any cursor by an index range scan
(no sort, no scan of the customer's other events), each event once and in order, oldest
first and newest first (the same index scanned backwards), and its state at any instant
is rebuilt at the version the index names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.customers.audit import CustomersAuditIndex
from services.customers.domain import Customer
from services.infra import audit, clock
from services.infra.context import Actor, acting
from services.infra.readmodels import Follower

EDITS = 10_000
START = datetime(2026, 1, 1, tzinfo=UTC)


class _Ticking:
    """A clock one second further at each reading: every event at its own instant."""

    def __init__(self):
        self.at = START

    def now(self):
        self.at += timedelta(seconds=1)
        return self.at


def test_ten_thousand_events_page_by_an_index_range_scan(customers):
    previous = clock.use_clock(_Ticking())
    try:
        with acting(Actor("staff", "6f1c0a52-1d6c-4d0e-9a53-2b1b8c1e0a01")):
            created = customers.register_customer(
                {
                    "kind": "individual",
                    "email": "many@example.com",
                    "country": "DE",
                    "contact_person": "Many Events",
                    "language": "en",
                    "password": "p" * 12,
                }
            )
            customer: Customer = customers.repository.get(UUID(created["id"]))
            for start in range(0, EDITS, 1000):
                for i in range(start, start + 1000):
                    customer.edit(changes={"note": f"note {i}"})
                customers.save(customer)
    finally:
        clock.use_clock(previous)

    follower = Follower(customers, CustomersAuditIndex())
    follower.catch_up()
    assert follower.status()["behind"] == 0 and follower.status()["skipped"] == 0

    # every event once, in order, 50 at a time from the cursor
    seen, cursor = [], None
    while True:
        page = audit.history(customers, "customer", customer.id, cursor, 50)
        if not page:
            break
        seen += page
        last = page[-1]
        cursor = {
            "occurred_at": last["occurred_at"],
            "service": "customers",
            "position": last["position"],
        }
    notes = [i for i in seen if i["type"] == "Customer.Edited"]
    assert len(notes) == EDITS
    assert [i["position"] for i in seen] == sorted(i["position"] for i in seen)
    assert notes[4321]["changes"] == {"note": ["note 4320", "note 4321"]}

    # a page deep in the history reads the index from the cursor on: no sort, no filter
    middle = seen[len(seen) // 2]
    with customers.datastore.transaction() as curs:
        curs.execute(
            "EXPLAIN SELECT e.* FROM audit_refs r JOIN audit_events e ON e.position = r.position"
            " WHERE r.kind = %s AND r.object_id = %s AND (r.occurred_at, r.position) > (%s, %s)"
            " ORDER BY r.occurred_at, r.position LIMIT 51",
            ("customer", customer.id, middle["occurred_at"], middle["position"]),
        )
        plan = "\n".join(row["QUERY PLAN"] for row in curs.fetchall())
    assert "audit_refs_pkey" in plan, plan
    assert "Sort" not in plan, plan

    # newest first: every event once, in exactly the reverse order, 50 at a time
    newest, cursor = [], None
    while True:
        page = audit.history(customers, "customer", customer.id, cursor, 50, "newest")
        if not page:
            break
        newest += page
        cursor = {
            "occurred_at": page[-1]["occurred_at"],
            "service": "customers",
            "position": page[-1]["position"],
        }
    assert [i["position"] for i in newest] == [i["position"] for i in reversed(seen)]

    # and a page deep in it reads the same index backwards from the cursor: no sort
    cursor = {
        "occurred_at": middle["occurred_at"],
        "service": "customers",
        "position": middle["position"],
    }
    statement, params = audit.history_statement(
        "customers", "customer", customer.id, cursor, order="newest"
    )
    with customers.datastore.transaction() as curs:
        curs.execute(f"EXPLAIN {statement} LIMIT 51", params)
        plan = "\n".join(row["QUERY PLAN"] for row in curs.fetchall())
        curs.execute(f"{statement} LIMIT 51", params)
        rows = curs.fetchall()
    assert "Scan Backward using audit_refs_pkey" in plan, plan
    assert "Sort" not in plan, plan
    before = seen.index(middle)
    assert [r["position"] for r in rows] == [
        i["position"] for i in seen[before - 51 : before][::-1]
    ]

    # the customer as it stood between two edits
    edit = notes[1234]
    at = datetime.fromisoformat(edit["occurred_at"]) + timedelta(milliseconds=500)
    then = audit.state(customers, CustomersAuditIndex.mapping, "customer", customer.id, at)
    assert then["version"] == edit["version"] and then["state"]["note"] == "note 1234"
