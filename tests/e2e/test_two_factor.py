"""Two-factor authentication (TOTP) through the API: enrol, confirm, a login that needs
the code, wrong and replayed codes refused (and counted as wrong passwords), recovery
codes that work once, turning it off, staff's reset recorded with who and why and
refused to clients, and no secret in any event.

Codes are computed here with pyotp from the secret the API answered, at the time of the
stack's injectable clock: the `moved_clock` fixture moves it forward between codes, so
that each login has a code of its own time step (a code is never accepted twice)."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from services.infra.clock import FileClock
from services.infra.personal_data import is_sealed
from tests.e2e.test_access import from_address
from tests.sealed_values import opened, stored

LOGIN = "/api/v1/auth/login"
PASSWORD = "two-factor password 1"


class MovedClock:
    """The stack's clock, moved forward a minute (two time steps) at a time."""

    def __init__(self, stack):
        self.stack = stack
        self.offset = timedelta(0)

    def forward(self, seconds: int = 60) -> None:
        self.offset += timedelta(seconds=seconds)
        FileClock.set_offset(self.stack.clock_file, self.offset)

    def now(self) -> datetime:
        return datetime.now(tz=UTC) + self.offset

    def code(self, secret: str) -> str:
        """The code an app shows now, by the stack's clock (accepted one step either side,
        so a step that changes meanwhile still counts)."""
        return pyotp.TOTP(secret).at(self.now())


@pytest.fixture
def moved_clock(stack):
    clock = MovedClock(stack)
    try:
        yield clock
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))


def _client(stack, **fields) -> tuple[dict, str]:
    customer = stack.register_customer(password=PASSWORD, country="BE", **fields)
    return customer, stack.login(customer["username"], PASSWORD)


def _login(stack, username: str, session=None, **extra):
    body = {"username": username, "password": PASSWORD, **extra}
    if session is not None:
        return session.post(stack.base_url + LOGIN, json=body, timeout=30)
    return stack.http("POST", LOGIN, json=body)


def _turn_on(stack, token: str, clock: MovedClock) -> tuple[str, list[str]]:
    r = stack.http("POST", "/api/v1/auth/2fa/enrol", token)
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": clock.code(secret)})
    assert r.status_code == 200, r.text
    clock.forward()
    return secret, r.json()["recovery_codes"]


def _error(r) -> tuple[int, str, dict]:
    error = r.json()["error"]
    return r.status_code, error["code"], error["fields"]


def events_of(stack, aggregate_id: str) -> list[tuple[str, dict]]:
    """(event name, stored state) of one aggregate in the customers service's store."""
    with stack.db("customers") as conn:
        rows = conn.execute(
            "SELECT topic, state FROM customers_events WHERE originator_id = %s"
            " ORDER BY originator_version",
            (uuid.UUID(aggregate_id),),
        ).fetchall()
    return [(topic.rsplit(".", 1)[-1], json.loads(bytes(state))) for topic, state in rows]


def stored_anywhere(stack, secrets: list[str]) -> list[str]:
    """Which of `secrets` appear in any stored event, or in a kept answer of a command."""
    found = []
    with stack.db("customers") as conn:
        for secret in secrets:
            events = conn.execute(
                "SELECT count(*) FROM customers_events WHERE position(%s in"
                " convert_from(state, 'UTF8')) > 0",
                (secret,),
            ).fetchone()[0]
            answers = conn.execute(
                "SELECT count(*) FROM handled_requests WHERE answer::text LIKE %s",
                (f"%{secret}%",),
            ).fetchone()[0]
            if events or answers:
                found.append(secret)
    return found


