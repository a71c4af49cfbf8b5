"""The audit export's shapes without a database (contracts/audit_export.py): which export
a query asks for and what it says about a bad one, one event's row, the merge of the
services' streams, JSON Lines and CSV that read back as the same rows, the file's name,
the command's options, and the record of an export in the audit index."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from marshmallow import ValidationError

from contracts import audit_export as export
from services import audit_export as command
from services.cli import CommandError
from services.customers.audit import MAPPING as CUSTOMERS
from services.customers.audit import AuditExport
from services.infra import clock
from services.infra.audit import extract

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
CUSTOMER = "0b8f8c2e-5f6a-4b53-9d8e-2a4b1e6f7c10"


def _load(**values) -> dict:
    return export.ExportQuery().load(values)


def _errors(**values) -> dict:
    with pytest.raises(ValidationError) as info:
        export.ExportQuery().load(values)
    return info.value.messages


def _item(service="billing", position=1, at="2026-11-21T10:00:00.000000Z", **more) -> dict:
    item = {
        "service": service,
        "position": position,
        "aggregate_id": "6c1e1f4a-2a43-4a8e-9a0e-0d1b8f3e5a21",
        "aggregate_type": "PersonalAccount",
        "version": 3,
        "type": "PersonalAccount.Credited",
        "occurred_at": at,
        "actor": {"kind": "staff", "id": "1d2e3f40-0000-4000-8000-000000000001"},
        "on_behalf_of": None,
        "cause": None,
        "reason": None,
        "summary": "Personal account credited",
        "changes": {"balance": [100, 250], "entry.amount": [None, 150]},
    }
    item.update(more)
    return item


# -- which export -----------------------------------------------------------------------------


def test_a_customer_or_a_window_and_the_format():
    q = _load(customer=CUSTOMER)
    assert q == {"customer": UUID(CUSTOMER), "since": None, "until": None, "format": "jsonl"}
    q = _load(since="2026-11-01T01:00:00+01:00", until="2026-12-01T00:00:00Z", format="csv")
    assert q["since"] == datetime(2026, 11, 1, tzinfo=UTC) and q["since"].tzinfo is UTC
    assert q["until"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert q["format"] == "csv" and q["customer"] is None


def test_a_bad_query_names_the_field_at_fault():
    assert set(_errors()) == {"customer", "since"}
    assert set(_errors(customer=CUSTOMER, since="2026-11-01T00:00:00Z")) == {"since"}
    assert set(_errors(customer=CUSTOMER, until="2026-11-01T00:00:00Z")) == {"until"}
    assert _errors(since="2026-11-02T00:00:00Z", until="2026-11-01T00:00:00Z") == {
        "until": ["Must be after `since`."]
    }
    assert _errors(since="2026-11-01T00:00:00Z", until="2026-11-01T00:00:00Z") == {
        "until": ["Must be after `since`."]
    }
    for bad in ("2026-11-01", "2026-11-01T00:00:00", "yesterday", "0001-01-01T00:00:00+05:00"):
        assert _errors(since=bad) == {"since": [export.INSTANT_MESSAGE]}, bad
    assert set(_errors(customer="42")) == {"customer"}
    assert set(_errors(customer=CUSTOMER, format="xml")) == {"format"}
    assert set(_errors(customer=CUSTOMER, format="json\x00l")) == {"format"}


def test_the_record_of_an_export_says_how_it_was_asked_for():
    q = _load(since="2026-11-01T00:00:00Z")
    payload = export.record_payload(q, "command", "ann@host")
    assert payload == {
        "customer": None,
        "since": "2026-11-01T00:00:00+00:00",
        "until": None,
        "format": "jsonl",
        "via": "command",
        "operator": "ann@host",
    }
    loaded = export.ExportRecord().load(payload)
    assert loaded["since"] == q["since"] and loaded["via"] == "command"
    with pytest.raises(ValidationError):
        export.ExportRecord().load(dict(payload, via="mail"))


def test_the_file_is_named_after_what_it_holds():
    assert export.filename(_load(customer=CUSTOMER)) == f"audit-customer-{CUSTOMER}.jsonl"
    window = _load(since="2026-11-01T00:00:00Z", until="2026-12-01T00:00:00.5+00:00", format="csv")
    assert export.filename(window) == "audit-20261101T000000Z-20261201T000000.500000Z.csv"
    assert export.filename(_load(since="2026-11-01T03:00:00+03:00")) == (
        "audit-since-20261101T000000Z.jsonl"
    )
    assert export.describe(window) == (
        "events from 2026-11-01T00:00:00Z to 2026-12-01T00:00:00.500000Z"
    )
    assert export.describe(_load(customer=CUSTOMER)) == f"customer {CUSTOMER}"


# -- rows, their order, their encoding -------------------------------------------------------


def test_a_row_is_the_event_as_a_history_page_answers_it():
    r = export.row(_item())
    assert list(r) == list(export.COLUMNS)
    assert r["changes"] == [
        {"field": "balance", "before": 100, "after": 250},
        {"field": "entry.amount", "before": None, "after": 150},
    ]
    assert r["aggregate"] == {
        "id": "6c1e1f4a-2a43-4a8e-9a0e-0d1b8f3e5a21",
        "type": "PersonalAccount",
        "version": 3,
    }
    assert r["actor"]["kind"] == "staff" and r["on_behalf_of"] is None


def test_streams_merge_by_time_then_service_then_position_one_item_at_a_time():
    pulled: list[str] = []

    def stream(service, items):
        for position, at in items:
            pulled.append(service)
            yield _item(service, position, at)

    streams = [
        stream("billing", [(5, "2026-11-21T10:00:00.000000Z"), (6, "2026-11-21T10:00:02Z")]),
        stream("customers", [(1, "2026-11-21T10:00:00Z"), (2, "2026-11-21T10:00:01Z")]),
        stream("orders", []),
        stream("helpdesk", [(9, "2026-11-21T11:00:00.5+01:00")]),
    ]
    merged = export.merged(streams)
    first = next(merged)
    assert (first["service"], first["position"]) == ("billing", 5)
    assert len(pulled) == 3  # one item of each stream with any, not the whole of any
    rest = [(i["service"], i["position"]) for i in merged]
    assert rest == [("customers", 1), ("helpdesk", 9), ("customers", 2), ("billing", 6)]


def _rows():
    return [
        export.row(_item()),
        export.row(
            _item(
                "customers",
                7,
                "2026-11-21T10:00:01.000000Z",
                type="Customer.Corrected",
                summary='Customer e-mail corrected, "quoted", with a comma',
                reason="the client spelled it\non the phone",
                cause="orders:12",
                on_behalf_of={"kind": "staff", "id": "ab"},
                changes={"email": ["old@example.com", "néw@example.com"], "note": [None, "= 1+1"]},
            )
        ),
    ]


def test_json_lines_read_back_as_the_rows_in_any_chunk_size():
    rows = _rows()
    for chunk in (1, 50, export.CHUNK):
        body = b"".join(export.encode(iter(rows), "jsonl", chunk=chunk))
        lines = body.decode("utf-8").split("\n")
        assert lines[-1] == "" and len(lines) == len(rows) + 1
        assert [json.loads(line) for line in lines[:-1]] == rows
    assert "néw@example.com".encode() in body  # UTF-8, not escaped
    assert b"".join(export.encode(iter([]), "jsonl")) == b""


def test_csv_has_a_header_and_nested_values_as_json_and_reads_back():
    rows = _rows()
    body = b"".join(export.encode(iter(rows), "csv", chunk=10)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(body, newline=""))
    assert tuple(reader.fieldnames) == export.COLUMNS
    back = [export.parse_csv_row(cells) for cells in reader]
    assert back == rows
    first_line = body.split("\r\n", 1)[0]
    assert first_line == ",".join(export.COLUMNS)
    # an empty export is its header
    assert b"".join(export.encode(iter([]), "csv")) == (",".join(export.COLUMNS) + "\r\n").encode()


def test_text_that_utf8_cannot_carry_does_not_break_the_stream():
    rows = [dict(export.row(_item()), summary="lone \ud800 surrogate")]
    body = b"".join(export.encode(iter(rows), "jsonl"))
    assert json.loads(body)["summary"] == "lone ? surrogate"


# -- the command's options -------------------------------------------------------------------


def _args(**values):
    base = {"customer": None, "since": None, "until": None, "format": None, "out": "x.jsonl"}
    return argparse.Namespace(**(base | values))


def test_the_command_reads_its_options_as_the_route_reads_its_parameters():
    q = command.parse_query(_args(customer=CUSTOMER))
    assert q["customer"] == UUID(CUSTOMER) and q["format"] == "jsonl"
    assert command.parse_query(_args(customer=CUSTOMER, out="/tmp/A.CSV"))["format"] == "csv"
    assert command.parse_query(_args(customer=CUSTOMER, out="a.csv", format="jsonl"))["format"] == (
        "jsonl"
    )
    for values, said in (
        ({"since": "2026-11-01"}, "--since: Not an instant"),
        ({"customer": "nobody"}, "--customer: Not a valid UUID."),
        ({"customer": CUSTOMER, "until": "2026-11-01T00:00:00Z"}, "--until: Only with --since"),
        (
            {"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
            "--until: Must be after --since.",
        ),
    ):
        with pytest.raises(CommandError) as info:
            command.parse_query(_args(**values))
        assert str(info.value).startswith(said), (values, str(info.value))


# -- the record of an export ------------------------------------------------------------------


@pytest.fixture
def fixed_clock():
    previous = clock.use_clock(clock.FixedClock(NOW))
    yield
    clock.use_clock(previous)


def _entry(export_record: AuditExport, actor: dict):
    [event] = export_record.collect_events()
    object.__setattr__(event, "actor", actor)
    object.__setattr__(event, "on_behalf_of", None)
    entry, _ = extract(CUSTOMERS, event, 1, None)
    return entry


def test_an_export_through_the_api_is_in_the_readers_history(fixed_clock):
    reader = uuid4()
    record = AuditExport(
        staff_id=reader,
        operator=None,
        via="api",
        format="csv",
        object_kind="customer",
        object_id=UUID(CUSTOMER),
        since=None,
        until=None,
    )
    entry = _entry(record, {"kind": "staff", "id": str(reader)})
    assert entry.references == [("staff", str(reader))]  # not in the customer's own history
    assert entry.summary == "Audit: customer history exported (csv, through the API)"
    assert entry.changes["object_id"] == [None, CUSTOMER]


def test_an_export_by_the_command_names_its_operator_and_window(fixed_clock):
    record = AuditExport(
        staff_id=None,
        operator="ann@host",
        via="command",
        format="jsonl",
        object_kind=None,
        object_id=None,
        since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 12, 1, tzinfo=UTC),
    )
    entry = _entry(record, {"kind": "system", "id": "audit-export"})
    assert entry.references == []
    assert entry.summary == (
        "Audit: events from 2026-11-01T00:00:00.000000Z to 2026-12-01T00:00:00.000000Z "
        "exported (jsonl, by the hostledger command)"
    )
    assert entry.changes["operator"] == [None, "ann@host"]


@pytest.mark.parametrize(
    "reason", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "'=1", "'quoted", "''"]
)
def test_a_csv_cell_a_spreadsheet_would_run_is_text_and_reads_back_as_typed(reason):
    rows = [export.row(_item(reason=reason, summary=reason))]
    body = b"".join(export.encode(iter(rows), "csv")).decode("utf-8")
    [cells] = list(csv.DictReader(io.StringIO(body, newline="")))
    assert cells["reason"] == "'" + reason and cells["summary"] == "'" + reason
    assert export.parse_csv_row(cells) == rows[0]


def test_plain_csv_cells_are_left_as_they_are():
    rows = [export.row(_item(reason="a reason, with = inside", summary="Invoice paid"))]
    body = b"".join(export.encode(iter(rows), "csv")).decode("utf-8")
    [cells] = list(csv.DictReader(io.StringIO(body, newline="")))
    assert cells["reason"] == "a reason, with = inside" and cells["summary"] == "Invoice paid"
    assert cells["changes"].startswith(("[", "{"))
