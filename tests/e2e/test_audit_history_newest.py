"""A customer's history read newest first, as the staff panel opens it: with events in
the customers service, billing, orders and the helpdesk, paged a few at a time it gives
every event exactly once, in exactly the reverse of oldest first; its cursor continues
newest first only (given with the other order it is refused naming `cursor`), an order
that is neither is refused naming `order`, and the read is recorded as any audit read."""

from __future__ import annotations

from tests.e2e.test_audit_history import client_ticket
from tests.e2e.test_orders import _product
from tests.staff_api import AUDIT, client_with_account, history, history_pages, record_payment

SERVICES = {"customers", "billing", "orders", "helpdesk"}


def _key(item: dict) -> tuple:
    return (item["occurred_at"], item["service"], item["position"])


def test_newest_first_is_oldest_first_reversed_across_services(stack):
    customer, client = client_with_account(stack, contact_person="Nora Newest")
    cid = customer["id"]
    product = _product(stack)
    r = stack.http(
        "POST",
        "/api/v1/client/orders",
        client,
        json={"items": [{"product_id": product["id"], "billing_cycle": "monthly"}]},
    )
    assert r.status_code == 201, r.text
    client_ticket(stack, client, "Which is newest?", "A question.")
    record_payment(stack, cid, 2500)
    r = stack.http(
        "PATCH", f"/api/v1/staff/customers/{cid}", stack.admin_token, json={"note": "last"}
    )
    assert r.status_code == 200, r.text

    path = f"customers/{cid}"

    def settled():
        """Both orders read while nothing more came in: the same events either way."""
        before = history(stack, path)
        if {i["service"] for i in before} < SERVICES or not any(
            i["type"] == "Customer.Edited" for i in before
        ):
            return None
        newest, pages = history_pages(stack, path, limit=3, order="newest")
        oldest, _ = history_pages(stack, path, limit=3, order="oldest")
        return (oldest, newest, pages) if oldest == before else None

    oldest, newest, pages = stack.wait_until(settled, what="every service's events, settled")
    assert {i["service"] for i in newest} >= SERVICES
    keys = [_key(i) for i in newest]
    assert len(set(keys)) == len(keys)  # each event once
    assert newest == oldest[::-1]  # in exactly the reverse order
    assert pages == -(-len(newest) // 3) and len(newest) > 6
    assert newest[0]["type"] == "Customer.Edited"  # the last change first
    assert oldest[0]["type"] == "Customer.Registered"
    # without `order`: oldest first, as before
    assert history(stack, path) == oldest

    # a cursor continues its own order only; an order is `oldest` or `newest`
    url = f"{AUDIT}/{path}/history"
    r = stack.http("GET", url, stack.admin_token, params={"limit": 2, "order": "newest"})
    assert r.status_code == 200 and r.json()["items"] == newest[:2]
    newer_cursor = r.json()["next_cursor"]
    r = stack.http("GET", url, stack.admin_token, params={"limit": 2})
    older_cursor = r.json()["next_cursor"]
    for cursor, order in ((newer_cursor, "oldest"), (newer_cursor, None), (older_cursor, "newest")):
        params = {"cursor": cursor, **({"order": order} if order else {})}
        r = stack.http("GET", url, stack.admin_token, params=params)
        assert r.status_code == 400, (order, r.text)
        assert list(r.json()["error"]["fields"]) == ["cursor"], r.text
    r = stack.http(
        "GET", url, stack.admin_token, params={"cursor": newer_cursor, "order": "newest"}
    )
    assert r.status_code == 200 and r.json()["items"][:2] == newest[2:4]
    r = stack.http("GET", url, stack.admin_token, params={"order": "latest"})
    assert r.status_code == 400 and list(r.json()["error"]["fields"]) == ["order"], r.text

    # read newest first by an auditor: recorded in the auditor's history as any read
    auditor, token = stack.staff_member("auditor")
    r = stack.http("GET", url, token, params={"order": "newest", "limit": 1})
    assert r.status_code == 200 and r.json()["items"] == newest[:1]
    stack.wait_until(
        lambda: any(
            i["type"] == "AuditRead.Recorded"
            and any(c["field"] == "object_id" and c["after"] == cid for c in i["changes"])
            for i in history(stack, f"staff/{auditor['id']}")
        ),
        what="the auditor's read in its history",
    )
