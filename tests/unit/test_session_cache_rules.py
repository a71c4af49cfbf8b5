"""The gateway's session cache (gateway/session_cache.py): what it keeps, for how long,
and when it must not be trusted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.session_cache import SessionCache, token_key
from services.customers.application import _token_hash


class Clocks:
    def __init__(self):
        self.mono = 1000.0
        self.wall = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def _cache(seconds=30.0, size=100, clocks=None):
    clocks = clocks or Clocks()
    cache = SessionCache(seconds, size, monotonic=clocks.monotonic, now=clocks.now)
    cache.connected()
    return cache, clocks


def _staff(staff_id="s1", ends=None, parent=None, clocks=None):
    ends = ends or (clocks.wall + timedelta(hours=12) if clocks else None)
    return {
        "principal": {"kind": "staff", "staff_id": staff_id, "role": "admin"},
        "expires_at": ends.isoformat() if ends else None,
        "parent_token_hash": parent,
    }


def _client(customer_id="c1", user_id=None, impersonator=None, parent=None):
    principal = {"kind": "client", "customer_id": customer_id, "permissions": ["full"]}
    if user_id:
        principal["user_id"] = user_id
    if impersonator:
        principal["impersonator"] = {"staff_id": impersonator, "name": "S", "role": "support"}
    return {
        "principal": principal,
        "expires_at": "2030-01-01T00:00:00+00:00",
        "parent_token_hash": parent,
    }


def _event(position, type_, previous=None, **payload):
    return {
        "source": "customers",
        "position": position,
        "previous_position": previous,
        "type": type_,
        "aggregate_id": payload.get("staff_id") or payload.get("customer_id") or "x",
        "payload": payload,
    }


def test_the_key_is_the_tokens_sha256_as_the_customers_service_names_sessions():
    assert token_key("abc") == _token_hash("abc")
    assert token_key("abc") != "abc"


def test_a_kept_session_is_answered_as_a_copy_until_its_time_is_up():
    cache, clocks = _cache(seconds=30)
    assert cache.put("k", _staff(clocks=clocks), cache.ticket())
    got = cache.get("k")
    assert got == {"kind": "staff", "staff_id": "s1", "role": "admin"}
    got["role"] = "changed"
    assert cache.get("k")["role"] == "admin"
    clocks.advance(29.9)
    assert cache.get("k") is not None
    clocks.advance(0.2)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_never_past_the_sessions_own_end():
    cache, clocks = _cache(seconds=30)
    cache.put("k", _staff(ends=clocks.wall + timedelta(seconds=5)), cache.ticket())
    clocks.wall += timedelta(seconds=6)  # the injectable clock moved (a test, a replay)
    assert cache.get("k") is None
    # an entry already ended is not kept at all
    assert not cache.put("k2", _staff(ends=clocks.wall - timedelta(seconds=1)), cache.ticket())


def test_least_recently_used_go_first_past_the_size():
    cache, clocks = _cache(size=2)
    cache.put("a", _staff("s1", clocks=clocks), cache.ticket())
    cache.put("b", _staff("s2", clocks=clocks), cache.ticket())
    assert cache.get("a") is not None  # b is now the least recently used
    cache.put("c", _staff("s3", clocks=clocks), cache.ticket())
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2


def test_zero_seconds_is_off_and_nothing_is_trusted_before_connected():
    off, _ = _cache(seconds=0)
    assert not off.usable
    assert not off.put("k", _client(), off.ticket())
    cache = SessionCache(30)
    assert not cache.usable
    assert not cache.put("k", _client(), cache.ticket())


@pytest.mark.parametrize(
    "event, dropped",
    [
        # a staff session's logout ends the client panels entered from it
        (_event(1, "SessionsEnded", token_hashes=["a" * 64], reason="logout"), {"staff", "panel"}),
        (_event(1, "SessionsEnded", token_hashes=["b" * 64], reason="logout"), set()),
        (_event(1, "SessionsEnded", staff_id="s1", reason="staff_disabled"), {"staff", "panel"}),
        (_event(1, "SessionsEnded", customer_id="c1", reason="password"), {"client", "panel"}),
        (_event(1, "SessionsEnded", user_id="u1", reason="user_removed"), {"user"}),
        (_event(1, "StaffUpdated", staff_id="s1"), {"staff", "panel"}),
        (_event(1, "CustomerUpdated", customer_id="c2"), {"user"}),
        (_event(1, "PasswordChanged", customer_id="c1"), {"client", "panel"}),
        (_event(1, "StaffPolicyChanged", required=True), {"staff", "panel", "client", "user"}),
        (_event(1, "ProjectCreated", project_id="p"), set()),
    ],
)
def test_an_event_drops_the_sessions_it_concerns_and_no_other(event, dropped):
    cache, clocks = _cache()
    cache.put("a" * 64, _staff("s1", clocks=clocks), cache.ticket())
    cache.put("panel", _client("c1", impersonator="s1", parent="a" * 64), cache.ticket())
    cache.put("client", _client("c1"), cache.ticket())
    cache.put("user", _client("c2", user_id="u1"), cache.ticket())
    names = {"staff": "a" * 64, "panel": "panel", "client": "client", "user": "user"}
    cache.apply(event)
    kept = {name for name, key in names.items() if cache.get(key) is not None}
    assert kept == set(names) - dropped


def test_a_lookup_answered_after_an_event_that_concerns_it_is_not_kept():
    cache, clocks = _cache()
    ticket = cache.ticket()  # the RPC goes out
    cache.apply(_event(1, "SessionsEnded", staff_id="s1", reason="staff_disabled"))
    assert not cache.put("k", _staff("s1", clocks=clocks), ticket)  # its answer comes back
    assert cache.get("k") is None
    # one about someone else is kept
    assert cache.put("k2", _staff("s2", clocks=clocks), ticket)


def test_missed_events_empty_the_cache_and_a_disconnect_distrusts_it():
    cache, clocks = _cache()
    cache.put("k", _staff("s1", clocks=clocks), cache.ticket())
    assert cache.apply(_event(10, "ProjectCreated", previous=7)) == "applied"  # first seen
    assert cache.apply(_event(11, "ProjectCreated", previous=10)) == "applied"
    assert cache.get("k") is not None
    # 12 and 13 never arrived: 14 follows 13
    ticket = cache.ticket()
    assert cache.apply(_event(14, "ProjectCreated", previous=13)) == "gap"
    assert cache.get("k") is None
    assert not cache.put("k", _staff("s1", clocks=clocks), ticket)  # asked before the gap
    assert cache.put("k", _staff("s1", clocks=clocks), cache.ticket())
    assert cache.apply(_event(14, "ProjectCreated", previous=13)) == "duplicate"
    assert cache.get("k") is not None
    cache.disconnected()
    assert not cache.usable
    assert cache.get("k") is None
    assert not cache.put("k", _staff("s1", clocks=clocks), cache.ticket())
    cache.connected()  # a new queue: empty, and the next event starts the sequence
    assert len(cache) == 0
    assert cache.apply(_event(40, "ProjectCreated", previous=39)) == "applied"
