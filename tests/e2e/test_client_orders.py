"""A logged-in client orders without giving its details again, and renews a service early:
`POST /api/v1/client/orders` and `POST /api/v1/client/services/{id}/renew`."""

import uuid
from datetime import date, timedelta

from babel.dates import format_date
from openapi_schema_validator import OAS30Validator

from services.orders.domain import add_months

PASSWORD = "client password 1"


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _product(stack, **extra) -> dict:
    body = {
        "name": {"en": "Web Hosting", "fr": "Hébergement web", "ru": "Веб-хостинг"},
        "prices": {"monthly": _eur(800), "annually": _eur(8000)},
        "setup_fee": _eur(500),
        "addons": [{"name": "Daily backup", "prices": {"monthly": _eur(200)}}],
    }
    body.update(extra)
    r = stack.http("POST", "/api/v1/staff/products", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _client(stack) -> tuple[dict, str]:
    # a country no other test of the shared stack taxes
    customer = stack.register_customer(country="BE", password=PASSWORD)
    return customer, stack.login(customer["username"], PASSWORD)


def _order(stack, token, items, promo_code=None, key=None):
    body = {"items": items}
    if promo_code is not None:
        body["promo_code"] = promo_code
    headers = {"Idempotency-Key": key} if key else {}
    return stack.http("POST", "/api/v1/client/orders", token, json=body, headers=headers)


def _pay(stack, customer_id: str, invoice: dict) -> None:
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "amount": invoice["total"],
            "method": "bank_transfer",
            "reference": f"CO-{uuid.uuid4().hex[:8]}",
            "invoice_id": invoice["id"],
        },
    )
    assert r.status_code == 201, r.text


def _as_documented(stack, r, template: str) -> None:
    """The answer matches what the OpenAPI document says this POST answers."""
    document = stack.http("GET", "/api/v1/openapi.json").json()
    operation = document["paths"][template]["post"]
    schema = operation["responses"][str(r.status_code)]["content"]["application/json"]
    validator = OAS30Validator(
        {**schema["schema"], "components": document["components"]},
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(r.json())]
    assert not errors, errors


def _listed(stack, token, path, **params) -> list:
    return stack.http("GET", path, token, params=params).json()["items"]


def test_a_logged_in_client_orders_without_its_details(stack):
    product = _product(stack)
    customer, token = _client(stack)
    backup = product["addons"][0]["id"]
    item = {"product_id": product["id"], "billing_cycle": "monthly", "addons": [backup]}
    r = _order(stack, token, [item])
    assert r.status_code == 201, r.text
    _as_documented(stack, r, "/api/v1/client/orders")
    order = r.json()
    assert order["customer_id"] == customer["id"] and order["status"] == "pending"
    [ordered] = order["items"]
    assert ordered["name"] == "Web Hosting" and ordered["billing_cycle"] == "monthly"
    assert [a["id"] for a in ordered["addons"]] == [backup]
    invoice = order["invoice"]
    assert invoice["id"] == order["invoice_id"] and invoice["status"] == "unpaid"
    assert invoice["purpose"] == "order" and invoice["customer_id"] == customer["id"]
    # the period, the add-on's period and the setup fee, priced from the catalog
    assert sorted(line["unit_price"]["amount"] for line in invoice["lines"]) == [200, 500, 800]
    assert invoice["total"] == _eur(1500)
    # the client's invoice, as the client reads it
    mine = stack.http("GET", f"/api/v1/client/invoices/{order['invoice_id']}", token)
    assert mine.status_code == 200 and mine.json()["total"] == _eur(1500)
    [service] = stack.wait_until(
        lambda: _listed(stack, token, "/api/v1/client/services"), what="the service listed"
    )
    assert service["status"] == "pending" and service["order_id"] == order["id"]
    orders = stack.wait_until(
        lambda: _listed(stack, token, "/api/v1/client/orders"), what="the order listed"
    )
    assert [o["id"] for o in orders] == [order["id"]]

    # what cannot be ordered is refused naming the item, and nothing is placed
    r = _order(stack, token, [dict(item, billing_cycle="quarterly")])
    assert r.status_code == 400 and "items.0" in r.json()["error"]["fields"], r.text
    r = _order(stack, token, [dict(item, addons=[str(uuid.uuid4())])])
    assert r.status_code == 400 and "items.0.addons.0" in r.json()["error"]["fields"], r.text
    r = _order(stack, token, [])
    assert r.status_code == 400 and "items" in r.json()["error"]["fields"], r.text
    # the details of the account are its own: another customer's are not taken
    r = stack.http(
        "POST",
        "/api/v1/client/orders",
        token,
        json={"items": [item], "customer": {"email": "someone@example.com"}},
    )
    assert r.status_code == 400 and "customer" in r.json()["error"]["fields"], r.text
    # staff and visitors do not order here
    assert _order(stack, stack.admin_token, [item]).status_code == 403
    assert _order(stack, None, [item]).status_code == 401
    with stack.rpc() as rpc:
        assert rpc.orders.list("orders", customer["id"])["total"] == 1


