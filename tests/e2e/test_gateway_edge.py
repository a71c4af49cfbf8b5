"""Input rules at the gateway's edge and the one way every list pages.

- a JSON body nested without bound is a 400, never a 500;
- control characters and lone surrogates in query parameters and path values: 400
  naming the parameter, on every route, before the route's own query schema;
- every list route (found by walking the OpenAPI document, as staff and as a client)
  takes `page`/`page_size`, refuses a page whose offset would not fit, and honours them;
- the services refuse such a page too, whoever calls them;
- orders' and services' `status` filters take their own statuses;
- every error has `fields`.
"""

from __future__ import annotations

import uuid

import pytest

from contracts.errors import ValidationFailed

HUGE = "9223372036854775807"  # 2**63 - 1: any offset from it overflows a bigint


def _error(r, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error.get("fields"), dict), error
    return error


def _client(stack) -> tuple[dict, str]:
    customer = stack.register_customer()
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


@pytest.fixture(scope="module")
def client(stack):
    customer, token = _client(stack)
    # billing opens the personal account from the customer's event: wait for it
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    return customer, token


@pytest.fixture(scope="module")
def document(stack):
    r = stack.http("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    return r.json()


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_a_body_nested_without_bound_is_400(stack, opening):
    closing = "]" if opening == "[" else "}"
    body = opening * 50_000 + "1" + closing * 50_000
    r = stack.http(
        "POST", "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"}
    )
    error = _error(r, 400, "validation_error")
    assert "_body" in error["fields"] and "deep" in error["message"]


def test_nesting_inside_a_field_is_bounded_too(stack):
    deep = "[" * 100 + "]" * 100
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        data='{"kind": "individual", "email": ' + deep + "}",
        headers={"Content-Type": "application/json"},
    )
    _error(r, 400, "validation_error")


def test_ordinary_nesting_still_passes(stack):
    # 64 levels are allowed: the body reaches the schema, which names the fields
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        data='{"username": ' + "[" * 63 + "]" * 63 + ', "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert "username" in _error(r, 400, "validation_error")["fields"]


# -- query parameters and path values ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "a\x01", "tab\there", "\x7f", "x\x9f"])
def test_control_characters_in_a_query_parameter_are_400_naming_it(stack, bad):
    r = stack.http("GET", "/api/v1/staff/customers", stack.admin_token, params={"name": bad})
    assert _error(r, 400, "validation_error")["fields"].keys() == {"name"}
    # a public route, and a route that takes no query at all
    r = stack.http("GET", "/api/v1/catalog", params={"currency": bad})
    assert "currency" in _error(r, 400, "validation_error")["fields"]
    r = stack.http("GET", "/api/v1/me", stack.admin_token, params={"anything": bad})
    assert "anything" in _error(r, 400, "validation_error")["fields"]


def test_a_control_character_in_a_parameter_name_is_400(stack):
    r = stack.http("GET", "/api/v1/catalog?bad%00name=1")
    assert "bad\x00name" in _error(r, 400, "validation_error")["fields"]


def test_a_control_character_in_a_path_value_is_400_naming_it(stack, client):
    _, token = client
    r = stack.http("GET", f"/api/v1/client/tickets/{uuid.uuid4()}/attachments/a%00b", token)
    assert "file_id" in _error(r, 400, "validation_error")["fields"]
    r = stack.http("POST", "/api/v1/payments/webhooks/str%01ipe", data=b"{}")
    assert "processor" in _error(r, 400, "validation_error")["fields"]


def test_text_checks_run_before_login_is_required(stack):
    """The rule is the edge's, before anything else: no token needed to be told."""
    r = stack.http("GET", "/api/v1/staff/customers", params={"name": "x\x00"})
    assert "name" in _error(r, 400, "validation_error")["fields"]


# -- paging ---------------------------------------------------------------------------------------


