"""Staff register a customer; billing, reacting to CustomerRegistered, opens the account."""

from concurrent.futures import ThreadPoolExecutor
from uuid import UUID


def test_health_names_every_service(stack):
    r = stack.http("GET", "/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "services": {
            s: "ok" for s in ("customers", "billing", "orders", "helpdesk", "mailgateway")
        },
    }


def test_registered_customer_gets_an_account_with_zero_balance(stack):
    customer = stack.register_customer(kind="company", company_name="Acme GmbH", country="DE")
    assert UUID(customer["id"])
    assert customer["number"] >= 1001
    assert customer["name"] == "Acme GmbH"
    assert customer["registration_ip"] == "127.0.0.1"
    credentials = customer["credentials"]
    assert credentials["username"] == customer["username"]
    assert len(credentials["password"]) >= 16

    def account():
        r = stack.http(
            "GET", f"/api/v1/staff/customers/{customer['id']}/account", stack.admin_token
        )
        return r.json() if r.status_code == 200 else None

    acc = stack.wait_until(account, what="the personal account")
    assert acc["customer_id"] == customer["id"]
    assert acc["balance"] == {"amount": 0, "currency": "EUR"}
    assert acc["entries"] == []

    # the generated credentials log in, as a client
    token = stack.login(credentials["username"], credentials["password"])
    me = stack.http("GET", "/api/v1/me", token).json()
    assert me["kind"] == "client" and me["customer_id"] == customer["id"]


def test_every_event_records_its_actor(stack):
    customer = stack.register_customer()
    admin = stack.http("GET", "/api/v1/me", stack.admin_token).json()
    events = stack.published("customers")
    mine = [e for e in events if e["aggregate_id"] == customer["id"]]
    assert mine and mine[0]["type"] == "CustomerRegistered"
    assert mine[0]["actor"] == {"kind": "staff", "id": admin["staff_id"]}
    assert "password_hash" not in mine[0]["payload"]

    # billing's reaction names billing as actor and the customers event as its cause
    stack.wait_until(lambda: customer["id"] in stack.billing_accounts_opened())
    opened = [
        e
        for e in stack.published("billing")
        if e["type"] == "AccountOpened" and e["payload"]["customer_id"] == customer["id"]
    ]
    assert opened[0]["actor"] == {"kind": "service", "id": "billing"}
    assert opened[0]["cause"] == f"customers:{mine[0]['position']}"


def test_logout_ends_the_session(stack):
    token = stack.login("admin", "stack-admin-password")
    assert stack.http("GET", "/api/v1/me", token).status_code == 200
    assert stack.http("POST", "/api/v1/auth/logout", token).status_code == 200
    r = stack.http("GET", "/api/v1/me", token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_wrong_password_is_invalid_credentials(stack):
    r = stack.http(
        "POST", "/api/v1/auth/login", json={"username": "admin", "password": "nope-nope"}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"
    r = stack.http(
        "POST", "/api/v1/auth/login", json={"username": "ghost", "password": "nope-nope"}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"


def test_a_stopped_service_answers_503_not_500_and_health_names_it(stack):
    customer = stack.register_customer()
    stack.stop("billing")
    try:
        # side by side: each waits for billing as long as the gateway waits for a service
        with ThreadPoolExecutor(2) as pool:
            health = pool.submit(stack.http, "GET", "/health")
            account = pool.submit(
                stack.http,
                "GET",
                f"/api/v1/staff/customers/{customer['id']}/account",
                stack.admin_token,
            )
            r = health.result()
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unavailable"
            assert body["services"]["billing"] == "unavailable"
            assert body["services"]["customers"] == "ok"
            r = account.result()
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "unavailable"
            assert r.headers["Retry-After"]
    finally:
        stack.start("billing")
        stack.wait_for_service("billing")
