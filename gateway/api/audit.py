"""Auditors' routes: every change of an object explained, and the object as it stood then.

    GET /api/v1/staff/audit/customers/{id}/history
    GET /api/v1/staff/audit/{kind}/{id}/history      kind: invoice, ticket, service, order,
                                                     account, staff
    GET /api/v1/staff/audit/{kind}/{id}?at=<instant> kind: customer and the kinds above

A history is the events of every service that concern the object (services/infra/audit.py
says which do), merged in `(occurred_at, service, position)` order (`?order=oldest`, the
default) or in that order reversed (`?order=newest`), and paged by an opaque cursor that
continues in its order: each service answers the events after the cursor in that order
(`audit_history`), one more than the page, and the page is the first `limit` of them
all. A past state is asked of the service that owns the object (`audit_state`). Deleted
customers have both.

Who may read what: administrators and auditors everything. A customer's history (its own
events and those of its invoices, account, services, orders and tickets, in one
timeline) is also open to support and billing, who work with customers every day, and so
are services and orders; an invoice's or a personal account's (every ledger entry,
correction and refund with who made it) to billing, a ticket's (every message and note)
to support; a staff member's (the account's changes and everything the member did,
audit reads included) only to administrators and auditors. Every read, allowed and
answered or not found, is recorded first (customers' `record_audit_read`): who looked at
which object's history or state, and when; it is in the reader's own history.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts import audit as contract
from contracts import audit_export
from contracts import fields as f
from contracts.errors import NotFound
from gateway.http import Call, route

# the staff roles that may read each kind of object's history and past state
EVERY_READER = ("admin", "auditor", "support", "billing")
ROLES: dict[str, tuple[str, ...]] = {
    "customer": EVERY_READER,
    "service": EVERY_READER,
    "order": EVERY_READER,
    "invoice": ("admin", "auditor", "billing"),
    "account": ("admin", "auditor", "billing"),
    "ticket": ("admin", "auditor", "support"),
    "staff": ("admin", "auditor"),
}
PREFIX = "/api/v1/staff/audit"


def history_route(kind: str) -> str:
    """The route (as `roles_of` takes it) of a kind's history, for pages and buttons."""
    return {
        "customer": f"GET {PREFIX}/customers/<uuid:object_id>/history",
        "service": f"GET {PREFIX}/<any(service,order):kind>/<uuid:object_id>/history",
        "order": f"GET {PREFIX}/<any(service,order):kind>/<uuid:object_id>/history",
        "invoice": f"GET {PREFIX}/<any(invoice,account):kind>/<uuid:object_id>/history",
        "account": f"GET {PREFIX}/<any(invoice,account):kind>/<uuid:object_id>/history",
        "ticket": f"GET {PREFIX}/ticket/<uuid:object_id>/history",
        "staff": f"GET {PREFIX}/staff/<uuid:object_id>/history",
    }[kind]


def state_route(kind: str) -> str:
    """The route (as `roles_of` takes it) of a kind's past state."""
    return {
        "customer": f"GET {PREFIX}/<any(customer,service,order):kind>/<uuid:object_id>",
        "service": f"GET {PREFIX}/<any(customer,service,order):kind>/<uuid:object_id>",
        "order": f"GET {PREFIX}/<any(customer,service,order):kind>/<uuid:object_id>",
        "invoice": f"GET {PREFIX}/<any(invoice,account):kind>/<uuid:object_id>",
        "account": f"GET {PREFIX}/<any(invoice,account):kind>/<uuid:object_id>",
        "ticket": f"GET {PREFIX}/ticket/<uuid:object_id>",
        "staff": f"GET {PREFIX}/staff/<uuid:object_id>",
    }[kind]


# -- what the routes take and answer ------------------------------------------------------------


class AuditHistoryQuery(Schema):
    cursor = f.Text(
        load_default=None,
        max_length=500,
        metadata={"description": "the `next_cursor` of the page before (none: the first page)"},
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=contract.MAX_LIMIT),
        metadata={"description": f"events per page, 1 to {contract.MAX_LIMIT}"},
    )
    order = f.Text(
        load_default="oldest",
        validate=validate.OneOf(contract.ORDERS),
        metadata={
            "description": "`oldest` (oldest first) or `newest` (newest first); a cursor "
            "continues the order it was handed out in"
        },
    )


