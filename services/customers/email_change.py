"""A client's change of its e-mail address, confirmed through a link sent to the new one.

The client asks with its current password (`request_email_change`): an `EmailChange`
is recorded (who asked, for which address, until when) with the link's token hash in
`email_changes` and a mail request (`email_change`, mail_requests.py) carrying the
token to the new address, in one transaction. Nothing changes on the customer yet.

Opening the link (`confirm_email_change`, by the same client, logged in) within its
lifetime, once, changes the address: the customer's `Edited` event (published as
CustomerUpdated), the new address claimed in the index of customer e-mails and the old
one let go, the change marked confirmed and the link used, and a notice to the old
address (`email_changed`), all in one save. A newer request voids the older links.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from contracts.errors import Conflict, InvalidCredentials, ValidationFailed
from services.customers.domain import Customer, CustomerEmail
from services.customers.mail_requests import request_statement
from services.infra import clock, context
from services.infra.clock import isoformat
from services.infra.domain import Aggregate

LIFETIME = timedelta(hours=24)
TAKEN = "An account with this e-mail already exists."

TABLE = (
    """
    CREATE TABLE IF NOT EXISTS email_changes (
        token_hash text PRIMARY KEY,
        change_id uuid NOT NULL,
        customer_id uuid NOT NULL,
        new_email text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS email_changes_customer ON email_changes (customer_id)",
)


class EmailChange(Aggregate):
    """A client's request to change its address to `new_email`, and its confirmation."""

    @event("Requested")
    def __init__(self, customer_id: UUID, previous_email: str, new_email: str, expires_at):
        self.customer_id = customer_id
        self.previous_email = previous_email
        self.new_email = new_email
        self.expires_at = expires_at
        self.confirmed = False

    @event("Confirmed")
    def confirm(self) -> None:
        self.confirmed = True


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link_invalid() -> ValidationFailed:
    return ValidationFailed(
        "This confirmation link is not valid: it was used already, it expired, a newer "
        "one was sent, or it never existed. Ask for the change again.",
        {"token": ["Not valid (used, expired or unknown)."]},
    )


def live_owner(app, email: str) -> Customer | None:
    """The customer whose address `email` is now (any case), or None."""
    try:
        index = app.repository.get(CustomerEmail.id_for(email))
    except AggregateNotFoundError:
        return None
    if index.customer_id is None:
        return None
    try:
        return app.repository.get(index.customer_id)
    except AggregateNotFoundError:
        return None


def claim_email(app, email: str, customer_id: UUID) -> CustomerEmail:
    """The index entry that gives `email` to `customer_id`, to save with it: a new one, or
    one let go by a customer that changed its address (a live one conflicts at save)."""
    try:
        index = app.repository.get(CustomerEmail.id_for(email))
    except AggregateNotFoundError:
        return CustomerEmail(email=email, customer_id=customer_id)
    if index.customer_id is None:
        index.reclaim(customer_id=customer_id)
        return index
    if index.customer_id == customer_id:
        return index  # its own (an address changed back): nothing to record
    return CustomerEmail(email=email, customer_id=customer_id)  # conflicts when saved


def _refuse_while_acting() -> None:
    from contracts.errors import Forbidden

    on_behalf_of = context.current.on_behalf_of
    if on_behalf_of is not None and on_behalf_of.kind == "staff":
        raise Forbidden("While acting in a client's panel, staff cannot change its e-mail.")