def _list_routes(document, customer_id: str) -> list[tuple[str, dict]]:
    """(url, operation) of every GET taking `page`, path values filled in."""
    out = []
    for path, operations in document["paths"].items():
        op = operations.get("get")
        if not op:
            continue
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        if "page" not in names:
            continue
        url = path
        for p in op.get("parameters", []):
            if p["in"] == "path":
                assert p["name"] == "customer_id", (path, p)
                url = url.replace("{customer_id}", customer_id)
        out.append((url, op))
    return out


def _pages(answer: dict) -> dict:
    """The pages an answer holds: the answer itself when it is a list (`items` or
    `entries`), else each of its fields that is one (the affiliate answer pages the
    customers referred and the commissions at once)."""
    if "items" in answer or "entries" in answer:
        return {"": answer}
    return {
        name: value
        for name, value in answer.items()
        if isinstance(value, dict) and ("items" in value or "entries" in value)
    }


def _items(page: dict) -> list:
    return page.get("items", page.get("entries"))


def _callers(stack, op: dict, client_token: str) -> list[tuple[str, str | None]]:
    callers = []
    if "admin" in op["x-staff-roles"]:
        callers.append(("admin", stack.admin_token))
    if op["x-clients"]:
        callers.append(("client", client_token))
    if not op.get("security"):
        callers += [("anonymous", None), ("client", client_token)]
    assert callers, op["operationId"]
    return callers


def test_every_get_answering_a_list_takes_page(stack, document, client):
    """A GET without path values (or with the customer's) that answers `items` is a list,
    and every list declares page and page_size."""
    customer, token = client
    missing = []
    for path, operations in document["paths"].items():
        op = operations.get("get")
        if not op or "{" in path.replace("{customer_id}", ""):
            continue
        url = path.replace("{customer_id}", customer["id"])
        for _, caller in _callers(stack, op, token)[:1]:
            r = stack.http("GET", url, caller)
            if r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"):
                answer = r.json()
                pages = _pages(answer) if isinstance(answer, dict) else {}
                if pages:
                    names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
                    if not {"page", "page_size"} <= names:
                        missing.append(path)
                for page in pages.values():
                    assert {"total", "page", "page_size"} <= set(page), (path, answer)
    assert not missing


def test_a_page_past_the_bounds_is_400_on_every_list(stack, document, client):
    customer, token = client
    routes = _list_routes(document, customer["id"])
    assert len(routes) >= 40  # every list: orders, services, invoices ... each its own path
    checked = 0
    for url, op in routes:
        for who, caller in _callers(stack, op, token):
            for params, field in (
                ({"page": HUGE}, "page"),
                ({"page": "1000001"}, "page"),
                ({"page": "0"}, "page"),
                ({"page": "-1"}, "page"),
                ({"page_size": "201"}, "page_size"),
                ({"page_size": "0"}, "page_size"),
                ({"page_size": HUGE}, "page_size"),
                ({"page": "1" + "0" * 5000}, "page"),
            ):
                r = stack.http("GET", url, caller, params=params)
                assert r.status_code == 400, (url, who, params, r.status_code, r.text[:300])
                assert field in r.json()["error"]["fields"], (url, who, r.text[:300])
                checked += 1
            # the largest page allowed is an empty page, not an error
            r = stack.http("GET", url, caller, params={"page": "1000000", "page_size": "200"})
            assert r.status_code == 200, (url, who, r.text[:300])
            pages = _pages(r.json())
            assert pages, (url, r.text[:300])
            for answer in pages.values():
                assert answer["page"] == 1_000_000 and answer["page_size"] == 200, (url, answer)
                assert _items(answer) == [], (url, answer)
    assert checked >= 8 * 42