def _user(stack, owner_token, permissions) -> str:
    name = f"user-{uuid.uuid4().hex[:8]}"
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        owner_token,
        json={
            "username": name,
            "email": f"{name}@example.com",
            "name": name.title(),
            "permissions": permissions,
        },
    )
    assert r.status_code == 201, r.text
    credentials = r.json()["credentials"]
    return stack.login(credentials["username"], credentials["password"])


def test_a_user_orders_only_with_the_services_permission(stack):
    product = _product(stack)
    customer, owner = _client(stack)
    item = {"product_id": product["id"], "billing_cycle": "annually"}
    for refused in (["support"], ["billing", "support"]):
        r = _order(stack, _user(stack, owner, refused), [item])
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    with stack.rpc() as rpc:
        assert rpc.orders.list("orders", customer["id"])["total"] == 0
    for allowed in (["services"], ["full"]):
        r = _order(stack, _user(stack, owner, allowed), [item])
        assert r.status_code == 201, r.text
        assert r.json()["customer_id"] == customer["id"]
        assert r.json()["invoice"]["total"] == _eur(8500)


def test_a_promo_code_discounts_the_clients_order(stack):
    product = _product(stack)
    code = f"CLIENT{uuid.uuid4().hex[:8].upper()}"
    r = stack.http(
        "POST",
        "/api/v1/staff/promo-codes",
        stack.admin_token,
        json={"code": code, "kind": "percentage", "percent": "25", "max_uses": 1},
    )
    assert r.status_code == 201, r.text
    _, token = _client(stack)
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    r = _order(stack, token, [item], promo_code="NO-SUCH-CODE")
    assert r.status_code == 400 and "promo_code" in r.json()["error"]["fields"], r.text
    r = _order(stack, token, [item], promo_code=code.lower())
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    # 25 % off the period (800) and the setup fee (500)
    assert invoice["total"] == _eur(975), invoice
    assert any(line.get("discount") for line in invoice["lines"])
    # used up: the next order is refused and placed without it only when asked so
    r = _order(stack, token, [item], promo_code=code)
    assert r.status_code == 400 and "promo_code" in r.json()["error"]["fields"], r.text


