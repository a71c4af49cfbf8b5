"""The order form (PerlBill's rule), activation on payment, renewals and dunning."""

import uuid
from datetime import date, timedelta

import requests

from services.infra.clock import FileClock
from services.orders.domain import add_months


def _product(stack, **extra):
    body = {
        "name": {"en": "VPS Start", "fr": "VPS Démarrage", "ru": "VPS Старт"},
        "description": "2 vCPU, 4 GB",
        "prices": {
            "monthly": {"amount": 500, "currency": "EUR"},
            "annually": [{"amount": 5000, "currency": "EUR"}, {"amount": 5500, "currency": "USD"}],
        },
        "setup_fee": {"amount": 1000, "currency": "EUR"},
    }
    body.update(extra)
    r = stack.http("POST", "/api/v1/staff/products", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _order(stack, email, items, password=None):
    customer = {
        "email": email,
        "kind": "individual",
        "contact_person": "Olga Buyer",
        "country": "DE",
    }
    if password is not None:
        customer["password"] = password
    return stack.http("POST", "/api/v1/orders", json={"customer": customer, "items": items})


def test_catalog_in_the_clients_language(stack):
    product = _product(stack)
    assert product["prices"]["monthly"] == {"amount": 500, "currency": "EUR"}

    def listed(language):
        # every page: the session's other tests put products on sale too
        found, page = [], 1
        while True:
            params = {"language": language, "page": page, "page_size": 200}
            answer = stack.http("GET", "/api/v1/catalog", params=params).json()
            found += [p for p in answer["items"] if p["id"] == product["id"]]
            if page * 200 >= answer["total"]:
                return found
            page += 1

    [fr] = stack.wait_until(lambda: listed("fr"), what="catalog")
    assert fr["name"] == "VPS Démarrage" and fr["description"] == "2 vCPU, 4 GB"
    assert fr["setup_fee"] == {"amount": 1000, "currency": "EUR"}
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/products/{product['id']}",
        stack.admin_token,
        json={"on_sale": False},
    )
    assert r.status_code == 200 and r.json()["on_sale"] is False
    stack.wait_until(lambda: not listed("en"), what="off sale")


def test_order_as_a_new_then_an_existing_customer(stack):
    product = _product(stack)
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    # a tampered price is ignored: prices come from the catalog
    r = _order(
        stack, email, [{"product_id": product["id"], "billing_cycle": "monthly", "price": 1}]
    )
    assert r.status_code == 201, r.text
    first = r.json()
    creds = first["credentials"]
    token = stack.login(creds["username"], creds["password"])
    invoice = stack.http("GET", f"/api/v1/client/invoices/{first['invoice_id']}", token).json()
    assert invoice["total"]["amount"] == 1500  # first month and the setup fee
    assert invoice["purpose"] == "order"

    item = [{"product_id": product["id"], "billing_cycle": "annually"}]
    r = _order(stack, email, item)
    assert r.status_code == 401 and r.json()["error"]["code"] == "password_required"
    r = _order(stack, email, item, password="not the password")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = _order(stack, email, item, password=creds["password"])
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["customer_id"] == first["customer_id"] and "credentials" not in second

    services = stack.wait_until(
        lambda: (
            (items := stack.http("GET", "/api/v1/client/services", token).json()["items"])
            and len(items) == 2
            and items
        ),
        what="services",
    )
    assert {s["status"] for s in services} == {"pending"}


