"""Ending sessions, told to every gateway instance.

Sessions live in the `sessions` table (application.py); a gateway keeps the ones it saw
in a short cache (gateway/session_cache.py) and must drop one within a second of its
end. So every end of sessions is recorded as a `SessionsEnd` event in the same
transaction as the `UPDATE sessions` that ends them, and the relay publishes it as the
`SessionsEnded` integration event. Ending nothing records nothing.

What a `SessionsEnd` names (never a token): the SHA-256 of the token of a session that
ended (a logout, leaving a client's panel: the client sessions entered from it end with
it), or the account whose every session ended (a staff member, in their own panel and
in clients'; a customer; a customer's user). A gateway drops what it holds of either.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from contracts.errors import NotFound
from services.infra import clock
from services.infra.domain import Aggregate


class SessionsEnd(Aggregate):
    """One end of one or more sessions (an aggregate of one event)."""

    @event("Recorded")
    def __init__(
        self,
        reason: str,
        token_hashes: list[str],
        staff_id: UUID | None,
        customer_id: UUID | None,
        user_id: UUID | None,
    ):
        self.reason = reason
        self.token_hashes = list(token_hashes)
        self.staff_id = staff_id
        self.customer_id = customer_id
        self.user_id = user_id


def end_sessions(
    app,
    where: str,
    params: tuple,
    reason: str,
    *,
    token_hashes: list[str] = (),
    staff_id: UUID | None = None,
    customer_id: UUID | None = None,
    user_id: UUID | None = None,
) -> list[dict]:
    """End the live sessions that `where` (SQL over `sessions`, with `params`) selects,
    with the event that tells the gateways, and the `ImpersonationEnded` of each client
    panel a staff member was in, all in one transaction. Answers the sessions ended
    ({"token_hash", "impersonator_id", "customer_id"}); none: nothing is recorded."""
    condition = f"({where}) AND revoked_at IS NULL"
    for attempt in range(3):
        with app.datastore.transaction() as curs:
            curs.execute(
                f"SELECT token_hash, impersonator_id, customer_id FROM sessions WHERE {condition}",
                params,
            )
            ending = curs.fetchall()
        if not ending:
            return []
        members = {}
        for row in ending:
            staff = row["impersonator_id"]
            if not staff:
                continue
            if staff not in members:
                try:
                    members[staff] = app.get_staff(staff)
                except NotFound:
                    members[staff] = None
            if members[staff] is not None:
                members[staff].end_impersonation(customer_id=row["customer_id"])
        record = SessionsEnd(
            reason=reason,
            token_hashes=list(token_hashes),
            staff_id=staff_id,
            customer_id=customer_id,
            user_id=user_id,
        )
        ending_statement = (
            f"UPDATE sessions SET revoked_at = %s WHERE {condition}",
            (clock.now(), *params),
        )
        try:
            app.save(record, *(m for m in members.values() if m), also=[ending_statement])
        except IntegrityError:
            if attempt == 2:
                raise
            continue  # a staff member changed at the same moment: read again
        return ending
    return []
