"""The tamper-evident chain of a service's log: the rule and its verification (no I/O).

Each service hashes its notification log in order (services.infra.chainkeeper):

    hash(p) = SHA-256(hash(p') || record(p))      p' = the log's previous position
    hash before the first event = 32 zero bytes (GENESIS)

where record(p) is the event exactly as the store keeps it:

    notification id   8 bytes, big-endian signed
    originator id     16 bytes (the UUID's bytes)
    version           8 bytes, big-endian signed
    topic             4 bytes big-endian length, then its UTF-8 bytes
    state             8 bytes big-endian length, then the stored bytes

Every hash is kept at its position (`audit_chain`); some are published as checkpoints
that the other services keep as witnesses. `ChainVerifier` walks the log, the stored
hashes and the witnesses together, position by position, in constant memory, and says
what does not fit: an event edited, deleted, inserted or moved since it was chained, a
stored hash changed, or a chain recomputed to hide a change (the witnesses disagree).
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from uuid import UUID

GENESIS = bytes(32)

_HEAD = struct.Struct(">q16sqI")
_STATE_LEN = struct.Struct(">Q")


@dataclass(frozen=True)
class StoredRecord:
    """One row of a service's event table, as stored."""

    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes


def record_bytes(record: StoredRecord, position: int | None = None) -> bytes:
    """What is hashed for `record` (at `position`, its own by default)."""
    topic = record.topic.encode()
    return b"".join(
        (
            _HEAD.pack(
                record.position if position is None else position,
                record.originator_id.bytes,
                record.version,
                len(topic),
            ),
            topic,
            _STATE_LEN.pack(len(record.state)),
            record.state,
        )
    )


def link(previous: bytes, record: StoredRecord, position: int | None = None) -> bytes:
    """The chain's hash after `record`, following `previous`."""
    h = hashlib.sha256(previous)
    topic = record.topic.encode()
    h.update(
        _HEAD.pack(
            record.position if position is None else position,
            record.originator_id.bytes,
            record.version,
            len(topic),
        )
    )
    h.update(topic)
    h.update(_STATE_LEN.pack(len(record.state)))
    h.update(record.state)
    return h.digest()


def chain(
    records: Iterable[StoredRecord], previous: bytes = GENESIS
) -> Iterator[tuple[int, bytes]]:
    """(position, hash) for each record in order, from `previous`."""
    for record in records:
        previous = link(previous, record)
        yield record.position, previous


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Witness:
    """A checkpoint of the chain kept by another service."""

    holder: str
    position: int
    hash: bytes
    sequence: int | None = None


@dataclass
class Position:
    """What the three sources hold at one position of the log."""

    position: int
    event: StoredRecord | None = None
    stored: bytes | None = None
    witnesses: list[Witness] = field(default_factory=list)


def merge(
    events: Iterable[StoredRecord],
    stored: Iterable[tuple[int, bytes]],
    witnesses: Iterable[Iterable[Witness]] = (),
) -> Iterator[Position]:
    """The log, the stored hashes and each holder's witnesses (each in position order)
    joined by position, streaming."""
    streams = [
        ((r.position, 0, r) for r in events),
        ((p, 1, h) for p, h in stored),
        *(((w.position, 2, w) for w in ws) for ws in witnesses),
    ]
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    for position, items in groupby(merged, key=lambda item: item[0]):
        at = Position(position)
        for _, kind, value in items:
            if kind == 0:
                at.event = value
            elif kind == 1:
                at.stored = value
            else:
                at.witnesses.append(value)
        yield at


EDITED = "edited"
DELETED = "deleted"
INSERTED = "inserted"
REORDERED = "reordered"
CHAIN_EDITED = "chain hash edited"
REWRITTEN = "rewritten"
TRUNCATED = "truncated"


_CHAIN_EDITED = "the hash stored here was changed; the event is as it was chained"


