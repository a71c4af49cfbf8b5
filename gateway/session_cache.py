"""The gateway's short memory of sessions, so that a request needs no RPC to know who
sent it. Pure: no I/O (the subscription that feeds it: gateway/session_events.py).

What is kept, per session: `customers.session_entry`'s answer (the principal, when the
session ends at the latest, the staff session it was entered from), under the SHA-256 of
the token (the name the customers service gives a session; the token itself is never
kept), for at most `seconds` (HOSTLEDGER_SESSION_CACHE_SECONDS), never past the
session's own end, and at most `size` sessions (the least recently used go first).

It is trusted only while the subscription to the customers service's events is up and
in order (`connected` .. `disconnected`): an event that ends sessions or changes what a
session shows drops what it concerns (`apply`). Before the subscription is up, after it
went down, and while it is down, nothing is kept and every request asks the service.
An event that does not follow the previous one (its `previous_position` is not the last
position seen: events were missed) empties the cache: what is kept afterwards was read
after the missed events were stored.

A lookup that races an event (asked before the event arrived, answered after it) is
not kept: `ticket()` before the RPC, `put(..., ticket)` after it.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from services.infra import clock

# the events of the customers service that end sessions or change what one shows
ENDS_SESSIONS = "SessionsEnded"
STAFF_CHANGED = "StaffUpdated"
POLICY_CHANGED = "StaffPolicyChanged"
CUSTOMER_CHANGED = ("CustomerUpdated", "CustomerDeleted", "PasswordChanged", "CustomerErased")
# how many recent evictions are remembered to refuse a racing lookup
RECENT = 1024


def token_key(token: str) -> str:
    """The cache's (and the customers service's) name of a session: SHA-256 of its token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Entry:
    principal: dict
    fresh_until: float  # monotonic seconds
    ends_at: datetime | None  # the session's own end (the injectable clock's time)
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Ticket:
    epoch: int
    evictions: int


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    evicted: int = 0
    cleared: int = 0
    gaps: int = 0
    refused_puts: int = 0
    extra: dict = field(default_factory=dict)


def refs_of(key: str, entry: dict) -> tuple[str, ...]:
    """What a kept session depends on: itself, the session it was entered from, and the
    accounts its principal was made of."""
    principal = entry["principal"]
    refs = [f"session:{key}"]
    if entry.get("parent_token_hash"):
        refs.append(f"session:{entry['parent_token_hash']}")
    for name, prefix in (("staff_id", "staff"), ("customer_id", "customer"), ("user_id", "user")):
        if principal.get(name):
            refs.append(f"{prefix}:{principal[name]}")
    impersonator = principal.get("impersonator") or {}
    if impersonator.get("staff_id"):
        refs.append(f"staff:{impersonator['staff_id']}")
    return tuple(dict.fromkeys(refs))


def event_refs(envelope: dict) -> tuple[str, ...] | None:
    """What an event of the customers service makes stale: refs, () for nothing, None
    for everything (the staff policy)."""
    kind = envelope.get("type")
    payload = envelope.get("payload") or {}
    if kind == ENDS_SESSIONS:
        refs = [f"session:{h}" for h in payload.get("token_hashes") or ()]
        for name, prefix in (
            ("staff_id", "staff"),
            ("customer_id", "customer"),
            ("user_id", "user"),
        ):
            if payload.get(name):
                refs.append(f"{prefix}:{payload[name]}")
        return tuple(refs)
    if kind == STAFF_CHANGED:
        return (f"staff:{payload.get('staff_id') or envelope.get('aggregate_id')}",)
    if kind == POLICY_CHANGED:
        return None
    if kind in CUSTOMER_CHANGED:
        return (f"customer:{payload.get('customer_id') or envelope.get('aggregate_id')}",)
    return ()


