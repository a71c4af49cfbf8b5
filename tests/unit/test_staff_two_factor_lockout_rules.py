"""Two-factor authentication mandatory for staff shuts no one out by mistake: while the
policy holds, a staff member cannot turn their own off (409 naming `two_factor`, before
the password is checked or counted; clients are not concerned), and only an
administrator who has it on makes it mandatory (409 naming `two_factor_required`).
The staff panel offers no form to turn it off then and says why, shows the policy's
refusal on the staff list with the way to set it up, and, while a member's setup is
pending, lists only their account in the menu."""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

import pytest
from werkzeug.test import EnvironBuilder

from contracts.errors import Conflict, InvalidCredentials
from gateway.web.client import security
from gateway.web.pages import FormErrors, PageCall, render
from services.customers.domain import StaffMember
from services.customers.staff_accounts import StaffAccountCommands
from services.customers.two_factor import TwoFactorCommands
from services.infra import context
from services.infra.context import Actor


def _member(two_factor: bool, role: str = "admin") -> StaffMember:
    member = StaffMember(
        username=f"m{uuid.uuid4().hex[:6]}",
        name="Sam",
        email=None,
        role=role,
        language="en",
        notify={},
    )
    if two_factor:
        member.enable_two_factor(recovery_codes=10)
    return member


class _Reached(Exception):
    """The command went on to the password (its login limits)."""


class _Customers(TwoFactorCommands, StaffAccountCommands):
    """The mixins with the application's parts they use, in memory."""

    def __init__(self, account=None, mandatory=False, staff=()):
        self.account, self.mandatory = account, mandatory
        self.staff = {m.id: m for m in staff}
        self.saved = []

    def _session_account(self, token, changing):
        return self.account

    def staff_policy(self):
        return {"two_factor_required": self.mandatory}

    def _reserve(self, keys, what=None):
        raise _Reached(keys)

    def get_staff(self, staff_id):
        from contracts.errors import NotFound

        if staff_id not in self.staff:
            raise NotFound("No such staff member.")
        return self.staff[staff_id]

    def _policy_or_none(self):
        return None

    def save(self, *aggregates, also=None):
        self.saved.extend(aggregates)


# -- turning one's own off -------------------------------------------------------------------


def test_a_staff_member_may_not_turn_theirs_off_while_it_is_mandatory():
    app = _Customers(_member(two_factor=True, role="support"), mandatory=True)
    with pytest.raises(Conflict) as refused:
        # a wrong password: never checked, nor counted (the login limits are not reached)
        app.disable_two_factor("token", "wrong", "123456", None)
    error = refused.value
    assert error.status == 409 and error.code == "conflict"
    assert "mandatory" in error.message and set(error.fields) == {"two_factor"}
    assert app.saved == []


@pytest.mark.parametrize(
    ("account", "mandatory"),
    [
        (_member(two_factor=True), False),  # a member, the policy off
        # a client's account (or its user's): the staff policy is not theirs
        (SimpleNamespace(id=uuid.uuid4(), two_factor=True), True),
    ],
)
def test_others_go_on_to_the_password(account, mandatory):
    app = _Customers(account, mandatory=mandatory)
    with pytest.raises(_Reached):
        app.disable_two_factor("token", "staff-password-1", "123456", None)


def test_one_that_is_off_is_still_told_so_first():
    app = _Customers(_member(two_factor=False), mandatory=True)
    with pytest.raises(Conflict) as refused:
        app.disable_two_factor("token", "x", "123456", None)
    assert refused.value.fields is None and "not on" in refused.value.message


# -- making it mandatory -------------------------------------------------------------------------


def _set_policy(app: _Customers, actor: Actor | None, required: bool):
    with context.acting(actor):
        return app.set_staff_policy(required)


def test_only_an_administrator_with_it_on_makes_it_mandatory():
    without, with_it = _member(two_factor=False), _member(two_factor=True)
    app = _Customers(staff=(without, with_it))
    for actor in (Actor("staff", str(without.id)), Actor("staff", str(uuid.uuid4())), None):
        with pytest.raises(Conflict) as refused:
            _set_policy(app, actor, True)
        error = refused.value
        assert error.status == 409 and set(error.fields) == {"two_factor_required"}
        assert error.message.startswith(
            "Set up two-factor authentication on your own account first"
        )
    assert app.saved == []
    _set_policy(app, Actor("staff", str(with_it.id)), True)
    assert [p.two_factor_required for p in app.saved] == [True]


def test_making_it_optional_needs_nothing_of_the_kind():
    without = _member(two_factor=False)
    app = _Customers(staff=(without,))
    _set_policy(app, Actor("staff", str(without.id)), False)
    assert [p.two_factor_required for p in app.saved] == [False]


# -- the staff panel -------------------------------------------------------------------------


STAFF = {"kind": "staff", "staff_id": "0" * 32, "role": "admin", "name": "Sam"}
ACCOUNT = {
    "id": "0" * 32,
    "username": "sam",
    "name": "Sam",
    "email": None,
    "role": "admin",
    "language": "en",
    "active": True,
    "notifications": {},
    "two_factor": True,
    "two_factor_required": True,
    "two_factor_setup_required": False,
}
ON = {"enabled": True, "pending": False, "recovery_codes_left": 10, "enabled_at": None}