def test_a_client_turns_it_on_logs_in_with_codes_and_turns_it_off(stack, moved_clock):
    clock = moved_clock
    customer, token = _client(stack)
    username = customer["username"]
    status = stack.http("GET", "/api/v1/auth/2fa", token).json()
    assert status == {
        "enabled": False,
        "pending": False,
        "recovery_codes_left": 0,
        "enabled_at": None,
    }

    # enrol: the secret, its otpauth:// address and a QR code to scan
    first = stack.http("POST", "/api/v1/auth/2fa/enrol", token)
    assert first.status_code == 200, first.text
    enrolment = first.json()
    secret = enrolment["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in enrolment["otpauth_uri"] and username in enrolment["otpauth_uri"]
    assert enrolment["qr_code"].startswith("data:image/svg+xml,")
    assert (enrolment["digits"], enrolment["period"], enrolment["algorithm"]) == (6, 30, "SHA1")
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["pending"] is True
    # enrolling again replaces a secret not confirmed yet: the first one no longer counts
    again = stack.http("POST", "/api/v1/auth/2fa/enrol", token).json()
    assert again["secret"] != secret
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": clock.code(secret)})
    assert r.status_code == 400 and "otp" in r.json()["error"]["fields"], r.text
    secret = again["secret"]
    wrong = f"{(int(clock.code(secret)) + 1) % 1_000_000:06d}"
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": wrong})
    assert _error(r)[:2] == (400, "validation_error") and "otp" in _error(r)[2], r.text
    # not on yet: the password alone still logs in
    assert _login(stack, username).status_code == 200

    confirm_code = clock.code(secret)
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": confirm_code})
    assert r.status_code == 200, r.text
    recovery = r.json()["recovery_codes"]
    assert r.json()["enabled"] is True
    assert len(recovery) == 10 == len(set(recovery))
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in recovery)
    status = stack.http("GET", "/api/v1/auth/2fa", token).json()
    assert status["enabled"] is True and status["recovery_codes_left"] == 10
    assert status["pending"] is False and status["enabled_at"].endswith("Z")
    r = stack.http("POST", "/api/v1/auth/2fa/enrol", token)
    assert r.status_code == 409, r.text  # on already: turned off first
    # the session it was turned on in goes on
    assert stack.http("GET", "/api/v1/me", token).status_code == 200

    # the password alone is not enough any more
    r = _login(stack, username)
    assert _error(r)[:2] == (401, "two_factor_required"), r.text
    assert "token" not in r.text and "challenge" not in r.text
    r = _login(stack, customer["email"])  # the e-mail too
    assert _error(r)[:2] == (401, "two_factor_required"), r.text
    # a wrong code, and the code the confirmation used (its step is spent), are refused
    r = _login(stack, username, otp=wrong)
    assert _error(r)[:2] == (401, "invalid_credentials") and "otp" in _error(r)[2], r.text
    assert _error(_login(stack, username, otp=confirm_code))[:2] == (401, "invalid_credentials")
    # a wrong password with the right code is still a wrong password
    r = stack.http(
        "POST", LOGIN, json={"username": username, "password": "not it", "otp": clock.code(secret)}
    )
    assert _error(r)[:2] == (401, "invalid_credentials") and "otp" not in _error(r)[2]

    # a current code logs in, once
    clock.forward()
    code = clock.code(secret)
    r = _login(stack, username, otp=code)
    assert r.status_code == 200 and r.json()["customer_id"] == customer["id"], r.text
    assert stack.http("GET", "/api/v1/me", r.json()["token"]).status_code == 200
    r = _login(stack, username, otp=code)
    assert _error(r)[:2] == (401, "invalid_credentials"), r.text  # replayed
    # typed with a space, as the app shows it, a minute later
    clock.forward()
    code = clock.code(secret)
    assert _login(stack, username, otp=f"{code[:3]} {code[3:]}").status_code == 200

    # a recovery code works once, in `recovery_code` or in `otp`, in any case
    r = _login(stack, username, recovery_code=recovery[0].upper())
    assert r.status_code == 200, r.text
    r = _login(stack, username, recovery_code=recovery[0])
    assert _error(r)[:2] == (401, "invalid_credentials"), r.text
    assert _login(stack, username, otp=recovery[1]).status_code == 200
    assert _error(_login(stack, username, otp=recovery[1]))[:2] == (401, "invalid_credentials")
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["recovery_codes_left"] == 8

    # turning it off needs the password and a current code (or a recovery code)
    clock.forward()
    body = {"password": "not it", "otp": clock.code(secret)}
    r = stack.http("POST", "/api/v1/auth/2fa/disable", token, json=body)
    assert _error(r)[:2] == (401, "invalid_credentials") and "password" in _error(r)[2]
    r = stack.http("POST", "/api/v1/auth/2fa/disable", token, json={"password": PASSWORD})
    assert _error(r)[:2] == (400, "validation_error") and "otp" in _error(r)[2]
    body = {"password": PASSWORD, "otp": wrong}
    r = stack.http("POST", "/api/v1/auth/2fa/disable", token, json=body)
    assert _error(r)[:2] == (401, "invalid_credentials") and "otp" in _error(r)[2]
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["enabled"] is True
    body = {"password": PASSWORD, "recovery_code": recovery[2]}
    r = stack.http("POST", "/api/v1/auth/2fa/disable", token, json=body)
    assert r.status_code == 200 and r.json() == {"enabled": False}, r.text
    assert _login(stack, username).status_code == 200
    status = stack.http("GET", "/api/v1/auth/2fa", token).json()
    assert status["enabled"] is False and status["recovery_codes_left"] == 0
    r = stack.http("POST", "/api/v1/auth/2fa/disable", token, json=body)
    assert r.status_code == 409, r.text

    # the history says who turned it on and off; no secret is in any event (nor in a
    # command's kept answer)
    history = [(name, state) for name, state in events_of(stack, customer["id"])]
    names = [name for name, _ in history]
    assert names[-4:] == [
        "TwoFactorEnabled",
        "RecoveryCodeUsed",
        "RecoveryCodeUsed",
        "TwoFactorDisabled",
    ], names
    for name, state in history[-4:]:
        assert state["actor"] == {"kind": "client", "id": customer["id"]}, (name, state)
    assert [s["remaining"] for n, s in history if n == "RecoveryCodeUsed"] == [9, 8]
    assert stored_anywhere(stack, [secret, enrolment["secret"], *recovery]) == []
    assert stored_anywhere(stack, [customer["email"]]) == [customer["email"]]  # it can see


