"""The chain of a service's log and its verification: the rule and what each kind of
tampering looks like (services/infra/chain.py, no I/O)."""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import replace

import pytest

from contracts.chain import CHAINED_SERVICES, CHECKPOINT_CONTRACTS, CHECKPOINT_EVENT
from contracts.registry import payload_schema
from services.infra.chain import (
    CHAIN_EDITED,
    DELETED,
    EDITED,
    GENESIS,
    INSERTED,
    REORDERED,
    REWRITTEN,
    TRUNCATED,
    ChainVerifier,
    StoredRecord,
    Witness,
    chain,
    link,
    merge,
    record_bytes,
    verify,
)
from services.infra.chainkeeper import feed_envelope, witness_statement
from services.infra.settings import SERVICES


def _log(n: int, start: int = 1, gaps: tuple[int, ...] = ()) -> list[StoredRecord]:
    aggregates = [uuid.UUID(int=i + 1) for i in range(3)]
    versions = dict.fromkeys(aggregates, 0)
    out, position = [], start
    while len(out) < n:
        if position in gaps:
            position += 1
            continue
        agg = aggregates[len(out) % 3]
        versions[agg] += 1
        state = f'{{"n": {len(out)}, "name": "customer {len(out)}"}}'.encode()
        out.append(StoredRecord(position, agg, versions[agg], "app.domain:Thing.Changed", state))
        position += 1
    return out


def _stored(records) -> list[tuple[int, bytes]]:
    return list(chain(records))


def _witnesses(stored, every: int, holder: str = "billing") -> list[Witness]:
    return [
        Witness(holder, p, h, sequence=i + 1) for i, (p, h) in enumerate(stored[every - 1 :: every])
    ]


def test_the_hash_is_sha256_of_the_previous_hash_and_the_stored_record():
    record = StoredRecord(7, uuid.UUID(int=5), 2, "customers.domain:Customer.Updated", b'{"a":1}')
    expected = hashlib.sha256(
        GENESIS
        + struct.pack(">q", 7)
        + uuid.UUID(int=5).bytes
        + struct.pack(">q", 2)
        + struct.pack(">I", len(record.topic))
        + record.topic.encode()
        + struct.pack(">Q", 7)
        + b'{"a":1}'
    ).digest()
    assert record_bytes(record) == expected_bytes(record)
    assert link(GENESIS, record) == expected
    # every part counts: the position, the version, the topic, a single byte of state
    for changed in (
        replace(record, position=8),
        replace(record, version=3),
        replace(record, topic=record.topic + "x"),
        replace(record, state=b'{"a":2}'),
        replace(record, originator_id=uuid.UUID(int=6)),
    ):
        assert link(GENESIS, changed) != expected
    # the length prefixes keep topic and state apart
    a = StoredRecord(1, uuid.UUID(int=1), 1, "ab", b"c")
    b = StoredRecord(1, uuid.UUID(int=1), 1, "a", b"bc")
    assert link(GENESIS, a) != link(GENESIS, b)


def expected_bytes(record: StoredRecord) -> bytes:
    topic = record.topic.encode()
    return (
        struct.pack(
            ">q16sqI", record.position, record.originator_id.bytes, record.version, len(topic)
        )
        + topic
        + struct.pack(">Q", len(record.state))
        + record.state
    )


def test_a_clean_log_verifies_with_its_witnesses():
    log = _log(50, gaps=(10, 11, 30))
    stored = _stored(log)
    report = verify(
        "customers", log, stored, [_witnesses(stored, 10), _witnesses(stored, 20, "orders")]
    )
    assert report.ok, [f.describe() for f in report.findings]
    assert report.events == report.chained == 50
    assert report.head_position == log[-1].position and report.head_hash == stored[-1][1]
    assert report.witnesses == {"billing": 5, "orders": 2}