def _page(template: str, language: str = "en", principal=STAFF, path="/staff/account", **context):
    return render(
        template,
        language,
        principal=principal,
        csrf_token="t",
        current_path=path,
        can=lambda route: True,
        filtered_customer=None,
        customer=None,
        **context,
    ).get_data(as_text=True)


def _account_page(account: dict, errors=None, language="en", **state) -> str:
    return _page(
        "staff/account.html",
        language,
        account=account,
        state=dict(ON, **state),
        enrolment=None,
        errors=errors or FormErrors(),
        notice=None,
        recovery_codes=None,
        roles={"admin": "Administrator"},
        notification_names={},
    )


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("language", ["en", "ru", "fr"])
def test_the_account_page_says_why_instead_of_offering_to_turn_it_off(language):
    from gateway.web import i18n

    t = i18n.translations(language)
    html = _account_page(ACCOUNT, language=language)
    assert "/staff/account/two-factor/disable" not in html
    english = (
        "Your administrator requires two-factor authentication for every staff member, so "
        "it cannot be turned off."
    )
    why = t.gettext(english)
    assert _text(why) in _text(html)  # French: a no-break space before its colon
    assert (why != english) is (language != "en")  # translated
    # few recovery codes left: not "turn it off and on again", which it cannot
    few = _text(_account_page(ACCOUNT, language=language, recovery_codes_left=2))
    assert (
        _text(
            t.gettext(
                "Few recovery codes are left: turn two-factor authentication off and on again "
                "to get new ones."
            )
        )
        not in few
    )
    assert t.gettext("Turn it off") not in few
    optional = _account_page(dict(ACCOUNT, two_factor_required=False), language=language)
    assert "/staff/account/two-factor/disable" in optional
    assert _text(why) not in _text(optional)


def test_the_staff_list_shows_the_policys_refusal_with_the_way_to_set_it_up():
    html = _page(
        "staff/staff_list.html",
        path="/staff/staff",
        members={"items": [], "total": 0, "page": 1, "page_size": 25},
        policy={"two_factor_required": False},
        roles={},
        notice=None,
        refusal="Set up two-factor authentication on your own account first.",
        set_up_url="/staff/account#two-factor",
    )
    alert = html[html.index('role="alert"') :]
    alert = alert[: alert.index("</div>")]
    assert "on your own account first" in alert
    assert 'href="/staff/account#two-factor"' in alert
    # another refusal (a change at the same moment) leads nowhere in particular
    html = _page(
        "staff/staff_list.html",
        path="/staff/staff",
        members={"items": [], "total": 0, "page": 1, "page_size": 25},
        policy={"two_factor_required": False},
        roles={},
        notice=None,
        refusal="Someone changed this at the same moment.",
        set_up_url=None,
    )
    alert = html[html.index('role="alert"') :]
    assert "/staff/account" not in alert[: alert.index("</div>")]


def _menu(html: str) -> list[str]:
    nav = html[html.index('<nav aria-label="Sections"') :]
    nav = nav[: nav.index("</nav>")]
    return re.findall(r'<a href="([^"]+)"', nav)


def test_while_setup_is_pending_the_menu_lists_only_the_account():
    pending = dict(STAFF, two_factor_setup_required=True)
    html = _account_page(dict(ACCOUNT, two_factor=False, two_factor_setup_required=True))
    assert len(_menu(html)) == 9  # every section for an administrator otherwise
    html = _page(
        "staff/account.html",
        principal=pending,
        account=dict(ACCOUNT, two_factor=False, two_factor_setup_required=True),
        state=dict(ON, enabled=False, recovery_codes_left=0),
        enrolment=None,
        errors=FormErrors(),
        notice=None,
        recovery_codes=None,
        roles={"admin": "Administrator"},
        notification_names={},
    )
    assert _menu(html) == ["/staff/account"]
    assert 'action="/staff/logout"' in html


# -- the disable step of the staff account page ---------------------------------------------


class _Refusing:
    def __init__(self, error):
        error_ = error

        class customers:
            @staticmethod
            def disable_two_factor(token, payload):
                raise error_

        self.customers = customers


def _disable(error, mandatory="Mandatory here."):
    request = EnvironBuilder(
        path="/staff/account/two-factor/disable",
        method="POST",
        data={"password": "pw", "code": "123456"},
    ).get_request()
    call = PageCall(request=request, services=_Refusing(error))
    call.language = "en"
    shown = {}

    def show(call, errors, status=200, **_):
        shown.update(errors=errors, status=status)
        return "shown"

    answer = security.disable(call, show, "/staff/account", "two_factor_off", mandatory)
    return answer, shown


def test_the_refusal_is_shown_on_the_page_and_other_conflicts_lead_back():
    answer, shown = _disable(Conflict("Mandatory.", {"two_factor": ["Mandatory."]}))
    assert answer == "shown" and shown["status"] == 409
    assert shown["errors"] == {"_form": ["Mandatory here."]}
    answer, shown = _disable(Conflict("Two-factor authentication is not on."))
    assert shown == {} and answer.status_code == 303
    assert answer.headers["Location"] == "/staff/account"
    # the client area's page passes no such message: it leads back, as before
    answer, shown = _disable(Conflict("Mandatory.", {"two_factor": ["Mandatory."]}), None)
    assert shown == {} and answer.status_code == 303
    answer, shown = _disable(
        InvalidCredentials("The password is wrong.", {"password": ["Not it."]})
    )
    assert shown["status"] == 400
