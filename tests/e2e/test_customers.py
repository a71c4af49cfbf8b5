"""Customers and access, as staff and clients see them through the gateway."""

import uuid

import pytest


def _client(stack, **fields):
    customer = stack.register_customer(**fields)
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


@pytest.mark.parametrize(
    "kind,extra",
    [
        ("individual", {}),
        ("company", {"company_name": "Example SARL"}),
        ("sole_proprietor", {"company_name": "J. Doe EI"}),
    ],
)
def test_register_each_kind(stack, kind, extra):
    customer, token = _client(stack, kind=kind, language="fr", **extra)
    assert customer["kind"] == kind
    assert customer["language"] == "fr"
    profile = stack.http("GET", "/api/v1/client/profile", token).json()
    assert profile["id"] == customer["id"] and profile["kind"] == kind
    assert "note" not in profile and "registration_ip" not in profile


def test_given_password_is_not_echoed_and_logs_in(stack):
    customer = stack.register_customer(username="own-pass", password="my own pass 123")
    assert "credentials" not in customer
    assert stack.login("own-pass", "my own pass 123")
    assert stack.login(customer["email"], "my own pass 123")  # by e-mail too


def test_edit_and_read_back_with_version_check(stack):
    customer = stack.register_customer()
    group = stack.http(
        "POST", "/api/v1/staff/customer-groups", stack.admin_token, json={"name": "VIP"}
    ).json()
    referrer = stack.register_customer()
    program = f"basic-{uuid.uuid4().hex[:6]}"
    r = stack.http(
        "POST",
        "/api/v1/staff/affiliate-programs",
        stack.admin_token,
        json={"name": program, "percent": "5", "maturity_days": 30},
    )
    assert r.status_code == 201, r.text
    program_id = r.json()["id"]  # a customer names its affiliate program by id
    path = f"/api/v1/staff/customers/{customer['id']}"
    r = stack.http(
        "PATCH",
        path,
        stack.admin_token,
        json={
            "verified_phone": "+49 30 1234567",
            "note": "prefers e-mail",
            "attitude": "good",
            "referral_source": "forum",
            "referrer_id": referrer["id"],
            "affiliate_program": program_id,
            "group_ids": [group["id"]],
            "language": "ru",
            "version": customer["version"],
        },
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["attitude"] == "good" and edited["group_ids"] == [group["id"]]
    assert edited["version"] == customer["version"] + 1
    again = stack.http("GET", path, stack.admin_token).json()
    assert again["note"] == "prefers e-mail" and again["language"] == "ru"
    assert again["referrer_id"] == referrer["id"]
    assert again["affiliate_program"] == program_id
    stale = stack.http(
        "PATCH", path, stack.admin_token, json={"note": "x", "version": customer["version"]}
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("field", ["registered_at", "registration_ip", "number", "email"])
def test_read_only_fields_are_refused(stack, field):
    customer = stack.register_customer()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={field: "2020-01-01T00:00:00Z"},
    )
    assert r.status_code == 400
    assert field in r.json()["error"]["fields"]


def test_bad_edit_values_are_named(stack):
    customer = stack.register_customer()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"attitude": "angry", "referrer_id": customer["id"]},
    )
    assert r.status_code == 400
    assert "attitude" in r.json()["error"]["fields"]
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"referrer_id": customer["id"]},
    )
    assert r.status_code == 400 and "referrer_id" in r.json()["error"]["fields"]