def test_an_edited_event_is_named_once_with_its_aggregate_and_version():
    log = _log(30)
    stored = _stored(log)
    log[11] = replace(log[11], state=log[11].state.replace(b"customer", b"kustomer"))
    report = verify("customers", log, stored, [_witnesses(stored, 10)])
    assert report.counts == {EDITED: 1}
    first = report.first
    assert (first.kind, first.position) == (EDITED, 12)
    assert (first.originator_id, first.version) == (log[11].originator_id, log[11].version)
    assert "position 12, aggregate" in first.describe()


def test_a_deleted_event_is_named_by_its_position():
    log = _log(30)
    stored = _stored(log)
    del log[19]
    report = verify("customers", log, stored)
    assert report.counts == {DELETED: 1}
    assert report.first.position == 20 and report.first.originator_id is None


def test_an_event_slipped_into_a_gap_is_named_inserted():
    log = _log(30, gaps=(15,))
    stored = _stored(log)
    forged = StoredRecord(15, uuid.UUID(int=99), 1, "app.domain:Thing.Created", b"{}")
    report = verify("customers", sorted([*log, forged], key=lambda r: r.position), stored)
    assert report.counts == {INSERTED: 1}
    assert (report.first.position, report.first.originator_id) == (15, uuid.UUID(int=99))


def test_two_events_that_swapped_places_are_named_reordered():
    log = _log(30)
    stored = _stored(log)
    a, b = log[7], log[8]
    log[7] = replace(b, position=a.position)
    log[8] = replace(a, position=b.position)
    report = verify("customers", log, stored)
    assert report.counts == {REORDERED: 2}, [f.describe() for f in report.findings]
    assert [f.position for f in report.findings] == [8, 9]
    assert "swapped with the event at position 9" in report.first.detail


def test_an_event_moved_to_another_position_is_named_reordered():
    log = _log(30, gaps=(25,))
    stored = _stored(log)
    moved = next(r for r in log if r.position == 20)
    log = sorted(
        [r for r in log if r.position != 20] + [replace(moved, position=25)],
        key=lambda r: r.position,
    )
    report = verify("customers", log, stored)
    assert report.counts == {REORDERED: 2}, [f.describe() for f in report.findings]
    assert "moved to position 25" in report.findings[0].detail
    assert "chained at position 20 was moved here" in report.findings[1].detail


def test_a_changed_stored_hash_is_told_from_a_changed_event():
    log = _log(30)
    stored = _stored(log)
    stored[9] = (stored[9][0], bytes(32))
    report = verify("customers", log, stored)
    assert report.counts == {CHAIN_EDITED: 1}, [f.describe() for f in report.findings]
    assert report.first.position == 10
    # a witness there says the same
    witnessed = verify("customers", log, stored, [[Witness("orders", 10, _stored(log)[9][1])]])
    assert witnessed.counts == {CHAIN_EDITED: 1}
    assert "orders's witness agrees" in witnessed.first.detail.replace("(", "").replace(")", "")


def test_a_recomputed_chain_is_caught_by_the_witnesses():
    log = _log(60)
    original = _stored(log)
    witnesses = _witnesses(original, 10)
    # an edit at position 23, and the chain recomputed over the edited log
    log[22] = replace(log[22], state=b'{"n": 22, "name": "someone else"}')
    rewritten = _stored(log)
    report = verify("customers", log, rewritten, [witnesses])
    assert report.counts == {REWRITTEN: 1}, [f.describe() for f in report.findings]
    finding = report.first
    # after the last checkpoint that still agrees (20), up to the first that does not (30)
    assert (finding.since, finding.position) == (21, 30)
    assert finding.confirmed == 3  # the checkpoints at 40, 50 and 60 disagree as well
    assert "positions 21..30" in finding.describe()


def test_a_deleted_event_hidden_by_a_recomputed_chain_is_caught_too():
    log = _log(40)
    witnesses = _witnesses(_stored(log), 10)
    del log[34]
    report = verify("customers", log, _stored(log), [witnesses])
    assert report.counts == {REWRITTEN: 1}
    assert (report.first.since, report.first.position) == (31, 40)


