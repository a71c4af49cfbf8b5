"""Auditors' export: every event of every service concerning a customer, or of a time
window, merged in the history's order, as JSON Lines or CSV.

    hostledger audit export --customer <id> | --since <instant> [--until <instant>]
                            [--format jsonl|csv] --out FILE
    GET /api/v1/staff/audit/export?customer=<id>|since=<instant>[&until=]&format=jsonl|csv

The command reads each service's audit index from its database (services/audit_export.py),
the route pages through each service's `audit_history` / `audit_events` RPCs (gateway/api/
audit_export.py); both stream, holding a page per service at a time, never the whole
export. What they have in common is here, once: which export is asked for
(`ExportQuery`, the same field names and messages for the command's options and the
route's parameters), the row of one event (`row`: the same object a history page answers
for it), the merge of the services' streams in `(occurred_at, service, position)` order
(`merged`), the encoding (`encode`), and the file's name.

A row: `service`, `position` (in that service's log), `type`, `occurred_at` (UTC, ISO
8601 with microseconds), `actor` and `on_behalf_of` ({"kind", "id"} or null), `cause`,
`reason`, `summary`, `changes` ([{"field", "before", "after"}]) and `aggregate` ({"id",
"type", "version"}). JSON Lines: one such object a line. CSV: a header with these names,
then one line an event; `actor`, `on_behalf_of`, `changes` and `aggregate` hold JSON text,
an empty cell is null, and a text cell that starts with `=`, `+`, `-`, `@`, a tab, a
carriage return or an apostrophe is led by one more apostrophe (spreadsheets then show it
as text instead of running it as a formula).

A customer's export holds what its history holds (its own events and those of its
invoices, account, services, orders and tickets). A window's holds every event the
services' audit indexes have with `since <= occurred_at < until`, the bookkeeping ones
(unique-name indexes, idempotency keys) too: the whole log of that time.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.audit import sort_key
from contracts.fields import Text

FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
COLUMNS = (
    "service",
    "position",
    "type",
    "occurred_at",
    "actor",
    "on_behalf_of",
    "cause",
    "reason",
    "summary",
    "changes",
    "aggregate",
)
# columns whose CSV cell is JSON text
NESTED = frozenset({"actor", "on_behalf_of", "changes", "aggregate"})
# how the export was asked for, in its record
VIA = ("api", "command")
INSTANT_MESSAGE = "Not an instant: give ISO 8601 with its offset, e.g. 2026-11-01T00:00:00Z."
CHUNK = 64 * 1024  # bytes handed on at a time


class Instant(fields.AwareDateTime):
    """An ISO 8601 instant with its offset, in UTC once loaded."""

    default_error_messages = {"invalid": INSTANT_MESSAGE, "invalid_awareness": INSTANT_MESSAGE}

    def __init__(self, **kw):
        super().__init__(format="iso", **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        at = super()._deserialize(value, attr, data, **kwargs)
        try:
            return at.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.make_error("invalid") from None


class ExportQuery(Schema):
    """Which export: one customer's events, or the events of a time window."""

    customer = fields.UUID(
        load_default=None,
        allow_none=True,
        metadata={"description": "a customer's id: its whole history (deleted ones too)"},
    )
    since = Instant(
        load_default=None,
        allow_none=True,
        metadata={"description": "the first instant of a window (with its offset), included"},
    )
    until = Instant(
        load_default=None,
        allow_none=True,
        metadata={"description": "the end of the window, not included (none: up to now)"},
    )
    format = Text(
        load_default="jsonl",
        validate=validate.OneOf(FORMATS),
        metadata={"description": "jsonl (one JSON object a line, the default) or csv"},
    )

    @validates_schema
    def _one_selection(self, data, **kwargs):
        customer, since, until = data.get("customer"), data.get("since"), data.get("until")
        if customer is None and since is None:
            raise ValidationError(
                {
                    "customer": ["Give a customer, or `since` for a time window."],
                    "since": ["Give an instant to start from, or a customer."],
                }
            )
        if customer is not None and since is not None:
            raise ValidationError(["Give either a customer or a time window, not both."], "since")
        if until is not None and since is None:
            raise ValidationError(["Only with `since`: the end of a time window."], "until")
        if until is not None and until <= since:
            raise ValidationError(["Must be after `since`."], "until")


