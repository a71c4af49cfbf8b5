"""The files of an erased customer's tickets leave the file store.

Attachment files are kept once per content (services.helpdesk.attachments), so the same
bytes may be attached by several customers, by guests, or by staff to a message to many
customers. Which tickets name which file is a read model of the helpdesk's own events
(`TicketFiles`, table `ticket_files`: one row per file and ticket or message to customers
naming it, with the customer it belongs to), filled from the attachments of every message
(opened, added, noted), of merged messages and of messages to customers, rebuilt and
replayed like every read model.

A customer's attachments are sealed with its key, so they are read while the key still
opens them: the erasure first brings `ticket_files` up to the log's head (a ticket the
lists do not show yet is in it then), takes the customer's files from it in one query,
and notes them (`erased_files`) in the same transaction as it destroys the key. The model
drops the erased customer's rows when it projects the erasure, as a replay reads them
(their attachments read as none). Then each noted file that no ticket of someone not
erased names (another customer's, a guest's, a message to several customers) is deleted:
one query on `ticket_files`, brought up to date first.

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

from services.infra.readmodels import Follower, ReadModel

log = logging.getLogger(__name__)

ERASED_FILES_TABLE = """
CREATE TABLE IF NOT EXISTS erased_files (
    file_id text PRIMARY KEY,
    noted_at timestamptz NOT NULL
)
"""

# how long an erasure or a sweep waits for `ticket_files` to reach the log's head while
# another instance is projecting it
CATCH_UP_SECONDS = 60.0


class FilesNotListed(RuntimeError):
    """`ticket_files` did not reach the log's head in time (tried again later)."""


def attachment_ids(messages: Iterable) -> list[str]:
    """The ids of every file the messages name, once each, in order (an erased message's
    attachments read as a placeholder, naming none)."""
    found: dict[str, None] = {}
    for message in messages:
        attachments = message.get("attachments") if isinstance(message, dict) else None
        if not isinstance(attachments, list):
            continue
        for attachment in attachments:
            if isinstance(attachment, dict) and attachment.get("id"):
                found[str(attachment["id"])] = None
    return list(found)


def files_of(tickets: Iterable) -> list[str]:
    """The ids of every file the tickets' messages name."""
    return attachment_ids(m for ticket in tickets for m in ticket.messages)


class TicketFiles(ReadModel):
    """file id -> the tickets (and messages to customers) naming it, and their customer."""

    name = "ticket_files"
    table_names = ("ticket_files",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS ticket_files (
            file_id text NOT NULL,
            named_by uuid NOT NULL,
            customer_id uuid,
            PRIMARY KEY (file_id, named_by)
        )
        """,
        "CREATE INDEX IF NOT EXISTS ticket_files_customer ON ticket_files (customer_id)"
        " WHERE customer_id IS NOT NULL",
    )

    def _name(self, curs, named_by, customer_id, messages: Iterable) -> None:
        files = attachment_ids(messages)
        if files:
            curs.execute(
                "INSERT INTO ticket_files (file_id, named_by, customer_id)"
                " SELECT f, %s, %s FROM unnest(%s::text[]) f ON CONFLICT DO NOTHING",
                (named_by, customer_id, files),
            )

    def _message(self, curs, e) -> None:
        self._name(curs, e.originator_id, e.customer_id, [{"attachments": e.attachments}])

    on_Ticket_Opened = on_Ticket_MessageAdded = on_Ticket_NoteAdded = _message

    def on_Ticket_Merged(self, curs, e) -> None:
        """The merged ticket's messages are the target's now (of the same customer); the
        merged ticket keeps naming them too (its own events still do)."""
        self._name(curs, e.originator_id, e.customer_id, e.messages or ())

    def on_Broadcast_Created(self, curs, e) -> None:
        # a message to several customers has no customer: its files stay while it does
        customer = getattr(e, "customer_id", None)
        self._name(curs, e.originator_id, customer, [{"attachments": e.attachments}])

    def on_PersonalData_Erased(self, curs, e) -> None:
        """The customer's attachments read as none from now on, as a replay reads them."""
        curs.execute("DELETE FROM ticket_files WHERE customer_id = %s", (e.customer_id,))


def catch_up(follower: Follower, timeout: float = CATCH_UP_SECONDS) -> None:
    """Bring `ticket_files` up to the log's head as it is now, projecting here, or waiting
    for the instance that is projecting it."""
    head = follower.app.recorder.max_notification_id() or 0
    deadline = time.monotonic() + timeout
    while follower.position() < head:
        if follower.catch_up():
            continue
        if time.monotonic() > deadline:
            raise FilesNotListed(
                f"the files of the tickets are listed up to {follower.position()},"
                f" not yet up to {head}"
            )
        time.sleep(0.05)


def customer_files(app, customer_id) -> list[str]:
    """The files the customer's tickets name (`ticket_files` brought up to date first)."""
    catch_up(app.ticket_files)
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT DISTINCT file_id FROM ticket_files WHERE customer_id = %s ORDER BY file_id",
            (customer_id,),
        )
        return [r["file_id"] for r in curs.fetchall()]


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

    def referenced(self, among: set[str]) -> set[str]:
        """Which of `among` a ticket (or message to customers) of someone not erased names:
        another customer's, a guest's, a message to several customers."""
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT DISTINCT t.file_id FROM ticket_files t"
                " LEFT JOIN personal_keys k ON k.customer_id = t.customer_id"
                " WHERE t.file_id = ANY(%s) AND (k.customer_id IS NULL OR k.data_key IS NOT NULL)",
                (sorted(among),),
            )
            return {r["file_id"] for r in curs.fetchall()}

    def sweep(self) -> list[str]:
        """Delete every noted file nothing else names; the ids deleted."""
        noted = self.noted()
        if not noted:
            return []
        began = time.time()
        catch_up(self.app.ticket_files)
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