def test_an_order_retried_with_its_idempotency_key_is_placed_once(stack):
    from concurrent.futures import ThreadPoolExecutor

    product = _product(stack)
    email = f"retry-{uuid.uuid4().hex[:8]}@example.com"
    body = {
        "customer": {
            "email": email,
            "kind": "individual",
            "contact_person": "Rita Retry",
            "country": "DE",
        },
        "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
    }
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}

    def place(_=None, json=body, headers=key):
        return stack.http("POST", "/api/v1/orders", json=json, headers=headers)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(place, range(4)))
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
    assert len({r.json()["order_id"] for r in answers}) == 1
    assert len({r.json()["invoice_id"] for r in answers}) == 1
    # the credentials are in one answer only (shown once)
    [creds] = [r.json()["credentials"] for r in answers if "credentials" in r.json()]
    token = stack.login(creds["username"], creds["password"])
    orders = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/orders", token).json()["items"],
        what="the order listed",
    )
    # every answer is in: a second order, had one been placed, was recorded before it
    stack.wait_projected("orders")
    assert (
        len(stack.http("GET", "/api/v1/client/orders", token).json()["items"]) == len(orders) == 1
    )
    # the key with another request is a 409, and places nothing
    other = dict(body, items=[{"product_id": product["id"], "billing_cycle": "annually"}])
    r = place(json=other)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_an_order_whose_customer_was_made_is_finished_by_its_retry(stack):
    """Billing away after the customer was registered: the order fails; the same request
    again, with its key and no password, places it for that customer, once."""
    product = _product(stack)
    email = f"half-{uuid.uuid4().hex[:8]}@example.com"
    body = {
        "customer": {
            "email": email,
            "kind": "individual",
            "contact_person": "Hal",
            "country": "FR",
        },
        "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
    }
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    stack.stop("billing")
    try:
        r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
        assert r.status_code == 503, r.text
    finally:
        stack.start("billing")
    stack.wait_for_service("billing")
    # without the key the e-mail is now an account that needs its password
    r = stack.http("POST", "/api/v1/orders", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "password_required"
    r = stack.http("POST", "/api/v1/orders", json=body, headers=key)
    assert r.status_code == 201, r.text
    placed = r.json()
    assert "credentials" not in placed  # shown once, in the mail
    again = stack.http("POST", "/api/v1/orders", json=body, headers=key)
    assert again.status_code == 201 and again.json() == placed
    with stack.rpc() as rpc:
        customer = rpc.customers.get_customer(placed["customer_id"])
        assert customer["email"] == email
        invoice = rpc.billing.get_invoice(placed["invoice_id"])
        assert invoice["customer_id"] == placed["customer_id"]


def test_bad_items_are_400_and_create_nothing(stack):
    product = _product(stack)
    email = f"careful-{uuid.uuid4().hex[:8]}@example.com"
    r = _order(stack, email, [{"product_id": str(uuid.uuid4()), "billing_cycle": "monthly"}])
    assert r.status_code == 400 and "items.0" in r.json()["error"]["fields"]
    r = _order(stack, email, [{"product_id": product["id"], "billing_cycle": "weekly"}])
    assert r.status_code == 400
    # nothing was created: the e-mail is still new
    r = _order(stack, email, [{"product_id": product["id"], "billing_cycle": "monthly"}])
    assert r.status_code == 201 and "credentials" in r.json()


def test_paying_the_order_invoice_activates_its_services(stack):
    product = _product(stack)
    r = _order(
        stack,
        f"payer-{uuid.uuid4().hex[:8]}@example.com",
        [{"product_id": product["id"], "billing_cycle": "monthly"}],
    )
    order = r.json()
    token = stack.login(order["credentials"]["username"], order["credentials"]["password"])
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": order["customer_id"],
            "amount": {"amount": 1500, "currency": "EUR"},
            "method": "bank_transfer",
            "reference": "ORDER-1",
            "invoice_id": order["invoice_id"],
        },
    )
    assert r.status_code == 201, r.text

    def active():
        items = stack.http("GET", "/api/v1/client/services", token).json()["items"]
        return items if items and all(s["status"] == "active" for s in items) else None

    [service] = stack.wait_until(active, what="the service active")
    assert service["next_due_date"] and service["price"] == {"amount": 500, "currency": "EUR"}
    staff = stack.http(
        "GET",
        "/api/v1/staff/services",
        stack.admin_token,
        params={"customer_id": order["customer_id"]},
    ).json()
    assert [s["id"] for s in staff["items"]] == [service["id"]]