def test_wrong_codes_count_like_wrong_passwords(stack, moved_clock):
    customer, token = _client(stack)
    secret, _ = _turn_on(stack, token, moved_clock)
    here = from_address("127.0.0.31")
    wrong = f"{(int(moved_clock.code(secret)) + 1) % 1_000_000:06d}"
    codes = [_login(stack, customer["username"], here, otp=wrong).status_code for _ in range(10)]
    assert codes == [401] * 10
    # the account from this address has no attempt left: a right code waits too
    r = _login(stack, customer["username"], here, otp=moved_clock.code(secret))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
    # a right password without its code is no failure: it takes no attempt
    elsewhere = from_address("127.0.0.32")
    for _ in range(12):
        r = _login(stack, customer["username"], elsewhere)
        assert _error(r)[:2] == (401, "two_factor_required")
    r = _login(stack, customer["username"], elsewhere, otp=moved_clock.code(secret))
    assert r.status_code == 200, r.text


def test_staff_reset_a_clients_two_factor_authentication_saying_why(stack, moved_clock):
    customer, token = _client(stack)
    secret, recovery = _turn_on(stack, token, moved_clock)
    path = f"/api/v1/staff/customers/{customer['id']}/2fa/reset"
    reason = "Lost the phone; identity checked by a call to the number on file."

    # the client, billing and auditors may not; staff acting as the client change nothing
    assert stack.http("POST", path, token, json={"reason": reason}).status_code == 403
    for role in ("billing", "auditor"):
        _, staff = stack.staff_member(role)
        assert stack.http("POST", path, staff, json={"reason": reason}).status_code == 403
    support, support_token = stack.staff_member("support")
    r = stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", support_token)
    acting = r.json()["token"]
    r = stack.http(
        "POST", "/api/v1/auth/2fa/disable", acting, json={"password": PASSWORD, "otp": recovery[0]}
    )
    assert r.status_code == 403, r.text
    assert stack.http("POST", "/api/v1/auth/2fa/enrol", acting).status_code == 403
    assert stack.http("GET", "/api/v1/auth/2fa", acting).json()["enabled"] is True
    # a reason is needed; an unknown customer is not found
    r = stack.http("POST", path, support_token, json={})
    assert _error(r)[:2] == (400, "validation_error") and "reason" in _error(r)[2]
    r = stack.http(
        "POST",
        f"/api/v1/staff/customers/{uuid.uuid4()}/2fa/reset",
        support_token,
        json={"reason": reason},
    )
    assert r.status_code == 404, r.text
    assert _error(_login(stack, customer["username"]))[:2] == (401, "two_factor_required")

    r = stack.http("POST", path, support_token, json={"reason": reason})
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": customer["id"], "user_id": None, "enabled": False}
    assert _login(stack, customer["username"]).status_code == 200  # the password alone again
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["enabled"] is False
    r = stack.http("POST", path, support_token, json={"reason": reason})
    assert r.status_code == 409, r.text  # nothing on to reset
    # recorded: by whom, why
    name, state = events_of(stack, customer["id"])[-1]
    assert name == "TwoFactorReset"
    assert state["actor"] == {"kind": "staff", "id": support["id"]}
    # the reason sealed with the customer's key (an erasure takes it), opened with it
    [(version, reset)] = stored(stack, "customers", customer["id"], "TwoFactorReset")[-1:]
    assert is_sealed(reset["reason"])
    assert opened(stack, "customers", customer["id"], version, reset, "reason") == reason
    # the old recovery codes are gone with it; the client can turn it on anew
    r = _login(stack, customer["username"], recovery_code=recovery[1])
    assert r.status_code == 200  # it is off: the password counts, the code is not looked at
    new_secret, _ = _turn_on(stack, token, moved_clock)
    assert new_secret != secret
    r = _login(stack, customer["username"], recovery_code=recovery[1])
    assert _error(r)[:2] == (401, "invalid_credentials"), r.text


