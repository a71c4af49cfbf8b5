"""Logging in and out of the client area, and a forgotten password.

The same customers-service commands as `/api/v1/auth/*`: `login`, `logout`,
`request_password_reset` and `confirm_password_reset`. The reset link that mail
carries is `<HOSTLEDGER_PUBLIC_URL>/reset-password?token=...`.

An account with two-factor authentication on logs in in two steps: the password on
/login, whose answer is then a short-lived challenge (kept in the HttpOnly cookie
`hostledger_login`, never the password), and the app's code, or a recovery code, on
/login/code (`login_second_step`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.errors import (
    InvalidCredentials,
    RateLimited,
    TwoFactorRequired,
    Unauthorized,
    ValidationFailed,
)
from gateway.web.pages import (
    HOME_URL,
    LOGIN_URL,
    STAFF_HOME_URL,
    FormErrors,
    PageCall,
    page,
    safe_next,
)

# the new password's bounds, as contracts.customers.PasswordResetConfirm has them
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# the second step of a login with two-factor authentication, and its challenge's cookie
CODE_URL = "/login/code"
CHALLENGE_COOKIE = "hostledger_login"
# an app's code as typed (spaces or a dash between the digits), and a recovery code's bound
OTP_TYPED = re.compile(r"^[0-9]{3}[\s-]?[0-9]{3}$")
RECOVERY_MAX = 64


@dataclass(frozen=True)
class Area:
    """Where a login leads: the client area at `/`, or the staff panel at `/staff/` (the
    same pages and steps under its prefix, for the other kind of account)."""

    kind: str
    prefix: str
    home: str

    @property
    def login(self) -> str:
        return f"{self.prefix}{LOGIN_URL}"

    @property
    def code(self) -> str:
        return f"{self.prefix}{CODE_URL}"


CLIENT = Area("client", "", HOME_URL)
STAFF = Area("staff", "/staff", STAFF_HOME_URL)


class AuthPages:
    """Mixed into GatewayService."""

    @page("GET", "/")
    def web_home(self, call: PageCall):
        """Where `make run`'s address leads: the dashboard, or the login page first."""
        kind = (call.principal or {}).get("kind")
        if kind == "staff":
            return call.redirect(STAFF_HOME_URL)
        return call.redirect(HOME_URL if kind == "client" else LOGIN_URL)

    @page("GET", LOGIN_URL)
    def web_login_page(self, call: PageCall):
        return login_page(call, CLIENT)

    @page("POST", LOGIN_URL)
    def web_login(self, call: PageCall):
        return login(call, CLIENT)

    @page("GET", CODE_URL)
    def web_login_code_page(self, call: PageCall):
        return login_code_page(call, CLIENT)

    @page("POST", CODE_URL)
    def web_login_code(self, call: PageCall):
        return login_code(call, CLIENT)

    @page("POST", "/logout")
    def web_logout(self, call: PageCall):
        return logout(call, CLIENT)

    @page("GET", "/forgot-password")
    def web_forgot_password_page(self, call: PageCall):
        return forgot_password_page(call, CLIENT)

    @page("POST", "/forgot-password")
    def web_forgot_password(self, call: PageCall):
        return forgot_password(call, CLIENT)

    @page("GET", "/reset-password")
    def web_reset_password_page(self, call: PageCall):
        return reset_password_page(call, CLIENT)

    @page("POST", "/reset-password")
    def web_reset_password(self, call: PageCall):
        return reset_password(call, CLIENT)


# -- each step, for either area ---------------------------------------------------------------


def login_page(call: PageCall, area: Area):
    if call.principal is not None and call.principal["kind"] == area.kind:
        return call.redirect(safe_next(call.request.args.get("next")) or area.home)
    notice = {
        "logged_out": call.gettext("You have logged out."),
        "password_set": call.gettext("Your new password is set: log in with it."),
    }.get(call.request.args.get("done", ""))
    return _login_form(call, area, {"username": ""}, FormErrors(), notice=notice)