def _paid_order(stack, prefix, **product_options):
    product = _product(stack, **product_options)
    order = _order(
        stack,
        f"{prefix}-{uuid.uuid4().hex[:8]}@example.com",
        [{"product_id": product["id"], "billing_cycle": "monthly"}],
    ).json()
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": order["customer_id"],
            "amount": {"amount": 1500, "currency": "EUR"},
            "method": "cash",
            "reference": "first",
            "invoice_id": order["invoice_id"],
        },
    )
    assert r.status_code == 201, r.text
    return product, order


def _service(stack, customer_id):
    """Over RPC: on a moved clock, HTTP sessions look expired."""
    with stack.rpc() as rpc:
        items = rpc.orders.list("services", customer_id)["items"]
    return items[0] if items else None


def _renewals(stack, customer_id):
    with stack.rpc() as rpc:
        items = rpc.billing.list("invoices", customer_id)["items"]
    return [i for i in items if i["purpose"] == "renewal"]


RUNS = "hostledger_scheduler_runs_total"


def _scheduler_runs(stack, process="orders"):
    """Finished runs of the scheduler of `process` (an orders instance), by its metrics
    (once they answer: an instance just started)."""

    def read():
        try:
            return (stack.metric(process, RUNS, job="run_schedule", outcome="ok"),)
        except requests.ConnectionError:
            return None

    return stack.wait_until(read, what=f"the metrics of {process}")[0]


def _two_more_runs(stack, since, process="orders"):
    """Until `process` finished two runs more than `since`, read once an action was
    done (a run under way then counts once): one whole run began after the action."""
    stack.wait_metric(process, RUNS, since + 2, job="run_schedule", outcome="ok")


def _move_clock_to(stack, day):
    FileClock.set_offset(stack.clock_file, timedelta(days=(day - date.today()).days))


def test_renewal_dunning_and_unsuspension_on_a_moved_clock(stack):
    _, order = _paid_order(stack, "renew")
    customer_id = order["customer_id"]
    first = stack.wait_until(
        lambda: (s := _service(stack, customer_id)) and s["status"] == "active" and s, what="active"
    )
    due = date.fromisoformat(first["next_due_date"])
    stack.start("orders", instance="2")  # two schedulers: still one invoice per period
    try:
        _move_clock_to(stack, due - timedelta(days=10))
        runs = {p: _scheduler_runs(stack, p) for p in ("orders", "orders-2")}
        for process, since in runs.items():
            _two_more_runs(stack, since, process)
        stack.wait_projected("billing")
        assert _renewals(stack, customer_id) == []  # not yet: 7 days before
        _move_clock_to(stack, due - timedelta(days=6))
        [renewal] = stack.wait_until(lambda: _renewals(stack, customer_id), what="renewal")
        assert renewal["total"]["amount"] == 500 and renewal["due_date"] == due.isoformat()
        # each scheduler ran again after the invoice: neither issued a second one
        runs = {p: _scheduler_runs(stack, p) for p in ("orders", "orders-2")}
        for process, since in runs.items():
            _two_more_runs(stack, since, process)
        stack.wait_projected("billing")
        assert len(_renewals(stack, customer_id)) == 1
        _move_clock_to(stack, due + timedelta(days=6))  # 6 days unpaid: suspended
        stack.wait_until(
            lambda: _service(stack, customer_id)["status"] == "suspended", what="suspended"
        )
        with stack.rpc() as rpc:
            rpc.billing.record_payment(
                {
                    "customer_id": customer_id,
                    "amount": {"amount": 500, "currency": "EUR"},
                    "method": "cash",
                    "reference": "late",
                    "invoice_id": renewal["id"],
                }
            )
        back = stack.wait_until(
            lambda: (s := _service(stack, customer_id))["status"] == "active" and s,
            what="unsuspended",
        )
        assert back["next_due_date"] == add_months(due, 1).isoformat()
        assert len(_renewals(stack, customer_id)) == 1
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
        stack.stop("orders-2")