def request_email_change(app, customer_id: UUID, new_email: str, current_password: str) -> dict:
    """Record the request and the mail with its link to `new_email`; 400 when it is the
    address already, 409 when another account has it, 401 for a wrong password (counted
    like a login), 429 past a few requests in a while."""
    customer = app.get_customer(customer_id)
    _refuse_while_acting()
    keys = {"pair": f"pair:{customer.id}|email-change", "account": f"account:{customer.id}"}
    app._reserve(keys)
    if not app.password_matches(customer, current_password):
        raise InvalidCredentials("The current password is wrong.")
    app._give_back(keys)
    new_email = new_email.strip()
    if new_email.lower() == customer.email.strip().lower():
        raise ValidationFailed(
            "This is your e-mail address already.", {"email": ["Already your address."]}
        )
    owner = live_owner(app, new_email)
    if owner is not None and owner.id != customer.id:
        raise Conflict(TAKEN, {"email": [TAKEN]})
    app._reserve({"reset_mail": f"email-change-mail:{customer.id}"}, "e-mail change requests")
    token = secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + LIFETIME
    change = EmailChange(
        customer_id=customer.id,
        previous_email=customer.email,
        new_email=new_email,
        expires_at=expires,
    )
    recipient = {
        "kind": "client",
        "email": new_email,
        "name": customer.contact_person,
        "language": customer.language,
        "customer_id": str(customer.id),
        "expires_hours": int(LIFETIME.total_seconds() // 3600),
    }
    app.save(
        change,
        also=[
            # the links sent before this one no longer work
            (
                "UPDATE email_changes SET used_at = %s WHERE customer_id = %s AND used_at IS NULL",
                (now, customer.id),
            ),
            (
                "INSERT INTO email_changes (token_hash, change_id, customer_id, new_email,"
                " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (_token_hash(token), change.id, customer.id, new_email, now, expires),
            ),
            request_statement("email_change", customer.id, {"recipient": recipient}, token),
        ],
    )
    return {"status": "pending", "email": new_email, "expires_at": isoformat(expires)}


def pending_email_change(app, customer_id: UUID) -> dict | None:
    """The change waiting for its link to be opened: {"email", "expires_at"}, or None."""
    now = clock.now()
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT new_email, expires_at FROM email_changes WHERE customer_id = %s"
            " AND used_at IS NULL AND expires_at > %s ORDER BY created_at DESC LIMIT 1",
            (customer_id, now),
        )
        row = curs.fetchone()
    if row is None:
        return None
    return {"email": row["new_email"], "expires_at": isoformat(row["expires_at"])}


def confirm_email_change(app, customer_id: UUID, token: str) -> Customer:
    """Change the address as the link asks: once, within its lifetime, for the customer
    logged in. The old address is told; another account that took the address meanwhile
    makes it a 409 (the link stays unused)."""
    customer = app.get_customer(customer_id)
    _refuse_while_acting()
    now = clock.now()
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT change_id, new_email FROM email_changes WHERE token_hash = %s"
            " AND customer_id = %s AND used_at IS NULL AND expires_at > %s",
            (_token_hash(token), customer.id, now),
        )
        row = curs.fetchone()
    if row is None:
        raise _link_invalid()
    change = app.repository.get(row["change_id"])
    new_email, previous = row["new_email"], customer.email
    owner = live_owner(app, new_email)
    if owner is not None and owner.id != customer.id:
        raise Conflict(TAKEN, {"email": [TAKEN]})
    objects = [customer, change, claim_email(app, new_email, customer.id)]
    old_index = None
    try:
        old_index = app.repository.get(CustomerEmail.id_for(previous))
    except AggregateNotFoundError:
        pass
    if (
        old_index is not None
        and old_index.customer_id == customer.id
        and old_index.id != CustomerEmail.id_for(new_email)
    ):
        old_index.release()
        objects.append(old_index)
    customer.edit({"email": new_email})
    change.confirm()
    notice = {
        "kind": "client",
        "email": previous,
        "name": customer.contact_person,
        "language": customer.language,
        "customer_id": str(customer.id),
        "new_email": new_email,
    }
    try:
        app.save(
            *objects,
            also=[
                (
                    "UPDATE email_changes SET used_at = %s WHERE customer_id = %s"
                    " AND used_at IS NULL",
                    (now, customer.id),
                ),
                request_statement("email_changed", customer.id, {"recipient": notice}, None),
            ],
        )
    except IntegrityError:
        raise Conflict("Someone else changed this at the same moment; try again.") from None
    return customer
