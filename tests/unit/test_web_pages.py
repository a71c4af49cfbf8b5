"""The web layer's own rules, without services: CSRF, cookies, headers, where a login
may send back to, and that every page template renders in every language."""

import json
import re

import pytest
from werkzeug.test import EnvironBuilder

from gateway.http import SESSION_COOKIE, csrf_token
from gateway.service import GatewayService
from gateway.web import i18n
from gateway.web.pages import (
    CONTENT_SECURITY_POLICY,
    PRE_SESSION_COOKIE,
    FormErrors,
    Page,
    PageCall,
    render,
    safe_next,
)
from services.infra.settings import reset_settings


def test_no_page_hides_an_api_route_nor_the_other_way_round():
    """Pages and routes are mixed into one class: a name used twice keeps only one."""
    seen = {}
    for base in GatewayService.__mro__[1:]:
        for name, attr in vars(base).items():
            if getattr(attr, "nameko_entrypoints", None):
                assert name not in seen, f"{base.__name__}.{name} and {seen[name]}"
                seen[name] = base.__name__
                assert getattr(GatewayService, name) is attr


@pytest.mark.parametrize(
    ("url", "back_to"),
    [
        ("/dashboard", "/dashboard"),
        ("/invoices?page=2", "/invoices?page=2"),
        ("https://evil.example/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("javascript:alert(1)", None),
        ("/x\r\nSet-Cookie: a=b", None),
        ("", None),
        (None, None),
    ],
)
def test_a_login_sends_back_only_to_a_page_of_this_site(url, back_to):
    assert safe_next(url) == back_to


def _post(form=None, headers=None, cookies=None):
    builder = EnvironBuilder(
        path="/logout",
        method="POST",
        base_url="http://127.0.0.1:8000/",
        data=form or {},
        headers=headers or {},
    )
    for name, value in (cookies or {}).items():
        builder.headers.add("Cookie", f"{name}={value}")
    return builder.get_request()


def _csrf_ok(request) -> bool:
    page = Page.__new__(Page)
    call = PageCall(request=request, services=None)
    page._csrf_seed(call)
    return page._csrf_ok(call)


def test_a_form_counts_only_with_the_csrf_token_of_its_own_session():
    session = {SESSION_COOKIE: "the-session"}
    token = csrf_token("the-session")
    assert _csrf_ok(_post({"csrf_token": token}, cookies=session))
    assert not _csrf_ok(_post({}, cookies=session))
    assert not _csrf_ok(_post({"csrf_token": csrf_token("another")}, cookies=session))
    # before logging in: the token of the browser's pre-session cookie
    anonymous = {PRE_SESSION_COOKIE: "random-seed"}
    assert _csrf_ok(_post({"csrf_token": csrf_token("random-seed")}, cookies=anonymous))
    assert not _csrf_ok(_post({"csrf_token": csrf_token("random-seed")}))
    assert not _csrf_ok(_post({"csrf_token": ""}))


def test_a_form_from_another_site_is_refused_even_with_the_token():
    session = {SESSION_COOKIE: "the-session"}
    form = {"csrf_token": csrf_token("the-session")}
    own = {"Origin": "http://127.0.0.1:8000"}
    assert _csrf_ok(_post(form, headers=own, cookies=session))
    for foreign in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        assert not _csrf_ok(_post(form, headers=foreign, cookies=session)), foreign


@pytest.fixture
def https_site(monkeypatch):
    monkeypatch.setenv("HOSTLEDGER_PUBLIC_URL", "https://panel.example.com")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def _cookies(response) -> dict:
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(https_site):
    call = PageCall(request=_post(), services=None)
    call.start_session("new-session")
    cookies = _cookies(call.redirect("/dashboard"))
    session = cookies[SESSION_COOKIE]
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" in session
    assert "Path=/" in session
    assert "Expires=Thu, 01 Jan 1970" in cookies[PRE_SESSION_COOKIE]  # the seed is gone


def test_over_plain_http_the_cookie_is_not_marked_secure():
    reset_settings()
    call = PageCall(request=_post(), services=None)
    call.start_session("new-session")
    session = _cookies(call.redirect("/dashboard"))[SESSION_COOKIE]
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session


def test_pages_forbid_inline_scripts_framing_and_foreign_referrers():
    response = render(
        "error.html",
        "en",
        status=404,
        status_code=404,
        title_msgid="There is no such page",
        detail=None,
        path="/x",
    )
    csp = response.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    html = response.get_data(as_text=True)
    # nothing inline that the policy would block: scripts, handlers, styles
    assert "<script>" not in html and "<style" not in html
    assert not re.search(r"\s(on[a-z]+|style)=", html)


PRINCIPAL = {
    "kind": "client",
    "customer_id": "c1",
    "username": "jane",
    "name": "Jane",
    "permissions": ["full"],
}
CUSTOMER = {"contact_person": "Jane Doe", "number": "1042", "currency": "EUR", "language": "fr"}
DASHBOARD = {
    "account": {"balance": {"amount": -12345, "currency": "EUR"}},
    "invoices": {
        "items": [
            {
                "id": "i1",
                "number": "INV-7",
                "total": {"amount": 1999, "currency": "EUR"},
                "due_date": "2026-01-01",
            }
        ],
        "total": 3,
    },
    "services": {
        "items": [
            {
                "name": "VPS S",
                "status": "suspended",
                "next_due_date": "2026-12-01",
                "price": {"amount": 500, "currency": "EUR"},
            }
        ],
        "total": 1,
    },
    "tickets": {"items": [], "total": 0},
    "today": "2026-02-01",
}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_dashboard_renders_in_each_language(language):
    html = render(
        "client/dashboard.html",
        language,
        principal=PRINCIPAL,
        customer=CUSTOMER,
        csrf_token="t",
        current_path="/dashboard",
        **DASHBOARD,
    ).get_data(as_text=True)
    t = i18n.translations(language)
    assert f'<html lang="{language}"' in html
    assert t.gettext("Unpaid invoices") in html
    assert t.pgettext("service status", "Suspended") in html
    assert i18n.money({"amount": -12345, "currency": "EUR"}, language) in html
    assert i18n.date("2026-12-01", language) in html
    assert t.gettext("No open tickets.") in html
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html).group(1)
    assert json.loads(meta)["allowEval"] is False


