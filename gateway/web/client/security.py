"""/settings/security: two-factor authentication (TOTP) of the person logged in (the
account's owner, or one of its users: each protects its own login).

    GET  /settings/security           on or off; while enrolling, the QR code and the key
    POST /settings/security/enrol     a new secret to scan (then the page above shows it)
    POST /settings/security/confirm   a current code turns it on: the recovery codes are
                                      shown in the answer, this once
    POST /settings/security/disable   the password and a code (or a recovery code)

The customers service's `two_factor_status`, `enrol_two_factor`, `confirm_two_factor`
and `disable_two_factor`, as `/api/v1/auth/2fa/*` call them. Staff acting in a client's
area see whether it is on and change nothing.
"""

from __future__ import annotations

from contracts.errors import Conflict, InvalidCredentials, RateLimited, ValidationFailed
from gateway.web.client.auth import OTP_TYPED, PASSWORD_MAX, RECOVERY_MAX, _try_later
from gateway.web.pages import FormErrors, PageCall, page

SECURITY_URL = "/settings/security"


class SecurityPages:
    """Mixed into GatewayService."""

    @page("GET", SECURITY_URL, client=True)
    def web_security(self, call: PageCall):
        notice = {
            "enabled": call.gettext("Two-factor authentication is on."),
            "disabled": call.gettext("Two-factor authentication is off."),
        }.get(call.request.args.get("done", ""))
        return _security_page(call, FormErrors(), notice=notice)

    @page("POST", SECURITY_URL + "/enrol", client=True)
    def web_security_enrol(self, call: PageCall):
        return enrol(call, SECURITY_URL)

    @page("POST", SECURITY_URL + "/confirm", client=True)
    def web_security_confirm(self, call: PageCall):
        return confirm(call, _security_page, SECURITY_URL)

    @page("POST", SECURITY_URL + "/disable", client=True)
    def web_security_disable(self, call: PageCall):
        return disable(call, _security_page, SECURITY_URL, "disabled")


# -- each step, for the client area and the staff panel's own account --------------------
# `show(call, errors, status=..., recovery_codes=...)` renders the area's page; `back` is
# where a step that shows nothing new goes.


def enrol(call: PageCall, back: str):
    try:
        call.services.customers.enrol_two_factor(call.token)
    except Conflict:
        pass  # it is on already (another tab): the page says so
    return call.redirect(back)


def confirm(call: PageCall, show, back: str):
    values, errors = call.form("otp")
    if not OTP_TYPED.match(values["otp"]):
        errors.add("otp", call.gettext("Enter the 6 digits your app shows."))
        return show(call, errors, status=400)
    try:
        answer = call.services.customers.confirm_two_factor(call.token, {"otp": values["otp"]})
    except ValidationFailed:
        errors.add(
            "otp",
            call.gettext(
                "This is not the code your app shows now. Check that your phone's time "
                "is right, and enter the newest code."
            ),
        )
        return show(call, errors, status=400)
    except RateLimited as exc:
        errors.add("_form", _try_later(call, exc))
        return show(call, errors, status=429)
    except Conflict:
        return call.redirect(back)  # turned on or off meanwhile
    # shown this once: the answer is the page itself, not a redirect to one
    return show(call, FormErrors(), recovery_codes=answer["recovery_codes"])


def disable(call: PageCall, show, back: str, done: str, mandatory: str | None = None):
    """`mandatory`: what the page says when the account may not turn it off (a staff
    member's, while the staff policy makes it mandatory); else that refusal leads back."""
    values, errors = call.form("password", "code")
    code = values["code"]
    if not values["password"]:
        errors.add("password", call.gettext("Enter your password."))
    elif len(values["password"]) > PASSWORD_MAX:
        errors.add("password", call.gettext("The password is wrong."))
    if not code:
        errors.add("code", call.gettext("Enter the code from the app or a recovery code."))
    elif len(code) > RECOVERY_MAX:
        errors.add("code", call.gettext("At most %(max)d characters.", max=RECOVERY_MAX))
    if errors:
        return show(call, errors, status=400)
    payload = {"password": values["password"], "otp": code}
    try:
        call.services.customers.disable_two_factor(call.token, payload)
    except InvalidCredentials as exc:
        if "password" in (exc.fields or {}):
            errors.add("password", call.gettext("The password is wrong."))
        else:
            errors.add("code", call.gettext("This code is wrong, too old, or was used already."))
        return show(call, errors, status=400)
    except RateLimited as exc:
        errors.add("_form", _try_later(call, exc))
        return show(call, errors, status=429)
    except Conflict as exc:
        if mandatory and "two_factor" in (exc.fields or {}):
            errors.add("_form", mandatory)
            return show(call, errors, status=409)
        return call.redirect(back)  # off already, or it may not be
    return call.redirect(back, done=done)


def _security_page(
    call: PageCall,
    errors: FormErrors,
    status: int = 200,
    notice: str | None = None,
    recovery_codes: list[str] | None = None,
):
    state = call.services.customers.two_factor_status(call.token, True)
    return call.render(
        "client/settings_security.html",
        status=status,
        state=state,
        enrolment=state.get("enrolment"),
        errors=errors,
        notice=notice,
        recovery_codes=recovery_codes,
        acting=bool(call.principal and call.principal.get("impersonator")),
    )
