"""Erasure of a deleted customer's personal data (services/infra/personal_data.py).

What is personal here (`PERSONAL`): the customer's names (the display name staff give,
the legal name, the contact person), e-mail, phone, address, staff's note, registration
address; the reasons staff gave for correcting it, deleting it and resetting its or its
users' two-factor authentication; its users' names and e-mails; its payers' names and
details; its e-mail change requests' addresses; the e-mail in the index entries that keep
addresses unique (the customer's own, `CustomerEmail`, and its users', `PeopleEmail`).
They are sealed with the customer's key when stored and read back as `[erased]` once the
key is destroyed.

What stays: the customer's number, kind, country, language, project, currency, dates,
groups, services, username (the login name stays taken, `LoginName`), and every event
with who did it and when. The index entries keep their ids, which are derived from the
address (`uuid5` of the lower-cased e-mail): they give no address back, but someone who
already knows an address can tell that some account once had it. The customer's own
address is let go at the erasure (`CustomerEmail.Released`): it may be used again.

`erase_customer`: 404 for an unknown customer, 409 for one not deleted, 400 for a missing,
blank or too long reason; it records `PersonalData.Erased` (who, when, why), destroys the
key, scrubs this service's own tables (e-mail change requests, mail requests, login
attempts, sessions, credentials, two-factor secrets of the customer and its users) and
lets the address go, in one transaction. The relay publishes the event as
`CustomerErased`, on which every other service does the same with its own key. A repeat
answers the first erasure again and records nothing.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts.errors import Conflict, NotFound, ValidationFailed
from services.customers.domain import CustomerEmail
from services.customers.staff_customers import customer_of
from services.infra.clock import isoformat
from services.infra.personal_data import PLACEHOLDER, PersonalData, PersonalFields

MAX_REASON = 1000

_CUSTOMER = PersonalFields.fields("email", "contact_person", "company_name", "registration_ip")
_EDIT = PersonalFields.fields(
    "changes.name",
    "changes.email",
    "changes.contact_person",
    "changes.company_name",
    "changes.phone",
    "changes.verified_phone",
    "changes.address",
    "changes.note",
)
# what staff typed about the customer: why they corrected, deleted or reset something
# (the erasure's own reason, PersonalData.Erased, stays readable: it says why)
_REASON = PersonalFields.fields("reason")
PERSONAL = PersonalFields(
    {
        "Customer.Registered": _CUSTOMER,
        "Customer.Edited": _EDIT,
        "Customer.Corrected": {**_EDIT, **_REASON},
        "Customer.Deleted": _REASON,
        # a customer's, or its user's (the key of the user's customer: the aggregate's
        # customer_id, HostledgerApplication.save); a staff member's has no customer
        "TwoFactorAccount.TwoFactorReset": _REASON,
        "CustomerUser.Added": PersonalFields.fields("email", "name"),
        "Payer.Added": PersonalFields.fields(
            "name",
            "details.tax_id",
            "details.registration_number",
            "details.address",
            "details.email",
        ),
        "EmailChange.Requested": PersonalFields.fields("previous_email", "new_email"),
        "CustomerEmail.Claimed": PersonalFields.fields("email"),
        # sealed with the key of the customer whose user started it (Customers._save_claiming)
        "PeopleEmail.Started": PersonalFields.fields("email"),
    }
)

# what the answer says was erased here (the other services: README, Auditing)
ERASED = (
    "name",
    "company_name",
    "contact_person",
    "email",
    "phone",
    "verified_phone",
    "address",
    "note",
    "registration_ip",
    "users",
    "payers",
    "email_changes",
)
# the services that erase on CustomerErased, after this one
FOLLOWING = ("billing", "orders", "helpdesk", "mailgateway")


def _reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed("Say why the data is erased.", {"reason": ["Missing."]})
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"The reason is too long (at most {MAX_REASON} characters).",
            {"reason": [f"At most {MAX_REASON} characters."]},
        )
    return reason


def _user_ids(app, customer_id: UUID) -> list[UUID]:
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT id FROM directory WHERE customer_id = %s AND kind = 'user'", (customer_id,)
        )
        return [r["id"] for r in curs.fetchall()]


def _scrub(customer, user_ids: list[UUID]) -> list[tuple[str, tuple]]:
    """This service's own tables (not read models): rows that hold the customer's or its
    users' addresses, secrets or attempts."""
    owners = [customer.id, *user_ids]
    keys = [f"%{o}%" for o in owners]
    return [
        (
            "UPDATE email_changes SET new_email = %s WHERE customer_id = %s",
            (PLACEHOLDER, customer.id),
        ),
        (
            "UPDATE mail_requests SET details = '{}'::jsonb, secret = NULL,"
            " last_error = CASE WHEN handed_over_at IS NULL THEN 'erased' ELSE last_error END,"
            " handed_over_at = coalesce(handed_over_at, now()) WHERE customer_id = %s",
            (customer.id,),
        ),
        (
            "DELETE FROM login_attempts WHERE key LIKE ANY(%s) OR key = %s",
            (keys, "order-email:" + str(customer.email).strip().lower()),
        ),
        ("DELETE FROM password_resets WHERE owner_id = ANY(%s)", (owners,)),
        ("DELETE FROM credentials WHERE owner_id = ANY(%s)", (owners,)),
        ("DELETE FROM two_factor WHERE owner_id = ANY(%s)", (owners,)),
        ("DELETE FROM two_factor_recovery WHERE owner_id = ANY(%s)", (owners,)),
        ("DELETE FROM login_challenges WHERE owner_id = ANY(%s)", (owners,)),
        ("DELETE FROM sessions WHERE customer_id = %s", (customer.id,)),
    ]


def erasure_view(app, customer_id: UUID) -> dict:
    """The erasure recorded here: when, by whom, why, what."""
    erased = app.repository.get(PersonalData.id_for(customer_id))
    stored = app.recorder.select_events(erased.id, limit=1)[0]
    first = app.mapper.to_domain_event(stored)
    return {
        "customer_id": str(customer_id),
        "erased_at": isoformat(erased.erased_at),
        "actor": getattr(first, "actor", None),
        "reason": erased.reason,
        "erased": list(ERASED),
        "following": list(FOLLOWING),
    }


def erase_customer(app, customer_id: UUID, reason) -> dict:
    reason = _reason(reason)
    customer = customer_of(app, customer_id)  # 404
    if not customer.deleted:
        raise Conflict(
            "Only a deleted customer's personal data can be erased: delete it first.",
            {"customer_id": ["Not deleted."]},
        )
    try:
        app.repository.get(PersonalData.id_for(customer.id))
        return erasure_view(app, customer.id)  # erased before: nothing again
    except AggregateNotFoundError:
        pass
    others = []
    try:
        index = app.repository.get(CustomerEmail.id_for(customer.email))
    except AggregateNotFoundError:
        index = None
    if index is not None and index.customer_id == customer.id:
        index.release()  # the address may be used again
        others.append(index)
    app.erase_personal_data(
        customer.id, reason, *others, also=_scrub(customer, _user_ids(app, customer.id))
    )
    return erasure_view(app, customer.id)


def erase_customer_rpc(app, customer_id: str, reason) -> dict:
    try:
        ident = UUID(str(customer_id))
    except ValueError:
        raise NotFound("No such customer.") from None
    return erase_customer(app, ident, reason)
