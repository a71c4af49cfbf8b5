"""The audit questions every service answers over RPC, and the gateway's history cursor.

Each service keeps an audit index of its own events (services/infra/audit.py). A history
is the events that concern one object, in `(occurred_at, service, position)` order: the
gateway asks every service for the events after a cursor and merges them. The cursor
the API hands out is opaque: `encode_cursor` / `decode_cursor` make and read it.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate

from contracts.errors import ValidationFailed
from contracts.fields import MAX_PAGE_SIZE, Text

# what a history or a past state can be asked of; the service whose aggregates they are
KINDS = ("customer", "invoice", "ticket", "service", "order", "account", "staff")
OWNERS = {
    "customer": "customers",
    "staff": "customers",
    "invoice": "billing",
    "account": "billing",
    "order": "orders",
    "service": "orders",
    "ticket": "helpdesk",
}
# the services whose events a history gathers (every one keeps an audit index)
SERVICES = ("billing", "customers", "helpdesk", "mailgateway", "orders")
# what an audit read looked at
VIEWS = ("history", "state")
MAX_LIMIT = MAX_PAGE_SIZE
# events of one `audit_events` answer (pages of an export, not shown to a person)
MAX_WINDOW_LIMIT = 1000


class Cursor(Schema):
    """Where a page of history ends: the last event given, by its sort key."""

    occurred_at = fields.AwareDateTime(required=True, format="iso")
    service = Text(required=True, validate=validate.OneOf(SERVICES))
    position = fields.Integer(required=True, validate=validate.Range(min=0, max=2**63 - 1))


class HistoryQuery(Schema):
    """`audit_history`: the events concerning one object after `cursor` (None: from the
    first), at most `limit`."""

    kind = Text(required=True, validate=validate.OneOf(KINDS))
    object_id = fields.UUID(required=True)
    cursor = fields.Nested(Cursor, load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT + 1))


class WindowQuery(Schema):
    """`audit_events`: every event with `since <= occurred_at < until` (None: no end) after
    `cursor` (None: from the first), at most `limit` (the export of a time window)."""

    since = fields.AwareDateTime(required=True, format="iso")
    until = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    cursor = fields.Nested(Cursor, load_default=None, allow_none=True)
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=MAX_WINDOW_LIMIT))


class StateQuery(Schema):
    """`audit_state`: one object as it stood at `at` (None: now, by the service's clock)."""

    kind = Text(required=True, validate=validate.OneOf(KINDS))
    object_id = fields.UUID(required=True)
    at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")


class AuditRead(Schema):
    """`record_audit_read` (customers): a staff member looked at an object's history or
    at its state at `at`."""

    view = Text(required=True, validate=validate.OneOf(VIEWS))
    kind = Text(required=True, validate=validate.OneOf(KINDS))
    object_id = fields.UUID(required=True)
    at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")


def sort_key(item: dict) -> tuple[datetime, str, int]:
    """The order of a history: time, then service name, then position in its log."""
    return (_instant(item["occurred_at"]), item["service"], int(item["position"]))


def _instant(value) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at.astimezone(UTC)


def cursor_of(item: dict) -> dict:
    """The cursor just after `item` (a service's history item)."""
    return {
        "occurred_at": _instant(item["occurred_at"]).isoformat(),
        "service": item["service"],
        "position": int(item["position"]),
    }


def encode_cursor(cursor: dict) -> str:
    """The opaque text of a cursor, for the API."""
    raw = json.dumps([cursor["occurred_at"], cursor["service"], cursor["position"]])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> dict:
    """A cursor from its opaque text, as the services take it (`occurred_at` in ISO 8601);
    ValidationFailed naming `cursor` when it is not one this API handed out."""
    message = "Not a cursor of this history: use the next_cursor of an answer."
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, service, position = json.loads(raw.decode())
        loaded = Cursor().load({"occurred_at": at, "service": service, "position": position})
    except (ValueError, TypeError, binascii.Error, ValidationError) as exc:
        raise ValidationFailed(f"cursor: {message}", {"cursor": [message]}) from exc
    return dict(loaded, occurred_at=loaded["occurred_at"].isoformat())