def test_an_order_retried_with_its_idempotency_key_is_placed_once(stack):
    product = _product(stack)
    customer, token = _client(stack)
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    key = f"client-order-{uuid.uuid4().hex}"
    first = _order(stack, token, [item], key=key)
    assert first.status_code == 201, first.text
    again = _order(stack, token, [item], key=key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["invoice_id"] == first.json()["invoice_id"]
    # the same key with another body
    other = _order(stack, token, [dict(item, billing_cycle="annually")], key=key)
    assert other.status_code == 409, other.text
    # another customer's same key is its own
    _, someone = _client(stack)
    theirs = _order(stack, someone, [item], key=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]

    def invoices():
        with stack.rpc() as rpc:
            return rpc.billing.list("invoices", customer["id"])["items"]

    listed = stack.wait_until(invoices, what="the invoice listed")
    assert [i["id"] for i in listed] == [first.json()["invoice_id"]]
    with stack.rpc() as rpc:
        assert rpc.orders.list("orders", customer["id"])["total"] == 1


def _active_service(stack, token, customer_id: str) -> dict:
    product = _product(stack)
    r = _order(stack, token, [{"product_id": product["id"], "billing_cycle": "monthly"}])
    assert r.status_code == 201, r.text
    _pay(stack, customer_id, r.json()["invoice"])
    [service] = stack.wait_until(
        lambda: _listed(stack, token, "/api/v1/client/services", status="active"),
        what="the service active",
    )
    return service


def _renew(stack, token, service_id: str, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return stack.http("POST", f"/api/v1/client/services/{service_id}/renew", token, headers=headers)


def _renewals(stack, customer_id: str) -> list:
    with stack.rpc() as rpc:
        items = rpc.billing.list("invoices", customer_id)["items"]
    return [i for i in items if i["purpose"] == "renewal"]


def test_a_service_is_renewed_early_once_per_period(stack):
    customer, token = _client(stack)
    service = _active_service(stack, token, customer["id"])
    due = service["next_due_date"]

    r = _renew(stack, token, service["id"])
    assert r.status_code == 200, r.text
    _as_documented(stack, r, "/api/v1/client/services/{service_id}/renew")
    renewal = r.json()
    assert renewal["issued"] is True
    invoice = renewal["invoice"]
    assert invoice["purpose"] == "renewal" and invoice["status"] == "unpaid"
    assert invoice["total"] == _eur(800)  # the next period, no setup fee
    assert invoice["due_date"] == due
    # the period it covers: from the due date to the day before the next, in English
    last = add_months(date.fromisoformat(due), 1) - timedelta(days=1)
    days = [
        format_date(d, "medium", locale="en").replace(" ", "\u00a0")
        for d in (date.fromisoformat(due), last)
    ]
    assert [line["period"] for line in invoice["lines"]] == [f"{days[0]} – {days[1]}"]
    assert renewal["service"]["next_due_date"] == due  # until it is paid

    # asked again while it is unpaid: the same invoice, not a second one
    again = _renew(stack, token, service["id"])
    assert again.status_code == 200, again.text
    assert again.json()["invoice"]["id"] == invoice["id"] and again.json()["issued"] is False
    listed = stack.wait_until(lambda: _renewals(stack, customer["id"]), what="renewal listed")
    assert [i["id"] for i in listed] == [invoice["id"]]
    # another customer's service is not found
    _, someone = _client(stack)
    assert _renew(stack, someone, service["id"]).status_code == 404
    assert _renew(stack, token, str(uuid.uuid4())).status_code == 404

    # paid: the next due date moves on one period; the next renewal is for the period after
    _pay(stack, customer["id"], invoice)
    moved = add_months(date.fromisoformat(due), 1).isoformat()
    stack.wait_until(
        lambda: _listed(stack, token, "/api/v1/client/services")[0]["next_due_date"] == moved,
        what="the next due date moved on",
    )
    key = f"renew-{uuid.uuid4().hex}"
    r = _renew(stack, token, service["id"], key=key)
    assert r.status_code == 200 and r.json()["issued"] is True, r.text
    following = r.json()["invoice"]
    assert following["id"] != invoice["id"] and following["due_date"] == moved
    # the same Idempotency-Key answers the first answer again
    repeat = _renew(stack, token, service["id"], key=key)
    assert repeat.status_code == 200 and repeat.json() == r.json()
    listed = stack.wait_until(
        lambda: (found := _renewals(stack, customer["id"])) and len(found) > 1 and found,
        what="both renewals listed",
    )
    assert sorted(i["id"] for i in listed) == sorted([invoice["id"], following["id"]])


def test_a_service_that_is_not_active_or_suspended_is_not_renewed(stack):
    customer, token = _client(stack)
    service = _active_service(stack, token, customer["id"])
    r = stack.http(
        "POST",
        f"/api/v1/client/services/{service['id']}/cancel",
        token,
        json={"reason": "moving elsewhere"},
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    r = _renew(stack, token, service["id"])
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict"
    assert "cancelled" in error["message"] and "active or suspended" in error["message"]
    # a service not paid yet has no next period either
    product = _product(stack)
    r = _order(stack, token, [{"product_id": product["id"], "billing_cycle": "monthly"}])
    assert r.status_code == 201, r.text
    pending = stack.wait_until(
        lambda: _listed(stack, token, "/api/v1/client/services", status="pending"),
        what="the new service listed",
    )
    r = _renew(stack, token, pending[0]["id"])
    assert r.status_code == 409 and "pending" in r.json()["error"]["message"], r.text
    assert _renewals(stack, customer["id"]) == []
    # a user without the services permission may not renew
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": f"payer-{uuid.uuid4().hex[:8]}",
            "email": "payer@example.com",
            "name": "Payer",
            "permissions": ["billing"],
        },
    )
    assert r.status_code == 201, r.text
    user = stack.login(r.json()["credentials"]["username"], r.json()["credentials"]["password"])
    assert _renew(stack, user, pending[0]["id"]).status_code == 403


def test_the_order_form_keeps_how_a_new_customer_heard_of_us_and_who_referred_it(stack):
    product = _product(stack)
    referrer, referrer_token = _client(stack)
    r = stack.http("GET", "/api/v1/client/affiliate", referrer_token)
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    item = {"product_id": product["id"], "billing_cycle": "monthly"}

    def order(email, **customer):
        person = {
            "email": email,
            "kind": "individual",
            "contact_person": "Referred Person",
            "country": "BE",
            **customer,
        }
        return stack.http("POST", "/api/v1/orders", json={"customer": person, "items": [item]})

    # an unknown code is refused naming it, and no account is made
    email = f"referred-{uuid.uuid4().hex[:8]}@example.com"
    r = order(email, referral_code="ZZZZ2222", referral_source="a forum")
    assert r.status_code == 400, r.text
    assert "customer.referral_code" in r.json()["error"]["fields"], r.text
    with stack.rpc() as rpc:
        assert rpc.customers.customer_for_order(email, None, None) is None
    # typed as people type it: lower case, with a dash
    r = order(email, referral_code=f"{code[:4].lower()}-{code[4:]}", referral_source="a forum")
    assert r.status_code == 201, r.text
    with stack.rpc() as rpc:
        made = rpc.customers.get_customer(r.json()["customer_id"])
    assert made["referrer_id"] == referrer["id"]
    assert made["referral_source"] == "a forum"