def test_list_filters(stack):
    tag = uuid.uuid4().hex[:8]
    project = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": f"Brand {tag}", "sender_email": "billing@brand.example"},
    )
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    group_id = stack.http(
        "POST", "/api/v1/staff/customer-groups", stack.admin_token, json={"name": f"G {tag}"}
    ).json()["id"]
    a = stack.register_customer(contact_person=f"Alice {tag}", language="fr", project_id=project_id)
    b = stack.register_customer(contact_person=f"Bob {tag}", email=f"bob-{tag}@example.com")
    stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{b['id']}",
        stack.admin_token,
        json={"group_ids": [group_id]},
    )

    def ids(**query):
        r = stack.http("GET", "/api/v1/staff/customers", stack.admin_token, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "total", "page", "page_size"}
        return {c["id"] for c in body["items"]}

    stack.wait_until(lambda: {a["id"], b["id"]} <= ids(name=tag), what="list read model")
    assert ids(name=tag) == {a["id"], b["id"]}
    assert ids(name=f"alice {tag}") == {a["id"]}  # any case
    assert ids(name=f"bob-{tag}@") == {b["id"]}  # part of the e-mail
    assert ids(name=b["username"]) == {b["id"]}
    assert ids(number=a["number"]) == {a["id"]}
    assert ids(customer_id=b["id"]) == {b["id"]}
    assert ids(project_id=project_id) == {a["id"]}
    stack.wait_until(lambda: ids(group_id=group_id) == {b["id"]}, what="group filter")
    assert a["id"] in ids(language="fr", name=tag) and b["id"] not in ids(language="fr", name=tag)
    assert ids(registered_from=a["registered_at"], name=tag) == {a["id"], b["id"]}
    assert ids(registered_to=a["registered_at"], name=tag) == {a["id"]}
    assert ids(active_product_id=str(uuid.uuid4())) == set()
    r = stack.http(
        "GET",
        "/api/v1/staff/customers",
        stack.admin_token,
        params={"page_size": 500, "registered_from": "yesterday"},
    )
    assert r.status_code == 400
    assert {"page_size", "registered_from"} <= set(r.json()["error"]["fields"])


def test_delete_needs_confirmation_then_blocks_login(stack):
    customer, token = _client(stack)
    path = f"/api/v1/staff/customers/{customer['id']}"
    r = stack.http("DELETE", path, stack.admin_token)
    assert r.status_code == 400 and "confirm" in r.json()["error"]["fields"]
    stack.wait_until(
        lambda: stack.http("GET", f"{path}/account", stack.admin_token).status_code == 200,
        what="account",
    )
    r = stack.http("DELETE", path + "?confirm=true", stack.admin_token)
    assert r.status_code == 200, r.text
    assert stack.http("GET", path, stack.admin_token).status_code == 404
    assert stack.http("GET", "/api/v1/client/profile", token).status_code == 401
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        json={
            "username": customer["credentials"]["username"],
            "password": customer["credentials"]["password"],
        },
    )
    assert r.status_code == 401
    # the history stays for auditors
    events = stack.published("customers")
    assert any(
        e["type"] == "CustomerDeleted" and e["aggregate_id"] == customer["id"] for e in events
    )


def test_force_delete_is_for_admins_only(stack):
    customer = stack.register_customer()
    _, support = stack.staff_member("support")
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{customer['id']}?confirm=true&force=true", support
    )
    assert r.status_code == 403


def test_password_change_ends_other_sessions(stack):
    customer, first = _client(stack)
    second = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    r = stack.http(
        "POST",
        "/api/v1/client/password",
        first,
        json={"current_password": "wrong-one", "new_password": "brand new pass"},
    )
    assert r.status_code == 401
    r = stack.http(
        "POST",
        "/api/v1/client/password",
        first,
        json={
            "current_password": customer["credentials"]["password"],
            "new_password": "brand new pass",
        },
    )
    assert r.status_code == 200, r.text
    assert stack.http("GET", "/api/v1/me", first).status_code == 200
    assert stack.http("GET", "/api/v1/me", second).status_code == 401
    assert stack.login(customer["username"], "brand new pass")
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        json={"username": customer["username"], "password": customer["credentials"]["password"]},
    )
    assert r.status_code == 401


def test_login_is_rate_limited_per_username(stack):
    customer = stack.register_customer()
    codes = [
        stack.http(
            "POST",
            "/api/v1/auth/login",
            json={"username": customer["username"], "password": f"wrong {i}"},
        ).status_code
        for i in range(11)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        json={"username": customer["username"], "password": customer["credentials"]["password"]},
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


def test_users_and_payers_of_a_client(stack):
    customer, token = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": f"acct-{uuid.uuid4().hex[:6]}",
            "email": "acct@example.com",
            "name": "Accountant",
            "permissions": ["billing"],
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    user_token = stack.login(user["credentials"]["username"], user["credentials"]["password"])
    me = stack.http("GET", "/api/v1/me", user_token).json()
    assert me["customer_id"] == customer["id"] and me["permissions"] == ["billing"]
    # a billing user manages payers but not users
    r = stack.http(
        "POST",
        "/api/v1/client/payers",
        user_token,
        json={
            "kind": "company",
            "name": "Acme Ltd",
            "tax_id": "GB123",
            "address": "1 Road",
            "country": "GB",
        },
    )
    assert r.status_code == 201, r.text
    assert stack.http("GET", "/api/v1/client/users", user_token).status_code == 403
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/payers", token).json()["total"] == 1,
        what="payer list",
    )
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/users", token).json()["total"] == 1,
        what="user list",
    )
    r = stack.http("DELETE", f"/api/v1/client/users/{user['id']}", token)
    assert r.status_code == 200
    assert stack.http("GET", "/api/v1/me", user_token).status_code == 401


