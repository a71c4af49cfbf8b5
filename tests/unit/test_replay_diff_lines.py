"""How verify-replay says what differs: pure formatting and pairing, no database."""

from services.audit_aggregates import state_differences
from services.audit_tables import TableDiff, _pair


def test_rows_with_one_key_are_paired_column_by_column_the_rest_are_one_sided():
    diff = TableDiff("invoice_list", key=("invoice_id",))
    live = [
        {"invoice_id": "a", "status": "paid", "total": "500"},
        {"invoice_id": "b", "status": "issued", "total": "100"},
    ]
    replayed = [
        {"invoice_id": "a", "status": "issued", "total": "500"},
        {"invoice_id": "c", "status": "issued", "total": None},
    ]
    _pair(diff, ["invoice_id", "status", "total"], live, replayed)
    assert diff.count == 3
    assert diff.lines() == [
        "table invoice_list [invoice_id=a] status: live 'paid', replayed 'issued'",
        "table invoice_list [invoice_id=b] row only live: status='issued', total='100'",
        "table invoice_list [invoice_id=c] row only replayed: status='issued', total=NULL",
    ]


def test_a_table_without_a_key_lists_whole_rows_and_what_was_not_listed():
    diff = TableDiff("ticket_counts", unlisted=7)
    _pair(diff, ["n"], [{"n": "1"}], [])
    diff.columns_only_live = ["legacy"]
    assert diff.count == 1 + 1 + 7
    assert diff.lines() == [
        "table ticket_counts: columns only live: legacy",
        "table ticket_counts row only live: n='1'",
        "table ticket_counts: 7 more differing rows not listed",
    ]


def test_aggregate_states_compare_stored_arrays_as_lists_and_name_each_attribute():
    lines = state_differences(
        {"balance_amount": 650, "tags": ["a"], "_version": 5},
        {"balance_amount": 99_999, "tags": ["a"], "_version": 5, "extra": True},
        "snapshot",
    )
    assert lines == [
        "balance_amount: events 650, snapshot 99999",
        "extra: not from the events, snapshot True",
    ]
