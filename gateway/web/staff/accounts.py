"""Staff accounts (administrators) and each staff member's own account.

    /staff/staff                  the staff, and whether two-factor authentication is
                                  mandatory for them (the staff's login policy)
    /staff/staff/new              a new member: no password is typed here; the member gets
                                  a link by mail to set one
    /staff/staff/<id>             one member: change the role, send a password reset link,
                                  disable (every session of theirs ends at once)
    /staff/account                one's own: password, language and notifications,
                                  two-factor authentication
    POST /staff/customers/<id>/password-reset   a client's reset link (from its card)

Staff never see or set another person's password. The same customers-service commands
as the API routes each page names in `staff=`.
"""

from __future__ import annotations

from contracts.customers import LANGUAGES, STAFF_NOTIFICATION_KINDS, STAFF_ROLES
from contracts.errors import (
    Conflict,
    InvalidCredentials,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from gateway.web.client import security as two_factor
from gateway.web.client.auth import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    _try_later,
)
from gateway.web.i18n import N_
from gateway.web.pages import STAFF_ACCOUNT_URL, FormErrors, PageCall, page

LIST = "GET /api/v1/staff/staff"
CREATE = "POST /api/v1/staff/staff"
EDIT = "PATCH /api/v1/staff/staff/<uuid:staff_id>"
DISABLE = "POST /api/v1/staff/staff/<uuid:staff_id>/disable"
RESET = "POST /api/v1/staff/staff/<uuid:staff_id>/password-reset"
CUSTOMER_RESET = "POST /api/v1/staff/customers/<uuid:customer_id>/password-reset"
POLICY = "PUT /api/v1/staff/staff-policy"
OWN = "GET /api/v1/staff/account"
OWN_EDIT = "PATCH /api/v1/staff/account"
OWN_LOGIN = "POST /api/v1/staff/account/password"
ENROL = "POST /api/v1/auth/2fa/enrol"
CONFIRM = "POST /api/v1/auth/2fa/confirm"
DISABLE_2FA = "POST /api/v1/auth/2fa/disable"

ACCOUNT_URL = STAFF_ACCOUNT_URL
USERNAME_RULE = N_("3 to 64 letters, digits and . _ @ + -")
# why one's own two-factor authentication stays on (the account page says it too)
MANDATORY = N_(
    "Your administrator requires two-factor authentication for every staff member, so "
    "it cannot be turned off."
)

# the words a role and a notification are shown with (translated in the templates)
ROLE_NAMES = {
    "admin": N_("Administrator"),
    "support": N_("Support"),
    "billing": N_("Billing"),
    "auditor": N_("Auditor"),
}
NOTIFICATION_NAMES = {
    "new_ticket": N_("A new ticket in my departments"),
    "ticket_reply": N_("A client's reply to a ticket"),
    "abuse_deadline": N_("An abuse notice's deadline has passed"),
}