def test_unpaid_renewal_terminates_and_ends_the_customers_active_product(stack):
    product, order = _paid_order(stack, "gone")
    customer_id = order["customer_id"]

    def listed():
        items = stack.http(
            "GET",
            "/api/v1/staff/customers",
            stack.admin_token,
            params={"active_product_id": product["id"], "customer_id": customer_id},
        ).json()["items"]
        return bool(items)

    stack.wait_until(listed, what="the active product filter")
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{customer_id}?confirm=true", stack.admin_token
    )
    assert r.status_code == 409 and "active service" in r.json()["error"]["message"]
    due = date.fromisoformat(
        stack.wait_until(
            lambda: (s := _service(stack, customer_id)) and s["next_due_date"], what="due date"
        )
    )
    try:
        _move_clock_to(stack, due - timedelta(days=3))
        stack.wait_until(lambda: _renewals(stack, customer_id), what="renewal")
        _move_clock_to(stack, due + timedelta(days=31))
        stack.wait_until(
            lambda: _service(stack, customer_id)["status"] == "terminated", what="terminated"
        )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    stack.wait_until(lambda: not listed(), what="the filter updated")


def test_staff_suspend_unsuspend_terminate_by_hand(stack):
    _, order = _paid_order(stack, "hand")
    s = stack.wait_until(
        lambda: (x := _service(stack, order["customer_id"])) and x["status"] == "active" and x,
        what="active",
    )
    base = f"/api/v1/staff/services/{s['id']}"
    assert (
        stack.http("POST", base + "/unsuspend", stack.admin_token, json={"reason": "x"}).status_code
        == 409
    )
    r = stack.http("POST", base + "/suspend", stack.admin_token, json={"reason": "abuse"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert stack.http("POST", base + "/suspend", stack.admin_token, json={}).status_code == 400
    r = stack.http("POST", base + "/unsuspend", stack.admin_token, json={"reason": "ok"})
    assert r.json()["status"] == "active"
    r = stack.http("POST", base + "/terminate", stack.admin_token, json={"reason": "closed"})
    assert r.json()["status"] == "terminated"
    assert (
        stack.http("POST", base + "/unsuspend", stack.admin_token, json={"reason": "x"}).status_code
        == 409
    )


def test_manual_provisioning_is_a_staff_task(stack):
    _, order = _paid_order(stack, "manual")
    s = stack.wait_until(
        lambda: (x := _service(stack, order["customer_id"])) and x["status"] == "active" and x,
        what="active",
    )

    def task():
        items = stack.http("GET", "/api/v1/staff/provisioning", stack.admin_token).json()["items"]
        return [t for t in items if t["id"] == s["id"]]

    stack.wait_until(task, what="the provisioning task")
    r = stack.http(
        "POST",
        f"/api/v1/staff/services/{s['id']}/provisioned",
        stack.admin_token,
        json={"note": "created the VM by hand"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["provisioning"]["state"] == "done"
    stack.wait_until(lambda: not task(), what="the task gone")
    again = stack.http(
        "POST", f"/api/v1/staff/services/{s['id']}/provisioned", stack.admin_token, json={}
    )
    assert again.status_code == 409


def test_webhook_provisioning_is_signed_and_retried(stack):
    import http.server
    import json
    import threading
    from datetime import UTC, datetime

    from services.orders.provisioning import verify
    from tests.stack import PROVISIONING_SECRET

    received = []

    class Tooling(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(500 if len(received) == 1 else 200)  # fails once
            self.end_headers()
            self.wfile.write(b"vm-42 created" if len(received) > 1 else b"busy")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Tooling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/provision"
        product = _product(stack, provisioning={"kind": "webhook", "url": url})
        assert product["provisioning"] == {"kind": "webhook", "url": url}
        order = _order(
            stack,
            f"hook-{uuid.uuid4().hex[:8]}@example.com",
            [{"product_id": product["id"], "billing_cycle": "monthly"}],
        ).json()
        stack.http(
            "POST",
            "/api/v1/staff/payments",
            stack.admin_token,
            json={
                "customer_id": order["customer_id"],
                "amount": {"amount": 1500, "currency": "EUR"},
                "method": "cash",
                "reference": "x",
                "invoice_id": order["invoice_id"],
            },
        )
        done = stack.wait_until(
            lambda: (
                (s := _service(stack, order["customer_id"]))
                and s["provisioning"]["state"] == "done"
                and s
            ),
            timeout=60,
            what="provisioned by webhook",
        )
    finally:
        server.shutdown()
    assert done["provisioning"]["attempts"] == 1  # one failure, then success
    assert "vm-42 created" in done["provisioning"]["outcome"]
    assert len(received) == 2
    body, headers = received[-1]
    assert verify(
        PROVISIONING_SECRET,
        body,
        headers["X-Hostledger-Timestamp"],
        headers["X-Hostledger-Signature"],
        datetime.now(UTC),
    )
    assert not verify(
        "another secret",
        body,
        headers["X-Hostledger-Timestamp"],
        headers["X-Hostledger-Signature"],
        datetime.now(UTC),
    )
    assert json.loads(body)["service"]["id"] == done["id"]
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": "Bad",
            "prices": {"monthly": {"amount": 1, "currency": "EUR"}},
            "provisioning": {"kind": "webhook"},
        },
    )
    assert r.status_code == 400


def test_client_cancels_a_service_and_no_one_else_can(stack):
    _, order = _paid_order(stack, "cancel")
    token = stack.login(order["credentials"]["username"], order["credentials"]["password"])
    s = stack.wait_until(
        lambda: (x := _service(stack, order["customer_id"])) and x["status"] == "active" and x,
        what="active",
    )
    _, other = _paid_order(stack, "other")
    other_token = stack.login(other["credentials"]["username"], other["credentials"]["password"])
    r = stack.http(
        "POST",
        f"/api/v1/client/services/{s['id']}/cancel",
        other_token,
        json={"reason": "mine now"},
    )
    assert r.status_code == 404
    r = stack.http(
        "POST",
        f"/api/v1/client/services/{s['id']}/cancel",
        token,
        json={"reason": "moving elsewhere"},
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = stack.http(
        "POST", f"/api/v1/client/services/{s['id']}/cancel", token, json={"reason": "again"}
    )
    assert r.status_code == 409


def test_promo_code_discounts_the_first_invoice_within_its_limits(stack):
    product = _product(stack)
    code = f"WELCOME{uuid.uuid4().hex[:5].upper()}"
    r = stack.http(
        "POST",
        "/api/v1/staff/promo-codes",
        stack.admin_token,
        json={
            "code": code,
            "kind": "percentage",
            "percent": "20",
            "product_ids": [product["id"]],
            "max_uses": 1,
        },
    )
    assert r.status_code == 201, r.text
    item = [{"product_id": product["id"], "billing_cycle": "monthly"}]

    def order_with(code_used, email):
        return stack.http(
            "POST",
            "/api/v1/orders",
            json={
                "customer": {
                    "email": email,
                    "kind": "individual",
                    "contact_person": "P",
                    "country": "DE",
                },
                "items": item,
                "promo_code": code_used,
            },
        )

    r = order_with(code.lower(), f"promo-{uuid.uuid4().hex[:8]}@example.com")
    assert r.status_code == 201, r.text
    first = r.json()
    token = stack.login(first["credentials"]["username"], first["credentials"]["password"])
    invoice = stack.http("GET", f"/api/v1/client/invoices/{first['invoice_id']}", token).json()
    # 20 % off each line of that product: 500 -> 400, setup 1000 -> 800
    assert invoice["total"]["amount"] == 1200
    assert invoice["lines"][0]["discount"]["name"] == f"Promo {code}"
    # used up: refused before anything is created
    email = f"late-{uuid.uuid4().hex[:8]}@example.com"
    r = order_with(code, email)
    assert r.status_code == 400 and "promo_code" in r.json()["error"]["fields"]
    r = order_with("NOSUCHCODE", email)
    assert r.status_code == 400 and "promo_code" in r.json()["error"]["fields"]
    r = order_with(None, email)
    assert r.status_code == 201 and "credentials" in r.json()  # the e-mail was still new