def login(call: PageCall, area: Area):
    values, errors = call.form("username", "password", "next")
    if not values["username"]:
        errors.add("username", call.gettext("Enter your username or e-mail."))
    if not values["password"]:
        errors.add("password", call.gettext("Enter your password."))
    if errors:
        return _login_form(call, area, values, errors, status=400)
    credentials = {"username": values["username"], "password": values["password"]}
    try:
        session = call.services.customers.login(credentials, call.address, True)
    except InvalidCredentials:
        errors.add("password", call.gettext("The username or password is wrong."))
        return _login_form(call, area, values, errors, status=400)
    except RateLimited as exc:
        errors.add("_form", _try_later(call, exc))
        return _login_form(call, area, values, errors, status=429)
    except TwoFactorRequired as exc:
        # the password was right: the code is asked for on a page of its own
        call.cookies[CHALLENGE_COOKIE] = exc.challenge
        return call.redirect(area.code, **_next_query(values["next"]))
    except Unauthorized:
        errors.add("_form", call.gettext("This account cannot log in here yet."))
        return _login_form(call, area, values, errors, status=400)
    except ValidationFailed:
        errors.add("username", call.gettext("Enter your username or e-mail."))
        return _login_form(call, area, values, errors, status=400)
    return _start_session(call, area, session, values)


# -- the second step: two-factor authentication's code ----------------------------------------


def login_code_page(call: PageCall, area: Area):
    if not call.request.cookies.get(CHALLENGE_COOKIE):
        return call.redirect(area.login, **_next_query(call.request.args.get("next")))
    recovery = call.request.args.get("method") == "recovery"
    return _code_form(call, area, recovery, {}, FormErrors())


def login_code(call: PageCall, area: Area):
    values, errors = call.form("otp", "recovery_code", "method", "next")
    recovery = values["method"] == "recovery"
    challenge = call.request.cookies.get(CHALLENGE_COOKIE) or ""
    if recovery:
        code = values["recovery_code"]
        if not code:
            errors.add("recovery_code", call.gettext("Enter one of your recovery codes."))
        elif len(code) > RECOVERY_MAX:
            errors.add(
                "recovery_code",
                call.gettext("At most %(max)d characters.", max=RECOVERY_MAX),
            )
        payload = {"recovery_code": code}
    else:
        if not OTP_TYPED.match(values["otp"]):
            errors.add("otp", call.gettext("Enter the 6 digits your app shows."))
        payload = {"otp": values["otp"]}
    if errors:
        return _code_form(call, area, recovery, values, errors, status=400)
    field = "recovery_code" if recovery else "otp"
    try:
        session = call.services.customers.login_second_step(challenge, payload, call.address)
    except InvalidCredentials:
        errors.add(field, _wrong_code(call, recovery))
        return _code_form(call, area, recovery, values, errors, status=400)
    except RateLimited as exc:
        errors.add("_form", _try_later(call, exc))
        return _code_form(call, area, recovery, values, errors, status=429)
    except ValidationFailed:
        errors.add(field, _wrong_code(call, recovery))
        return _code_form(call, area, recovery, values, errors, status=400)
    except Unauthorized:
        # expired, used, or too many wrong codes: the password again
        call.cookies[CHALLENGE_COOKIE] = None
        errors.add(
            "_form",
            call.gettext(
                "Too much time has passed since you gave your password, or too many "
                "codes were wrong: log in again."
            ),
        )
        return _login_form(call, area, {"username": "", "next": values["next"]}, errors, 400)
    call.cookies[CHALLENGE_COOKIE] = None
    return _start_session(call, area, session, {"username": "", "next": values["next"]})


def logout(call: PageCall, area: Area):
    if call.token is not None:
        try:
            call.services.customers.logout(call.token)
        except Unauthorized:
            pass  # already ended
    call.end_session()
    return call.redirect(area.login, done="logged_out")


# -- a forgotten password -----------------------------------------------------------------


def forgot_password_page(call: PageCall, area: Area):
    sent = call.request.args.get("sent") == "1"
    return call.render(
        "client/forgot_password.html",
        prefix=area.prefix,
        values={"login": ""},
        errors=FormErrors(),
        sent=sent,
    )


def forgot_password(call: PageCall, area: Area):
    values, errors = call.form("login")
    login = values["login"]
    if not login:
        errors.add("login", call.gettext("Enter your username or e-mail."))
    elif len(login) > 254:
        errors.add("login", call.gettext("At most 254 characters."))
    if not errors:
        # the answer is the same whether such an account exists or not
        asked = {"email": login} if "@" in login else {"username": login}
        try:
            call.services.customers.request_password_reset(asked, call.address)
        except RateLimited as exc:
            errors.add("_form", _try_later(call, exc))
            return _forgot_form(call, area, values, errors, status=429)
        except ValidationFailed:
            errors.add("login", call.gettext("This is not a valid e-mail address."))
    if errors:
        return _forgot_form(call, area, values, errors, status=400)
    return call.redirect(f"{area.prefix}/forgot-password", sent="1")