def _seed_lists(stack, customer: dict) -> None:
    """Two or more of what several whole-list routes show."""
    stack.staff_member("support")
    stack.register_customer()
    for n in range(2):
        r = stack.http(
            "POST",
            "/api/v1/staff/products",
            stack.admin_token,
            json={
                "name": f"Paged {n} {uuid.uuid4().hex[:6]}",
                "prices": {"monthly": {"amount": 100 + n, "currency": "EUR"}},
            },
        )
        assert r.status_code == 201, r.text
        r = stack.http(
            "POST",
            "/api/v1/staff/departments",
            stack.admin_token,
            json={"name": f"Paged {n} {uuid.uuid4().hex[:6]}"},
        )
        assert r.status_code == 201, r.text
        r = stack.http(
            "POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", stack.admin_token
        )
        assert r.status_code == 200, r.text


def test_every_list_honours_page_and_page_size(stack, document, client):
    customer, token = client
    _seed_lists(stack, customer)
    wanted = (
        "/api/v1/catalog",
        "/api/v1/staff/products",
        "/api/v1/staff/departments",
        "/api/v1/client/departments",
        f"/api/v1/staff/customers/{customer['id']}/impersonations",
        "/api/v1/staff/mail/templates",
        "/api/v1/staff/customers",
        "/api/v1/staff/staff",
    )
    for path in wanted:  # lists are read models: they may lag the writes a moment
        caller = token if path.startswith("/api/v1/client/") else stack.admin_token
        stack.wait_until(
            lambda path=path, caller=caller: (
                stack.http("GET", path, caller, params={"page_size": "1"}).json()["total"] >= 2
            ),
            what=f"two in {path}",
        )
    routes = _list_routes(document, customer["id"])
    several = set()
    for url, op in routes:
        for who, caller in _callers(stack, op, token):

            def page(n: int, url=url, caller=caller, who=who) -> dict:
                r = stack.http("GET", url, caller, params={"page": str(n), "page_size": "1"})
                assert r.status_code == 200, (url, who, r.status_code, r.text[:300])
                return _pages(r.json())

            firsts = page(1)
            assert firsts, (url, who)
            for name, first in firsts.items():
                items = _items(first)
                assert first["page"] == 1 and first["page_size"] == 1, (url, name, first)
                assert isinstance(first["total"], int) and len(items) <= 1, (url, who, first)
                if first["total"] >= 2:
                    several.add(url)
                    assert len(items) == 1, (url, who, first)
                    second = page(2)[name]
                    other = _items(second)
                    assert second["page"] == 2 and len(other) == 1, (url, who, second)
                    assert other != items, (url, who, items, other)
    # among them lists that were answered whole before
    assert set(wanted) <= several, sorted(set(wanted) - several)


def test_the_services_refuse_a_page_whose_offset_does_not_fit(stack):
    """Defence in depth: a caller over RPC, past the gateway, gets a validation error."""
    huge = 2**63 - 1
    with stack.rpc() as rpc:
        calls = [
            lambda: rpc.orders.list("orders", None, huge, 50),
            lambda: rpc.orders.provisioning_tasks(huge, 50),
            lambda: rpc.billing.list("invoices", None, None, huge, 50),
            lambda: rpc.billing.list("payments", None, None, 1, 10**6),
            lambda: rpc.customers.list_kind("staff", huge, 50),
            lambda: rpc.customers.list_customers({"page": huge}),
            lambda: rpc.helpdesk.staff_tickets({}, huge, 50),
            lambda: rpc.helpdesk.messages(huge, 50),
            lambda: rpc.mailgateway.outbox(None, None, None, huge, 50),
            lambda: rpc.mailgateway.held_mail(huge, 50),
            lambda: rpc.mailgateway.received_mail(None, huge, 50),
        ]
        for call in calls:
            with pytest.raises(ValidationFailed):
                call()


# -- orders' and services' own statuses ----------------------------------------------------------