class StaffAccountPages:
    """Mixed into GatewayService."""

    # -- the staff (administrators) --------------------------------------------------------

    @page("GET", "/staff/staff", staff=LIST)
    def web_staff_list(self, call: PageCall):
        notice = {
            "policy_on": call.gettext("Two-factor authentication is now mandatory for staff."),
            "policy_off": call.gettext("Two-factor authentication is now each member's choice."),
        }.get(call.request.args.get("done", ""))
        return _list_page(call, notice=notice)

    @page("POST", "/staff/staff/policy", staff=POLICY)
    def web_staff_policy(self, call: PageCall):
        """Mandatory or not. Making it mandatory needs the administrator's own on: else
        the list says so (with the way to their account page), and nothing changes."""
        required = call.request.form.get("two_factor_required") == "1"
        try:
            call.services.customers.set_staff_policy({"two_factor_required": required})
        except Conflict as exc:
            if "two_factor_required" in (exc.fields or {}):
                refusal = call.gettext(
                    "Set up two-factor authentication on your own account first: once it "
                    "is mandatory, a member without it can do nothing else in the staff "
                    "panel, this setting included."
                )
                return _list_page(call, refusal=refusal, set_up_first=True, status=409)
            refusal = call.gettext("Someone changed this at the same moment.")
            return _list_page(call, refusal=refusal, status=409)
        return call.redirect("/staff/staff", done="policy_on" if required else "policy_off")

    @page("GET", "/staff/staff/new", staff=CREATE)
    def web_staff_new(self, call: PageCall):
        values = {"username": "", "name": "", "email": "", "role": "support", "language": ""}
        return _new_form(call, values, FormErrors())

    @page("POST", "/staff/staff/new", staff=CREATE)
    def web_staff_create(self, call: PageCall):
        values, errors = call.form("username", "name", "email", "role", "language")
        for name, message in (
            ("username", N_("Enter a username.")),
            ("name", N_("Enter the member's name.")),
            ("email", N_("Enter an e-mail address: the link to set a password goes there.")),
        ):
            if not values[name] and name not in errors:
                errors.add(name, call.gettext(message))
        if values["role"] not in STAFF_ROLES:
            errors.add("role", call.gettext("Choose a role."))
        if values["language"] not in LANGUAGES:
            errors.add("language", call.gettext("Choose a language."))
        if errors:
            return _new_form(call, values, errors, status=400)
        payload = dict(values, invite=True)
        try:
            member = call.services.customers.register_staff(payload)
        except Conflict as exc:
            if "username" in (exc.fields or {}):
                errors.add("username", call.gettext("This username is taken."))
            else:
                errors.add("_form", call.gettext("Someone changed this at the same moment."))
            return _new_form(call, values, errors, status=409)
        except ValidationFailed as exc:
            messages = {"username": USERNAME_RULE}
            return _new_form(call, values, call.service_errors(exc, messages=messages), 400)
        return call.redirect(f"/staff/staff/{member['id']}", done="invited")

    @page("GET", "/staff/staff/<uuid:staff_id>", staff=LIST)
    def web_staff_member(self, call: PageCall):
        notice = {
            "invited": call.gettext(
                "The member is added. A link to set a password was mailed to them."
            ),
            "role": call.gettext("The role is changed."),
            "reset_sent": call.gettext("A link to set a new password was mailed."),
            "disabled": call.gettext(
                "The member is disabled: they can no longer log in, and their sessions ended."
            ),
        }.get(call.request.args.get("done", ""))
        return _member_page(call, FormErrors(), notice=notice)

    @page("POST", "/staff/staff/<uuid:staff_id>/role", staff=EDIT)
    def web_staff_role(self, call: PageCall):
        values, errors = call.form("role")
        if values["role"] not in STAFF_ROLES:
            errors.add("role", call.gettext("Choose a role."))
            return _member_page(call, errors, status=400)
        try:
            call.services.customers.edit_staff(_member_id(call), {"role": values["role"]})
        except Conflict:
            errors.add(
                "role",
                call.gettext("This is the last active administrator: make another one first."),
            )
            return _member_page(call, errors, status=409)
        return call.redirect(f"/staff/staff/{_member_id(call)}", done="role")

    @page("POST", "/staff/staff/<uuid:staff_id>/password-reset", staff=RESET)
    def web_staff_password_reset(self, call: PageCall):
        errors = FormErrors()
        try:
            call.services.customers.send_staff_password_reset(_member_id(call))
        except Conflict:
            errors.add(
                "_form",
                call.gettext(
                    "This member has no e-mail address, or is disabled: no link can be sent."
                ),
            )
            return _member_page(call, errors, status=409)
        except RateLimited as exc:
            errors.add("_form", _try_later(call, exc))
            return _member_page(call, errors, status=429)
        return call.redirect(f"/staff/staff/{_member_id(call)}", done="reset_sent")

    @page("POST", "/staff/staff/<uuid:staff_id>/disable", staff=DISABLE)
    def web_staff_disable(self, call: PageCall):
        errors = FormErrors()
        try:
            call.services.customers.disable_staff(_member_id(call), {})
        except Conflict:
            errors.add(
                "_form",
                call.gettext("This is the last active administrator: make another one first."),
            )
            return _member_page(call, errors, status=409)
        return call.redirect(f"/staff/staff/{_member_id(call)}", done="disabled")

    # -- a client's reset link (the customer card's button) ----------------------------------

    @page("POST", "/staff/customers/<uuid:customer_id>/password-reset", staff=CUSTOMER_RESET)
    def web_staff_customer_password_reset(self, call: PageCall):
        """Mail the client its reset link; back to its card with ?done=reset_sent (or
        ?done=reset_not_sent when it had too many a moment ago, has no address a link
        could go to, or was deleted meanwhile)."""
        customer_id = str(call.path["customer_id"])
        try:
            call.services.customers.send_customer_password_reset(customer_id)
        except (RateLimited, Conflict, NotFound):
            return call.redirect(f"/staff/customers/{customer_id}", done="reset_not_sent")
        return call.redirect(f"/staff/customers/{customer_id}", done="reset_sent")

    # -- one's own account -----------------------------------------------------------------

    @page("GET", ACCOUNT_URL, staff=OWN)
    def web_staff_account(self, call: PageCall):
        notice = {
            "password": call.gettext("Your password is changed. Your other sessions ended."),
            "preferences": call.gettext("Your preferences are saved."),
            "two_factor_off": call.gettext("Two-factor authentication is off."),
        }.get(call.request.args.get("done", ""))
        return _account_page(call, FormErrors(), notice=notice)

    @page("POST", ACCOUNT_URL + "/password", staff=OWN_LOGIN)
    def web_staff_account_password(self, call: PageCall):
        values, errors = call.form("current_password", "new_password", "confirm_password")
        new = values["new_password"]
        if not values["current_password"]:
            errors.add("current_password", call.gettext("Enter your current password."))
        if len(new) < PASSWORD_MIN:
            errors.add(
                "new_password", call.gettext("At least %(min)d characters.", min=PASSWORD_MIN)
            )
        elif len(new) > PASSWORD_MAX:
            errors.add(
                "new_password", call.gettext("At most %(max)d characters.", max=PASSWORD_MAX)
            )
        if values["confirm_password"] != new:
            errors.add("confirm_password", call.gettext("The two passwords differ."))
        if errors:
            return _account_page(call, errors, status=400)
        payload = {"current_password": values["current_password"], "new_password": new}
        try:
            call.services.customers.change_staff_password(call.staff_id, payload, call.token)
        except InvalidCredentials:
            errors.add("current_password", call.gettext("The current password is wrong."))
            return _account_page(call, errors, status=400)
        except RateLimited as exc:
            errors.add("_form", _try_later(call, exc))
            return _account_page(call, errors, status=429)
        except ValidationFailed as exc:
            return _account_page(call, call.service_errors(exc, errors), status=400)
        return call.redirect(ACCOUNT_URL, done="password")

    @page("POST", ACCOUNT_URL + "/preferences", staff=OWN_EDIT)
    def web_staff_account_preferences(self, call: PageCall):
        values, errors = call.form("language")
        if values["language"] not in LANGUAGES:
            errors.add("language", call.gettext("Choose a language."))
            return _account_page(call, errors, status=400)
        chosen = set(call.request.form.getlist("notify"))
        payload = {
            "language": values["language"],
            "notifications": {kind: kind in chosen for kind in STAFF_NOTIFICATION_KINDS},
        }
        call.services.customers.edit_own_staff_account(call.staff_id, payload)
        return call.redirect(ACCOUNT_URL, done="preferences")

    @page("POST", ACCOUNT_URL + "/two-factor/enrol", staff=ENROL)
    def web_staff_account_enrol(self, call: PageCall):
        return two_factor.enrol(call, ACCOUNT_URL + "#two-factor")

    @page("POST", ACCOUNT_URL + "/two-factor/confirm", staff=CONFIRM)
    def web_staff_account_confirm(self, call: PageCall):
        return two_factor.confirm(call, _account_page, ACCOUNT_URL)

    @page("POST", ACCOUNT_URL + "/two-factor/disable", staff=DISABLE_2FA)
    def web_staff_account_two_factor_off(self, call: PageCall):
        """Refused while the staff policy makes it mandatory (the page then offers no
        such form, but one opened before may still be sent): the page says why."""
        return two_factor.disable(
            call, _account_page, ACCOUNT_URL, "two_factor_off", mandatory=call.gettext(MANDATORY)
        )


