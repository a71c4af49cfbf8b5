"""Every kind of object has its history and its past state: a service, an order, an
invoice, a personal account, a ticket and a staff member (the customer's own are in
test_audit_history.py). Each history is paged (one event a page gives the same events in
the same order), each event says who did it, on whose behalf and what changed, field by
field; the object as it stood between two of its events is the one its earlier event
left; and a deleted customer's service, order, invoice and account keep theirs."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from tests.e2e.test_audit_history import client_ticket
from tests.e2e.test_orders import _paid_order
from tests.staff_api import AUDIT, client_with_account, history, history_pages


def _between(earlier: str, later: str) -> str | None:
    a, b = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
    if b - a < timedelta(microseconds=2):
        return None  # no instant between them
    return (a + (b - a) / 2).isoformat()


def _history_path(kind: str, object_id: str) -> str:
    return f"customers/{object_id}" if kind == "customer" else f"{kind}/{object_id}"


def _indexed(stack, path: str) -> list[dict]:
    """A history as far as it is indexed: none while its object is unknown (a 404 until
    the first of its events is indexed)."""
    r = stack.http("GET", f"{AUDIT}/{path}/history", stack.admin_token, params={"limit": 1})
    return history(stack, path) if r.status_code == 200 else []


def _state(stack, kind: str, object_id: str, at: str | None = None) -> dict:
    params = {"at": at} if at else {}
    r = stack.http("GET", f"{AUDIT}/{kind}/{object_id}", stack.admin_token, params=params)
    assert r.status_code == 200, (kind, at, r.text)
    answer = r.json()
    assert answer["kind"] == kind and answer["id"] == object_id
    return answer


def _explained(stack, kind: str, object_id: str, wanted: list[str]) -> list[dict]:
    """The object's history once `wanted` event types are in it, checked: paged, each
    event explained, and the object's state between each two of its own events."""
    path = _history_path(kind, object_id)

    def complete() -> list[dict]:
        found = _indexed(stack, path)
        return found if found and set(wanted) <= {i["type"] for i in found} else []

    items = stack.wait_until(complete, what=f"{wanted} in the {kind}'s history")
    # paged one event at a time: the same events in the same order
    paged, pages = history_pages(stack, path, limit=1)
    assert paged[: len(items)] == items and pages >= len(items), (kind, pages, len(items))
    for item in items:
        assert {"actor", "on_behalf_of", "cause", "reason"} <= set(item), item
        assert item["summary"] and item["occurred_at"] and item["service"], item
        for change in item["changes"]:
            assert set(change) == {"field", "before", "after"}, change
    own = [i for i in items if i["aggregate"]["id"] == object_id]
    assert [i["aggregate"]["version"] for i in own] == sorted(
        i["aggregate"]["version"] for i in own
    )
    assert len(own) >= 2, (kind, [i["type"] for i in items])
    compared = 0
    for earlier, later in itertools.pairwise(own):
        at = _between(earlier["occurred_at"], later["occurred_at"])
        if at is None:
            continue
        then = _state(stack, kind, object_id, at)
        assert then["version"] == earlier["aggregate"]["version"], (kind, earlier, then)
        assert datetime.fromisoformat(then["as_of"]) == datetime.fromisoformat(
            earlier["occurred_at"]
        )
        compared += 1
    assert compared >= 1, kind
    assert _state(stack, kind, object_id)["version"] == own[-1]["aggregate"]["version"]
    return items


def _one(items: list[dict], type_: str) -> dict:
    [found] = [i for i in items if i["type"] == type_]
    return found


def _change(item: dict, field: str) -> tuple:
    [change] = [c for c in item["changes"] if c["field"] == field]
    return change["before"], change["after"]


def test_a_service_an_order_an_invoice_and_an_account_have_their_histories(stack):
    admin_id = stack.http("GET", "/api/v1/me", stack.admin_token).json()["staff_id"]
    _, order = _paid_order(stack, "audit-kinds")
    cid = order["customer_id"]
    service = stack.wait_until(
        lambda: next(
            (
                s
                for s in stack.http(
                    "GET", "/api/v1/staff/services", stack.admin_token, params={"customer_id": cid}
                ).json()["items"]
                if s["status"] == "active"
            ),
            None,
        ),
        what="the active service",
    )
    base = f"/api/v1/staff/services/{service['id']}"
    r = stack.http("POST", base + "/suspend", stack.admin_token, json={"reason": "abuse report"})
    assert r.status_code == 200, r.text
    r = stack.http("POST", base + "/unsuspend", stack.admin_token, json={"reason": "cleaned up"})
    assert r.status_code == 200, r.text

    items = _explained(
        stack, "service", service["id"], ["Service.Suspended", "Service.Unsuspended"]
    )
    suspended = _one(items, "Service.Suspended")
    assert suspended["actor"] == {"kind": "staff", "id": admin_id}
    assert suspended["on_behalf_of"] is None and suspended["reason"] == "abuse report"
    assert _change(suspended, "status") == ("active", "suspended")
    assert _change(suspended, "why") == (None, "staff")
    unsuspended = _one(items, "Service.Unsuspended")
    assert _change(unsuspended, "status") == ("suspended", "active")
    assert unsuspended["reason"] == "cleaned up"
    at = _between(suspended["occurred_at"], unsuspended["occurred_at"])
    assert _state(stack, "service", service["id"], at)["state"]["status"] == "suspended"
    assert _state(stack, "service", service["id"])["state"]["status"] == "active"

    order_items = _explained(stack, "order", order["order_id"], [])
    assert {i["service"] for i in order_items} >= {"orders"}
    invoice_items = _explained(stack, "invoice", order["invoice_id"], ["Invoice.Paid"])
    paid = _one(invoice_items, "Invoice.Paid")
    assert paid["actor"] == {"kind": "staff", "id": admin_id}
    assert _change(paid, "status") == ("unpaid", "paid")

    customer_items = history(stack, f"customers/{cid}")
    account_id = next(
        i["aggregate"]["id"] for i in customer_items if i["aggregate"]["type"] == "PersonalAccount"
    )
    account_items = _explained(stack, "account", account_id, ["PersonalAccount.Opened"])
    opened = _one(account_items, "PersonalAccount.Opened")
    assert opened["actor"] == {"kind": "service", "id": "billing"} and opened["cause"]

    # the customer deleted (its running service with it): every history stays
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{cid}",
        stack.admin_token,
        params={"confirm": "true", "force": "true"},
    )
    assert r.status_code in (200, 204), r.text
    stack.wait_until(
        lambda: "Customer.Deleted" in {i["type"] for i in history(stack, f"customers/{cid}")},
        what="the deletion in the customer's history",
    )
    for kind, object_id, before in (
        ("service", service["id"], items),
        ("order", order["order_id"], order_items),
        ("invoice", order["invoice_id"], invoice_items),
        ("account", account_id, account_items),
    ):
        after = history(stack, _history_path(kind, object_id))
        assert after[: len(before)] == before, kind
        assert _state(stack, kind, object_id, before[0]["occurred_at"])["version"] >= 1


