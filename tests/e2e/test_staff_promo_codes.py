"""Staff manage promo codes: the list filtered by state and by a part of the code, one
code with its uses, the orders placed with it and who changed it, changing its terms
(never its code), deactivating it (then refused at order time with its own message) and
activating it again; every role reads, only admin and billing change."""

import uuid
from datetime import UTC, datetime, timedelta

from openapi_schema_validator import OAS30Validator

PATH = "/api/v1/staff/promo-codes"


def _documented(stack, r, template: str, method: str = "get") -> dict:
    """The answer, checked against the schema the OpenAPI document gives it."""
    document = stack.http("GET", "/api/v1/openapi.json").json()
    operation = document["paths"][template][method]
    schema = operation["responses"][str(r.status_code)]["content"]["application/json"]["schema"]
    validator = OAS30Validator(
        {**schema, "components": document["components"]},
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(r.json())]
    assert not errors, f"{method} {template}:\n" + "\n".join(errors[:10])
    return r.json()


def _product(stack):
    body = {
        "name": {"en": "Promo VPS"},
        "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
        "setup_fee": {"amount": 1000, "currency": "EUR"},
    }
    r = stack.http("POST", "/api/v1/staff/products", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _promo(stack, **body):
    r = stack.http("POST", PATH, stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _order(stack, product, code):
    return stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": {
                "email": f"promo-{uuid.uuid4().hex[:10]}@example.com",
                "kind": "individual",
                "contact_person": "Pat Promo",
                "country": "DE",
            },
            "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
            "promo_code": code,
        },
    )