def _member_id(call: PageCall) -> str:
    return str(call.path["staff_id"])


def _list_page(
    call: PageCall, notice=None, refusal=None, set_up_first: bool = False, status: int = 200
):
    """The staff and the policy; `refusal`: why the policy was not changed (with
    `set_up_first`, a link to where the administrator sets up their own two-factor
    authentication)."""
    number, size = call.page_args()
    s = call.services.customers
    members = s.list_kind.call_async("staff", number, size)
    policy = s.staff_policy.call_async() if call.can(POLICY) else None
    return call.render(
        "staff/staff_list.html",
        status=status,
        members=members.result(),
        policy=policy.result() if policy else None,
        roles=ROLE_NAMES,
        notice=notice,
        refusal=refusal,
        set_up_url=ACCOUNT_URL + "#two-factor" if set_up_first else None,
    )


def _new_form(call: PageCall, values: dict, errors: FormErrors, status: int = 200):
    return call.render(
        "staff/staff_new.html",
        status=status,
        values=values,
        errors=errors,
        roles=ROLE_NAMES,
        username_rule=USERNAME_RULE,
    )


def _member_page(call: PageCall, errors: FormErrors, status: int = 200, notice=None):
    found = call.services.customers.staff_members([_member_id(call)])
    if not found:
        raise NotFound("No such staff member.")
    return call.render(
        "staff/staff_member.html",
        status=status,
        member=found[0],
        errors=errors,
        notice=notice,
        roles=ROLE_NAMES,
        notification_names=NOTIFICATION_NAMES,
        is_self=found[0]["id"] == call.staff_id,
    )


def _account_page(
    call: PageCall,
    errors: FormErrors,
    status: int = 200,
    notice: str | None = None,
    recovery_codes: list[str] | None = None,
):
    s = call.services.customers
    account = s.staff_account.call_async(call.staff_id)
    state = s.two_factor_status.call_async(call.token, True)
    state = state.result()
    return call.render(
        "staff/account.html",
        status=status,
        account=account.result(),
        state=state,
        enrolment=state.get("enrolment"),
        errors=errors,
        notice=notice,
        recovery_codes=recovery_codes,
        roles=ROLE_NAMES,
        notification_names=NOTIFICATION_NAMES,
    )
