"""Two-factor authentication made mandatory for staff, enforced: a member who has not set
it up gets 403 `two_factor_setup_required` on every staff route but setting it up, who am
I, their own account and logging out, cannot enter a client's area (and one they are in
answers the same), and the moment it is on everything answers again. An enrolled member
is not affected; turning the policy off lifts it at once.

The policy is turned on and off by an administrator who set two-factor authentication up
first (the stack's own administrator has not: it is refused too while the policy holds).
Codes are computed with pyotp at the stack's clock (`MovedClock`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.infra.clock import FileClock
from tests.e2e.test_two_factor import MovedClock

PASSWORD = "staff-password-1"  # tests.stack.Stack.staff_member's
POLICY = "/api/v1/staff/staff-policy"
SETUP = "two_factor_setup_required"


def new_member(stack, role: str, admin_token: str) -> tuple[dict, str]:
    """A new staff member of `role` added by the administrator of `admin_token`, and a
    session of it."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    body = {"username": name, "name": name.title(), "role": role, "password": PASSWORD}
    r = stack.http("POST", "/api/v1/staff/staff", admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json(), stack.login(name, PASSWORD)


def turn_on_two_factor(stack, token: str, clock: MovedClock) -> str:
    """Two-factor authentication on for the session's account (its secret answered); the
    clock moves on a step after, so that the next code is a new one."""
    r = stack.http("POST", "/api/v1/auth/2fa/enrol", token)
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": clock.code(secret)})
    assert r.status_code == 200, r.text
    clock.forward()
    return secret


class StaffPolicy:
    """The staff's login policy, changed by an administrator with two-factor
    authentication on (`token`), so that it can always be turned off again."""

    def __init__(self, stack, clock: MovedClock):
        self.stack, self.clock = stack, clock
        self.admin, self.token = stack.staff_member("admin")
        turn_on_two_factor(stack, self.token, clock)

    def require(self, required: bool) -> None:
        r = self.stack.http("PUT", POLICY, self.token, json={"two_factor_required": required})
        assert r.status_code == 200 and r.json() == {"two_factor_required": required}, r.text


@pytest.fixture
def staff_policy(stack):
    """A StaffPolicy for the test; after it, two-factor authentication is each member's
    choice again and the stack's clock is the wall clock."""
    clock = MovedClock(stack)
    policy = None
    try:
        policy = StaffPolicy(stack, clock)
        yield policy
    finally:
        if policy is not None:
            policy.require(False)
        FileClock.set_offset(stack.clock_file, timedelta(0))


def _refused(r, message_names: str = "/api/v1/auth/2fa/enrol") -> None:
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == SETUP and error["fields"] == {}, r.text
    assert "mandatory" in error["message"] and message_names in error["message"], r.text


def test_a_member_without_it_only_sets_it_up_then_everything_answers(stack, staff_policy):
    policy, clock = staff_policy, staff_policy.clock
    _, token = new_member(stack, "support", policy.token)
    customer = stack.register_customer()
    # a client's area the member entered before the policy
    r = stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", token)
    assert r.status_code == 200, r.text
    acting = r.json()["token"]

    policy.require(True)

    # staff routes, reads and writes alike: refused, with what to do
    _refused(stack.http("GET", "/api/v1/staff/customers", token))
    _refused(stack.http("GET", f"/api/v1/staff/customers/{customer['id']}", token))
    _refused(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{uuid.uuid4()}/replies",
            token,
            json={"body": "hello"},
        )
    )
    # no client's area to enter, and the one entered before answers the same
    _refused(stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", token))
    _refused(stack.http("GET", "/api/v1/client/invoices", acting), "/api/v1/auth/return")
    _refused(stack.http("GET", "/api/v1/client/profile", acting), "/api/v1/auth/return")
    me_acting = stack.http("GET", "/api/v1/me", acting).json()
    assert me_acting["impersonator"][SETUP] is True

    # what the member needs stays open: who am I, the own account, setting it up
    me = stack.http("GET", "/api/v1/me", token)
    assert me.status_code == 200 and me.json()[SETUP] is True, me.text
    account = stack.http("GET", "/api/v1/staff/account", token)
    assert account.status_code == 200 and account.json()[SETUP] is True, account.text
    r = stack.http("PATCH", "/api/v1/staff/account", token, json={"language": "fr"})
    assert r.status_code == 200, r.text
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["enabled"] is False
    turn_on_two_factor(stack, token, clock)

    # at once, with the same sessions
    assert SETUP not in stack.http("GET", "/api/v1/me", token).json()
    r = stack.http("GET", f"/api/v1/staff/customers/{customer['id']}", token)
    assert r.status_code == 200 and r.json()["id"] == customer["id"], r.text
    r = stack.http("GET", "/api/v1/client/invoices", acting)
    assert r.status_code == 200, r.text
    assert SETUP not in stack.http("GET", "/api/v1/me", acting).json()["impersonator"]
    r = stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", token)
    assert r.status_code == 200, r.text


def test_the_way_out_stays_open_and_an_enrolled_member_is_not_affected(stack, staff_policy):
    policy = staff_policy
    _, enrolled_token = new_member(stack, "billing", policy.token)
    turn_on_two_factor(stack, enrolled_token, policy.clock)
    member, token = new_member(stack, "support", policy.token)
    customer = stack.register_customer()
    r = stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", token)
    acting = r.json()["token"]

    policy.require(True)

    # the enrolled member and the administrator who set the policy work as before
    assert stack.http("GET", "/api/v1/staff/invoices", enrolled_token).status_code == 200
    assert SETUP not in stack.http("GET", "/api/v1/me", enrolled_token).json()
    assert stack.http("GET", "/api/v1/staff/staff", policy.token).status_code == 200
    # an administrator without it is a member like any other
    _refused(stack.http("GET", "/api/v1/staff/staff", stack.admin_token))

    # the client's area is left, the staff session comes back, still refused
    r = stack.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 200 and r.json()["token"] == token, r.text
    _refused(stack.http("GET", "/api/v1/staff/customers", token))
    # logging out
    assert stack.http("POST", "/api/v1/auth/logout", token).status_code == 200
    assert stack.http("GET", "/api/v1/me", token).status_code == 401

    # a new login says it, and is refused the same way
    r = stack.http(
        "POST", "/api/v1/auth/login", json={"username": member["username"], "password": PASSWORD}
    )
    assert r.status_code == 200 and r.json()[SETUP] is True, r.text
    _refused(stack.http("GET", "/api/v1/staff/customers", r.json()["token"]))


def test_turning_the_policy_off_lifts_it_at_once(stack, staff_policy):
    policy = staff_policy
    _, token = new_member(stack, "auditor", policy.token)
    policy.require(True)
    _refused(stack.http("GET", "/api/v1/staff/customers", token))
    _refused(stack.http("GET", "/api/v1/staff/customers", stack.admin_token))

    policy.require(False)
    assert stack.http("GET", "/api/v1/staff/customers", token).status_code == 200
    assert SETUP not in stack.http("GET", "/api/v1/me", token).json()
    assert stack.http("GET", "/api/v1/staff/customers", stack.admin_token).status_code == 200