def reset_password_page(call: PageCall, area: Area):
    token = call.request.args.get("token", "")
    return _reset_form(call, area, token, FormErrors())


def reset_password(call: PageCall, area: Area):
    values, errors = call.form("token", "new_password", "confirm_password")
    password = values["new_password"]
    if len(password) < PASSWORD_MIN:
        errors.add(
            "new_password",
            call.gettext("At least %(min)d characters.", min=PASSWORD_MIN),
        )
    elif len(password) > PASSWORD_MAX:
        errors.add("new_password", call.gettext("At most %(max)d characters.", max=PASSWORD_MAX))
    if values["confirm_password"] != password:
        errors.add("confirm_password", call.gettext("The two passwords differ."))
    if errors:
        return _reset_form(call, area, values["token"], errors, status=400)
    try:
        call.services.customers.confirm_password_reset(
            {"token": values["token"], "new_password": password}
        )
    except ValidationFailed as exc:
        if "new_password" in (exc.fields or {}):
            errors.add("new_password", call.gettext("Choose another password."))
        else:  # the token: used, expired or never sent
            errors.add("_form", _link_invalid(call))
        return _reset_form(call, area, values["token"], errors, status=400)
    # every session of the account ended, this browser's too
    call.end_session()
    return call.redirect(area.login, done="password_set")


def _login_form(
    call: PageCall,
    area: Area,
    values: dict,
    errors: FormErrors,
    status: int = 200,
    notice: str | None = None,
):
    return call.render(
        "client/login.html",
        status=status,
        prefix=area.prefix,
        values=values,
        errors=errors,
        notice=notice,
        next=safe_next(values.get("next") or call.request.args.get("next")) or "",
    )


def _start_session(call: PageCall, area: Area, session: dict, values: dict):
    """The browser logs in with `session`, when it is of the area's kind."""
    if session["kind"] != area.kind:
        call.services.customers.logout(session["token"])
        if area.kind == "client":
            message = call.gettext("This is a staff account: staff log in to the staff panel.")
        else:
            message = call.gettext("This is a client account: log in to the client area.")
        errors = FormErrors().add("username", message)
        return _login_form(call, area, values, errors, status=400)
    call.start_session(session["token"])
    return call.redirect(safe_next(values.get("next")) or area.home)


def _next_query(url: str | None) -> dict:
    """`next=` to carry to the next step, when it is a page of this site."""
    target = safe_next(url)
    return {"next": target} if target else {}


def _code_form(
    call: PageCall,
    area: Area,
    recovery: bool,
    values: dict,
    errors: FormErrors,
    status: int = 200,
):
    return call.render(
        "client/login_otp.html",
        status=status,
        prefix=area.prefix,
        recovery=recovery,
        errors=errors,
        next=safe_next(values.get("next") or call.request.args.get("next")) or "",
    )


def _wrong_code(call: PageCall, recovery: bool) -> str:
    if recovery:
        return call.gettext("This recovery code is wrong or was used already.")
    return call.gettext(
        "This code is wrong or was used already. Check that your phone's time is right, "
        "and enter the newest code."
    )


def _forgot_form(call: PageCall, area: Area, values: dict, errors: FormErrors, status: int):
    return call.render(
        "client/forgot_password.html",
        status=status,
        prefix=area.prefix,
        values=values,
        errors=errors,
        sent=False,
    )


def _reset_form(call: PageCall, area: Area, token: str, errors: FormErrors, status: int = 200):
    if not token:
        errors.add("_form", _link_invalid(call))
    return call.render(
        "client/reset_password.html",
        status=status,
        prefix=area.prefix,
        token=token,
        errors=errors,
        minimum=PASSWORD_MIN,
    )


def _link_invalid(call: PageCall) -> str:
    return call.gettext(
        "This link is not valid any more: it was used already, it expired, or it is "
        "incomplete. Ask for a new one."
    )


def _try_later(call: PageCall, exc: RateLimited) -> str:
    seconds = int(getattr(exc, "retry_after", None) or exc.default_retry_after)
    minutes = max(1, -(-seconds // 60))
    return call.ngettext(
        "Too many attempts. Try again in %(num)d minute.",
        "Too many attempts. Try again in %(num)d minutes.",
        minutes,
    )