def test_a_ticket_and_a_staff_member_have_their_histories(stack):
    admin_id = stack.http("GET", "/api/v1/me", stack.admin_token).json()["staff_id"]
    customer, client = client_with_account(stack)
    ticket = client_ticket(stack, client, "Disk full", "Help, please.")
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        stack.admin_token,
        json={"body": "Freed 2 GB."},
    )
    assert r.status_code == 201, r.text
    items = _explained(stack, "ticket", ticket["id"], ["Ticket.Opened"])
    assert items[0]["type"] == "Ticket.Opened" and items[0]["actor"]["kind"] == "client"
    [answer] = [i for i in items[1:] if i["actor"] == {"kind": "staff", "id": admin_id}]
    assert answer["type"] == "Ticket.MessageAdded"
    assert _change(answer, "status") == ("open", "answered")
    first_state = _state(stack, "ticket", ticket["id"], items[0]["occurred_at"])
    assert first_state["version"] == 1
    # the customer deleted: its ticket keeps its history and its past
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        params={"confirm": "true"},
    )
    assert r.status_code in (200, 204), r.text
    stack.wait_until(
        lambda: (
            "Customer.Deleted" in {i["type"] for i in history(stack, f"customers/{customer['id']}")}
        ),
        what="the deletion in the customer's history",
    )
    assert history(stack, f"ticket/{ticket['id']}")[: len(items)] == items
    assert _state(stack, "ticket", ticket["id"], items[0]["occurred_at"]) == first_state

    # an auditor's look at the ticket as it stood is recorded: who, which, at what instant
    auditor_member, auditor = stack.staff_member("auditor")
    r = stack.http(
        "GET", f"{AUDIT}/ticket/{ticket['id']}", auditor, params={"at": items[0]["occurred_at"]}
    )
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    [read] = stack.wait_until(
        lambda: [
            i
            for i in _indexed(stack, f"staff/{auditor_member['id']}")
            if i["type"] == "AuditRead.Recorded"
        ],
        what="the auditor's read in its history",
    )
    assert read["actor"] == {"kind": "staff", "id": auditor_member["id"]} and read["occurred_at"]
    seen = {c["field"]: c["after"] for c in read["changes"]}
    assert seen["object_id"] == ticket["id"] and seen["object_kind"] == "ticket"
    assert seen["view"] == "state"
    assert datetime.fromisoformat(seen["at"]) == datetime.fromisoformat(items[0]["occurred_at"])

    member, _ = stack.staff_member("support")
    r = stack.http(
        "PATCH", f"/api/v1/staff/staff/{member['id']}", stack.admin_token, json={"role": "billing"}
    )
    assert r.status_code == 200, r.text
    staff_items = _explained(stack, "staff", member["id"], [])
    edited = [
        i
        for i in staff_items
        if ("support", "billing")
        in {(c["before"], c["after"]) for c in i["changes"] if c["field"] == "role"}
    ]
    assert len(edited) == 1 and edited[0]["actor"] == {"kind": "staff", "id": admin_id}
    r = stack.http("POST", f"/api/v1/staff/staff/{member['id']}/disable", stack.admin_token)
    assert r.status_code == 200, r.text
    disabled = stack.wait_until(
        lambda: [
            i
            for i in _indexed(stack, f"staff/{member['id']}")
            if i["type"] == "StaffMember.Disabled"
        ],
        what="the disabling in the member's history",
    )
    assert _change(disabled[0], "active") == (True, False)
    assert _state(stack, "staff", member["id"])["state"]["role"] == "billing"
    created = next(i for i in staff_items if i["aggregate"]["id"] == member["id"])
    assert _state(stack, "staff", member["id"], created["occurred_at"])["state"]["role"] == (
        "support"
    )
