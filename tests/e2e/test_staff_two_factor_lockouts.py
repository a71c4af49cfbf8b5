"""Two-factor authentication mandatory for staff shuts no one out by mistake: while it is,
a staff member cannot turn their own off (409 naming `two_factor`, before the password,
which is neither checked nor counted), their account says it is mandatory, and a
client still can; only an administrator who has it on can make it mandatory (409 naming
`two_factor_required`, the policy unchanged), while making it optional needs nothing
of the kind. Codes are computed with pyotp at the stack's clock (`MovedClock`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.infra.clock import FileClock
from tests.e2e.test_staff_two_factor_policy import (
    PASSWORD,
    POLICY,
    StaffPolicy,
    new_member,
    turn_on_two_factor,
)
from tests.e2e.test_two_factor import MovedClock

DISABLE = "/api/v1/auth/2fa/disable"


@pytest.fixture
def staff_policy(stack):
    """A StaffPolicy (its administrator has two-factor authentication on); after the test,
    two-factor authentication is each member's choice and the clock the wall clock."""
    clock = MovedClock(stack)
    policy = None
    try:
        policy = StaffPolicy(stack, clock)
        yield policy
    finally:
        if policy is not None:
            policy.require(False)
        FileClock.set_offset(stack.clock_file, timedelta(0))


def _conflict(r, field: str) -> dict:
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict" and set(error["fields"]) == {field}, r.text
    return error


def test_a_member_cannot_turn_theirs_off_while_it_is_mandatory(stack, staff_policy):
    policy, clock = staff_policy, staff_policy.clock
    _, token = new_member(stack, "support", policy.token)
    secret = turn_on_two_factor(stack, token, clock)
    account = stack.http("GET", "/api/v1/staff/account", token).json()
    assert account["two_factor"] is True and account["two_factor_required"] is False

    policy.require(True)
    account = stack.http("GET", "/api/v1/staff/account", token).json()
    assert account["two_factor_required"] is True
    assert account["two_factor_setup_required"] is False

    # refused before the password: a wrong one is neither checked nor counted (more than
    # the attempts a password has)
    for _ in range(11):
        body = {"password": "not it", "otp": clock.code(secret)}
        error = _conflict(stack.http("POST", DISABLE, token, json=body), "two_factor")
        assert "mandatory" in error["message"], error
    body = {"password": PASSWORD, "otp": clock.code(secret)}
    _conflict(stack.http("POST", DISABLE, token, json=body), "two_factor")
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["enabled"] is True
    assert stack.http("GET", "/api/v1/staff/customers", token).status_code == 200

    # optional again: turned off with the password and a code, as ever
    policy.require(False)
    assert stack.http("GET", "/api/v1/staff/account", token).json()["two_factor_required"] is False
    clock.forward()
    body = {"password": PASSWORD, "otp": clock.code(secret)}
    r = stack.http("POST", DISABLE, token, json=body)
    assert r.status_code == 200 and r.json() == {"enabled": False}, r.text


def test_a_client_still_turns_theirs_off_while_it_is_mandatory_for_staff(
    stack,
    staff_policy,
):
    policy, clock = staff_policy, staff_policy.clock
    customer = stack.register_customer(password=PASSWORD)
    token = stack.login(customer["username"], PASSWORD)
    secret = turn_on_two_factor(stack, token, clock)
    policy.require(True)
    body = {"password": PASSWORD, "otp": clock.code(secret)}
    r = stack.http("POST", DISABLE, token, json=body)
    assert r.status_code == 200 and r.json() == {"enabled": False}, r.text


def test_only_an_administrator_with_it_on_makes_it_mandatory(stack, staff_policy):
    policy = staff_policy
    _, token = new_member(stack, "admin", policy.token)

    r = stack.http("PUT", POLICY, token, json={"two_factor_required": True})
    error = _conflict(r, "two_factor_required")
    assert error["message"].startswith(
        "Set up two-factor authentication on your own account first"
    ), error
    assert stack.http("GET", POLICY, token).json() == {"two_factor_required": False}
    # the administrator was not shut out: the staff panel answers as before
    assert stack.http("GET", "/api/v1/staff/staff", token).status_code == 200
    me = stack.http("GET", "/api/v1/me", token).json()
    assert "two_factor_setup_required" not in me

    # with it on, the same administrator can; making it optional needs nothing of the kind
    turn_on_two_factor(stack, token, policy.clock)
    r = stack.http("PUT", POLICY, token, json={"two_factor_required": True})
    assert r.status_code == 200 and r.json() == {"two_factor_required": True}, r.text
    policy.require(False)
    _, without = new_member(stack, "admin", policy.token)
    r = stack.http("PUT", POLICY, without, json={"two_factor_required": False})
    assert r.status_code == 200 and r.json() == {"two_factor_required": False}, r.text