def test_orders_and_services_filter_by_their_own_statuses(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Status filter", "prices": {"monthly": {"amount": 700, "currency": "EUR"}}},
    )
    assert r.status_code == 201, r.text
    product = r.json()
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": {
                "email": f"status-{uuid.uuid4().hex[:8]}@example.com",
                "kind": "individual",
                "contact_person": "Stat Us",
                "country": "DE",
            },
            "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    token = stack.login(order["credentials"]["username"], order["credentials"]["password"])
    mine = {"customer_id": order["customer_id"]}

    def ids(path, caller, **params):
        r = stack.http("GET", path, caller, params=params)
        assert r.status_code == 200, (path, params, r.text)
        return [i["id"] for i in r.json()["items"]]

    stack.wait_until(
        lambda: ids("/api/v1/staff/orders", stack.admin_token, status="pending", **mine),
        what="the pending order listed",
    )
    assert ids("/api/v1/staff/orders", stack.admin_token, status="paid", **mine) == []
    assert ids("/api/v1/client/orders", token, status="pending") == [order["order_id"]]
    services = stack.wait_until(
        lambda: ids("/api/v1/staff/services", stack.admin_token, status="pending", **mine),
        what="the pending service listed",
    )
    assert len(services) == 1
    assert ids("/api/v1/staff/services", stack.admin_token, status="active", **mine) == []
    assert ids("/api/v1/client/services", token, status="pending") == services
    # another list's statuses are refused, naming the filter
    for path, status in (
        ("/api/v1/staff/orders", "unpaid"),
        ("/api/v1/staff/orders", "active"),
        ("/api/v1/staff/services", "paid"),
        ("/api/v1/staff/services", "refunded"),
        ("/api/v1/staff/payments", "paid"),
    ):
        r = stack.http("GET", path, stack.admin_token, params={"status": status})
        assert "status" in _error(r, 400, "validation_error")["fields"], (path, status)
    r = stack.http("GET", "/api/v1/client/services", token, params={"status": "paid"})
    assert "status" in _error(r, 400, "validation_error")["fields"]


# -- the error shape ------------------------------------------------------------------------------


def test_every_error_has_fields(stack, client):
    _, token = client
    admin = stack.admin_token
    cases = [
        (stack.http("GET", "/api/v1/no/such/route"), 404, "not_found"),
        (stack.http("DELETE", "/api/v1/auth/login"), 405, "method_not_allowed"),
        (stack.http("GET", "/api/v1/me"), 401, "unauthorized"),
        (stack.http("GET", "/api/v1/me", "not-a-token"), 401, "unauthorized"),
        (
            stack.http("POST", "/api/v1/auth/login", json={"username": "admin", "password": "x"}),
            401,
            "invalid_credentials",
        ),
        (stack.http("GET", "/api/v1/staff/parked-events", token), 403, "forbidden"),
        (stack.http("GET", f"/api/v1/staff/customers/{uuid.uuid4()}", admin), 404, "not_found"),
        (stack.http("GET", "/api/v1/staff/customers/not-a-uuid", admin), 404, "not_found"),
        (
            stack.http(
                "POST",
                "/api/v1/auth/login",
                data="username=admin",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
            "unsupported_type",
        ),
        (
            stack.http(
                "POST",
                "/api/v1/auth/login",
                data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                headers={"Content-Type": "application/json"},
            ),
            413,
            "too_large",
        ),
        (
            stack.http(
                "POST",
                "/api/v1/auth/login",
                data=b"\xff\xfe",
                headers={"Content-Type": "application/json"},
            ),
            400,
            "validation_error",
        ),
        (
            stack.http("POST", "/api/v1/client/invoices/" + str(uuid.uuid4()) + "/pay", token),
            404,
            "not_found",
        ),
    ]
    for r, status, code in cases:
        _error(r, status, code)
    taken = stack.register_customer()["username"]
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        admin,
        json={
            "kind": "individual",
            "email": f"{uuid.uuid4().hex[:8]}@example.com",
            "country": "DE",
            "contact_person": "Dup",
            "username": taken,
        },
    )
    assert _error(r, 409, "conflict")["fields"] is not None