def test_notification_settings(stack):
    _, token = _client(stack)
    settings = stack.http("GET", "/api/v1/client/notification-settings", token).json()
    assert settings["invoice_issued"] is True and settings["news"] is False
    r = stack.http(
        "PUT",
        "/api/v1/client/notification-settings",
        token,
        json={"news": True, "invoice_due": False},
    )
    assert r.status_code == 200
    assert r.json()["news"] is True and r.json()["invoice_due"] is False
    r = stack.http("PUT", "/api/v1/client/notification-settings", token, json={"spam": True})
    assert r.status_code == 400 and "spam" in r.json()["error"]["fields"]


def test_discounts_are_validated(stack):
    customer = stack.register_customer()
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={
            "name": "Loyal",
            "kind": "percentage",
            "percent": "12.5",
            "customer_id": customer["id"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["percent"] == "12.5"
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={"name": "Bad", "kind": "fixed", "customer_id": customer["id"]},
    )
    assert r.status_code == 400
    assert "amount" in r.json()["error"]["fields"]


def _concrete(path: str, parameters: list[dict]) -> str:
    for p in parameters:
        if p.get("in") != "path":
            continue
        schema = p["schema"]
        if "enum" in schema:
            value = schema["enum"][0]
        elif schema.get("format") == "uuid":
            value = str(uuid.uuid4())
        elif schema.get("type") == "integer":
            value = "1"
        else:
            value = "x"
        path = path.replace("{" + p["name"] + "}", value)
    return path


def test_every_staff_and_client_route_checks_who_calls(stack):
    """Each route of the OpenAPI document, called by each staff role and by a client."""
    tokens = {"admin": stack.admin_token}
    for role in ("support", "billing"):
        tokens[role] = stack.staff_member(role)[1]
    _, tokens["client"] = _client(stack)
    paths = stack.http("GET", "/api/v1/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        if not path.startswith(("/api/v1/staff/", "/api/v1/client/")):
            continue
        for method, op in operations.items():
            url = _concrete(path, op.get("parameters", []))
            for who, token in tokens.items():
                allowed = (who in op["x-staff-roles"]) if who != "client" else bool(op["x-clients"])
                body = {} if method in ("post", "put", "patch") else None
                r = stack.http(method.upper(), url, token, json=body)
                if allowed:
                    assert r.status_code not in (401, 403), (method, url, who, r.text)
                else:
                    assert r.status_code == 403, (method, url, who, r.status_code, r.text)
                    assert r.json()["error"]["code"] == "forbidden"
                checked += 1
    assert checked > 150  # every route, four callers


def test_client_never_sees_another_customers_objects(stack):
    a, token_a = _client(stack)
    b, token_b = _client(stack)
    user_b = stack.http(
        "POST",
        "/api/v1/client/users",
        token_b,
        json={
            "username": f"b-{uuid.uuid4().hex[:6]}",
            "email": "b@example.com",
            "name": "B user",
            "permissions": ["support"],
        },
    ).json()
    assert stack.http("DELETE", f"/api/v1/client/users/{user_b['id']}", token_a).status_code == 404
    assert stack.http("GET", "/api/v1/client/profile", token_a).json()["id"] == a["id"]
    for path in ("/api/v1/client/users", "/api/v1/client/payers"):
        items = stack.http("GET", path, token_a).json()["items"]
        assert all(i["customer_id"] == a["id"] for i in items)
    assert stack.http("GET", f"/api/v1/staff/customers/{b['id']}", token_a).status_code == 403


def test_impersonation_is_shown_and_audited(stack):
    customer = stack.register_customer()
    admin = stack.http("GET", "/api/v1/me", stack.admin_token).json()
    r = stack.http(
        "POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", stack.admin_token
    )
    assert r.status_code == 200, r.text
    acting = r.json()["token"]
    me = stack.http("GET", "/api/v1/me", acting).json()
    assert me["kind"] == "client" and me["customer_id"] == customer["id"]
    assert me["impersonator"]["staff_id"] == admin["staff_id"]
    # what happens meanwhile records the staff member
    r = stack.http("PATCH", "/api/v1/client/profile", acting, json={"phone": "+33 1 23 45 67"})
    assert r.status_code == 200, r.text
    events = stack.published("customers")
    [edit] = [
        e for e in events if e["type"] == "CustomerUpdated" and e["aggregate_id"] == customer["id"]
    ]
    assert edit["actor"] == {"kind": "client", "id": customer["id"]}
    assert edit["on_behalf_of"] == {"kind": "staff", "id": admin["staff_id"]}
    # and back
    r = stack.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["kind"] == "staff" and back["staff_id"] == admin["staff_id"]
    assert stack.http("GET", "/api/v1/me", acting).status_code == 401
    audit = stack.http(
        "GET", f"/api/v1/staff/customers/{customer['id']}/impersonations", back["token"]
    ).json()["items"]
    assert [a["event"] for a in audit] == ["started", "ended"]
    assert all(a["staff_id"] == admin["staff_id"] for a in audit)
    # billing staff may not enter a client's panel
    _, billing = stack.staff_member("billing")
    r = stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", billing)
    assert r.status_code == 403


def test_staff_accounts_with_roles_and_notification_preferences(stack):
    name = f"sup-{uuid.uuid4().hex[:6]}"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": name,
            "name": "Sam Support",
            "role": "support",
            "notifications": {"new_ticket": False},
        },
    )
    assert r.status_code == 201, r.text
    member = r.json()
    assert member["role"] == "support"
    assert member["notifications"] == {
        "new_ticket": False,
        "ticket_reply": True,
        "abuse_deadline": True,
    }
    token = stack.login(name, member["credentials"]["password"])
    assert stack.http("GET", "/api/v1/me", token).json()["role"] == "support"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={"username": name, "name": "Again", "role": "support"},
    )
    assert r.status_code == 409
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": "x" + name,
            "name": "Bad",
            "role": "owner",
            "notifications": {"spam": True},
        },
    )
    assert r.status_code == 400
    assert {"role", "notifications.spam"} <= set(r.json()["error"]["fields"]), r.text
    stack.wait_until(
        lambda: (
            name
            in {
                s["username"]
                for s in stack.http(
                    "GET", "/api/v1/staff/staff", stack.admin_token, params={"page_size": 200}
                ).json()["items"]
            }
        ),
        what="staff list",
    )