def _listed(stack, token=None, **params):
    r = stack.http("GET", PATH, token or stack.admin_token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_list_filters_by_state_and_code_and_a_code_shows_its_orders(stack):
    tag = uuid.uuid4().hex[:8].upper()
    product = _product(stack)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    active = _promo(stack, code=f"{tag}-ON", kind="percentage", percent="10")
    once = _promo(
        stack,
        code=f"{tag}-ONCE",
        kind="fixed",
        amount={"amount": 300, "currency": "EUR"},
        max_uses=1,
    )
    expired = _promo(stack, code=f"{tag}-OLD", kind="percentage", percent="5", expires_at=past)
    off = _promo(stack, code=f"{tag}-OFF", kind="percentage", percent="50")
    r = stack.http("POST", f"{PATH}/{off['id']}/deactivate", stack.admin_token)
    assert r.status_code == 200 and r.json()["state"] == "deactivated", r.text
    r = _order(stack, product, once["code"].lower())
    assert r.status_code == 201, r.text
    order = r.json()

    stack.wait_until(
        lambda: _listed(stack, code=tag, state="used_up")["total"] == 1, what="the list"
    )
    r = stack.http("GET", PATH, stack.admin_token, params={"code": tag})
    _documented(stack, r, PATH)
    everything = _listed(stack, code=tag.lower())  # any case, any part
    assert everything["total"] == 4
    assert [p["code"] for p in everything["items"]] == [
        f"{tag}-OFF",
        f"{tag}-OLD",
        f"{tag}-ONCE",
        f"{tag}-ON",
    ]  # newest first
    for state, promo in (
        ("active", active),
        ("expired", expired),
        ("used_up", once),
        ("deactivated", off),
    ):
        found = _listed(stack, code=tag, state=state)
        assert [p["id"] for p in found["items"]] == [promo["id"]], state
        assert found["items"][0]["state"] == state
    assert _listed(stack, code=f"{tag}-ON")["total"] == 2  # -ON and -ONCE
    assert _listed(stack, code="%")["total"] == 0  # taken literally
    page = _listed(stack, code=tag, page=2, page_size=3)
    assert (page["total"], len(page["items"]), page["page"]) == (4, 1, 2)
    r = stack.http("GET", PATH, stack.admin_token, params={"state": "gone"})
    assert r.status_code == 400 and "state" in r.json()["error"]["fields"]
    r = stack.http("GET", PATH, stack.admin_token, params={"page_size": 500})
    assert r.status_code == 400 and "page_size" in r.json()["error"]["fields"]

    # one code: its use, the order placed with it (a list: a moment behind), who added it
    _, auditor = stack.staff_member("auditor")

    def detail():
        r = stack.http("GET", f"{PATH}/{once['id']}", auditor)
        assert r.status_code == 200, r.text
        return r.json()

    one = stack.wait_until(lambda: detail()["orders"] and detail(), what="its order")
    assert one["uses"] == 1 and one["state"] == "used_up" and one["orders_total"] == 1
    assert one["orders"][0]["order_id"] == order["order_id"]
    assert one["orders"][0]["customer_id"] == order["customer_id"]
    assert one["orders"][0]["invoice_id"] == order["invoice_id"]
    _documented(stack, stack.http("GET", f"{PATH}/{once['id']}", auditor), PATH + "/{promo_id}")
    assert [e["type"] for e in one["history"]] == ["Created"]
    assert one["history"][0]["actor"]["kind"] == "staff"
    r = stack.http("GET", f"{PATH}/{uuid.uuid4()}", auditor)
    assert r.status_code == 404


def test_staff_change_a_code_deactivate_it_and_orders_are_refused_until_activated(stack):
    tag = uuid.uuid4().hex[:8].upper()
    product = _product(stack)
    code = f"{tag}-SPRING"
    promo = _promo(stack, code=code, kind="percentage", percent="10")
    path = f"{PATH}/{promo['id']}"
    _, support = stack.staff_member("support")
    _, auditor = stack.staff_member("auditor")
    billing_member, billing = stack.staff_member("billing")

    # who may
    for token in (support, auditor):
        assert stack.http("PATCH", path, token, json={"percent": "15"}).status_code == 403
        assert stack.http("POST", f"{path}/deactivate", token).status_code == 403
        assert stack.http("POST", PATH, token, json={"code": "X" + tag}).status_code == 403
        assert _listed(stack, token, code=tag)["total"] in (0, 1)  # reading is for all

    # refusals name their field and change nothing
    refusals = [
        ({"code": "OTHER"}, "code"),
        ({"kind": "fixed"}, "amount"),
        ({"amount": {"amount": 100, "currency": "EUR"}}, "amount"),
        ({"percent": "0"}, "percent"),
        ({"max_uses": 0}, "max_uses"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"product_ids": [str(uuid.uuid4())]}, "product_ids.0"),
    ]
    for body, field in refusals:
        r = stack.http("PATCH", path, billing, json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["error"]["fields"], (body, r.text)
    assert stack.http("GET", path, billing).json()["history"][0]["type"] == "Created"
    assert stack.http("PATCH", f"{PATH}/{uuid.uuid4()}", billing, json={}).status_code == 404

    # a change: only what it sends
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    r = stack.http(
        "PATCH",
        path,
        billing,
        json={
            "percent": "20",
            "max_uses": 5,
            "expires_at": later.isoformat(),
            "product_ids": [product["id"]],
        },
    )
    assert r.status_code == 200, r.text
    changed = _documented(stack, r, PATH + "/{promo_id}", "patch")
    assert changed["code"] == code and changed["percent"] == "20.00"
    assert changed["max_uses"] == 5 and changed["product_ids"] == [product["id"]]
    assert datetime.fromisoformat(changed["expires_at"].replace("Z", "+00:00")) == later
    r = stack.http("PATCH", path, billing, json={"percent": "20"})  # the same: no event
    assert r.status_code == 200
    r = _order(stack, product, code)
    assert r.status_code == 201, r.text
    order = r.json()
    token = stack.login(order["credentials"]["username"], order["credentials"]["password"])
    invoice = stack.http("GET", f"/api/v1/client/invoices/{order['invoice_id']}", token).json()
    assert invoice["total"]["amount"] == 1200  # 20 % off 500 and off the setup fee 1000
    r = stack.http("PATCH", path, billing, json={"max_uses": None, "expires_at": None})
    assert r.status_code == 200 and r.json()["max_uses"] is None
    assert r.json()["expires_at"] is None and r.json()["uses"] == 1

    # deactivated: refused at order time, with its own message; kept, not deleted
    r = stack.http("POST", f"{path}/deactivate", billing)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["state"] == "deactivated"
    assert stack.http("POST", f"{path}/deactivate", billing).status_code == 200  # still so
    r = _order(stack, product, code)
    assert r.status_code == 400, r.text
    problems = r.json()["error"]["fields"]["promo_code"]
    assert problems == [f"The promo code {code} has been deactivated."]
    r = stack.http(
        "POST",
        "/api/v1/client/orders",
        token,
        json={
            "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
            "promo_code": code.lower(),
        },
    )
    assert r.status_code == 400 and "promo_code" in r.json()["error"]["fields"], r.text
    assert stack.http("DELETE", path, billing).status_code == 405
    # its terms can still be changed while it is off
    r = stack.http(
        "PATCH", path, billing, json={"kind": "fixed", "amount": {"amount": 250, "currency": "EUR"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["percent"] is None and r.json()["amount"] == {"amount": 250, "currency": "EUR"}
    assert r.json()["state"] == "deactivated"

    # activated again: orders use it
    r = stack.http("POST", f"{path}/activate", billing)
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    r = _order(stack, product, code)
    assert r.status_code == 201, r.text

    # each change recorded, with who made it, newest first
    r = stack.http("GET", path, support)
    history = _documented(stack, r, PATH + "/{promo_id}")["history"]
    assert [e["type"] for e in history] == [
        "Activated",
        "Changed",
        "Deactivated",
        "Changed",
        "Changed",
        "Created",
    ]
    for event in history[:-1]:
        assert event["actor"] == {"kind": "staff", "id": billing_member["id"]}, event
    assert history[1]["changes"] == {
        "kind": "fixed",
        "percent": None,
        "amount": {"amount": 250, "currency": "EUR"},
    }
    assert set(history[3]) >= {"changes"} and history[3]["changes"] == {
        "max_uses": None,
        "expires_at": None,
    }
    assert set(history[4]["changes"]) == {"percent", "max_uses", "expires_at", "product_ids"}
    # the list follows
    stack.wait_until(
        lambda: (
            [p["uses"] for p in _listed(stack, code=code)["items"]] == [2]
            and _listed(stack, code=code)["items"][0]["kind"] == "fixed"
        ),
        what="the list to follow",
    )
