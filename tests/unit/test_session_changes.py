"""The calls of the customers service that end sessions or change what one shows drop what
they concern from the gateway's own session cache as soon as they are answered
(gateway/session_events.py, `SessionChanges`); no other call drops anything."""

from __future__ import annotations

import inspect

import pytest

from contracts.errors import Conflict
from gateway.session_cache import SessionCache, token_key
from gateway.session_events import ENDS_OR_CHANGES_SESSIONS, SessionChanges
from services.customers.service import CustomersService


class Proxy:
    """The customers service's proxy: answers, or raises what it is told to."""

    def __init__(self, raises: BaseException | None = None):
        self.raises = raises
        self.calls = []

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            if self.raises is not None:
                raise self.raises
            return {"answered": method}

        return call


def _kept(cache: SessionCache, token: str, principal: dict) -> None:
    assert cache.put(token_key(token), {"principal": principal}, cache.ticket())


def _cache() -> SessionCache:
    cache = SessionCache(30.0)
    cache.connected()
    _kept(cache, "client-token", {"kind": "client", "customer_id": "c1"})
    _kept(cache, "other-client", {"kind": "client", "customer_id": "c2"})
    _kept(cache, "user-token", {"kind": "client", "customer_id": "c1", "user_id": "u1"})
    _kept(cache, "staff-token", {"kind": "staff", "staff_id": "s1", "role": "support"})
    return cache


def _held(cache: SessionCache) -> set[str]:
    return {
        token
        for token in ("client-token", "other-client", "user-token", "staff-token")
        if cache.get(token_key(token)) is not None
    }


ALL = {"client-token", "other-client", "user-token", "staff-token"}


@pytest.mark.parametrize(
    "method, args, actor, dropped",
    [
        ("logout", ("client-token",), "client:c1", {"client-token"}),
        ("end_impersonation", ("client-token",), "client:c1", {"client-token"}),
        (
            "change_password",
            ("c1", {}, "client-token"),
            "client:c1",
            {"client-token", "user-token"},
        ),
        ("change_staff_password", ("s1", {}, "staff-token"), "staff:s1", {"staff-token"}),
        ("remove_user", ("c1", "u1"), "client:c1", {"user-token"}),
        ("disable_staff", ("s1", {}), "staff:admin", {"staff-token"}),
        ("edit_staff", ("s1", {"role": "auditor"}), "staff:admin", {"staff-token"}),
        ("edit_own_staff_account", ("s1", {}), "staff:s1", {"staff-token"}),
        ("edit_customer", ("c2", {}), "staff:s1", {"other-client"}),
        ("edit_profile", ("c1", {}), "client:c1", {"client-token", "user-token"}),
        ("delete_customer", ("c2", True, "r"), "staff:s1", {"other-client"}),
        ("erase_customer", ("c2", "r"), "staff:admin", {"other-client"}),
        ("confirm_email_change", ("c1", {}), "client:c1", {"client-token", "user-token"}),
        ("confirm_two_factor", ("staff-token", {}), "staff:s1", {"staff-token"}),
        ("disable_two_factor", ("client-token", {}), "client:c1", {"client-token", "user-token"}),
        ("set_staff_policy", ({},), "staff:admin", ALL),
        ("confirm_password_reset", ({},), None, ALL),
    ],
)
def test_a_call_that_ends_or_changes_sessions_drops_them_once_answered(
    method, args, actor, dropped
):
    cache = _cache()
    proxy = Proxy()
    answer = getattr(SessionChanges(proxy, cache, actor), method)(*args)
    assert answer == {"answered": method} and proxy.calls == [(method, args, {})]
    assert _held(cache) == ALL - dropped


def test_arguments_given_by_name_count_too():
    cache = _cache()
    SessionChanges(Proxy(), cache, "client:c1").remove_user(customer_id="c1", user_id="u1")
    assert _held(cache) == ALL - {"user-token"}


@pytest.mark.parametrize(
    "method, args",
    [
        ("add_payer", ("c1", {})),
        ("set_preferences", ("c1", {})),
        ("claim_request_key", ("k", "h", 16)),
        ("session_entry", ("client-token",)),
        ("impersonate", ("s1", "c1", "staff-token")),  # a new session: none changes
        ("enrol_two_factor", ("staff-token",)),  # nothing shows until it is confirmed
    ],
)
def test_no_other_call_drops_anything(method, args):
    cache = _cache()
    getattr(SessionChanges(Proxy(), cache, "staff:s1"), method)(*args)
    assert _held(cache) == ALL


def test_a_refused_call_changed_nothing_and_drops_nothing():
    cache = _cache()
    changes = SessionChanges(Proxy(raises=Conflict("no")), cache, "client:c1")
    with pytest.raises(Conflict):
        changes.logout("client-token")
    assert _held(cache) == ALL


def test_a_call_whose_outcome_is_unknown_drops_what_it_may_have_changed():
    cache = _cache()
    changes = SessionChanges(Proxy(raises=TimeoutError("no answer")), cache, "client:c1")
    with pytest.raises(TimeoutError):
        changes.logout("client-token")
    assert _held(cache) == ALL - {"client-token"}


def test_an_answer_asked_before_the_drop_is_not_kept_after_it():
    cache = _cache()
    ticket = cache.ticket()  # a request asked the service for the session meanwhile
    SessionChanges(Proxy(), cache, "client:c1").logout("client-token")
    entry = {"principal": {"kind": "client", "customer_id": "c1"}}
    assert not cache.put(token_key("client-token"), entry, ticket)
    assert cache.get(token_key("client-token")) is None


def test_every_call_named_is_one_the_customers_service_answers():
    for method, refs in ENDS_OR_CHANGES_SESSIONS.items():
        rpc = getattr(CustomersService, method, None)
        assert rpc is not None, method
        names = list(inspect.signature(rpc).parameters)[1:]  # after self
        closure = inspect.getclosurevars(refs).nonlocals
        if "name" in closure:  # the argument it reads: at that place, by that name
            assert names[closure["index"]] == closure["name"], (method, names)
