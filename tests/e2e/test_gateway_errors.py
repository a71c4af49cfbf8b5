"""The error shape and status codes of API.md, for every kind of bad request."""

import pytest


def _error(r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_route_is_404_in_our_shape(stack):
    _error(stack.http("GET", "/api/v1/no/such/thing"), 404, "not_found")
    # outside the API too, for anything but a browser (`/` is the client area's login)
    _error(stack.http("GET", "/no/such/page"), 404, "not_found")


def test_wrong_method_is_405_with_allow(stack):
    r = stack.http("DELETE", "/api/v1/auth/login")
    _error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_malformed_json_is_400(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        data=b'{"kind": "individual",',
        headers={"Content-Type": "application/json"},
    )
    error = _error(r, 400, "validation_error")
    assert "_body" in error["fields"]


def test_body_that_is_not_an_object_is_400(stack):
    r = stack.http("POST", "/api/v1/auth/login", json=["admin", "x"])
    _error(r, 400, "validation_error")


def test_invalid_fields_are_named(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "alien",
            "email": "not-an-email",
            "country": "Germany",
            "contact_person": "A",
            "registered_at": "2020-01-01T00:00:00Z",
        },
    )
    error = _error(r, 400, "validation_error")
    assert set(error["fields"]) == {"kind", "email", "country", "registered_at"}


def test_short_password_is_refused(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "email": "p@example.com",
            "country": "DE",
            "contact_person": "A",
            "password": "short",
        },
    )
    assert "password" in _error(r, 400, "validation_error")["fields"]


def test_duplicate_username_is_409(stack):
    first = stack.register_customer(username="taken-name")
    assert first["username"] == "taken-name"
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "email": "other@example.com",
            "country": "DE",
            "contact_person": "B",
            "username": "TAKEN-name",
        },
    )
    assert "username" in _error(r, 409, "conflict")["fields"]


def test_wrong_content_type_is_415(stack):
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        data="username=admin",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _error(r, 415, "unsupported_type")


def test_oversized_body_is_413(stack):
    r = stack.http(
        "POST",
        "/api/v1/auth/login",
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    _error(r, 413, "too_large")


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/staff/parked-events"])
def test_no_token_is_401(stack, path):
    _error(stack.http("GET", path), 401, "unauthorized")


def test_bad_token_is_401(stack):
    _error(stack.http("GET", "/api/v1/me", "not-a-token"), 401, "unauthorized")


def test_client_on_a_staff_route_is_403(stack):
    creds = stack.register_customer()["credentials"]
    token = stack.login(creds["username"], creds["password"])
    _error(stack.http("POST", "/api/v1/staff/customers", token, json={}), 403, "forbidden")
    _error(stack.http("GET", "/api/v1/staff/parked-events", token), 403, "forbidden")


def test_unknown_customer_is_404(stack):
    r = stack.http(
        "GET", "/api/v1/staff/customers/00000000-0000-0000-0000-000000000000", stack.admin_token
    )
    _error(r, 404, "not_found")
    _error(
        stack.http("GET", "/api/v1/staff/customers/not-a-uuid", stack.admin_token), 404, "not_found"
    )


def test_openapi_document_lists_every_route(stack):
    r = stack.http("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, method in [
        ("/health", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/staff/customers", "post"),
        ("/api/v1/staff/customers/{customer_id}/account", "get"),
    ]:
        assert method in paths[path], path
    register = paths["/api/v1/staff/customers"]["post"]
    body_schema = register["requestBody"]["content"]["application/json"]["schema"]
    ref = body_schema["$ref"].rsplit("/", 1)[-1]
    props = doc["components"]["schemas"][ref]["properties"]
    assert {"kind", "email", "country", "contact_person"} <= set(props)
    assert "registration_ip" not in props
    assert "Error" in doc["components"]["schemas"]


def test_openapi_paths_have_no_raw_converters(stack):
    paths = stack.http("GET", "/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if "<" in p or ">" in p]
    assert "/api/v1/client/profile" in paths


def test_openapi_paths_are_never_ambiguous(stack):
    """Routes of one shape (`/api/v1/staff/<name>` for invoices, orders, groups ...) are
    each their own path, so no list hides behind another's template."""
    import re

    doc = stack.http("GET", "/api/v1/openapi.json").json()
    shapes: dict = {}
    for path, operations in doc["paths"].items():
        for method in operations:
            shapes.setdefault((re.sub(r"\{[^}]+\}", "{}", path), method), []).append(path)
    assert not {k: v for k, v in shapes.items() if len(v) > 1}
    for name in ("invoices", "payments", "expenses", "commissions", "orders", "services"):
        assert "get" in doc["paths"][f"/api/v1/staff/{name}"], name
        assert "get" in doc["paths"][f"/api/v1/client/{name}"], name
    for name in ("customer-groups", "projects", "discounts"):
        assert {"get", "post"} <= set(doc["paths"][f"/api/v1/staff/{name}"]), name
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