class ExportRecord(ExportQuery):
    """`record_audit_export` (customers): an export was made, `via` the API (by the staff
    member calling) or the command (`operator`: who ran it, as the system knows them)."""

    via = Text(required=True, validate=validate.OneOf(VIA))
    operator = Text(load_default=None, allow_none=True, max_length=200)


def record_payload(query: dict, via: str, operator: str | None = None) -> dict:
    """`query` (as ExportQuery loaded it) as `record_audit_export` takes it."""
    return {
        "customer": str(query["customer"]) if query.get("customer") else None,
        "since": query["since"].isoformat() if query.get("since") else None,
        "until": query["until"].isoformat() if query.get("until") else None,
        "format": query["format"],
        "via": via,
        "operator": operator,
    }


def describe(query: dict) -> str:
    """What is exported, in words: "customer <id>", "events from <since> to <until>"."""
    if query.get("customer"):
        return f"customer {query['customer']}"
    if query.get("until"):
        return f"events from {_iso(query['since'])} to {_iso(query['until'])}"
    return f"events from {_iso(query['since'])} on"


def filename(query: dict) -> str:
    """`audit-customer-<id>.jsonl`, `audit-20261101T000000Z-20261201T000000Z.csv`,
    `audit-since-20261101T000000Z.jsonl`."""
    if query.get("customer"):
        name = f"audit-customer-{query['customer']}"
    elif query.get("until"):
        name = f"audit-{_compact(query['since'])}-{_compact(query['until'])}"
    else:
        name = f"audit-since-{_compact(query['since'])}"
    return f"{name}.{query['format']}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _compact(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + (
        f".{at.microsecond:06d}Z" if at.microsecond else "Z"
    )


# -- rows -------------------------------------------------------------------------------------


def row(item: dict) -> dict:
    """One event as exported and as a history page answers it, from a service's history
    item (services/infra/audit.py: `changes` as {field: [before, after]})."""
    return {
        "service": item["service"],
        "position": item["position"],
        "type": item["type"],
        "occurred_at": item["occurred_at"],
        "actor": item["actor"],
        "on_behalf_of": item["on_behalf_of"],
        "cause": item["cause"],
        "reason": item["reason"],
        "summary": item["summary"],
        "changes": [
            {"field": name, "before": before, "after": after}
            for name, (before, after) in item["changes"].items()
        ],
        "aggregate": {
            "id": item["aggregate_id"],
            "type": item["aggregate_type"],
            "version": item["version"],
        },
    }


def merged(streams: Iterable[Iterable[dict]]) -> Iterator[dict]:
    """The services' items in one stream, in history order; each stream must be in that
    order already (a service's own events by time, then position). Holds one item of
    each stream at a time."""
    return heapq.merge(*streams, key=sort_key)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def jsonl_line(r: dict) -> str:
    return _json(r) + "\n"


# A cell a spreadsheet would take for a formula (OWASP "CSV injection"): a reason or a
# summary is text someone typed. Such a cell is written with a leading apostrophe, which
# spreadsheets show as text; a cell that starts with an apostrophe gets one more, so
# `parse_csv_row` gives back exactly what was exported.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _defused(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def _restored(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def csv_cells(r: dict) -> list[str]:
    """A row's CSV cells, in COLUMNS order: nested values as JSON, null as empty, text a
    spreadsheet would run as a formula led by an apostrophe."""
    cells = []
    for column in COLUMNS:
        value = r[column]
        if value is None:
            cells.append("")
        elif column in NESTED:
            cells.append(_json(value))
        else:
            cells.append(_defused(str(value)))
    return cells


def parse_csv_row(cells: dict) -> dict:
    """A row read back from the CSV (csv.DictReader's dict): the exported object again."""
    out: dict = {}
    for column in COLUMNS:
        text = cells[column]
        if text == "":
            out[column] = None
        elif column in NESTED:
            out[column] = json.loads(text)
        elif column == "position":
            out[column] = int(text)
        else:
            out[column] = _restored(text)
    return out


def encode(rows: Iterable[dict], fmt: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The export's bytes (UTF-8), in pieces of about `chunk` bytes: a CSV's header comes
    first even when there is no row."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    for r in rows:
        if writer is not None:
            writer.writerow(csv_cells(r))
        else:
            buffer.write(jsonl_line(r))
        if buffer.tell() >= chunk:
            yield buffer.getvalue().encode("utf-8", "replace")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8", "replace")