def test_without_a_later_witness_a_recomputed_tail_cannot_be_seen():
    log = _log(25)
    witnesses = _witnesses(_stored(log), 10)
    log[22] = replace(log[22], state=b"{}")
    assert verify("customers", log, _stored(log), [witnesses]).ok


def test_a_witness_past_the_chains_end_says_it_was_truncated():
    log = _log(20)
    stored = _stored(log)
    verifier = ChainVerifier("customers")
    for at in merge(log[:15], stored[:15], [_witnesses(stored[:15], 5)]):
        verifier.feed(at)
    verifier.beyond_head(Witness("billing", 20, stored[19][1], 4), head=15)
    report = verifier.finish()
    assert report.counts == {TRUNCATED: 1}
    assert report.first.describe().startswith("positions 16..20: truncated")


def test_many_findings_are_counted_and_the_first_ones_kept():
    log = _log(500)
    stored = _stored(log)
    log = [replace(r, state=r.state + b" ") if r.position % 2 else r for r in log]
    verifier = ChainVerifier("customers", keep=10)
    for at in merge(log, stored):
        verifier.feed(at)
    report = verifier.finish()
    assert report.total_findings == 250 and report.counts == {EDITED: 250}
    assert len(report.findings) == 10 and report.first.position == 1


def test_merge_joins_the_streams_by_position():
    log = _log(5, gaps=(2,))
    stored = _stored(log)[:-1]
    out = list(merge(log, stored, [[Witness("a", 3, b"x")], [Witness("b", 3, b"y")]]))
    assert [p.position for p in out] == [1, 3, 4, 5, 6]
    assert out[-1].stored is None and out[-1].event is log[-1]
    assert [w.holder for w in out[1].witnesses] == ["a", "b"]


# -- the checkpoint contract and feed ---------------------------------------------------------


def test_every_service_publishes_checkpoints_under_its_own_name():
    assert set(CHAINED_SERVICES) == set(SERVICES)
    for service in SERVICES:
        schema = payload_schema(service, CHECKPOINT_EVENT)
        assert schema is CHECKPOINT_CONTRACTS[service]
        assert schema().load({"sequence": 1, "position": 5, "hash": "ab" * 32})["position"] == 5


@pytest.mark.parametrize(
    "payload",
    [
        {"sequence": 0, "position": 5, "hash": "ab" * 32},
        {"sequence": 1, "position": 0, "hash": "ab" * 32},
        {"sequence": 1, "position": 5, "hash": "AB" * 32},
        {"sequence": 1, "position": 5, "hash": "ab" * 31},
        {"sequence": "1", "position": 5, "hash": "ab" * 32},
    ],
)
def test_a_checkpoint_breaking_its_contract_is_refused(payload):
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        CHECKPOINT_CONTRACTS["billing"]().load(payload)


def test_the_checkpoint_feed_numbers_checkpoints_by_their_sequence():
    relayed = {
        "source": "billing",
        "position": 812,
        "previous_position": 790,
        "type": CHECKPOINT_EVENT,
        "payload": {"sequence": 4, "position": 800, "hash": "ab" * 32},
    }
    fed = feed_envelope(relayed)
    assert (fed["position"], fed["previous_position"]) == (4, 3)
    assert relayed["position"] == 812  # the delivered envelope is left as it was
    assert feed_envelope(dict(relayed, payload={"sequence": "4"}))["position"] is None
    assert feed_envelope("not an envelope") == "not an envelope"


def test_a_witness_is_kept_once():
    statement, params = witness_statement(
        "billing", {"sequence": 4, "position": 800, "hash": "ab" * 32}, received_at=None
    )
    assert "ON CONFLICT (upstream, sequence) DO NOTHING" in statement
    assert params[:3] == ("billing", 4, 800) and params[3] == bytes.fromhex("ab" * 32)