@dataclass
class Finding:
    kind: str
    position: int
    detail: str
    originator_id: UUID | None = None
    version: int | None = None
    # for a change found only by a witness: the first position it may concern
    since: int | None = None
    # later witnesses that disagree in the same way
    confirmed: int = 0

    @property
    def first_position(self) -> int:
        return self.since if self.since is not None else self.position

    def describe(self) -> str:
        where = (
            f"positions {self.since}..{self.position}"
            if self.since is not None and self.since != self.position
            else f"position {self.position}"
        )
        who = ""
        if self.originator_id is not None:
            who = f", aggregate {self.originator_id} version {self.version}"
        more = f" ({self.confirmed} later checkpoints disagree too)" if self.confirmed else ""
        return f"{where}{who}: {self.kind}: {self.detail}{more}"


@dataclass
class _Anomaly:
    position: int
    previous: bytes  # the stored hash before it
    stored: bytes | None
    event: StoredRecord | None
    finding: Finding


@dataclass
class Report:
    service: str
    positions: int = 0
    events: int = 0
    chained: int = 0
    head_position: int = 0
    head_hash: bytes = GENESIS
    witnesses: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    total_findings: int = 0

    @property
    def ok(self) -> bool:
        return self.total_findings == 0

    @property
    def first(self) -> Finding | None:
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.first_position, f.position))


