"""Messages to customers as recorded broadcasts: the use cases of the helpdesk application
that save a broadcast, record its tickets, and let one sender at a time work on it.

A broadcast is saved before its first ticket is opened. Whoever sends (the request for the
first tickets, then the helpdesk's background sender) holds a short lease on it, so several
helpdesk instances do not open the same batch at once; the lease only saves work: each
recipient's ticket is opened once in any case, through the ticket's own idempotency record
keyed by broadcast and customer. A lease of a process that died runs out by itself.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import IntegrityError

from contracts.errors import Conflict
from services.helpdesk.domain import Broadcast
from services.helpdesk.views import broadcast_row_view
from services.infra import clock
from services.infra.paging import page_window

# seconds a sender's lease lasts without being renewed (it is renewed after every ticket);
# counted on the database's own clock: it measures whether a process is alive, not business
# time, which tests move
LEASE_SECONDS = 15
BROADCAST_SCOPE = "broadcast"
TICKET_SCOPE = "broadcast-ticket"

LEASES_TABLE = """
CREATE TABLE IF NOT EXISTS broadcast_leases (
    broadcast_id uuid PRIMARY KEY,
    holder text NOT NULL,
    until timestamptz NOT NULL
)
"""
_TAKE = (
    "INSERT INTO broadcast_leases (broadcast_id, holder, until)"
    " VALUES (%s, %s, now() + make_interval(secs => %s))"
    " ON CONFLICT (broadcast_id) DO UPDATE SET holder = excluded.holder, until = excluded.until"
    " WHERE broadcast_leases.until < now() OR broadcast_leases.holder = excluded.holder"
    " RETURNING holder"
)


class BroadcastDesk:
    """Mixed into the helpdesk application (needs its repository, save and datastore)."""

    def broadcast(self, broadcast_id: UUID) -> Broadcast:
        return self._get(broadcast_id, Broadcast, "message")

    def start_broadcast(self, broadcast: Broadcast, holder: str, idempotency=None) -> None:
        """Save the new broadcast, the Idempotency-Key's record (scope, key, request) and
        the sender's lease in one transaction. A key saved meanwhile by the same request
        raises Replayed with its answer ({"id"})."""
        from services.helpdesk.application import Replayed

        extra = []
        if idempotency is not None:
            record = self.idempotency_record(*idempotency, {"id": str(broadcast.id)})
            extra += [record] if record is not None else []
        try:
            self.save(broadcast, *extra, also=[(_TAKE, (broadcast.id, holder, LEASE_SECONDS))])
        except IntegrityError:
            earlier = self.idempotent_answer(*idempotency) if idempotency else None
            if earlier is not None:
                raise Replayed(earlier) from None
            raise

    def take_lease(self, broadcast_id: UUID, holder: str) -> bool:
        """Take or renew the sender's lease; False while another sender holds it."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_TAKE, (broadcast_id, holder, LEASE_SECONDS))
            return curs.fetchone() is not None

    def release_lease(self, broadcast_id: UUID, holder: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM broadcast_leases WHERE broadcast_id = %s AND holder = %s",
                (broadcast_id, holder),
            )

    def record_tickets(self, broadcast_id: UUID, tickets: list[dict]) -> Broadcast:
        from services.helpdesk.application import SAVE_ATTEMPTS

        for _ in range(SAVE_ATTEMPTS):
            broadcast = self.broadcast(broadcast_id)
            broadcast.record(tickets, clock.now())
            try:
                self.save(broadcast)
            except IntegrityError:
                continue  # another sender recorded meanwhile: record on top of theirs
            return broadcast
        raise Conflict("The message is being recorded by someone else; try again.")

    def sending_broadcasts(self, limit: int = 20) -> list[UUID]:
        """Broadcasts still sending, oldest first (from the list: may lag a moment)."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT broadcast_id FROM broadcast_list WHERE status = 'sending'"
                " ORDER BY created_at, broadcast_id LIMIT %s",
                (limit,),
            )
            return [r["broadcast_id"] for r in curs.fetchall()]

    def broadcast_list(self, page: int, page_size: int) -> dict:
        limit, offset = page_window(page, page_size)
        with self.datastore.transaction() as curs:
            curs.execute("SELECT count(*) AS n FROM broadcast_list")
            total = curs.fetchone()["n"]
            curs.execute(
                "SELECT broadcast_id, subject, department_id, author_id, author_name, status,"
                " recipients, opened, created_at, sent_at FROM broadcast_list"
                " ORDER BY created_at DESC, broadcast_id DESC LIMIT %s OFFSET %s",
                (limit, offset),
            )
            rows = curs.fetchall()
        return {
            "items": [broadcast_row_view(r) for r in rows],
            "total": total,
            "page": page,
            "page_size": page_size,
        }