class SessionCache:
    def __init__(
        self,
        seconds: float,
        size: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = clock.now,
    ):
        self.seconds = max(0.0, float(seconds))
        self.size = max(1, int(size))
        self._monotonic = monotonic
        self._now = now
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._index: dict[str, set[str]] = {}
        self.trusted = False
        self.last_position: int | None = None
        self._epoch = 0
        self._evictions = 0
        self._recent: deque[tuple[int, frozenset[str]]] = deque(maxlen=RECENT)
        self.stats = Stats()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    @property
    def usable(self) -> bool:
        return self.enabled and self.trusted

    def __len__(self) -> int:
        return len(self._entries)

    # -- the subscription's state ---------------------------------------------------------

    def connected(self) -> None:
        """The subscription's queue is bound and consumed: every event from now on arrives.
        Starts empty (what happened before is read by the lookups that follow)."""
        self.clear()
        self.last_position = None
        self.trusted = True

    def disconnected(self) -> None:
        """The subscription is down: trust nothing until it is up again."""
        self.trusted = False
        self.clear()

    # -- lookups --------------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        """The kept principal of the session `key` (a copy), None when not kept or stale."""
        if not self.usable:
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        if self._monotonic() >= entry.fresh_until or (
            entry.ends_at is not None and self._now() >= entry.ends_at
        ):
            self._drop(key)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return copy.deepcopy(entry.principal)

    def ticket(self) -> Ticket:
        """Taken before asking the service, handed to `put` with its answer."""
        return Ticket(self._epoch, self._evictions)

    def put(self, key: str, entry: dict, ticket: Ticket) -> bool:
        """Keep `customers.session_entry`'s answer for session `key`, unless an event that
        concerns it arrived since `ticket` (or the cache was emptied, or is not trusted)."""
        if not self.usable or ticket.epoch != self._epoch:
            self.stats.refused_puts += 1
            return False
        refs = refs_of(key, entry)
        if ticket.evictions != self._evictions:
            since = self._evictions - ticket.evictions
            if since > len(self._recent) or any(
                not refs_set.isdisjoint(refs)
                for seq, refs_set in self._recent
                if seq > ticket.evictions
            ):
                self.stats.refused_puts += 1
                return False
        ends_at = entry.get("expires_at")
        if isinstance(ends_at, str):
            ends_at = datetime.fromisoformat(ends_at.replace("Z", "+00:00"))
        if ends_at is not None and self._now() >= ends_at:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = Entry(
            principal=copy.deepcopy(entry["principal"]),
            fresh_until=self._monotonic() + self.seconds,
            ends_at=ends_at,
            refs=refs,
        )
        for ref in refs:
            self._index.setdefault(ref, set()).add(key)
        while len(self._entries) > self.size:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    # -- events ---------------------------------------------------------------------------

    def apply(self, envelope: dict) -> str:
        """One event of the customers service, as delivered. Answers what it did."""
        position = envelope.get("position")
        previous = envelope.get("previous_position")
        outcome = "applied"
        if not isinstance(position, int):
            outcome = "no position"
        elif self.last_position is None:
            self.last_position = position
        elif position <= self.last_position:
            outcome = "duplicate"  # a relay that restarted publishes again: still dropped
        elif previous is not None and previous != self.last_position:
            # events were missed: what is kept may be stale
            self.stats.gaps += 1
            self.clear()
            self.last_position = position
            return "gap"
        else:
            self.last_position = position
        refs = event_refs(envelope)
        if refs is None:
            self.clear()
        elif refs:
            self.evict(refs)
        return outcome

    def evict(self, refs) -> int:
        refs = frozenset(refs)
        self._evictions += 1
        self._recent.append((self._evictions, refs))
        dropped = 0
        for ref in refs:
            for key in list(self._index.get(ref, ())):
                self._drop(key)
                dropped += 1
        self.stats.evicted += dropped
        return dropped

    def clear(self) -> None:
        self._epoch += 1
        if self._entries:
            self.stats.cleared += 1
        self._entries.clear()
        self._index.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for ref in entry.refs:
            keys = self._index.get(ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._index[ref]
