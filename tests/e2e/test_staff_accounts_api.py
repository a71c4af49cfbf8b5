"""Staff accounts through the API: a member invited by mail (no password anyone else
sees), reset links staff send to staff and to clients (each to its own page), a
member's own password and preferences, and two-factor authentication made mandatory
for staff (recorded with who did it)."""

import re
import uuid
from datetime import timedelta

import pytest

from services.infra.clock import FileClock
from tests.e2e.test_mail_out import wait_mail
from tests.e2e.test_staff_two_factor_policy import StaffPolicy
from tests.e2e.test_two_factor import MovedClock

PASSWORD = "staff-password-1"
LINK = re.compile(r"(http\S+/reset-password)\?token=([A-Za-z0-9_\-]+)")


def _link(stack, email: str, count: int = 1) -> tuple[str, str]:
    """(the page, the token) of the newest reset mail to `email`."""
    text = wait_mail(stack, email, count)[-1].get_content()
    page, token = LINK.search(text).groups()
    return page.removeprefix(stack.base_url), token


def _invite(stack, role: str = "support", **fields) -> dict:
    name = f"invited-{uuid.uuid4().hex[:6]}"
    body = {
        "username": name,
        "name": name.title(),
        "email": f"{name}@example.com",
        "role": role,
        "invite": True,
    } | fields
    r = stack.http("POST", "/api/v1/staff/staff", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_invited_member_sets_a_password_from_the_staff_panels_link(stack):
    member = _invite(stack, language="fr")
    assert "credentials" not in member and member["active"] is True
    page, token = _link(stack, member["email"])
    assert page == "/staff/reset-password"
    r = stack.http(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "mon mot de passe 1"},
    )
    assert r.status_code == 200 and r.json()["kind"] == "staff", r.text
    assert stack.login(member["username"], "mon mot de passe 1")

    # an invitation needs an address and no password; the old shape still answers one
    for wrong, field in (({"email": None}, "email"), ({"password": "a password 1"}, "password")):
        body = {"username": f"x-{uuid.uuid4().hex[:6]}", "name": "X", "role": "billing"}
        body |= {"email": "x@example.com", "invite": True} | wrong
        r = stack.http("POST", "/api/v1/staff/staff", stack.admin_token, json=body)
        assert r.status_code == 400 and field in r.json()["error"]["fields"], r.text
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={"username": f"old-{uuid.uuid4().hex[:6]}", "name": "Old", "role": "billing"},
    )
    assert r.status_code == 201 and r.json()["credentials"]["password"], r.text


def test_staff_send_reset_links_to_staff_and_to_clients(stack):
    member = _invite(stack)
    _link(stack, member["email"])  # the invitation
    _, support = stack.staff_member("support")
    url = f"/api/v1/staff/staff/{member['id']}/password-reset"
    assert stack.http("POST", url, support).status_code == 403
    r = stack.http("POST", url, stack.admin_token)
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "sent", "email": member["email"]}
    assert _link(stack, member["email"], 2)[0] == "/staff/reset-password"

    # a member without an e-mail has nowhere to get it
    other, _ = stack.staff_member("billing")
    r = stack.http("POST", f"/api/v1/staff/staff/{other['id']}/password-reset", stack.admin_token)
    assert r.status_code == 409, r.text

    customer = stack.register_customer(language="ru")
    url = f"/api/v1/staff/customers/{customer['id']}/password-reset"
    _, billing = stack.staff_member("billing")
    assert stack.http("POST", url, billing).status_code == 403
    r = stack.http("POST", url, support)
    assert r.status_code == 202 and r.json()["email"] == customer["email"], r.text
    assert _link(stack, customer["email"])[0] == "/reset-password"
    missing = f"/api/v1/staff/customers/{uuid.uuid4()}/password-reset"
    assert stack.http("POST", missing, support).status_code == 404


def test_a_member_changes_their_own_password_and_preferences(stack):
    member, token = stack.staff_member("auditor")
    other_session = stack.login(member["username"], PASSWORD)
    r = stack.http("GET", "/api/v1/staff/account", token)
    assert r.status_code == 200 and r.json()["id"] == member["id"], r.text
    assert r.json()["two_factor"] is False

    r = stack.http(
        "PATCH",
        "/api/v1/staff/account",
        token,
        json={"language": "ru", "notifications": {"new_ticket": False}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["language"] == "ru" and r.json()["notifications"]["new_ticket"] is False
    # the role is the administrators' to change
    r = stack.http("PATCH", "/api/v1/staff/account", token, json={"role": "admin"})
    assert r.status_code == 400, r.text

    url = "/api/v1/staff/account/password"
    r = stack.http(
        "POST", url, token, json={"current_password": "wrong", "new_password": "new password 1"}
    )
    assert r.status_code == 401, r.text
    r = stack.http(
        "POST", url, token, json={"current_password": PASSWORD, "new_password": "new password 1"}
    )
    assert r.status_code == 200, r.text
    assert stack.http("GET", "/api/v1/me", token).status_code == 200
    assert stack.http("GET", "/api/v1/me", other_session).status_code == 401
    assert stack.login(member["username"], "new password 1")


@pytest.fixture
def mandatory_two_factor(stack):
    """Two-factor authentication mandatory for staff for the test, off again after (by an
    administrator who has it on: one without it is refused while it is mandatory)."""
    clock = MovedClock(stack)
    policy = None
    try:
        policy = StaffPolicy(stack, clock)
        yield policy
    finally:
        if policy is not None:
            policy.require(False)
        FileClock.set_offset(stack.clock_file, timedelta(0))


def test_mandatory_two_factor_authentication_is_told_at_login_until_set_up(
    stack, mandatory_two_factor
):
    clock = mandatory_two_factor.clock
    member, token = stack.staff_member("billing")
    url = "/api/v1/staff/staff-policy"
    assert stack.http("PUT", url, token, json={"two_factor_required": True}).status_code == 403
    # an administrator without two-factor authentication would shut themselves out
    r = stack.http("PUT", url, stack.admin_token, json={"two_factor_required": True})
    assert r.status_code == 409, r.text
    assert set(r.json()["error"]["fields"]) == {"two_factor_required"}, r.text
    assert stack.http("GET", url, stack.admin_token).json() == {"two_factor_required": False}
    mandatory_two_factor.require(True)
    r = stack.http("GET", url, mandatory_two_factor.token)
    assert r.json() == {"two_factor_required": True}, r.text

    login = {"username": member["username"], "password": PASSWORD}
    r = stack.http("POST", "/api/v1/auth/login", json=login)
    assert r.status_code == 200 and r.json()["two_factor_setup_required"] is True, r.text
    token = r.json()["token"]
    assert stack.http("GET", "/api/v1/me", token).json()["two_factor_setup_required"] is True

    secret = stack.http("POST", "/api/v1/auth/2fa/enrol", token).json()["secret"]
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": clock.code(secret)})
    assert r.status_code == 200, r.text
    assert "two_factor_setup_required" not in stack.http("GET", "/api/v1/me", token).json()
    clock.forward()
    r = stack.http("POST", "/api/v1/auth/login", json=login | {"otp": clock.code(secret)})
    assert r.status_code == 200 and "two_factor_setup_required" not in r.json(), r.text

    # who made it mandatory is recorded with the change
    with stack.db("customers") as db:
        rows = db.execute(
            "SELECT state FROM customers_events WHERE topic LIKE %s",
            ("%StaffPolicy.TwoFactorRequirementChanged",),
        ).fetchall()
    admin_id = mandatory_two_factor.admin["id"]
    assert any(admin_id in bytes(state).decode() for (state,) in rows)