def test_a_field_shows_its_error_next_to_it_and_says_so_to_screen_readers():
    errors = FormErrors().add("password", "The username or password is wrong.")
    html = render(
        "client/login.html",
        "en",
        values={"username": "jane"},
        errors=errors,
        notice=None,
        next="",
        csrf_token="t",
        principal=None,
        customer=None,
        current_path="/login",
    ).get_data(as_text=True)
    field = html[html.index('id="field-password"') :]
    field = field[: field.index("</div>")]
    assert 'aria-invalid="true"' in field and 'aria-describedby="error-password"' in field
    assert '<p class="field-error" id="error-password">The username or password is wrong.' in field
    assert 'for="field-username"' in html and 'for="field-password"' in html
    assert 'value="jane"' in html and "autofocus" in field


class _EndedSessions:
    """The customers service, for a browser whose session has ended."""

    class customers:  # read as `services.customers`
        @staticmethod
        def page_session(token):
            from contracts.errors import Unauthorized

            raise Unauthorized("This session has ended.")


def test_an_ended_session_leaves_forms_that_work_without_it():
    """The login page shown to a browser whose session cookie has ended carries a token
    its next request, without that cookie, still matches."""
    page = Page.__new__(Page)
    request = EnvironBuilder(path="/login", headers={"Cookie": f"{SESSION_COOKIE}=old"})
    call = PageCall(request=request.get_request(), services=_EndedSessions())
    page._csrf_seed(call)
    page._authenticate(call)
    assert call.principal is None and call.cookies[SESSION_COOKIE] is None
    seed = call.cookies[PRE_SESSION_COOKIE]
    assert call.csrf == csrf_token(seed)
    # the next request: the pre-session cookie only, and the form's token
    form = {"csrf_token": call.csrf, "username": "jane"}
    assert _csrf_ok(_post(form, cookies={PRE_SESSION_COOKIE: seed}))