def test_a_clients_user_and_a_staff_member_protect_their_own_login(stack, moved_clock):
    customer, owner = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        owner,
        json={
            "username": f"tf-user-{uuid.uuid4().hex[:6]}",
            "email": f"tf-{uuid.uuid4().hex[:6]}@example.com",
            "name": "Helper",
            "permissions": ["support"],
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    user_token = stack.login(user["username"], PASSWORD)
    _turn_on(stack, user_token, moved_clock)
    # the user's login needs a code; the customer's own does not
    assert _error(_login(stack, user["username"]))[:2] == (401, "two_factor_required")
    assert _login(stack, customer["username"]).status_code == 200
    assert stack.http("GET", "/api/v1/auth/2fa", owner).json()["enabled"] is False
    # staff reset the user's, named by `user_id`
    admin = stack.admin_token
    path = f"/api/v1/staff/customers/{customer['id']}/2fa/reset"
    r = stack.http("POST", path, admin, json={"reason": "Left the company", "user_id": user["id"]})
    assert r.status_code == 200 and r.json()["user_id"] == user["id"], r.text
    assert _login(stack, user["username"]).status_code == 200

    member, staff_token = stack.staff_member("auditor")
    secret, _ = _turn_on(stack, staff_token, moved_clock)
    r = stack.http(
        "POST", LOGIN, json={"username": member["username"], "password": "staff-password-1"}
    )
    assert _error(r)[:2] == (401, "two_factor_required"), r.text
    body = {
        "username": member["username"],
        "password": "staff-password-1",
        "otp": moved_clock.code(secret),
    }
    r = stack.http("POST", LOGIN, json=body)
    assert r.status_code == 200 and r.json()["kind"] == "staff", r.text
