"""Two-factor authentication made mandatory for staff, as the gateway enforces it: a member
who has not set it up reaches only setting it up, who am I, their own account and the
way out, in the API and in the staff panel alike (the panel's pages follow the routes
they name); a client's area entered by such a member is refused too."""

import pytest
from werkzeug.test import EnvironBuilder

from contracts.errors import Forbidden, TwoFactorSetupRequired
from gateway.http import (
    ROUTE_ROLES,
    Call,
    Route,
    open_before_two_factor_setup,
    two_factor_setup_refusal,
)
from gateway.service import GatewayService
from gateway.web.pages import STAFF_ACCOUNT_URL, Page, PageCall

MEMBER = {"kind": "staff", "staff_id": "0" * 32, "role": "support", "name": "Sam"}
UNSET = dict(MEMBER, two_factor_setup_required=True)
ACTING = {
    "kind": "client",
    "customer_id": "1" * 32,
    "permissions": ["full"],
    "impersonator": {"staff_id": "0" * 32, "name": "Sam", "role": "support"},
}
ACTING_UNSET = dict(
    ACTING, impersonator=dict(ACTING["impersonator"], two_factor_setup_required=True)
)


@pytest.mark.parametrize(
    ("url", "open_"),
    [
        ("/api/v1/auth/logout", True),
        ("/api/v1/auth/2fa/enrol", True),
        ("/api/v1/auth/2fa/confirm", True),
        ("/api/v1/auth/return", True),
        ("/api/v1/me", True),
        ("/api/v1/staff/account", True),
        ("/api/v1/staff/account/password", True),
        ("/api/v1/staff/accounts", False),
        ("/api/v1/me/else", False),
        ("/api/v1/staff/customers", False),
        ("/api/v1/staff/staff-policy", False),
        ("/api/v1/staff/customers/<uuid:customer_id>/impersonate", False),
        ("/api/v1/staff/customers/<uuid:customer_id>/2fa/reset", False),
        ("/api/v1/client/invoices", False),
    ],
)
def test_only_enrolment_who_am_i_and_the_own_account_stay_open(url, open_):
    assert open_before_two_factor_setup(url) is open_


def test_the_open_staff_routes_are_exactly_these():
    assert ROUTE_ROLES  # the routes exist once GatewayService is imported (above)
    opened = {spec for spec in ROUTE_ROLES if open_before_two_factor_setup(spec.split(" ")[1])}
    staff_opened = {spec for spec in opened if ROUTE_ROLES[spec]}
    assert staff_opened == {
        "POST /api/v1/auth/logout",
        "GET /api/v1/me",
        "GET /api/v1/auth/2fa",
        "POST /api/v1/auth/2fa/enrol",
        "POST /api/v1/auth/2fa/confirm",
        "POST /api/v1/auth/2fa/disable",
        "GET /api/v1/staff/account",
        "PATCH /api/v1/staff/account",
        "POST /api/v1/staff/account/password",
    }


def test_the_refusal_says_whose_two_factor_authentication_is_missing():
    assert two_factor_setup_refusal(None) is None
    assert two_factor_setup_refusal(MEMBER) is None
    assert two_factor_setup_refusal(ACTING) is None
    own = two_factor_setup_refusal(UNSET)
    assert isinstance(own, Forbidden) and own.status == 403
    assert own.code == "two_factor_setup_required" and "/api/v1/auth/2fa/enrol" in own.message
    acting = two_factor_setup_refusal(ACTING_UNSET)
    assert acting.code == "two_factor_setup_required" and "/api/v1/auth/return" in acting.message
    # it travels over RPC as itself: rebuilt from its arguments
    again = TwoFactorSetupRequired(*own.args)
    assert again.to_dict() == own.to_dict()


# -- the API's check, with the customers service answering the session ------------------------


class _Services:
    """What a route's authentication asks of the services: the session's principal."""

    def __init__(self, principal):
        self.context = {}
        principal = dict(principal)

        class customers:
            @staticmethod
            def resolve_session(token):
                return principal

        self.customers = customers

    def act_as(self, actor, on_behalf_of=None):
        pass


def _route(url: str, roles=None, client=False, method="GET") -> Route:
    route = Route.__new__(Route)
    route.url, route.method, route.roles, route.client = url, method, roles, client
    return route


