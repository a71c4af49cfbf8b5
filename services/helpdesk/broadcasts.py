"""Messages to customers as recorded broadcasts: the use cases of the helpdesk application
that save a broadcast, open and record its tickets, and let one sender at a time work on it.

A broadcast is saved before its first ticket is opened. Its tickets are opened in batches:
one save holds a batch's tickets, their tracking number and message index entries, the
penalty points of an abuse notice, and the broadcast's record of them (`TicketsOpened`).
The broadcast's version makes that save fail when anyone recorded tickets on it
meanwhile, so a recipient's ticket is opened once, and the record says exactly how far
the sending got: a sender that dies mid-batch leaves nothing of that batch, and the next
one goes on from the record. Whoever sends (the request for the first tickets, then the
helpdesk's background sender) holds a short lease on it, so several helpdesk instances
do not prepare the same batch at once; the lease only saves work. A lease of a process
that died runs out by itself.

Tracking numbers are drawn at random (one says nothing of the next), a batch's numbers
at once: those an earlier ticket holds are found with one query and drawn again; the
index aggregates saved with the tickets still refuse a number taken meanwhile (the batch
is then prepared again).
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import IntegrityError

from contracts.errors import Conflict
from services.helpdesk.domain import (
    Broadcast,
    Department,
    Ticket,
    TrackingNumber,
    fill_macros,
    message_text,
    new_tracking_number,
)
from services.helpdesk.views import broadcast_row_view
from services.infra import clock
from services.infra.domain import IdempotencyKey
from services.infra.paging import page_window

# seconds a sender's lease lasts without being renewed (it is renewed after every batch);
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

    def open_broadcast_tickets(
        self, broadcast: Broadcast, department: Department, customers: list[dict]
    ) -> Broadcast:
        """Open the tickets of `customers` (recipients of `broadcast`, as it was loaded) and
        record them on the broadcast, in one save; answers the broadcast as saved.
        Recipients that have a ticket by then are left out: when the save finds the
        broadcast changed meanwhile, it is loaded again and the rest prepared again."""
        from services.helpdesk.application import SAVE_ATTEMPTS, _message_index

        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                broadcast = self.broadcast(broadcast.id)
            done = {t["customer_id"] for t in broadcast.tickets}
            done.update(broadcast.erased_recipients)
            todo = [c for c in customers if c["id"] not in done]
            if not todo:
                return broadcast
            now = clock.now()
            # the tickets' texts are sealed with each customer's key: made, read at once
            # (afresh: an erasure in another instance is seen here); a customer erased
            # before its ticket is opened gets none, rather than one of erased text
            erased = self._erased_recipients(todo)
            todo = [c for c in todo if c["id"] not in erased]
            earlier = self._opened_before(broadcast.id, todo)
            numbers = iter(self.free_tracking_numbers(len(todo) - len(earlier)))
            abuse = broadcast.abuse
            threshold = self.settings_values()["penalty_threshold"] if abuse else None
            saved, recorded = [], []
            for customer in todo:
                if customer["id"] in earlier:
                    recorded.append(earlier[customer["id"]])
                    continue
                number = next(numbers)
                ticket = broadcast_ticket(broadcast, department, customer, number, now)
                saved += [ticket, TrackingNumber(number=number, ticket_id=ticket.id)]
                saved += _message_index(ticket, ticket.messages)
                if abuse:
                    saved += self.penalize(
                        ticket, abuse["penalty_points"], abuse["comment"], threshold
                    )
                recorded.append(
                    {
                        "customer_id": customer["id"],
                        "ticket_id": str(ticket.id),
                        "tracking_number": number,
                    }
                )
            broadcast.record(recorded, now, erased=erased)
            try:
                self.save(broadcast, *saved)
            except IntegrityError:
                continue  # recorded meanwhile by another sender, or a number was taken
            return broadcast
        raise Conflict("The message is being recorded by someone else; try again.")

    def _erased_recipients(self, customers: list[dict]) -> list[str]:
        """The ids of `customers` whose personal data was erased; the others' keys are made
        and cached for the save that seals their tickets."""
        keys = self.personal_keys
        for customer in customers:
            keys.forget(customer["id"])
        keys.prepare_many(c["id"] for c in customers)
        return [c["id"] for c in customers if keys.key(c["id"]) is None]

    def free_tracking_numbers(self, count: int) -> list[str]:
        """`count` distinct tracking numbers no ticket holds yet (at the time of asking)."""
        numbers: set[str] = set()
        while len(numbers) < count:
            drawn = {new_tracking_number() for _ in range(count - len(numbers))} - numbers
            ids = {TrackingNumber.id_for(n): n for n in drawn}
            with self.datastore.transaction() as curs:
                curs.execute(
                    f"SELECT originator_id FROM {self.recorder.events_table_name}"
                    " WHERE originator_id = ANY(%s::uuid[]) AND originator_version = 1",
                    ([str(i) for i in ids],),
                )
                taken = {ids[r["originator_id"]] for r in curs.fetchall()}
            numbers |= drawn - taken
        return list(numbers)

    def _opened_before(self, broadcast_id: UUID, customers: list[dict]) -> dict[str, dict]:
        """Tickets of this broadcast opened one by one, each with its own idempotency record,
        by the helpdesk of before batches, and not recorded on it (it stopped between):
        customer id -> what to record."""
        ids = {
            IdempotencyKey.id_for(TICKET_SCOPE, f"{broadcast_id}:{c['id']}"): c["id"]
            for c in customers
        }
        with self.datastore.transaction() as curs:
            curs.execute(
                f"SELECT originator_id FROM {self.recorder.events_table_name}"
                " WHERE originator_id = ANY(%s::uuid[]) AND originator_version = 1",
                ([str(i) for i in ids],),
            )
            found = [r["originator_id"] for r in curs.fetchall()]
        answers = {ids[i]: self.repository.get(i).answer for i in found}
        # (an erased customer's answer reads as a placeholder: its ticket cannot be named)
        return {c: dict(a) for c, a in answers.items() if isinstance(a, dict)}

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


def broadcast_ticket(
    broadcast: Broadcast, department: Department, customer: dict, number: str, now
) -> Ticket:
    """A recipient's ticket: the message in the customer's language, macros filled in."""
    author, options = broadcast.author, broadcast.options
    subject, body = message_text(broadcast, customer.get("language"))
    return Ticket.open(
        tracking_number=number,
        department_id=department.id,
        department_name=department.name,
        reply_address=department.addresses[0] if department.addresses else None,
        customer_id=UUID(customer["id"]),
        guest_email=None,
        subject=fill_macros(subject, customer["name"], author["name"]),
        language=customer.get("language") or "en",
        forbid_replies=options["forbid_replies"],
        body=fill_macros(body, customer["name"], author["name"]),
        author_kind=author["kind"],
        author_id=author.get("id"),
        author_name=author.get("name") or "",
        internal=False,
        attachments=list(broadcast.attachments),
        notify_staff_ids=[],
        notify_client=author["kind"] in ("staff", "system"),
        mail_message_id=None,
        at=now,
        priority="normal",
        via="staff",
        fields={},
        assign_on_reply_to=author["id"] if options["assign_to_me"] else None,
        abuse=dict(broadcast.abuse) if broadcast.abuse else None,
    )
