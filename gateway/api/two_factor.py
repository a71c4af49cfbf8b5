"""Two-factor authentication (TOTP, RFC 6238) of the logged-in client, client's user or
staff member, and staff's reset of a client's (services/customers/two_factor.py).

    GET  /api/v1/auth/2fa            on or off, recovery codes left
    POST /api/v1/auth/2fa/enrol      a new secret: its otpauth:// address and QR code
    POST /api/v1/auth/2fa/confirm    {"otp"}: on; answers the recovery codes, once
    POST /api/v1/auth/2fa/disable    {"password", "otp" | "recovery_code"}: off
    POST /api/v1/staff/customers/{id}/2fa/reset   {"reason", "user_id"?}: staff turn it off

Once it is on, `POST /api/v1/auth/login` needs `otp` (or `recovery_code`) beside the
password: without it, 401 `two_factor_required`.
"""

from __future__ import annotations

from contracts import customers as contract
from gateway.api.common import ALL_STAFF, jsonable
from gateway.http import Call, route
from gateway.schemas import (
    TwoFactorEnabled,
    TwoFactorEnrolment,
    TwoFactorOff,
    TwoFactorResetDone,
    TwoFactorStatus,
)

# what the status answer shows (the page's own call also gets a pending enrolment)
STATUS_FIELDS = ("enabled", "pending", "recovery_codes_left", "enabled_at")


class TwoFactorRoutes:
    """Mixed into GatewayService. Every staff role protects its own login (auditors too:
    it changes nothing but how they log in)."""

    @route(
        "GET",
        "/api/v1/auth/2fa",
        client=True,
        roles=ALL_STAFF,
        response=TwoFactorStatus,
        tags=("auth",),
        summary="whether two-factor authentication is on for the logged-in account",
    )
    def two_factor_status(self, call: Call):
        answer = call.services.customers.two_factor_status(call.token)
        return {k: answer[k] for k in STATUS_FIELDS}

    @route(
        "POST",
        "/api/v1/auth/2fa/enrol",
        client=True,
        roles=ALL_STAFF,
        response=TwoFactorEnrolment,
        tags=("auth",),
        summary="a new TOTP secret to scan (QR code) or type in; on once confirmed "
        "(enrolling again replaces one not confirmed yet; 409 while it is on)",
    )
    def two_factor_enrol(self, call: Call):
        return call.services.customers.enrol_two_factor(call.token)

    @route(
        "POST",
        "/api/v1/auth/2fa/confirm",
        body=contract.TwoFactorConfirm,
        client=True,
        roles=ALL_STAFF,
        response=TwoFactorEnabled,
        tags=("auth",),
        summary="turn two-factor authentication on with a current code; answers the "
        "one-time recovery codes, shown this once (a wrong code: 400, counted as a "
        "wrong password)",
    )
    def two_factor_confirm(self, call: Call):
        return call.services.customers.confirm_two_factor(call.token, jsonable(call.body))

    @route(
        "POST",
        "/api/v1/auth/2fa/disable",
        body=contract.TwoFactorDisable,
        client=True,
        roles=ALL_STAFF,
        response=TwoFactorOff,
        tags=("auth",),
        summary="turn two-factor authentication off with the password and a current "
        "code (or a recovery code); wrong ones: 401 invalid_credentials, counted. A staff "
        "member's while the staff policy makes it mandatory: 409 naming `two_factor`",
    )
    def two_factor_disable(self, call: Call):
        return call.services.customers.disable_two_factor(call.token, jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/2fa/reset",
        body=contract.TwoFactorReset,
        roles=("admin", "support"),
        response=TwoFactorResetDone,
        tags=("customers",),
        summary="turn off a client's two-factor authentication (a lost phone), or that "
        "of one of its users (`user_id`); recorded with who and why; 409 when it is off",
    )
    def two_factor_reset(self, call: Call):
        return call.services.customers.reset_two_factor(
            str(call.path["customer_id"]), jsonable(call.body)
        )