def _authenticate(route: Route, principal: dict) -> None:
    request = EnvironBuilder(
        path=route.url, method=route.method, headers={"Authorization": "Bearer t"}
    ).get_request()
    route._authenticate(Call(request=request, services=_Services(principal)))


ALL = ("admin", "support", "billing", "auditor")


def test_a_staff_route_refuses_a_member_without_it_and_lets_in_the_enrolled():
    route = _route("/api/v1/staff/customers", roles=("admin", "support"))
    with pytest.raises(TwoFactorSetupRequired):
        _authenticate(route, UNSET)
    _authenticate(route, MEMBER)
    # a route the role may not call says so whatever the policy (it is refused either way)
    with pytest.raises(Forbidden):
        _authenticate(_route("/api/v1/staff/staff-policy", roles=("admin",)), UNSET)


def test_who_am_i_the_own_account_and_enrolment_answer_a_member_without_it():
    for url in ("/api/v1/me", "/api/v1/staff/account", "/api/v1/auth/2fa/enrol"):
        _authenticate(_route(url, roles=ALL, client=True), UNSET)


def test_a_client_area_entered_by_a_member_without_it_is_refused_but_the_way_back():
    route = _route("/api/v1/client/invoices", client=("billing",))
    with pytest.raises(TwoFactorSetupRequired) as refused:
        _authenticate(route, ACTING_UNSET)
    assert "/api/v1/auth/return" in refused.value.message
    _authenticate(route, ACTING)
    _authenticate(_route("/api/v1/auth/return", client=True, method="POST"), ACTING_UNSET)


# -- the staff panel's pages --------------------------------------------------------------------


def _pages():
    for name in dir(GatewayService):
        for entry in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            if isinstance(entry, Page):
                yield entry


def test_the_staff_pages_open_before_it_is_set_up_are_the_own_accounts():
    staff_pages = [p for p in _pages() if p.staff]
    assert staff_pages
    opened = {(p.method, p.url) for p in staff_pages if p.open_before_setup}
    assert opened == {
        (p.method, p.url)
        for p in staff_pages
        if p.url == STAFF_ACCOUNT_URL or p.url.startswith(STAFF_ACCOUNT_URL + "/")
    }
    assert ("GET", STAFF_ACCOUNT_URL) in opened
    assert ("POST", STAFF_ACCOUNT_URL + "/two-factor/confirm") in opened


def _page(staff) -> Page:
    page = Page.__new__(Page)
    page.staff, page.client, page.permissions = staff, False, None
    return page


def _call(principal, method="GET", path="/staff/customers") -> PageCall:
    request = EnvironBuilder(path=path, method=method).get_request()
    call = PageCall(request=request, services=None, language="fr", principal=principal)
    call._csrf_seed = "session"
    return call


def test_a_staff_page_sends_a_member_without_it_to_their_account():
    answer = _page(True)._staff_refusal(_call(UNSET))
    assert answer.status_code == 303 and answer.headers["Location"] == STAFF_ACCOUNT_URL
    # the same page for an enrolled member, and the account page for anyone
    assert _page(True)._staff_refusal(_call(MEMBER)) is None
    account = _page("GET /api/v1/staff/account")
    assert account._staff_refusal(_call(UNSET, path=STAFF_ACCOUNT_URL)) is None


def test_a_staff_form_from_a_member_without_it_is_refused_with_the_way_to_set_it_up():
    page = _page("POST /api/v1/staff/customers")
    answer = page._staff_refusal(_call(UNSET, method="POST"))
    assert answer.status_code == 403
    html = answer.get_data(as_text=True)
    assert "Votre administrateur exige l&#39;authentification à deux facteurs" in html
    assert f'href="{STAFF_ACCOUNT_URL}"' in html
    confirm = _page("POST /api/v1/auth/2fa/confirm")
    assert confirm._staff_refusal(_call(UNSET, method="POST", path="/staff/account/x")) is None


def test_a_client_page_refuses_a_member_acting_without_it_with_the_way_back():
    page = Page.__new__(Page)
    page.staff, page.client, page.permissions = False, True, None
    assert page._acting_refusal(_call(ACTING, path="/dashboard")) is None
    answer = page._acting_refusal(_call(ACTING_UNSET, path="/dashboard"))
    assert answer.status_code == 403
    html = answer.get_data(as_text=True)
    assert 'action="/staff/return"' in html and 'name="csrf_token"' in html
    assert "Revenir au panneau du personnel" in html
