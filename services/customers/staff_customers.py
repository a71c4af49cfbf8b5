"""What the staff panel's customer card needs beyond the API's customer: corrections of
what a customer registered with (each with its reason), a deleted customer's record, and
the customer's history from its own events.

A correction (`correct`) is its own event, `Customer.Corrected`, carrying the staff
member's reason; the actor is stamped on it like on every event. A corrected e-mail
moves the customer's entry in the index of customer e-mails in the same save, so the old
address is free and the new one belongs to nobody else.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts.errors import Conflict, NotFound, ValidationFailed
from services.customers.domain import Customer, CustomerEmail, Project
from services.customers.email_change import TAKEN, claim_email, live_owner
from services.infra.clock import isoformat
from services.infra.rpc import rpc

# the events of a customer whose details a history shows (others: type, time and actor)
WITH_CHANGES = ("Edited", "Corrected")


def correct(app, customer: Customer, corrections: dict, reason: str | None) -> list:
    """Record the corrections that change something on `customer` (not saved yet) and
    answer the other aggregates to save with it (the e-mail index). 400 for a company
    without a company name or an unknown project, 409 for an address another has."""
    current = {k: getattr(customer, k) for k in corrections}
    changed = {
        k: (str(v) if isinstance(v, UUID) else v)
        for k, v in corrections.items()
        if (str(v) if isinstance(v, UUID) else v)
        != (str(current[k]) if isinstance(current[k], UUID) else current[k])
    }
    if "company_name" in changed:
        changed["company_name"] = (changed["company_name"] or "").strip() or None
    if "email" in changed:
        changed["email"] = changed["email"].strip()
        if changed["email"].lower() == customer.email.strip().lower():
            del changed["email"]  # the same address in other letters: not worth an event
    kind = changed.get("kind", customer.kind)
    company_name = changed.get("company_name", customer.company_name)
    if kind == "company" and not company_name:
        raise ValidationFailed(
            "A company needs its company name.",
            {"company_name": ["A company needs its company name."]},
        )
    if not changed:
        return []
    if changed.get("project_id"):
        app._refer(UUID(changed["project_id"]), Project, "project", "project_id")
    if not (reason or "").strip():
        raise ValidationFailed("Say why this is corrected.", {"reason": ["Missing."]})
    others = []
    if "email" in changed:
        owner = live_owner(app, changed["email"])
        if owner is not None and owner.id != customer.id:
            raise Conflict(TAKEN, {"email": [TAKEN]})
        others.append(claim_email(app, changed["email"], customer.id))
        try:
            old = app.repository.get(CustomerEmail.id_for(customer.email))
        except AggregateNotFoundError:
            old = None
        if old is not None and old.customer_id == customer.id and old.id != others[0].id:
            old.release()
            others.append(old)
    customer.correct(changes=changed, reason=reason.strip())
    return others


def _customer(app, customer_id: UUID) -> Customer:
    try:
        customer = app.repository.get(customer_id)
    except AggregateNotFoundError:
        raise NotFound("No such customer.") from None
    if not isinstance(customer, Customer):
        raise NotFound("No such customer.")
    return customer


def record(app, customer_id: UUID) -> dict:
    """The customer as the API shows it, deleted or not: `deleted`, and for a deleted
    one `deletion` ({"at", "forced", "reason", "actor"})."""
    customer = _customer(app, customer_id)
    answer = dict(app.customer_view(customer), deleted=customer.deleted, deletion=None)
    if customer.deleted:
        for stored in app.recorder.select_events(customer_id, desc=True, limit=5):
            if stored.topic.endswith("Customer.Deleted"):
                e = app.mapper.to_domain_event(stored)
                answer["deletion"] = {
                    "at": isoformat(e.timestamp),
                    "forced": e.forced,
                    "reason": e.reason,
                    "actor": getattr(e, "actor", None),
                }
                break
    return answer


def history(app, customer_id: UUID, page: int, page_size: int) -> dict:
    """The customer's own events, newest first: {"type", "occurred_at", "actor",
    "on_behalf_of", "changes"?, "reason"?} (never a password hash: only the changes of
    edits and corrections are shown)."""
    _customer(app, customer_id)
    stored = app.recorder.select_events(customer_id, desc=True)
    total = len(stored)
    start = (page - 1) * page_size
    items = []
    for s in stored[start : start + page_size]:
        e = app.mapper.to_domain_event(s)
        kind = type(e).__name__
        item = {
            "type": kind,
            "version": e.originator_version,
            "occurred_at": isoformat(e.timestamp),
            "actor": getattr(e, "actor", None),
            "on_behalf_of": getattr(e, "on_behalf_of", None),
        }
        if kind in WITH_CHANGES:
            item["changes"] = {k: _plain(v) for k, v in e.changes.items()}
        if kind in ("Corrected", "Deleted", "TwoFactorReset"):
            item["reason"] = getattr(e, "reason", None)
        items.append(item)
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _plain(value):
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class StaffCustomerRpcs:
    """Mixed into CustomersService: the card's questions."""

    @rpc
    def customer_record(self, customer_id: str) -> dict:
        """One customer for the staff card: deleted ones too, marked so."""
        return record(self.app, _uuid(customer_id))

    @rpc
    def customer_history(self, customer_id: str, page: int = 1, page_size: int = 20) -> dict:
        """The customer's own events, newest first, a page at a time."""
        page = min(max(int(page), 1), 10_000)
        page_size = min(max(int(page_size), 1), 200)
        return history(self.app, _uuid(customer_id), page, page_size)


def _uuid(value) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound("No such customer.") from None
