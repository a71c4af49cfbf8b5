"""What the staff panel's customer card needs beyond the API's customer: corrections of
what a customer registered with (each with its reason), a deleted customer's record, and
the customer's history from the events of every aggregate of this service that concerns
it (the customer, its users and payers, the discounts given to it, its e-mail change
requests, its people's style and favourite pages, its referral code).

A correction (`correct`) is its own event, `Customer.Corrected`, carrying the staff
member's reason; the actor is stamped on it like on every event. A corrected e-mail
moves the customer's entry in the index of customer e-mails in the same save, so the old
address is free and the new one belongs to nobody else.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts.customers import COMPANY_NAME_NEEDED, needs_company_name
from contracts.errors import Conflict, NotFound, ValidationFailed
from services.customers.domain import Customer, CustomerEmail, DiscountsOf, Project
from services.customers.email_change import TAKEN, claim_email, live_owner
from services.customers.personal import PersonalSettings
from services.customers.referrals import CustomerReferralCode
from services.infra.clock import isoformat
from services.infra.rpc import rpc

# the events of a customer whose details a history shows (others: type, time and actor)
WITH_CHANGES = ("Edited", "Corrected")
# the events whose reason a history shows
WITH_REASON = ("Corrected", "Deleted", "TwoFactorReset")

# the aggregates of this service a customer's history gathers: their class name (as an
# event's topic has it) and the `subject` kind its events are shown with (None: the
# customer itself)
SUBJECTS = {
    "Customer": None,
    "CustomerUser": "user",
    "Payer": "payer",
    "Discount": "discount",
    "EmailChange": "email_change",
    "PersonalSettings": "settings",
    "CustomerReferralCode": "referral_code",
}
# what each kind of subject's events show besides type, time and actor: never a
# password hash or a token
DETAILS = {
    "user": ("username", "email", "permissions", "reason", "remaining"),
    "payer": ("kind",),
    "discount": ("kind", "percent", "amount", "currency", "valid_from", "valid_to", "at"),
    "email_change": ("new_email",),
    "settings": ("theme",),
    "referral_code": ("code",),
}
# events that change nothing a person looks for (the confirmation of an e-mail change is
# the customer's own Edited event, saved with it)
HIDDEN = {("settings", "Started"), ("email_change", "Confirmed")}


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
    if needs_company_name(kind, company_name):
        # named as the field the request did not give or emptied: the company name
        raise ValidationFailed(COMPANY_NAME_NEEDED, {"company_name": [COMPANY_NAME_NEEDED]})
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


def customer_of(app, customer_id: UUID) -> Customer:
    """The customer, deleted or not (404: no such customer)."""
    try:
        customer = app.repository.get(customer_id)
    except AggregateNotFoundError:
        raise NotFound("No such customer.") from None
    if not isinstance(customer, Customer):
        raise NotFound("No such customer.")
    return customer


_customer = customer_of


def record(app, customer_id: UUID) -> dict:
    """The customer as the API shows it, deleted or not: `deleted`, and for a deleted
    one `deletion` ({"at", "forced", "reason", "actor"}) and `erasure` (its personal
    data's: {"at", "reason", "actor"}, None while not erased)."""
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
        answer["erasure"] = _erasure(app, customer.id)
    return answer


def _erasure(app, customer_id: UUID) -> dict | None:
    """{"at", "reason", "actor"} of the erasure of its personal data, None before."""
    from services.infra.personal_data import PersonalData

    stored = app.recorder.select_events(PersonalData.id_for(customer_id), limit=1)
    if not stored:
        return None
    e = app.mapper.to_domain_event(stored[0])
    return {"at": isoformat(e.at), "reason": e.reason, "actor": getattr(e, "actor", None)}


def concerning(app, customer: Customer) -> list[UUID]:
    """The ids of the aggregates of this service that concern `customer`: itself, its
    users and payers and the discounts given to it (from the directory, a read model: one
    added a moment ago may be missing for a moment; discounts also from their index in the
    event store), its e-mail change requests, its people's own settings, its referral
    code. Ids of aggregates never saved are harmless: they have no events."""
    ids = [customer.id]
    users: list[UUID] = []
    with app.datastore.transaction() as curs:
        curs.execute("SELECT to_regclass('directory') IS NOT NULL AS listed")
        if curs.fetchone()["listed"]:
            curs.execute(
                "SELECT id, kind FROM directory WHERE customer_id = %s"
                " AND kind IN ('user', 'payer', 'discount') ORDER BY created_at, id",
                (customer.id,),
            )
            for row in curs.fetchall():
                ids.append(row["id"])
                if row["kind"] == "user":
                    users.append(row["id"])
        curs.execute(
            "SELECT change_id, min(created_at) AS at FROM email_changes WHERE customer_id = %s"
            " GROUP BY change_id ORDER BY at",
            (customer.id,),
        )
        ids += [r["change_id"] for r in curs.fetchall()]
    try:
        ids += app.repository.get(DiscountsOf.id_for(customer.id)).discount_ids
    except AggregateNotFoundError:
        pass
    ids += [PersonalSettings.id_for(person) for person in (customer.id, *users)]
    ids.append(CustomerReferralCode.id_for(customer.id))
    return list(dict.fromkeys(ids))


def history(app, customer_id: UUID, page: int, page_size: int) -> dict:
    """The events of the customer and of every aggregate of this service that concerns it
    (`concerning`), newest first: {"type", "occurred_at", "actor", "on_behalf_of",
    "subject", "changes"?, "reason"?, "details"?}. `subject` is None for the customer's
    own events, else {"kind": user|payer|discount|email_change|settings|referral_code,
    "id", "name"} (`name`: the user's, payer's or discount's, as it was at that event;
    for settings, the user's whose they are, None: the customer's own). Never a password
    hash nor a token: only the changes of the customer's edits and corrections and the
    `details` each subject kind shows."""
    customer = customer_of(app, customer_id)
    ids = concerning(app, customer)
    # whose personal settings are whose: the customer's own (None) or a user's name
    settings_of = {PersonalSettings.id_for(customer.id): None}
    events = []
    for rank, aggregate_id in enumerate(ids):
        name, subject_kind = None, None
        for stored in app.recorder.select_events(aggregate_id):
            e = app.mapper.to_domain_event(stored)
            kind = type(e).__name__
            if e.originator_version == 1:
                # what the aggregate is: the class its first event was recorded for
                owner = type(e).__qualname__.rpartition(".")[0]
                if owner not in SUBJECTS or (SUBJECTS[owner] is None) != (
                    aggregate_id == customer.id
                ):
                    break  # not an aggregate this history shows
                subject_kind = SUBJECTS[owner]
            elif subject_kind is None and aggregate_id != customer.id:
                break
            name = getattr(e, "name", None) or getattr(e, "new_email", None) or name
            if subject_kind == "user":
                settings_of[PersonalSettings.id_for(aggregate_id)] = name
            events.append((e, rank, subject_kind, kind, name))
    events = [x for x in events if (x[2], x[3]) not in HIDDEN]
    events.sort(key=lambda x: (x[0].timestamp, x[1], x[0].originator_version), reverse=True)
    total = len(events)
    start = (page - 1) * page_size
    items = []
    for e, _rank, subject_kind, kind, name in events[start : start + page_size]:
        item = {
            "type": kind,
            "version": e.originator_version,
            "occurred_at": isoformat(e.timestamp),
            "actor": getattr(e, "actor", None),
            "on_behalf_of": getattr(e, "on_behalf_of", None),
            "subject": None,
        }
        if subject_kind is None:
            if kind in WITH_CHANGES:
                item["changes"] = {k: _plain(v) for k, v in e.changes.items()}
            if kind in WITH_REASON:
                item["reason"] = getattr(e, "reason", None)
        else:
            if subject_kind == "settings":
                name = settings_of.get(e.originator_id)
            item["subject"] = {"kind": subject_kind, "id": str(e.originator_id), "name": name}
            details = {k: _plain(getattr(e, k)) for k in DETAILS[subject_kind] if hasattr(e, k)}
            if kind == "Changed" and subject_kind == "discount":
                details["name"] = name
            if kind == "FavouritesSet":
                details["pages"] = len(e.favourites)
            if "reason" in details:
                item["reason"] = details.pop("reason")
            item["details"] = details
        items.append(item)
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _plain(value):
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return isoformat(value)
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
        """The events of the customer and of what concerns it, newest first, a page at a
        time (`history`)."""
        page = min(max(int(page), 1), 10_000)
        page_size = min(max(int(page_size), 1), 200)
        return history(self.app, _uuid(customer_id), page, page_size)


def _uuid(value) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound("No such customer.") from None