class AuditStateQuery(Schema):
    at = fields.AwareDateTime(
        load_default=None,
        format="iso",
        metadata={"description": "an instant with its offset (none: now)"},
    )


class AuditPerson(Schema):
    kind = f.Text(metadata={"description": "staff, client, system, mail, service, anonymous"})
    id = f.Text(allow_none=True)


class AuditChange(Schema):
    field = f.Text(metadata={"description": "an attribute, `buyer.email` for one of a dict's"})
    before = f.Json(metadata={"description": "null: not known before (or the event's own)"})
    after = f.Json()


class AuditAggregate(Schema):
    id = fields.UUID()
    type = f.Text(metadata={"description": "Customer, Invoice, PersonalAccount, Ticket, ..."})
    version = fields.Integer()


class AuditEvent(Schema):
    service = f.Text()
    position = fields.Integer(metadata={"description": "in that service's event log"})
    type = f.Text(metadata={"description": "the event: `Customer.Corrected`, `Invoice.Paid`"})
    occurred_at = fields.DateTime()
    actor = fields.Nested(AuditPerson, allow_none=True)
    on_behalf_of = fields.Nested(
        AuditPerson,
        allow_none=True,
        metadata={"description": "the staff member acting in the client's panel"},
    )
    cause = f.Text(
        allow_none=True,
        metadata={"description": "the integration event it follows from (`source:position`)"},
    )
    reason = f.Text(allow_none=True)
    summary = f.Text(metadata={"description": "in plain words: `Customer e-mail corrected`"})
    changes = fields.List(fields.Nested(AuditChange))
    aggregate = fields.Nested(AuditAggregate)


class AuditHistory(Schema):
    kind = f.Text()
    id = fields.UUID()
    items = fields.List(fields.Nested(AuditEvent))
    next_cursor = f.Text(
        allow_none=True, metadata={"description": "the next page's `cursor`; null: the last"}
    )
    limit = fields.Integer()


class AuditState(Schema):
    kind = f.Text()
    id = fields.UUID()
    service = f.Text(metadata={"description": "the service whose object it is"})
    at = fields.DateTime(metadata={"description": "the instant asked for"})
    type = f.Text()
    version = fields.Integer(metadata={"description": "the last event applied"})
    as_of = fields.DateTime(metadata={"description": "when that event happened"})
    state = fields.Dict(
        keys=f.Text(),
        values=f.Json(),
        metadata={"description": "its attributes then (never a password hash or secret)"},
    )


# -- reading ----------------------------------------------------------------------------------


def _recorded(call: Call, view: str, kind: str, at=None) -> str:
    """Record the read before answering it (no read goes unrecorded); the object's id."""
    object_id = str(call.path["object_id"])
    call.services.customers.record_audit_read(
        {
            "view": view,
            "kind": kind,
            "object_id": object_id,
            "at": at.isoformat() if at is not None else None,
        }
    )
    return object_id


def history(call: Call, kind: str) -> dict:
    """One page of the merged history of `(kind, call.path["object_id"])`."""
    q = call.query
    order = q.get("order") or "oldest"
    cursor = contract.decode_cursor(q["cursor"], order) if q["cursor"] else None
    limit = q["limit"]
    object_id = _recorded(call, "history", kind)
    # oldest first is asked as before there were two orders (a service not yet upgraded
    # answers it)
    extra = {"order": order} if order != "oldest" else {}
    replies = {
        service: getattr(call.services, service).audit_history.call_async(
            kind, object_id, cursor, limit + 1, **extra
        )
        for service in contract.SERVICES
    }
    # every service answers (else a 503), or none is shown: a history with a gap misleads
    events = [event for reply in replies.values() for event in reply.result()]
    events.sort(key=contract.sort_key, reverse=order == "newest")
    page = events[:limit]
    if not page and cursor is None:
        raise NotFound(f"No such {kind}.")
    return {
        "kind": kind,
        "id": object_id,
        "items": [_shown(e) for e in page],
        "next_cursor": contract.encode_cursor(contract.cursor_of(page[-1]), order)
        if len(events) > limit
        else None,
        "limit": limit,
    }


def _shown(event: dict) -> dict:
    """An event as a page answers it: the export's row (contracts/audit_export.py)."""
    return audit_export.row(event)