def test_registration_takes_an_idempotency_key_and_shows_the_password_once(stack):
    key = uuid.uuid4().hex
    body = {
        "kind": "individual",
        "email": f"{key[:10]}@example.com",
        "country": "DE",
        "contact_person": "Retry Person",
    }
    first = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json=body,
        headers={"Idempotency-Key": key},
    )
    again = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json=body,
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert "credentials" in first.json() and "credentials" not in again.json()
    other = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json=dict(body, contact_person="Someone Else"),
        headers={"Idempotency-Key": key},
    )
    assert other.status_code == 409


def test_discount_list_filtered_by_customer(stack):
    customer = stack.register_customer()
    other = stack.register_customer()
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={"name": "Mine", "kind": "percentage", "percent": "5", "customer_id": customer["id"]},
    )
    assert r.status_code == 201
    mine = r.json()["id"]

    def listed(who):
        return {
            d["id"]
            for d in stack.http(
                "GET", "/api/v1/staff/discounts", stack.admin_token, params={"customer_id": who}
            ).json()["items"]
        }

    stack.wait_until(lambda: mine in listed(customer["id"]), what="the discount listed")
    assert mine not in listed(other["id"])


def test_password_change_is_rate_limited_like_a_login(stack):
    _, token = _client(stack)
    codes = [
        stack.http(
            "POST",
            "/api/v1/client/password",
            token,
            json={"current_password": f"guess {i}", "new_password": "whatever 123"},
        ).status_code
        for i in range(11)
    ]
    assert codes[:10] == [401] * 10 and codes[10] == 429
