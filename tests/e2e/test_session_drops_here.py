"""The gateway that carries a request which ends sessions or changes what one shows drops
them from its own session cache at once (gateway/session_events.py, `SessionChanges`):
its next request refuses the old session, or shows the change, without waiting for the
customers service's events; and a request that changes no session keeps its caller's
session in the cache.

The gateway here is one more instance whose session cache is trusted (its subscription is
up) but hears none of the customers service's events (its queue is bound to an exchange
that nothing is published to), so what it drops, it drops by itself. How every other
gateway follows the events within a second: tests/e2e/test_session_cache.py."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.test_access import _reset_token
from tests.e2e.test_session_cache import Gateway, _add_user, _client, _warm
from tests.stack import _free_port


@pytest.fixture(scope="module")
def deaf(stack):
    port = _free_port()
    # its session events' queue is bound to an exchange nothing is published to; its RPC
    # goes through nameko's exchange, as every gateway's
    env = {"HOSTLEDGER_HTTP_PORT": str(port), "HOSTLEDGER_EVENTS_EXCHANGE": "unheard.events"}
    stack.start("gateway", env, instance="deaf")
    gw = Gateway(stack, f"http://127.0.0.1:{port}", "gateway-deaf")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if gw.http("GET", "/health").status_code == 200 and gw.trusted():
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.2)
        yield gw
    finally:
        stack.stop("gateway-deaf")


def _cached_next(gw, token) -> bool:
    """Is the next request of `token` answered from `gw`'s cache?"""
    before = gw.cached()
    assert gw.me(token).status_code == 200
    return gw.cached() == before + 1


def test_the_gateway_hears_no_event(stack, deaf):
    """What the other tests rest on: a session ended through another gateway is still
    taken here, from the cache, well past the events' second."""
    _, token = _client(stack)
    _warm(token, deaf)
    assert stack.http("POST", "/api/v1/auth/logout", token).status_code == 200
    time.sleep(2.0)
    assert deaf.trusted() and _cached_next(deaf, token)


def test_a_request_that_changes_no_session_keeps_its_session(stack, deaf):
    _, token = _client(stack)
    _warm(token, deaf)
    payer = {"kind": "company", "name": "Acme", "tax_id": "1", "address": "1 Road", "country": "GB"}
    r = deaf.http("POST", "/api/v1/client/payers", token, json=payer)
    assert r.status_code == 201, r.text
    settings = deaf.http("GET", "/api/v1/client/notification-settings", token).json()
    r = deaf.http("PUT", "/api/v1/client/notification-settings", token, json=settings)
    assert r.status_code == 200, r.text
    assert _cached_next(deaf, token)


def test_logout(stack, deaf):
    _, token = _client(stack)
    _, other = _client(stack)
    _warm(token, deaf)
    _warm(other, deaf)
    assert deaf.http("POST", "/api/v1/auth/logout", token).status_code == 200
    assert deaf.me(token).status_code == 401
    assert _cached_next(deaf, other)  # only the session that ended


def test_password_change(stack, deaf):
    customer, kept = _client(stack)
    other = stack.login(customer["username"], "client password 1")
    _warm(kept, deaf)
    _warm(other, deaf)
    r = deaf.http(
        "POST",
        "/api/v1/client/password",
        kept,
        json={"current_password": "client password 1", "new_password": "client password 2"},
    )
    assert r.status_code in (200, 204), r.text
    assert deaf.me(other).status_code == 401
    assert deaf.me(kept).status_code == 200  # the session that changed it goes on


def test_password_reset(stack, deaf):
    customer, token = _client(stack)
    _warm(token, deaf)
    r = deaf.http("POST", "/api/v1/auth/password-reset", json={"email": customer["email"]})
    assert r.status_code == 202, r.text
    confirm = {"token": _reset_token(stack, customer["email"]), "new_password": "reset pass 1"}
    r = deaf.http("POST", "/api/v1/auth/password-reset/confirm", json=confirm)
    assert r.status_code == 200, r.text
    assert deaf.me(token).status_code == 401


def test_user_removed(stack, deaf):
    _, owner = _client(stack)
    user_id, token = _add_user(stack, deaf, owner)
    _warm(token, deaf)
    r = deaf.http("DELETE", f"/api/v1/client/users/{user_id}", owner)
    assert r.status_code in (200, 204), r.text
    assert deaf.me(token).status_code == 401
    assert deaf.me(owner).status_code == 200


def test_staff_member_disabled(stack, deaf):
    member, token = stack.staff_member("support")
    _warm(token, deaf)
    r = deaf.http("POST", f"/api/v1/staff/staff/{member['id']}/disable", stack.admin_token, json={})
    assert r.status_code == 200, r.text
    assert deaf.me(token).status_code == 401


def test_role_change(stack, deaf):
    member, token = stack.staff_member("support")
    _warm(token, deaf)
    r = deaf.http(
        "PATCH", f"/api/v1/staff/staff/{member['id']}", stack.admin_token, json={"role": "auditor"}
    )
    assert r.status_code == 200, r.text
    assert deaf.me(token).json()["role"] == "auditor"


def test_impersonation_start_and_end(stack, deaf):
    customer, _ = _client(stack)
    _, staff = stack.staff_member("support")
    _warm(staff, deaf)
    r = deaf.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", staff)
    assert r.status_code == 200, r.text
    acting = r.json()["token"]
    # entering a client's panel ends no session and changes none: the staff session is
    # still answered from the cache, and the new one is taken
    assert _cached_next(deaf, staff)
    _warm(acting, deaf)
    r = deaf.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 200, r.text
    assert deaf.me(acting).status_code == 401
    assert deaf.me(staff).status_code == 200
    # entered again, then the staff member logs out: the client panel ends with it
    acting = deaf.http(
        "POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", staff
    ).json()["token"]
    _warm(acting, deaf)
    assert deaf.http("POST", "/api/v1/auth/logout", staff).status_code == 200
    assert deaf.me(acting).status_code == 401
    assert deaf.me(staff).status_code == 401


def test_a_customers_name_changed_by_staff(stack, deaf):
    customer, token = _client(stack)
    _warm(token, deaf)
    r = deaf.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"name": "Renamed At Once"},
    )
    assert r.status_code == 200, r.text
    assert deaf.me(token).json()["name"] == "Renamed At Once"