class ChainVerifier:
    """Feed it each `Position` in order (`feed`), then `finish()`.

    Each event is checked against the stored hash before it (so one edit is named once,
    and the events after it are still checked each on its own); the witnesses against
    the stored hashes and against the chain recomputed from the first event. Memory
    stays bounded: the last `window` anomalies are kept to recognise events that moved,
    and the first `keep` findings are kept in full (the rest are counted).
    """

    def __init__(self, service: str, window: int = 64, keep: int = 100):
        self.report = Report(service)
        self.keep = keep
        self._recent: deque[_Anomaly] = deque(maxlen=window)
        self._stored_prev = GENESIS  # the stored hash at the previous chained position
        self._true = GENESIS  # the chain recomputed over the events as they are now
        self._agreed = 0  # the last position a witness confirmed, events and chain alike
        self._diverged: Finding | None = None  # witnesses disagree from here on
        # the finding at the previous chained position, and the hash its event gives
        self._broken: Finding | None = None
        self._expected: bytes | None = None

    # -- the walk ------------------------------------------------------------------------

    def feed(self, at: Position) -> None:
        report = self.report
        report.positions += 1
        event, stored = at.event, at.stored
        finding = None
        same_start = self._true == self._stored_prev
        if event is not None:
            report.events += 1
            self._true = link(self._true, event)
        if stored is not None:
            report.chained += 1
            report.head_position, report.head_hash = at.position, stored
            expected = None
            if event is None:
                finding = self._anomaly(
                    at,
                    Finding(DELETED, at.position, "the event chained here is gone"),
                )
            elif (
                expected := self._true if same_start else link(self._stored_prev, event)
            ) != stored:
                before = self._broken
                if (
                    before is not None
                    and before.kind in (EDITED, CHAIN_EDITED)
                    and link(self._expected, event) == stored
                ):
                    # this event follows the one before as it was chained: it was the hash
                    # stored for that one that changed, not that event
                    if before.kind != CHAIN_EDITED:
                        self._relabel(before, CHAIN_EDITED, _CHAIN_EDITED)
                else:
                    finding = self._anomaly(
                        at,
                        Finding(
                            EDITED,
                            at.position,
                            "its stored record no longer gives the hash recorded when it "
                            "was chained",
                            event.originator_id,
                            event.version,
                        ),
                    )
            self._broken, self._expected = finding, expected
        elif event is not None:
            finding = self._anomaly(
                at,
                Finding(
                    INSERTED,
                    at.position,
                    "an event that was never chained, between chained events",
                    event.originator_id,
                    event.version,
                ),
            )
        for witness in at.witnesses:
            self._check_witness(at, witness, finding)
        if stored is not None:
            self._stored_prev = stored

    def _anomaly(self, at: Position, finding: Finding) -> Finding:
        self.add(finding)
        new = _Anomaly(at.position, self._stored_prev, at.stored, at.event, finding)
        for old in self._recent:
            new_was_old = (
                new.event is not None
                and old.stored is not None
                and link(old.previous, new.event, old.position) == old.stored
            )
            old_was_new = (
                old.event is not None
                and new.stored is not None
                and link(new.previous, old.event, new.position) == new.stored
            )
            if new_was_old or old_was_new:
                self._moved(new, old, new_was_old, old_was_new)
                break
        self._recent.append(new)
        return finding

    def _moved(self, new: _Anomaly, old: _Anomaly, new_was_old: bool, old_was_new: bool) -> None:
        relabel = self._relabel
        if new_was_old and old_was_new:
            relabel(new.finding, REORDERED, f"swapped with the event at position {old.position}")
            relabel(old.finding, REORDERED, f"swapped with the event at position {new.position}")
            return
        if not new_was_old:
            new, old = old, new
        # `new`'s event is the one chained at `old.position`
        relabel(
            new.finding, REORDERED, f"the event chained at position {old.position} was moved here"
        )
        if old.event is None:
            relabel(old.finding, REORDERED, f"its event was moved to position {new.position}")

    def _relabel(self, finding: Finding, kind: str, detail: str) -> None:
        counts = self.report.counts
        counts[finding.kind] -= 1
        if not counts[finding.kind]:
            del counts[finding.kind]
        counts[kind] = counts.get(kind, 0) + 1
        finding.kind, finding.detail = kind, detail

    def _check_witness(self, at: Position, witness: Witness, local: Finding | None) -> None:
        report = self.report
        report.witnesses[witness.holder] = report.witnesses.get(witness.holder, 0) + 1
        stored, true = at.stored, self._true
        named = f"{witness.holder}'s witness" + (
            f" (checkpoint {witness.sequence})" if witness.sequence is not None else ""
        )
        if stored is not None and witness.hash == stored:
            if stored == true:
                self._agreed = at.position
                self._diverged = None
            return
        if witness.hash == true:
            if stored is None and local is not None and local.kind == INSERTED:
                self._relabel(
                    local, CHAIN_EDITED, f"the event is as {named} saw it; its stored hash is gone"
                )
                return
            if local is not None and local.kind == EDITED:
                self._relabel(local, CHAIN_EDITED, f"{_CHAIN_EDITED} ({named} agrees)")
                return
            self.add(
                Finding(
                    CHAIN_EDITED,
                    at.position,
                    f"the stored hash differs from {named}, which the events still give",
                )
            )
            return
        if self._diverged is not None:
            self._diverged.confirmed += 1  # the same divergence, seen by one more witness
            return
        self._diverged = Finding(
            REWRITTEN,
            at.position,
            "an event was edited, deleted, inserted or moved and the chain recomputed to "
            f"match: the hash here differs from {named}",
            since=self._agreed + 1,
        )
        self.add(self._diverged)

    def add(self, finding: Finding) -> None:
        report = self.report
        report.total_findings += 1
        report.counts[finding.kind] = report.counts.get(finding.kind, 0) + 1
        if len(report.findings) < self.keep:
            report.findings.append(finding)

    def beyond_head(self, witness: Witness, head: int) -> None:
        """A witness past every position checked: the chain ends at `head` before it."""
        self.report.witnesses[witness.holder] = self.report.witnesses.get(witness.holder, 0) + 1
        self.add(
            Finding(
                TRUNCATED,
                witness.position,
                f"{witness.holder} keeps a checkpoint here, but the chain ends at {head}: "
                "chained events after it were removed",
                since=head + 1,
            )
        )

    def finish(self) -> Report:
        report = self.report
        report.findings.sort(key=lambda f: (f.first_position, f.position))
        return report


def verify(
    service: str,
    events: Iterable[StoredRecord],
    stored: Iterable[tuple[int, bytes]],
    witnesses: Iterable[Iterable[Witness]] = (),
) -> Report:
    """Check a whole chain at once (the command streams through `ChainVerifier` itself)."""
    verifier = ChainVerifier(service)
    for at in merge(events, stored, witnesses):
        verifier.feed(at)
    return verifier.finish()