def past_state(call: Call, kind: str) -> dict:
    """`(kind, call.path["object_id"])` as it stood at `?at=` (now without one)."""
    at = call.query["at"]
    object_id = _recorded(call, "state", kind, at)
    service = getattr(call.services, contract.OWNERS[kind])
    return service.audit_state(kind, object_id, at.isoformat() if at is not None else None)


_HISTORY = (
    "the events of every service concerning it, oldest first (`order=newest`: newest "
    "first), with who did each (`actor`, `on_behalf_of` while staff act in a client's "
    "panel), why (`cause`, `reason`), a `summary` and its `changes` (before, after); "
    "paged by `cursor` (the answer's `next_cursor`, in the same order) and `limit`; "
    "recorded as an audit read"
)
_STATE = (
    "as it stood at `?at=` (an ISO 8601 instant with its offset; none: now), rebuilt from "
    "its events up to then; 404 when it did not exist yet; recorded as an audit read"
)


class AuditRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    @route(
        "GET",
        f"{PREFIX}/customers/<uuid:object_id>/history",
        query=AuditHistoryQuery,
        response=AuditHistory,
        roles=ROLES["customer"],
        tags=("audit",),
        summary="a customer's history (its invoices, account, services, orders and tickets "
        "too; a deleted customer's as well): " + _HISTORY,
    )
    def audit_customer_history(self, call: Call):
        return history(call, "customer")

    @route(
        "GET",
        f"{PREFIX}/<any(service,order):kind>/<uuid:object_id>/history",
        query=AuditHistoryQuery,
        response=AuditHistory,
        roles=ROLES["service"],
        tags=("audit",),
        summary="a service's or an order's history: " + _HISTORY,
    )
    def audit_history(self, call: Call):
        return history(call, call.path["kind"])

    @route(
        "GET",
        f"{PREFIX}/<any(invoice,account):kind>/<uuid:object_id>/history",
        query=AuditHistoryQuery,
        response=AuditHistory,
        roles=ROLES["invoice"],
        tags=("audit",),
        summary="an invoice's or a personal account's history (the account by its id, as "
        "its events name it): " + _HISTORY,
    )
    def audit_billing_history(self, call: Call):
        return history(call, call.path["kind"])

    @route(
        "GET",
        f"{PREFIX}/ticket/<uuid:object_id>/history",
        query=AuditHistoryQuery,
        response=AuditHistory,
        roles=ROLES["ticket"],
        tags=("audit",),
        summary="a ticket's history (internal notes too): " + _HISTORY,
    )
    def audit_ticket_history(self, call: Call):
        return history(call, "ticket")

    @route(
        "GET",
        f"{PREFIX}/staff/<uuid:object_id>/history",
        query=AuditHistoryQuery,
        response=AuditHistory,
        roles=ROLES["staff"],
        tags=("audit",),
        summary="a staff member's history: changes of the account and everything the "
        "member did (also in a client's panel, and the audit reads): " + _HISTORY,
    )
    def audit_staff_history(self, call: Call):
        return history(call, "staff")

    @route(
        "GET",
        f"{PREFIX}/<any(customer,service,order):kind>/<uuid:object_id>",
        query=AuditStateQuery,
        response=AuditState,
        roles=ROLES["customer"],
        tags=("audit",),
        summary="a customer (deleted ones too), a service or an order " + _STATE,
    )
    def audit_state(self, call: Call):
        return past_state(call, call.path["kind"])

    @route(
        "GET",
        f"{PREFIX}/<any(invoice,account):kind>/<uuid:object_id>",
        query=AuditStateQuery,
        response=AuditState,
        roles=ROLES["invoice"],
        tags=("audit",),
        summary="an invoice or a personal account " + _STATE,
    )
    def audit_billing_state(self, call: Call):
        return past_state(call, call.path["kind"])

    @route(
        "GET",
        f"{PREFIX}/ticket/<uuid:object_id>",
        query=AuditStateQuery,
        response=AuditState,
        roles=ROLES["ticket"],
        tags=("audit",),
        summary="a ticket " + _STATE,
    )
    def audit_ticket_state(self, call: Call):
        return past_state(call, "ticket")

    @route(
        "GET",
        f"{PREFIX}/staff/<uuid:object_id>",
        query=AuditStateQuery,
        response=AuditState,
        roles=ROLES["staff"],
        tags=("audit",),
        summary="a staff member's account " + _STATE,
    )
    def audit_staff_state(self, call: Call):
        return past_state(call, "staff")
