"""The files of an erased customer's tickets leave the file store.

Attachment files are kept once per content (services.helpdesk.attachments), so the same
bytes may be attached by several customers, by guests, or by staff to a message to many
customers. When a customer is erased, the files its tickets name are noted
(`erased_files`) in the same transaction as the erasure, while its key still opens them;
then each noted file that nothing else names is deleted. What else names a file is read
from the helpdesk's own log, not from a read model: every ticket message (opened, added,
noted, merged) of a customer not erased, of a guest, and every message to customers.

The check and the deletion are not one transaction with the uploads of other customers,
so a file that is put again while it is being erased is kept: `LocalFileStore.put` marks
an existing file as put again (its modification time), and the deletion first moves the
file aside, then keeps it if it was put since the check began. A note stays until its file
is settled, so a sweep that is interrupted (a process stopped, a disk error) is done again
by the next one (every scheduler run while notes are left).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from services.helpdesk.domain import Broadcast, Ticket

log = logging.getLogger(__name__)

ERASED_FILES_TABLE = """
CREATE TABLE IF NOT EXISTS erased_files (
    file_id text PRIMARY KEY,
    noted_at timestamptz NOT NULL
)
"""

_MESSAGES = (Ticket.Opened, Ticket.MessageAdded, Ticket.NoteAdded)
_TOPICS = tuple(get_topic(c) for c in (*_MESSAGES, Ticket.Merged, Broadcast.Created))
_BATCH = 500


def files_of(tickets: Iterable[Ticket]) -> list[str]:
    """The ids of every file the tickets' messages name."""
    found: dict[str, None] = {}
    for ticket in tickets:
        for message in ticket.messages:
            for attachment in message.get("attachments") or ():
                if isinstance(attachment, dict) and attachment.get("id"):
                    found[str(attachment["id"])] = None
    return list(found)


def note_statement(file_ids: list[str], at) -> tuple[str, tuple]:
    """SQL noting files to settle, for the erasure's save (`also`)."""
    return (
        "INSERT INTO erased_files (file_id, noted_at) SELECT f, %s FROM unnest(%s::text[]) f"
        " ON CONFLICT (file_id) DO NOTHING",
        (at, list(file_ids)),
    )


class ErasedFiles:
    """Settles the noted files of one helpdesk application (`app`, with `files`)."""

    def __init__(self, app):
        self.app = app

    def noted(self) -> list[str]:
        with self.app.datastore.transaction() as curs:
            curs.execute("SELECT file_id FROM erased_files ORDER BY noted_at, file_id")
            return [r["file_id"] for r in curs.fetchall()]

    def erased_customers(self) -> set[str]:
        with self.app.datastore.transaction() as curs:
            curs.execute("SELECT customer_id FROM personal_keys WHERE data_key IS NULL")
            return {str(r["customer_id"]) for r in curs.fetchall()}

    def referenced(self, among: set[str]) -> set[str]:
        """Which of `among` a message of someone not erased names, in the whole log."""
        erased = self.erased_customers()
        found: set[str] = set()
        recorder, mapper = self.app.recorder, self.app.mapper
        start = 1
        while found != among:
            batch = recorder.select_notifications(start, _BATCH, topics=_TOPICS)
            for notification in batch:
                event = mapper.to_domain_event(notification)
                customer = getattr(event, "customer_id", None)
                if customer is not None and str(customer) in erased:
                    continue
                if isinstance(event, Ticket.Merged):
                    messages = list(event.messages or ())
                else:
                    messages = [{"attachments": getattr(event, "attachments", None)}]
                for message in messages:
                    for attachment in message.get("attachments") or ():
                        if isinstance(attachment, dict) and attachment.get("id") in among:
                            found.add(attachment["id"])
            if len(batch) < _BATCH:
                break
            start = batch[-1].id + 1
        return found

    def sweep(self) -> list[str]:
        """Delete every noted file nothing else names; the ids deleted."""
        noted = self.noted()
        if not noted:
            return []
        began = time.time()
        kept = self.referenced(set(noted))
        deleted, settled = [], []
        for file_id in noted:
            if file_id not in kept:
                try:
                    if self.app.files.discard(file_id, unless_put_since=began):
                        deleted.append(file_id)
                except OSError:
                    log.exception("an erased file could not be deleted; it is tried again")
                    continue
            settled.append(file_id)
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM erased_files WHERE file_id = ANY(%s)", (settled,))
        return deleted


def tickets_of(app, ticket_ids: Iterable) -> list[Ticket]:
    found = []
    for ticket_id in ticket_ids:
        try:
            ticket = app.repository.get(ticket_id)
        except AggregateNotFoundError:
            continue
        if isinstance(ticket, Ticket):
            found.append(ticket)
    return found
