"""Two gateway instances, each with its session cache (gateway/session_cache.py): a
session ended through one, or by any change of the account, is refused by the other
within one second, also while that other's event subscription is cut."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from tests.stack import RABBITMQ_MANAGEMENT_URL, _free_port

BOUND = 1.0  # seconds: the feature's promise (a revoked session is refused within it)
POLL = 0.05


class Gateway:
    def __init__(self, stack, base_url: str, metrics: str):
        self.stack, self.base_url, self.metrics = stack, base_url, metrics

    def http(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def me(self, token):
        return self.http("GET", "/api/v1/me", token)

    def metric(self, name: str, labels: str = "") -> float:
        text = self.stack.metrics(self.metrics).text
        match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def cached(self) -> float:
        return self.metric("hostledger_gateway_session_lookups_total", '{source="cache"}')

    def trusted(self) -> bool:
        return self.metric("hostledger_gateway_session_cache_trusted") == 1.0


@pytest.fixture(scope="module")
def gateways(stack):
    """Gateway A (the stack's) and a second instance B on its own port."""
    port = _free_port()
    stack.start("gateway", {"HOSTLEDGER_HTTP_PORT": str(port)}, instance="2")
    a = Gateway(stack, stack.base_url, "gateway")
    b = Gateway(stack, f"http://127.0.0.1:{port}", "gateway-2")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if b.http("GET", "/health").status_code == 200 and a.trusted() and b.trusted():
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the second gateway did not come up"
            time.sleep(0.2)
        yield a, b
    finally:
        stack.stop("gateway-2")


def _client(stack, password="client password 1"):
    customer = stack.register_customer(password=password)
    return customer, stack.login(customer["username"], password)


def _warm(token, *gateways):
    """Use the session through each gateway until each answers it from its cache."""
    for gw in gateways:
        before = gw.cached()
        for _ in range(3):
            r = gw.me(token)
            assert r.status_code == 200, r.text
        assert gw.cached() >= before + 2, f"{gw.base_url} did not answer from its cache"


def _refused_within(gw, token, started: float, what: str) -> float:
    """Poll `gw` every 50 ms until it refuses `token` (401); fail past the bound. The
    time counts from `started`, when the request that ended the session was answered."""
    while True:
        status = gw.me(token).status_code
        waited = time.monotonic() - started
        if status == 401:
            assert waited <= BOUND, f"{what}: refused only after {waited:.3f} s (bound {BOUND} s)"
            print(f"\n{what}: refused by {gw.base_url} after {waited:.3f} s")  # with -s
            return waited
        assert status == 200, f"{what}: {status}"
        assert waited <= BOUND, (
            f"{what}: still accepted by {gw.base_url} {waited:.3f} s after it ended "
            f"(bound {BOUND} s)"
        )
        time.sleep(POLL)


def test_each_gateway_answers_a_known_session_without_asking(stack, gateways):
    a, b = gateways
    _, token = _client(stack)
    _warm(token, a, b)
    assert a.me(token).json() == b.me(token).json()


def test_a_logout_through_one_gateway_is_refused_by_the_other(stack, gateways):
    a, b = gateways
    _, token = _client(stack)
    _warm(token, a, b)
    assert a.http("POST", "/api/v1/auth/logout", token).status_code == 200
    started = time.monotonic()
    # the gateway that logged it out refuses it at once, as without a cache
    assert a.me(token).status_code == 401
    _refused_within(b, token, started, "logout through A")


def test_a_password_change_ends_the_other_sessions_on_every_gateway(stack, gateways):
    a, b = gateways
    customer, kept = _client(stack)
    other = stack.login(customer["username"], "client password 1")
    _warm(kept, a, b)
    _warm(other, a, b)
    r = a.http(
        "POST",
        "/api/v1/client/password",
        kept,
        json={"current_password": "client password 1", "new_password": "client password 2"},
    )
    assert r.status_code in (200, 204), r.text
    _refused_within(b, other, time.monotonic(), "password changed")
    # the session that changed it goes on, on both
    assert b.me(kept).status_code == 200 and a.me(kept).status_code == 200


def test_a_disabled_staff_member_is_refused_by_every_gateway(stack, gateways):
    a, b = gateways
    member, token = stack.staff_member("support")
    _warm(token, a, b)
    r = a.http("POST", f"/api/v1/staff/staff/{member['id']}/disable", stack.admin_token, json={})
    assert r.status_code == 200, r.text
    _refused_within(b, token, time.monotonic(), "staff member disabled")


def _add_user(stack, gateway, owner: str) -> tuple[str, str]:
    """The owner adds a user to its account through `gateway`: (its id, its token)."""
    name = f"u{uuid.uuid4().hex[:8]}"
    r = gateway.http(
        "POST",
        "/api/v1/client/users",
        owner,
        json={
            "username": name,
            "email": f"{name}@example.com",
            "name": name,
            "permissions": ["support"],
            "password": "user password 1",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], stack.login(name, "user password 1")


def test_a_removed_user_is_refused_by_every_gateway(stack, gateways):
    a, b = gateways
    _, owner = _client(stack)
    user_id, token = _add_user(stack, a, owner)
    _warm(token, a, b)
    assert a.http("DELETE", f"/api/v1/client/users/{user_id}", owner).status_code in (200, 204)
    _refused_within(b, token, time.monotonic(), "user removed")
    assert b.me(owner).status_code == 200


def test_leaving_a_clients_panel_or_the_staff_logout_ends_it_on_every_gateway(stack, gateways):
    a, b = gateways
    customer, _ = _client(stack)
    _, staff = stack.staff_member("support")
    r = a.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", staff)
    assert r.status_code == 200, r.text
    acting = r.json()["token"]
    _warm(acting, a, b)
    _warm(staff, a, b)
    r = a.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 200, r.text
    started = time.monotonic()
    assert a.me(acting).status_code == 401
    _refused_within(b, acting, started, "impersonation ended")
    assert b.me(staff).status_code == 200
    # entered again, then the staff session ends: the client panel ends with it
    r = a.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", staff)
    acting = r.json()["token"]
    _warm(acting, a, b)
    assert a.http("POST", "/api/v1/auth/logout", staff).status_code == 200
    _refused_within(b, acting, time.monotonic(), "staff logout ends the client panel")


def test_a_role_change_shows_on_every_gateway(stack, gateways):
    a, b = gateways
    member, token = stack.staff_member("support")
    _warm(token, a, b)
    r = a.http(
        "PATCH", f"/api/v1/staff/staff/{member['id']}", stack.admin_token, json={"role": "auditor"}
    )
    assert r.status_code == 200, r.text
    started = time.monotonic()
    while (role := b.me(token).json()["role"]) != "auditor":
        waited = time.monotonic() - started
        assert waited <= BOUND, f"role still {role!r} on B {waited:.3f} s after the change"
        time.sleep(POLL)


def _connection_of(stack, pid: int) -> str:
    """The name RabbitMQ gives the session-events connection of the gateway process `pid`
    (the management API lists a new connection a few seconds after it opened)."""

    def listed():
        r = requests.get(
            f"{RABBITMQ_MANAGEMENT_URL}/api/vhosts/{quote(stack.vhost, safe='')}/connections",
            auth=("guest", "guest"),
            timeout=10,
        )
        r.raise_for_status()
        for conn in r.json():
            name = (conn.get("client_properties") or {}).get("connection_name") or ""
            if "gateway.sessions." in name and f"pid={pid} " in name:
                return conn["name"]
        return None

    return stack.wait_until(
        listed, timeout=30, interval=0.5, what=f"the session-events connection of {pid}"
    )


def test_with_its_subscription_cut_a_gateway_still_refuses_an_ended_session(stack, gateways):
    if stack.broker is not None:
        pytest.skip("needs the shared broker's management API")
    a, b = gateways
    _, token = _client(stack)
    _warm(token, a, b)
    name = _connection_of(stack, stack.procs["gateway-2"].pid)
    r = requests.delete(
        f"{RABBITMQ_MANAGEMENT_URL}/api/connections/{quote(name, safe='')}",
        auth=("guest", "guest"),
        headers={"X-Reason": "hostledger test: session events cut"},
        timeout=10,
    )
    assert r.status_code in (200, 204), r.text
    # the session ends while B's queue is gone (its events are lost to it)
    assert a.http("POST", "/api/v1/auth/logout", token).status_code == 200
    _refused_within(b, token, time.monotonic(), "logout while B's subscription is cut")
    # and B comes back to its cache
    deadline = time.monotonic() + 30
    while not b.trusted():
        assert time.monotonic() < deadline, "B's session cache did not follow events again"
        time.sleep(0.2)
    _, again = _client(stack)
    _warm(again, b)
