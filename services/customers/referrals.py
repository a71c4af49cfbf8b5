"""The affiliate program on the customers' side: each customer's referral code, whom a
code refers to, and the customers each one referred.

A customer's code is made the first time it is asked for (`ReferralCode.Created`, with
its actor): eight characters from an alphabet without look-alikes (32^8, about 10^12
codes), unique because its aggregate's id is derived from the code, and stable because a
second aggregate, derived from the customer, names it. A customer registering with a code
is recorded with that referrer (`Customer.Edited` with `referrer_id` and
`referral_source`, saved with the registration). Who was referred is the read model
`referral_list` (customer number and registration date only: no personal data reaches
the referrer). Commissions are billing's (its `commissions` list).
"""

from __future__ import annotations

import re
import secrets
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from contracts.errors import Conflict, NotFound
from contracts.fields import invalid
from services.infra.clock import isoformat
from services.infra.domain import KeyedIndex
from services.infra.paging import page_window
from services.infra.readmodels import ReadModel
from services.infra.rpc import rpc

_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/referrals")
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I
CODE_LENGTH = 8
_CODE = re.compile(rf"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
ATTEMPTS = 10


def normalise(code: str) -> str:
    """A code as typed (any case, spaces or dashes around its halves) in its one spelling."""
    return re.sub(r"[\s-]", "", str(code or "")).upper()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


class ReferralCode(KeyedIndex):
    """One code, and the customer it refers new customers to."""

    id_namespace = _NS
    id_prefix = "code"
    key_fields = ("code",)

    @classmethod
    def key_text(cls, code: str) -> str:
        return normalise(code)

    @event("Created")
    def __init__(self, code: str, customer_id: UUID):
        self.code = code
        self.customer_id = customer_id


class CustomerReferralCode(KeyedIndex):
    """The code of one customer: a customer has one, made once."""

    id_namespace = _NS
    id_prefix = "customer"
    key_fields = ("customer_id",)

    @event("Given")
    def __init__(self, customer_id: UUID, code: str):
        self.customer_id = customer_id
        self.code = code


def code_of(app, customer_id: UUID) -> str:
    """The customer's code, made (and recorded) the first time it is asked for."""
    for _ in range(ATTEMPTS):
        try:
            return app.repository.get(CustomerReferralCode.id_for(customer_id)).code
        except AggregateNotFoundError:
            pass
        code = new_code()
        try:
            app.save(
                CustomerReferralCode(customer_id=customer_id, code=code),
                ReferralCode(code=code, customer_id=customer_id),
            )
            return code
        except IntegrityError:
            continue  # made for this customer at the same moment, or the code was taken
    raise Conflict("No referral code could be made now; try again.")


def referrer_of(app, code: str | None, field: str = "referral_code") -> UUID:
    """The customer a code refers to; a 400 naming `field` when there is no such code (or
    its customer was deleted)."""
    text = normalise(code)
    if _CODE.match(text):
        try:
            found = app.repository.get(ReferralCode.id_for(text))
        except AggregateNotFoundError:
            found = None
        if isinstance(found, ReferralCode):
            try:
                app.get_customer(found.customer_id)
                return found.customer_id
            except NotFound:
                pass
    raise invalid(field, "No such referral code.")


def referred(app, referrer_id: UUID, page: int, page_size: int) -> dict:
    """The customers `referrer_id` referred, newest first: number and registration date."""
    limit, offset = page_window(page, page_size)
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT count(*) AS n FROM referral_list WHERE referrer_id = %s", (referrer_id,)
        )
        total = curs.fetchone()["n"]
        curs.execute(
            "SELECT number, registered_at FROM referral_list WHERE referrer_id = %s"
            " ORDER BY registered_at DESC, number DESC LIMIT %s OFFSET %s",
            (referrer_id, limit, offset),
        )
        rows = curs.fetchall()
    return {
        "items": [
            {"number": r["number"], "registered_at": isoformat(r["registered_at"])} for r in rows
        ],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


def numbers_of(app, referrer_id: UUID, customer_ids: list) -> dict[str, int]:
    """Customer numbers of those among `customer_ids` that `referrer_id` referred."""
    ids = []
    for value in customer_ids or ():
        try:
            ids.append(UUID(str(value)))
        except ValueError:
            continue
    if not ids:
        return {}
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT customer_id, number FROM referral_list"
            " WHERE referrer_id = %s AND customer_id = ANY(%s)",
            (referrer_id, ids),
        )
        return {str(r["customer_id"]): r["number"] for r in curs.fetchall()}


class ReferralList(ReadModel):
    """Every customer with its number, registration date and referrer (if any)."""

    name = "referral_list"
    table_names = ("referral_list",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS referral_list (
            customer_id uuid PRIMARY KEY,
            number bigint NOT NULL,
            registered_at timestamptz NOT NULL,
            referrer_id uuid
        )
        """,
        "CREATE INDEX IF NOT EXISTS referral_list_referrer"
        " ON referral_list (referrer_id, registered_at DESC) WHERE referrer_id IS NOT NULL",
    )

    def on_Customer_Registered(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO referral_list (customer_id, number, registered_at)"
            " VALUES (%s, %s, %s) ON CONFLICT (customer_id) DO NOTHING",
            (e.originator_id, e.number, e.registered_at),
        )

    def on_Customer_Edited(self, curs, e) -> None:
        if "referrer_id" in e.changes:
            referrer = e.changes["referrer_id"]
            curs.execute(
                "UPDATE referral_list SET referrer_id = %s WHERE customer_id = %s",
                (UUID(str(referrer)) if referrer else None, e.originator_id),
            )


class ReferralRpcs:
    """The customers service's RPCs of the affiliate program (mixed into the service)."""

    @rpc
    def affiliate(
        self, customer_id: str, page: int = 1, page_size: int = 50, referred_ids: list = ()
    ) -> dict:
        """The customer's referral `code` (made now when it has none), the customers it
        referred (`referred`: number and registration date, paged), and `numbers`: the
        customer numbers of `referred_ids` it referred (for its commissions)."""
        customer = self.app.get_customer(_customer_uuid(customer_id))
        return {
            "code": code_of(self.app, customer.id),
            "referred": referred(self.app, customer.id, page, page_size),
            "numbers": numbers_of(self.app, customer.id, list(referred_ids or ())),
        }

    @rpc
    def resolve_referral_code(self, code: str) -> dict:
        """{"referrer_id"} of a referral code; 400 naming `referral_code` when unknown."""
        return {"referrer_id": str(referrer_of(self.app, code))}


def _customer_uuid(value) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound("No such customer.") from None
