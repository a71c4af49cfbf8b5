"""A history read newest first: its cursor says the order it continues (and is refused,
naming `cursor`, with the other order), a bad `order` is refused naming `order`, and
each service's statement scans its index backwards from the cursor (the history page's
links: test_staff_history_words.py)."""

from __future__ import annotations

import uuid

import pytest
from marshmallow import ValidationError

from contracts import audit as contract
from contracts.errors import ValidationFailed
from gateway.api import audit as api
from services.infra import audit

ITEM = {"occurred_at": "2026-11-21T10:00:00Z", "service": "billing", "position": 42}
BACK = {"occurred_at": "2026-11-21T10:00:00+00:00", "service": "billing", "position": 42}


def test_a_newest_first_cursor_goes_there_and_back_in_its_order_only():
    cursor = contract.cursor_of(ITEM)
    newest = contract.encode_cursor(cursor, "newest")
    oldest = contract.encode_cursor(cursor)
    assert newest != oldest and "=" not in newest and "billing" not in newest
    assert contract.decode_cursor(newest, "newest") == BACK
    assert contract.decode_cursor(oldest) == BACK == contract.decode_cursor(oldest, "oldest")
    for text, order in ((newest, "oldest"), (oldest, "newest")):
        with pytest.raises(ValidationFailed) as info:
            contract.decode_cursor(text, order)
        assert list(info.value.fields) == ["cursor"]
        assert "order=" in info.value.fields["cursor"][0]


def test_a_cursor_naming_an_order_there_is_not_is_no_cursor():
    raw = contract.encode_cursor(contract.cursor_of(ITEM), "sideways")
    for order in contract.ORDERS:
        with pytest.raises(ValidationFailed) as info:
            contract.decode_cursor(raw, order)
        assert "cursor" in info.value.fields


def test_a_bad_order_is_refused_naming_order():
    query = api.AuditHistoryQuery()
    assert query.load({})["order"] == "oldest"
    assert query.load({"order": "newest"})["order"] == "newest"
    for bad in ("latest", "NEWEST", ""):
        with pytest.raises(ValidationError) as info:
            query.load({"order": bad})
        assert list(info.value.messages) == ["order"]
    # and by the services' RPC alike
    with pytest.raises(ValidationError) as info:
        contract.HistoryQuery().load(
            {"kind": "customer", "object_id": str(uuid.uuid4()), "order": "x"}
        )
    assert list(info.value.messages) == ["order"]


@pytest.mark.parametrize(
    ("service", "cursor_service", "condition"),
    [
        # billing's events at the cursor's instant come before helpdesk's: they are read
        ("billing", "helpdesk", "r.occurred_at <= %s"),
        # helpdesk's at the instant of billing's cursor come after it: not
        ("helpdesk", "billing", "r.occurred_at < %s"),
        ("billing", "billing", "(r.occurred_at, r.position) < (%s, %s)"),
    ],
)
def test_each_service_reads_before_the_cursor_scanning_backwards(
    service, cursor_service, condition
):
    cursor = dict(BACK, service=cursor_service)
    statement, params = audit.history_statement(
        service, "customer", uuid.UUID(int=1), cursor, order="newest"
    )
    assert f" AND {condition} ORDER BY" in statement
    assert statement.endswith("ORDER BY r.occurred_at DESC, r.position DESC")
    assert params[:2] == ["customer", uuid.UUID(int=1)]
    # oldest first as before
    statement, _ = audit.history_statement(service, "customer", uuid.UUID(int=1), cursor)
    assert statement.endswith("ORDER BY r.occurred_at, r.position")


def test_merged_newest_first_is_the_oldest_first_order_reversed():
    items = [
        {"occurred_at": "2026-11-21T10:00:00Z", "service": s, "position": p}
        for s, p in (("orders", 3), ("billing", 9), ("billing", 2), ("customers", 1))
    ]
    oldest = sorted(items, key=contract.sort_key)
    newest = sorted(items, key=contract.sort_key, reverse=True)
    assert newest == oldest[::-1]
    assert [(i["service"], i["position"]) for i in newest] == [
        ("orders", 3),
        ("customers", 1),
        ("billing", 9),
        ("billing", 2),
    ]
