"""The mailgateway application: the outbox, notification templates, and mail kept for staff."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from psycopg.types.json import Jsonb

from contracts.errors import Conflict, NotFound, ValidationFailed
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat
from services.infra.context import SYSTEM, current
from services.infra.inbox_batches import Batch
from services.infra.paging import page_window
from services.mailgateway import erasure, templates
from services.mailgateway.domain import HeldMailDecision, MailTemplate
from services.mailgateway.outbox import (
    COLUMNS,
    Notification,
    insert_statement,
    queues_mail,
    resend_statement,
    storable_params,
)
from services.mailgateway.outbox import row_view as outbox_row_view
from services.mailgateway.tables import SCHEMA

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "uncertain", "skipped", "bounced")


class MailGateway(HostledgerApplication):
    name = "mailgateway"
    service = "mailgateway"
    schema_statements = SCHEMA

    # called once a transaction that queued notifications here has committed (the outbox
    # sender's wake-up): a command's or an event handler's save, or the commit of the
    # batch of events (services.infra.inbox_batches) whose handlers queued them. What
    # queued is read from the transaction itself, not kept on the application, which
    # every worker of the process shares
    on_queued = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # what the customers service answered about a customer (its record and
        # notification settings), by the batch of events being applied: the batch's
        # other handlers take it (every event of the batch was recorded before it was
        # asked), no other worker does, and it goes with the batch
        self._answers: weakref.WeakKeyDictionary[Batch, dict] = weakref.WeakKeyDictionary()

    def asked_about(self, customer_id, ask: Callable[[str], tuple]) -> tuple:
        """`ask(customer_id)`'s answer; for the handler of an event applied in a batch, the
        answer given to a handler of the same batch if there was one."""
        key = str(customer_id)
        batch = self.batches.of(current.tracking)
        if batch is None:  # a command, an event applied alone: its own question
            return ask(key)
        answers = self._answers.setdefault(batch, {})
        if key not in answers:
            answers[key] = ask(key)
        return answers[key]

    def _record(self, processing_event):
        recordings = super()._record(processing_event)
        if self.on_queued is not None and queues_mail(processing_event.saved_kwargs.get("also")):
            self.on_queued()
        return recordings

    # -- erasure -------------------------------------------------------------------------

    def erase_customer(self, customer_id, reason: str) -> bool:
        """A deleted customer's mail loses its personal data: its key is destroyed and, in
        the same transaction, everything kept here from, to or about its addresses and
        tickets is scrubbed (services.mailgateway.erasure). False when done before."""
        with self.datastore.transaction() as curs:
            addresses, tickets = erasure.gather(curs, customer_id)
        scrub = erasure.scrub_statements(customer_id, addresses, tickets)
        return self.erase_personal_data(customer_id, reason, also=scrub)

    def learn_address(self, customer_id, address: str) -> None:
        """Keep one of the customer's addresses, for its erasure (with the event's tracking)."""
        self.save(also=[erasure.learn_address_statement(customer_id, address)])

    # -- the outbox ----------------------------------------------------------------------

    def queue(self, *notifications: Notification) -> None:
        """Queue notifications; inside an event handler, atomically with its tracking."""
        self.save(also=[insert_statement(n) for n in notifications])

    def record_service_owner(self, service_id, customer_id) -> None:
        self.save(
            also=[
                (
                    "INSERT INTO mail_service_owners (service_id, customer_id) VALUES (%s, %s)"
                    " ON CONFLICT (service_id) DO UPDATE SET customer_id = EXCLUDED.customer_id",
                    (uuid.UUID(str(service_id)), uuid.UUID(str(customer_id))),
                )
            ]
        )

    def attachments_missing(self, file_ids: list[str]) -> list[str]:
        """Which of these ticket files are not kept for mail yet."""
        if not file_ids:
            return []
        with self.datastore.transaction() as curs:
            curs.execute("SELECT id FROM mail_attachments WHERE id = ANY(%s)", (file_ids,))
            kept = {r["id"] for r in curs.fetchall()}
        return [f for f in file_ids if f not in kept]

    def queue_with(self, notifications: list[Notification], statements: list) -> None:
        """Queue notifications with other records (threads), in one transaction."""
        also = [insert_statement(n) for n in notifications]
        self.save(also=also + [storable_params(s) for s in statements])

    def threads(self, ticket_id) -> dict:
        from services.mailgateway.ticket_mail import Thread

        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT recipient, root, last FROM mail_threads WHERE ticket_id = %s",
                (str(ticket_id),),
            )
            return {r["recipient"]: Thread(r["root"], r["last"]) for r in curs.fetchall()}

    def service_owner(self, service_id) -> str | None:
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT customer_id FROM mail_service_owners WHERE service_id = %s",
                (uuid.UUID(str(service_id)),),
            )
            row = curs.fetchone()
        return str(row["customer_id"]) if row else None

    def outbox(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        kind: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> dict:
        where, params = [], []
        if status:
            where.append("status = %s")
            params.append(status)
        if customer_id:
            where.append("customer_id = %s")
            params.append(uuid.UUID(str(customer_id)))
        if kind:
            where.append("kind = %s")
            params.append(kind)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self.datastore.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM mail_outbox {clause}", params)
            total = curs.fetchone()["n"]
            curs.execute(
                f"SELECT {COLUMNS} FROM mail_outbox {clause} ORDER BY id LIMIT %s OFFSET %s",
                [*params, *page_window(page, page_size)],
            )
            rows = curs.fetchall()
        return {
            "items": [outbox_row_view(r) for r in rows],
            "total": total,
            "page": page,
            "page_size": page_size,
        }

    def resend(self, row_id: int) -> dict:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"SELECT {COLUMNS} FROM mail_outbox WHERE id = %s", (row_id,))
            row = curs.fetchone()
            if row is None:
                raise NotFound("No such notification.")
            statement, params = resend_statement(row_id)
            curs.execute(statement, params)
            if curs.fetchone() is None:
                raise Conflict(
                    f"A {row['status']} {row['kind']} notification cannot be sent again."
                )
            curs.execute(f"SELECT {COLUMNS} FROM mail_outbox WHERE id = %s", (row_id,))
            return outbox_row_view(curs.fetchone())

    # -- templates -----------------------------------------------------------------------

    def template(self, kind: str, language: str) -> templates.Template:
        """The template in force: staff's version if there is one, else the shipped one."""
        try:
            custom = self.repository.get(MailTemplate.id_for(kind, language))
        except AggregateNotFoundError:
            custom = None
        if custom is not None and custom.customized:
            return templates.Template(kind, language, custom.subject, custom.body, edited=True)
        return templates.shipped()[kind, language]

    def template_view(self, kind: str, language: str) -> dict:
        self._check_template_name(kind, language)
        current = self.template(kind, language)
        shipped = templates.shipped()[kind, language]
        return {
            "kind": kind,
            "language": language,
            "subject": current.subject,
            "body": current.body,
            "customized": current != shipped,
        }

    def list_templates(self) -> dict:
        items = [
            self.template_view(kind, language)
            for kind in templates.KINDS
            for language in templates.LANGUAGES
        ]
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    def edit_template(self, kind: str, language: str, subject: str, body: str) -> dict:
        self._checked(kind, language, subject, body)
        try:
            custom = self.repository.get(MailTemplate.id_for(kind, language))
            custom.change(subject, body)
        except AggregateNotFoundError:
            custom = MailTemplate(kind=kind, language=language, subject=subject, body=body)
        self.save(custom)
        return self.template_view(kind, language)

    def preview_template(self, kind: str, language: str, subject: str, body: str) -> dict:
        """{"subject", "body"}: the mail this text would give on sample values, nothing
        saved; refused as an edit would be, naming the field at fault."""
        _, (subject, body) = self._checked(kind, language, subject, body)
        return {"subject": subject, "body": body}

    def _checked(
        self, kind: str, language: str, subject: str, body: str
    ) -> tuple[templates.Template, tuple[str, str]]:
        """The edit as `templates.tried` takes it, or a 400 naming the field at fault."""
        self._check_template_name(kind, language)
        try:
            return templates.tried(kind, language, subject, body)
        except templates.TemplateInvalid as exc:
            field = exc.field
            if field == "body" and "does not render" in str(exc):
                # check() names the body when rendering fails: the subject alone says which
                try:
                    alone = templates.Template(kind, language, subject, "-", edited=True)
                    templates.render(alone, templates.SAMPLE_CONTEXT)
                except Exception:  # noqa: BLE001 - whatever failed, it was the subject
                    field = "subject"
            raise ValidationFailed(str(exc), {field: [str(exc)]}) from None

    def reset_template(self, kind: str, language: str) -> dict:
        self._check_template_name(kind, language)
        try:
            custom = self.repository.get(MailTemplate.id_for(kind, language))
        except AggregateNotFoundError:
            return self.template_view(kind, language)
        if custom.customized:
            custom.reset()
            self.save(custom)
        return self.template_view(kind, language)

    @staticmethod
    def _check_template_name(kind: str, language: str) -> None:
        if kind not in templates.KINDS or language not in templates.LANGUAGES:
            raise NotFound("No such template.")

    # -- incoming mail kept for staff ----------------------------------------------------

    HELD_COLUMNS = (
        "id, received_at, reason, detail, sender, recipient, subject, octet_length(raw) AS size,"
        " status, handled_at, handled_by, note, ticket_id, tracking_number"
    )

    def held_mail(self, page: int = 1, page_size: int = 50, status: str | None = "held") -> dict:
        """Kept messages, oldest first: those still waiting (`held`), those staff
        `released` or `discarded`, or all (None)."""
        where, params = ("WHERE status = %s", [status]) if status else ("", [])
        with self.datastore.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM mail_held {where}", params)
            total = curs.fetchone()["n"]
            curs.execute(
                f"SELECT {self.HELD_COLUMNS} FROM mail_held {where} ORDER BY id LIMIT %s OFFSET %s",
                [*params, *page_window(page, page_size)],
            )
            rows = curs.fetchall()
        items = [_held_view(r) for r in rows]
        return {"items": items, "total": total, "page": page, "page_size": page_size}

    def held_message(self, held_id: int) -> dict:
        with self.datastore.transaction() as curs:
            curs.execute(f"SELECT {self.HELD_COLUMNS} FROM mail_held WHERE id = %s", (held_id,))
            row = curs.fetchone()
        if row is None:
            raise NotFound("No such message.")
        return _held_view(row)

    def decide_held(self, held_id: int, decision: str, **details) -> dict:
        """Record what staff did with a held message (`released` with the ticket, or
        `discarded` with a reason), once: a message no longer held is a 409."""
        held = self.held_message(held_id)
        if held["status"] != "held":
            raise Conflict(f"This message was already {held['status']}.")
        record = HeldMailDecision(held_id=held_id, decision=decision, **details)
        actor = (current.actor or SYSTEM).to_dict()
        try:
            self.save(
                record,
                also=[
                    (
                        "UPDATE mail_held SET status = %s, handled_at = %s, handled_by = %s,"
                        " note = %s, ticket_id = %s, tracking_number = %s"
                        " WHERE id = %s AND status = 'held'",
                        (
                            decision,
                            clock.now(),
                            Jsonb(actor),
                            details.get("reason"),
                            details.get("ticket_id"),
                            details.get("tracking_number"),
                            held_id,
                        ),
                    )
                ],
            )
        except IntegrityError:
            raise Conflict("This message was already released or discarded.") from None
        return self.held_message(held_id)

    def held_raw(self, held_id: int) -> bytes:
        with self.datastore.transaction() as curs:
            curs.execute("SELECT raw FROM mail_held WHERE id = %s", (held_id,))
            row = curs.fetchone()
        if row is None:
            raise NotFound("No such message.")
        return bytes(row["raw"])

    def received_mail(self, sender: str | None = None, page: int = 1, page_size: int = 50) -> dict:
        where, params = "", []
        if sender:
            where, params = "WHERE sender = %s", [sender.lower()]
        with self.datastore.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM mail_received {where}", params)
            total = curs.fetchone()["n"]
            curs.execute(
                "SELECT id, received_at, sender, recipient, message_id, outcome, reason, ticket_id,"
                f" tracking_number FROM mail_received {where} ORDER BY id LIMIT %s OFFSET %s",
                [*params, *page_window(page, page_size)],
            )
            rows = curs.fetchall()
        items = [dict(r, received_at=isoformat(r["received_at"])) for r in rows]
        return {"items": items, "total": total, "page": page, "page_size": page_size}


def _held_view(row: dict) -> dict:
    return dict(
        row,
        received_at=isoformat(row["received_at"]),
        handled_at=isoformat(row["handled_at"]) if row["handled_at"] else None,
    )
