"""The audit questions every service answers over RPC, and the gateway's history cursor.

Each service keeps an audit index of its own events (services/infra/audit.py). A history
is the events that concern one object, in `(occurred_at, service, position)` order (or
that order reversed, newest first): the gateway asks every service for the events after
a cursor in that order and merges them. The cursor the API hands out is opaque and says
which order it continues: `encode_cursor` / `decode_cursor` make and read it.
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
# the orders a history is read in: `(occurred_at, service, position)` and its reverse
ORDERS = ("oldest", "newest")
# events of one `audit_events` answer (pages of an export, not shown to a person)
MAX_WINDOW_LIMIT = 1000


class Cursor(Schema):
    """Where a page of history ends: the last event given, by its sort key."""

    occurred_at = fields.AwareDateTime(required=True, format="iso")
    service = Text(required=True, validate=validate.OneOf(SERVICES))
    position = fields.Integer(required=True, validate=validate.Range(min=0, max=2**63 - 1))


class HistoryQuery(Schema):
    """`audit_history`: the events concerning one object after `cursor` (None: from the
    first) in `order` (`newest`: the merged order reversed), at most `limit`."""

    kind = Text(required=True, validate=validate.OneOf(KINDS))
    object_id = fields.UUID(required=True)
    cursor = fields.Nested(Cursor, load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT + 1))
    order = Text(load_default="oldest", validate=validate.OneOf(ORDERS))


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


def encode_cursor(cursor: dict, order: str = "oldest") -> str:
    """The opaque text of a cursor, for the API; it says the order it continues (an
    oldest-first one reads as the cursors handed out before there were two orders)."""
    parts = [cursor["occurred_at"], cursor["service"], cursor["position"]]
    raw = json.dumps(parts if order == "oldest" else [*parts, order])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, order: str = "oldest") -> dict:
    """A cursor from its opaque text, as the services take it (`occurred_at` in ISO 8601);
    ValidationFailed naming `cursor` when it is not one this API handed out, or one of a
    history read in the other order."""
    message = "Not a cursor of this history: use the next_cursor of an answer."
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, service, position, *rest = json.loads(raw.decode())
        if rest not in ([], ["newest"]):
            raise ValueError(rest)
        loaded = Cursor().load({"occurred_at": at, "service": service, "position": position})
    except (ValueError, TypeError, binascii.Error, ValidationError) as exc:
        raise ValidationFailed(f"cursor: {message}", {"cursor": [message]}) from exc
    given = rest[0] if rest else "oldest"
    if given != order:
        other = f"A cursor of the history {given} first: ask with order={given}, or start over."
        raise ValidationFailed(f"cursor: {other}", {"cursor": [other]})
    return dict(loaded, occurred_at=loaded["occurred_at"].isoformat())
