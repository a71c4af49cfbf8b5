"""Changing and removing customer groups and discounts: who may, what changes, a group
removed only once no customer is in it, a discount ended rather than erased."""

import uuid
from datetime import UTC, datetime, timedelta


def _group(stack, name):
    r = stack.http("POST", "/api/v1/staff/customer-groups", stack.admin_token, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def _listed(stack, kind, item_id):
    r = stack.http("GET", f"/api/v1/staff/{kind}", stack.admin_token, params={"page_size": 200})
    return [i for i in r.json()["items"] if i["id"] == item_id]


def test_a_group_is_renamed_then_removed_once_empty(stack):
    tag = uuid.uuid4().hex[:6]
    group = _group(stack, f"Resellers {tag}")
    path = f"/api/v1/staff/customer-groups/{group['id']}"
    _, support = stack.staff_member("support")
    _, billing = stack.staff_member("billing")
    assert stack.http("PATCH", path, billing, json={"name": "x"}).status_code == 403
    r = stack.http("PATCH", path, support, json={"name": f"Partners {tag}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": group["id"], "name": f"Partners {tag}", "description": ""}
    assert stack.http("PATCH", path, support, json={"name": ""}).status_code == 400

    # a customer in it keeps it from being removed
    customer = stack.register_customer()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": [group["id"]]},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/customers",
                stack.admin_token,
                params={"group_id": group["id"]},
            ).json()["total"]
            == 1
        ),
        what="customer in the group",
    )
    assert stack.http("DELETE", path, support).status_code == 409
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": []},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/customers",
                stack.admin_token,
                params={"group_id": group["id"]},
            ).json()["total"]
            == 0
        ),
        what="customer out of the group",
    )
    assert stack.http("DELETE", path, billing).status_code == 403
    r = stack.http("DELETE", path, support)
    assert r.status_code == 200 and r.json() == {"id": group["id"], "removed": True}
    stack.wait_until(lambda: not _listed(stack, "customer-groups", group["id"]), what="gone")
    assert stack.http("PATCH", path, support, json={"name": "again"}).status_code == 404
    # no longer given to anyone
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": [group["id"]]},
    )
    assert r.status_code == 400 and "group_ids.0" in r.json()["error"]["fields"]


def test_a_discount_is_renamed_and_ended_not_erased(stack):
    customer = stack.register_customer()
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={
            "name": "Loyal",
            "kind": "percentage",
            "percent": "10",
            "customer_id": customer["id"],
        },
    )
    assert r.status_code == 201, r.text
    discount = r.json()
    path = f"/api/v1/staff/discounts/{discount['id']}"
    _, billing = stack.staff_member("billing")
    _, support = stack.staff_member("support")
    assert stack.http("PATCH", path, support, json={"name": "x"}).status_code == 403
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    r = stack.http("PATCH", path, billing, json={"name": "Loyal customer", "valid_to": later})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Loyal customer" and r.json()["valid_to"] is not None
    r = stack.http(
        "PATCH", path, billing, json={"valid_from": later, "valid_to": "2020-01-01T00:00:00Z"}
    )
    assert r.status_code == 400 and "valid_to" in r.json()["error"]["fields"]
    with stack.rpc() as rpc:
        assert [d["id"] for d in rpc.customers.discounts_for(customer["id"])] == [discount["id"]]
    r = stack.http("DELETE", path, billing)
    assert r.status_code == 200, r.text
    assert r.json()["valid_to"] is not None and r.json()["percent"] == "10"
    with stack.rpc() as rpc:
        assert rpc.customers.discounts_for(customer["id"]) == []
    # still listed, ended, for whoever explains an invoice priced with it
    assert _listed(stack, "discounts", discount["id"])
