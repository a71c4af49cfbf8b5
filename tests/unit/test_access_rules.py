"""Who is calling (behind trusted proxies), CSRF with session cookies, sealed tokens."""

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway import http
from services.customers.application import _seal, _unseal
from services.infra import settings as settings_module


def _request(remote: str, forwarded: str | None = None, **kwargs) -> Request:
    headers = dict(kwargs.pop("headers", {}))
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    builder = EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": remote}, **kwargs)
    return Request(builder.get_environ())


@pytest.fixture
def proxies(monkeypatch):
    def use(value: str):
        monkeypatch.setenv("HOSTLEDGER_TRUSTED_PROXIES", value)
        settings_module.reset_settings()

    yield use
    monkeypatch.delenv("HOSTLEDGER_TRUSTED_PROXIES", raising=False)
    settings_module.reset_settings()


def test_forwarded_for_is_ignored_without_trusted_proxies(proxies):
    proxies("")
    assert http.client_address(_request("203.0.113.5", "10.0.0.1")) == "203.0.113.5"


def test_the_nearest_untrusted_hop_is_the_caller(proxies):
    proxies("10.0.0.0/8, 127.0.0.3")
    # the client may write anything first; the proxies append what they saw
    assert http.client_address(_request("127.0.0.3", "6.6.6.6, 198.51.100.7")) == "198.51.100.7"
    assert http.client_address(_request("10.1.2.3", "198.51.100.7, 10.9.9.9")) == "198.51.100.7"
    # from an untrusted peer the header counts for nothing
    assert http.client_address(_request("198.51.100.1", "10.9.9.9")) == "198.51.100.1"
    # garbage in the header: the last trusted hop stands
    assert http.client_address(_request("127.0.0.3", "not an address")) == "127.0.0.3"


def test_a_cookie_needs_the_sessions_csrf_token_or_our_origin():
    token = "session-token"
    post = {"method": "POST", "base_url": "http://127.0.0.1:8000"}
    assert not http.csrf_ok(_request("127.0.0.1", **post), token)
    assert not http.csrf_ok(
        _request("127.0.0.1", headers={"X-CSRF-Token": http.csrf_token("other")}, **post), token
    )
    assert http.csrf_ok(
        _request("127.0.0.1", headers={"X-CSRF-Token": http.csrf_token(token)}, **post), token
    )
    assert http.csrf_ok(
        _request("127.0.0.1", headers={"Origin": "http://127.0.0.1:8000"}, **post), token
    )
    assert not http.csrf_ok(
        _request("127.0.0.1", headers={"Origin": "https://evil.example"}, **post), token
    )
    assert http.csrf_ok(_request("127.0.0.1", method="GET"), token)


def test_a_sealed_token_opens_only_with_its_key():
    sealed = _seal("staff-token-abc", "imp-token-1")
    assert "staff-token" not in sealed
    assert _unseal(sealed, "imp-token-1") == "staff-token-abc"
    try:
        opened = _unseal(sealed, "imp-token-2")
    except UnicodeDecodeError:
        opened = None
    assert opened != "staff-token-abc"


def test_auditors_only_read():
    from gateway.service import GatewayService

    opened = []
    for name in dir(GatewayService):
        options = getattr(getattr(GatewayService, name), "route_options", None)
        if options is None:
            continue
        method, url, kwargs = options
        if "auditor" in (kwargs.get("roles") or ()):
            opened.append((method, url))
    assert ("GET", "/api/v1/staff/customers") in opened
    writes = sorted((m, u) for m, u in opened if m not in ("GET", "HEAD"))
    # what concerns only their own login and account: logging out, two-factor
    # authentication, their password, language and notifications
    own_login = [
        ("PATCH", "/api/v1/staff/account"),
        ("POST", "/api/v1/auth/2fa/confirm"),
        ("POST", "/api/v1/auth/2fa/disable"),
        ("POST", "/api/v1/auth/2fa/enrol"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/staff/account/password"),
    ]
    assert writes == own_login, writes
