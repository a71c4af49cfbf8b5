"""The helpdesk application: departments, tickets, attachments, reply templates, messages
to customers and abuse notices."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import helpdesk as contract
from contracts.errors import Conflict, Forbidden, NotFound, ValidationFailed
from contracts.fields import invalid
from services.helpdesk import erased_files
from services.helpdesk.attachments import (
    DEFAULT_EXTENSIONS,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    AttachmentRules,
    FileStore,
    LocalFileStore,
    check_message,
)
from services.helpdesk.broadcasts import LEASES_TABLE, BroadcastDesk
from services.helpdesk.domain import (
    Department,
    HelpdeskConfig,
    IncomingAddress,
    MailMessage,
    NotMergeable,
    ReplyTemplate,
    Standing,
    Ticket,
    TicketClosedForReplies,
    TicketMessage,
    TrackingNumber,
    new_tracking_number,
)
from services.helpdesk.views import row_view
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.paging import page_window
from services.infra.personal_data import PersonalFields
from services.infra.readmodels import Follower
from services.infra.settings import settings

DEFAULT_SETTINGS = {
    "allowed_extensions": list(DEFAULT_EXTENSIONS),
    "max_file_bytes": DEFAULT_MAX_FILE_BYTES,
    "max_message_bytes": DEFAULT_MAX_MESSAGE_BYTES,
    "accept_guest_mail": True,
    "penalty_threshold": 100,
}
SAVE_ATTEMPTS = 20


# a ticket's texts and who wrote them are its customer's personal data
_NOTICE = PersonalFields.fields("subject", "guest_email")
_MESSAGE = PersonalFields.fields("subject", "guest_email", "body", "author_name", attachments=[])
PERSONAL = PersonalFields(
    {
        # an abuse notice's comment: about the ticket's customer
        "Ticket.Opened": dict(_MESSAGE, fields={}, **PersonalFields.fields("abuse.comment")),
        "Ticket.MessageAdded": _MESSAGE,
        "Ticket.NoteAdded": _MESSAGE,
        "Ticket.Assigned": _NOTICE,
        "Ticket.Closed": _NOTICE,
        # the merged ticket's messages, each sealed on its own (its place in the list too)
        "Ticket.Merged": dict(
            _NOTICE,
            **PersonalFields.fields("messages.*.body", "messages.*.author_name"),
            **{"messages.*.attachments": []},
        ),
        "Ticket.AbuseActed": _NOTICE,
        "Ticket.Changed": PersonalFields.fields("changes.subject"),
        # the comment of penalty points: about the one customer whose standing it is
        "Standing.PointsGiven": PersonalFields.fields("comment"),
        # a message to one customer (Broadcast.customer_id): its texts and its recipient's
        # name; a message to several has no customer_id and keeps them as they are
        "Broadcast.Created": PersonalFields.fields(
            "subject", "body", "abuse.comment", "recipients.*.name", options__translations={}
        ),
    }
)


class Helpdesk(BroadcastDesk, HostledgerApplication):
    name = "helpdesk"
    service = "helpdesk"
    personal = PERSONAL
    schema_statements = (LEASES_TABLE,)
    publications = {
        Ticket.Opened: contract.TicketOpened,
        Ticket.MessageAdded: contract.TicketMessageAdded,
        Ticket.NoteAdded: contract.TicketNoteAdded,
        Ticket.Assigned: contract.TicketAssigned,
        Ticket.Closed: contract.TicketClosed,
        Ticket.Merged: contract.TicketsMerged,
        Ticket.AbuseActed: contract.AbuseDeadlinePassed,
        Ticket.SuspensionRequested: contract.ServicesSuspensionRequested,
        Standing.PointsGiven: contract.PenaltyPointsGiven,
    }

    def erase_customer(self, customer_id, reason: str) -> bool:
        """A deleted customer's tickets lose their texts (its key is destroyed), and the
        kept first answers of requests about them go too; the files they name are noted
        for `sweep_erased_files` (services.helpdesk.erased_files). False when done before."""
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('ticket_list') IS NOT NULL AS listed")
            tickets = []
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT ticket_id FROM ticket_list WHERE customer_id = %s", (customer_id,)
                )
                tickets = [str(r["ticket_id"]) for r in curs.fetchall()]
        # read while the customer's key still opens them: every ticket, listed or not yet
        files = erased_files.customer_files(self, customer_id)
        noted = [erased_files.note_statement(files, clock.now())] if files else []
        return self.erase_personal_data(customer_id, reason, mentions=tickets, also=noted)

    def sweep_erased_files(self) -> list[str]:
        """Delete the noted files of erased customers that nothing else names."""
        return erased_files.ErasedFiles(self).sweep()

    @property
    def ticket_files(self) -> Follower:
        """Which tickets name which file (services.helpdesk.erased_files.TicketFiles), as
        this instance brings it up to date when an erasure needs it."""
        if self._ticket_files is None:
            self._ticket_files = Follower(self, erased_files.TicketFiles())
        return self._ticket_files

    def __init__(self, env=None, cfg=None, files: FileStore | None = None):
        super().__init__(env=env, cfg=cfg)
        self.files: FileStore = files or LocalFileStore((cfg or settings()).data_dir)
        self._ticket_files: Follower | None = None
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(erased_files.ERASED_FILES_TABLE)

    # -- getting things ---------------------------------------------------------------------

    def _get(self, aggregate_id, cls, what: str):
        try:
            found = self.repository.get(aggregate_id)
        except (AggregateNotFoundError, ValueError):
            found = None
        if not isinstance(found, cls):
            raise NotFound(f"No such {what}.")
        return found

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    def department(self, department_id: UUID) -> Department:
        return self._get(department_id, Department, "department")

    def ticket(self, ticket_id: UUID) -> Ticket:
        return self._get(ticket_id, Ticket, "ticket")

    def _ticket_for(self, ticket_id: UUID, customer_id: UUID | None) -> Ticket:
        return self.client_ticket(ticket_id, customer_id) if customer_id else self.ticket(ticket_id)

    def client_ticket(self, ticket_id: UUID, customer_id: UUID) -> Ticket:
        """The ticket, if it is this customer's (another customer's: 404)."""
        ticket = self.ticket(ticket_id)
        if ticket.customer_id != customer_id:
            raise NotFound("No such ticket.")
        return ticket

    # -- settings ---------------------------------------------------------------------------

    def settings_values(self) -> dict:
        try:
            config = self.repository.get(HelpdeskConfig.ID)
        except AggregateNotFoundError:
            return dict(DEFAULT_SETTINGS)
        return dict(DEFAULT_SETTINGS, **config.values)

    def change_settings(self, changes: dict) -> dict:
        if "max_file_bytes" in changes or "max_message_bytes" in changes:
            merged = dict(self.settings_values(), **changes)
            if merged["max_file_bytes"] > merged["max_message_bytes"]:
                raise ValidationFailed(
                    "A file may not be larger than a whole message.",
                    {"max_file_bytes": ["Larger than max_message_bytes."]},
                )
        for _ in range(SAVE_ATTEMPTS):
            try:
                config = self.repository.get(HelpdeskConfig.ID)
                config.change(changes)
            except AggregateNotFoundError:
                config = HelpdeskConfig(values=changes)
            try:
                self.save(config)
                return self.settings_values()
            except IntegrityError:
                continue
        raise Conflict("The settings are being changed by someone else; try again.")

    def attachment_rules(self) -> AttachmentRules:
        values = self.settings_values()
        return AttachmentRules(
            allowed_extensions=tuple(values["allowed_extensions"]),
            max_file_bytes=values["max_file_bytes"],
            max_message_bytes=values["max_message_bytes"],
        )

    def store_files(self, uploads: list[tuple[str, bytes]]) -> list[dict]:
        """Check every file of a message (413/415 before anything is kept), then keep them."""
        if not uploads:
            return []
        refs = check_message(uploads, self.attachment_rules())
        for _, content in uploads:
            self.files.put(content)
        return refs

    # -- departments --------------------------------------------------------------------------

    def create_department(self, data: dict) -> Department:
        addresses = _unique_lower(data.get("addresses") or [])
        self._check_addresses(addresses, None)
        department = Department(
            name=data["name"],
            client_visible=data["client_visible"],
            fields=data["fields"],
            staff_ids=[str(s) for s in data["staff_ids"]],
            addresses=addresses,
            business_hours=data.get("business_hours"),
            accept_guests=data["accept_guests"],
        )
        self._save_with_addresses(department, self._claim(addresses, department.id, []))
        return department

    def change_department(self, department_id: UUID, changes: dict) -> Department:
        department = self.department(department_id)
        claims = []
        if "addresses" in changes:
            changes["addresses"] = _unique_lower(changes["addresses"])
            self._check_addresses(changes["addresses"], department_id)
            claims = self._claim(changes["addresses"], department.id, department.addresses)
        if "staff_ids" in changes:
            changes["staff_ids"] = [str(s) for s in changes["staff_ids"]]
        if changes:
            department.change(changes)
            self._save_with_addresses(department, claims)
        return department

    def _claim(self, wanted: list[str], department_id: UUID, held: list[str]) -> list:
        """The address index changes that give `wanted` to the department and release what
        it held and no longer wants; an address another department holds is a 409."""
        changed = []
        for address in wanted:
            try:
                index = self.repository.get(IncomingAddress.id_for(address))
            except AggregateNotFoundError:
                changed.append(IncomingAddress(address=address, department_id=department_id))
                continue
            if index.department_id not in (None, department_id):
                raise _address_taken()
            if index.department_id is None:
                index.reassign(department_id)
                changed.append(index)
        for address in set(held) - set(wanted):
            try:
                index = self.repository.get(IncomingAddress.id_for(address))
            except AggregateNotFoundError:
                continue
            if index.department_id == department_id:
                index.reassign(None)
                changed.append(index)
        return changed

    def _save_with_addresses(self, department: Department, claims: list) -> None:
        try:
            self.save(department, *claims)
        except IntegrityError:
            # another department claimed one of these addresses at the same moment
            raise _address_taken() from None

    def _check_addresses(self, addresses: list[str], department_id: UUID | None) -> None:
        """Departments made before the address index existed are only in the list: an
        address the index does not know is checked there (the index decides the rest)."""
        wanted = [a.lower() for a in addresses]
        wanted = [a for a in wanted if not self._exists(IncomingAddress.id_for(a))]
        if not wanted:
            return
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT department_id, name FROM department_list WHERE addresses && %s::text[]"
                " AND department_id IS DISTINCT FROM %s",
                (wanted, department_id),
            )
            taken = curs.fetchone()
        if taken is not None:
            raise Conflict(
                f"An address already feeds the department {taken['name']!r}.",
                {"addresses": ["Already used by another department."]},
            )

    def departments(self, client_only: bool) -> list[Department]:
        query = "SELECT department_id FROM department_list"
        if client_only:
            query += " WHERE client_visible"
        with self.datastore.transaction() as curs:
            curs.execute(query + " ORDER BY created_at, department_id")
            ids = [r["department_id"] for r in curs.fetchall()]
        return [self.department(i) for i in ids]

    def department_for_address(self, address: str) -> Department | None:
        try:
            index = self.repository.get(IncomingAddress.id_for(address))
        except AggregateNotFoundError:
            index = None
        if index is not None:
            return None if index.department_id is None else self.department(index.department_id)
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT department_id FROM department_list WHERE %s = ANY(addresses)"
                " ORDER BY created_at LIMIT 1",
                (address.strip().lower(),),
            )
            row = curs.fetchone()
        return self.department(row["department_id"]) if row else None

    # -- tickets ------------------------------------------------------------------------------

    def open_ticket(
        self,
        department: Department,
        subject: str,
        body: str,
        author: dict,
        *,
        customer: dict | None = None,
        guest_email: str | None = None,
        fields: dict | None = None,
        priority: str = "normal",
        attachments: list[dict] | None = None,
        via: str = "web",
        mail_message_id: str | None = None,
        forbid_replies: bool = False,
        assign_on_reply_to: str | None = None,
        abuse: dict | None = None,
        notify_staff_ids: list | None = None,
        notes: list[str] = (),
        idempotency: tuple | None = None,
    ) -> Ticket:
        """A new ticket with its first message, under a fresh tracking number. `customer`:
        {"id", "language"}; `author`: {"kind", "id", "name"}; `notes`: system notes added
        at once (refused mail attachments ...). `idempotency`: (scope, Idempotency-Key,
        request, view): the view of the ticket is kept as the key's answer, in the same
        save; a key used before raises Replayed with its first answer."""
        if idempotency is not None:
            scope, key, request, _ = idempotency
            earlier = self.idempotent_answer(scope, key, request)
            if earlier is not None:
                raise Replayed(earlier)
        now = clock.now()
        known = {f["name"] for f in department.fields}
        given = {k: v for k, v in (fields or {}).items() if k in known}
        for _ in range(SAVE_ATTEMPTS):
            number = new_tracking_number()
            ticket = Ticket.open(
                tracking_number=number,
                department_id=department.id,
                department_name=department.name,
                reply_address=department.addresses[0] if department.addresses else None,
                customer_id=UUID(customer["id"]) if customer else None,
                guest_email=None if customer else guest_email,
                subject=subject,
                language=(customer or {}).get("language") or "en",
                forbid_replies=forbid_replies,
                body=body,
                author_kind=author["kind"],
                author_id=author.get("id"),
                author_name=author.get("name") or "",
                internal=False,
                attachments=list(attachments or ()),
                notify_staff_ids=[str(s) for s in notify_staff_ids or ()],
                notify_client=author["kind"] in ("staff", "system"),
                mail_message_id=mail_message_id,
                at=now,
                priority=priority,
                via=via,
                fields=given,
                assign_on_reply_to=assign_on_reply_to,
                abuse=abuse,
            )
            for note in notes:
                ticket.add_message(note, "system", None, "", now, internal=True)
            extra = [TrackingNumber(number=number, ticket_id=ticket.id)]
            extra += _message_index(ticket, ticket.messages)
            if abuse:
                extra += self.penalize(ticket, abuse["penalty_points"], abuse["comment"])
            if mail_message_id:
                extra.append(MailMessage(message_id=mail_message_id, ticket_id=ticket.id))
            if idempotency is not None:
                scope, key, request, view = idempotency
                record = self.idempotency_record(
                    scope, key, request, view(ticket), customer_id=ticket.customer_id
                )
                extra += [record] if record is not None else []
            try:
                self.save(ticket, *extra)
            except IntegrityError:
                if mail_message_id and self._exists(MailMessage.id_for(mail_message_id)):
                    raise DuplicateMail(mail_message_id) from None
                if idempotency is not None:
                    earlier = self.idempotent_answer(*idempotency[:3])
                    if earlier is not None:
                        raise Replayed(earlier) from None
                continue  # the tracking number was drawn before: draw again
            return ticket
        raise Conflict("No free tracking number was found; try again.")

    def add_message(
        self,
        ticket_id: UUID,
        body: str,
        author: dict,
        *,
        customer_id: UUID | None = None,
        internal: bool = False,
        attachments: list[dict] | None = None,
        notify_staff_ids: list | None = None,
        mail_message_id: str | None = None,
        close: bool = False,
        notes: list[str] = (),
    ) -> tuple[Ticket, dict]:
        """Append a message (a client's: `customer_id` must own the ticket). A client's reply
        reopens a closed ticket and moves it to whoever asked for it ("assign to me when the
        client answers")."""
        for _ in range(SAVE_ATTEMPTS):
            ticket = (
                self.client_ticket(ticket_id, customer_id)
                if customer_id
                else self.ticket(ticket_id)
            )
            if ticket.merged_into is not None:
                ticket_id = ticket.merged_into
                continue
            now = clock.now()
            before = len(ticket.messages)
            try:
                message = ticket.add_message(
                    body,
                    author["kind"],
                    author.get("id"),
                    author.get("name") or "",
                    now,
                    internal=internal,
                    attachments=attachments,
                    notify_staff_ids=notify_staff_ids,
                    mail_message_id=mail_message_id,
                )
            except TicketClosedForReplies as exc:
                raise Forbidden(str(exc)) from None
            for note in notes:
                ticket.add_message(note, "system", None, "", now, internal=True)
            if author["kind"] in ("client", "mail") and ticket.assign_on_reply_to:
                ticket.assign(UUID(ticket.assign_on_reply_to))
            if close:
                ticket.close()
            extra = _message_index(ticket, ticket.messages[before:])
            if mail_message_id:
                extra.append(MailMessage(message_id=mail_message_id, ticket_id=ticket.id))
            try:
                self.save(ticket, *extra)
            except IntegrityError:
                if mail_message_id and self._exists(MailMessage.id_for(mail_message_id)):
                    raise DuplicateMail(mail_message_id) from None
                continue  # someone else wrote to the ticket meanwhile: apply to the new state
            return ticket, message
        raise Conflict("The ticket is being changed by someone else; try again.")

    def _change_ticket(self, ticket_id: UUID, change, customer_id: UUID | None = None) -> Ticket:
        for _ in range(SAVE_ATTEMPTS):
            ticket = (
                self.client_ticket(ticket_id, customer_id)
                if customer_id
                else self.ticket(ticket_id)
            )
            change(ticket)
            try:
                self.save(ticket)
            except IntegrityError:
                continue
            return ticket
        raise Conflict("The ticket is being changed by someone else; try again.")

    def assign(self, ticket_id: UUID, staff_id: UUID | None) -> Ticket:
        return self._change_ticket(ticket_id, lambda t: t.assign(staff_id))

    def change_ticket(self, ticket_id: UUID, changes: dict) -> Ticket:
        status = changes.pop("status", None)
        department = None
        if "department_id" in changes:
            try:
                department = self.department(changes["department_id"])
            except NotFound:
                raise ValidationFailed(
                    "No such department.", {"department_id": ["No such department."]}
                ) from None

        def apply(ticket: Ticket) -> None:
            fields = dict(changes)
            if department is not None:
                fields["department_id"] = department.id
                fields["department_name"] = department.name
            fields = {k: v for k, v in fields.items() if getattr(ticket, k) != v}
            if fields:
                ticket.change(fields)
            if status == "closed":
                ticket.close()
            elif status == "open" and ticket.status == "closed":
                ticket.reopen()

        return self._change_ticket(ticket_id, apply)

    def archive(self, ticket_id: UUID, customer_id: UUID) -> Ticket:
        return self._change_ticket(
            ticket_id, lambda t: t.archived or t.archive(), customer_id=customer_id
        )

    def client_reopen(self, ticket_id: UUID, customer_id: UUID) -> Ticket:
        def apply(ticket: Ticket) -> None:
            if ticket.status == "closed":
                ticket.reopen()
            elif ticket.archived:
                ticket.unarchive()

        return self._change_ticket(ticket_id, apply, customer_id=customer_id)

    def merge(self, target_id: UUID, source_id: UUID) -> Ticket:
        for _ in range(SAVE_ATTEMPTS):
            target = self.ticket(target_id)
            try:
                source = self.ticket(source_id)
            except NotFound:
                raise invalid("ticket_id", "No such ticket.") from None
            try:
                target.merge(source)
            except NotMergeable as exc:
                raise Conflict(str(exc), {"ticket_id": [str(exc)]}) from None
            try:
                self.save(target, source)
            except IntegrityError:
                continue
            return target
        raise Conflict("The tickets are being changed by someone else; try again.")

    def attachment(self, ticket_id: UUID, file_id: str, customer_id: UUID | None) -> tuple:
        """(description, bytes) of a file on a ticket the caller may see (else 404)."""
        if customer_id is not None:
            ticket = self.client_ticket(ticket_id, customer_id)
        else:
            ticket = self.ticket(ticket_id)
        described = ticket.attachment(file_id, client=customer_id is not None)
        content = None
        if described is not None:
            try:
                content = self.files.get(file_id)
            except NotFound:
                pass  # deleted by an erasure, though a message recorded unsealed names it
        if content is None:
            if ticket.customer_id is not None and self._erased(ticket.customer_id):
                raise NotFound("This ticket's files were erased with its customer's data.")
            raise NotFound("No such attachment.")
        return described, content

    def _erased(self, customer_id: UUID) -> bool:
        from services.infra.personal_data import PersonalData

        return self._exists(PersonalData.id_for(customer_id))

    def ticket_of_tracking_number(self, number: str) -> Ticket | None:
        try:
            index = self.repository.get(TrackingNumber.id_for(number))
        except AggregateNotFoundError:
            return None
        return self.ticket(index.ticket_id)

    def ticket_of_message(self, reference: str) -> UUID | None:
        """The ticket an e-mail's In-Reply-To/References entry leads to: one of our outgoing
        Message-IDs (through the ticket message it was about), or an incoming mail's."""
        message_id = contract.ticket_message_of(reference)
        if message_id is not None:
            try:
                return self.repository.get(TicketMessage.id_for(message_id)).ticket_id
            except AggregateNotFoundError:
                pass
            # messages written before the message index existed are listed only by the
            # ticket lists, which have long projected them
            with self.datastore.transaction() as curs:
                curs.execute("SELECT to_regclass('ticket_message_index') IS NOT NULL AS listed")
                if not curs.fetchone()["listed"]:
                    return None
                curs.execute(
                    "SELECT ticket_id FROM ticket_message_index WHERE message_id = %s",
                    (message_id,),
                )
                row = curs.fetchone()
            return row["ticket_id"] if row else None
        try:
            return self.repository.get(MailMessage.id_for(reference)).ticket_id
        except AggregateNotFoundError:
            return None

    def mail_seen(self, message_id: str) -> UUID | None:
        try:
            return self.repository.get(MailMessage.id_for(message_id)).ticket_id
        except AggregateNotFoundError:
            return None

    # -- reply templates ----------------------------------------------------------------------

    def create_template(self, data: dict) -> ReplyTemplate:
        if data.get("department_id"):
            try:
                self.department(data["department_id"])
            except NotFound:
                raise invalid("department_id", "No such department.") from None
        template = ReplyTemplate(
            name=data["name"], bodies=data["bodies"], department_id=data.get("department_id")
        )
        self.save(template)
        return template

    def template(self, template_id: UUID) -> ReplyTemplate:
        template = self._get(template_id, ReplyTemplate, "reply template")
        if getattr(template, "deleted", False):
            raise NotFound("No such reply template.")
        return template

    def change_template(self, template_id: UUID, changes: dict) -> ReplyTemplate:
        template = self.template(template_id)
        if changes.get("department_id"):
            try:
                self.department(changes["department_id"])
            except NotFound:
                raise invalid("department_id", "No such department.") from None
        template.change(changes)
        self.save(template)
        return template

    def delete_template(self, template_id: UUID) -> None:
        """Gone from the lists and from replies; tickets keep the texts already sent."""
        template = self.template(template_id)
        template.delete()
        self.save(template)

    def templates(self, department_id: UUID | None) -> list[ReplyTemplate]:
        where, params = "", []
        if department_id is not None:
            where, params = " WHERE department_id IS NULL OR department_id = %s", [department_id]
        with self.datastore.transaction() as curs:
            curs.execute(
                f"SELECT template_id FROM reply_template_list{where} ORDER BY name, template_id",
                params,
            )
            ids = [r["template_id"] for r in curs.fetchall()]
        # one deleted a moment ago may still be listed: left out
        found = [self._get(i, ReplyTemplate, "reply template") for i in ids]
        return [t for t in found if not getattr(t, "deleted", False)]

    # -- abuse --------------------------------------------------------------------------------

    def penalize(
        self, ticket: Ticket, points: int, comment: str, threshold: int | None = None
    ) -> list:
        """Give the ticket's customer penalty points; past the threshold (the settings',
        unless given), the ticket asks orders to suspend every service of the customer.
        Answers what to save with it."""
        if points <= 0 or ticket.customer_id is None:
            return []
        try:
            standing = self.repository.get(Standing.id_for(ticket.customer_id))
        except AggregateNotFoundError:
            standing = Standing(customer_id=ticket.customer_id)
        standing.give(ticket.id, points, comment)
        if threshold is None:
            threshold = self.settings_values()["penalty_threshold"]
        if standing.total >= threshold and standing.suspended_at_total is None:
            standing.mark_threshold_passed(standing.total)
            ticket.request_suspension(
                ticket.customer_id,
                f"{standing.total} penalty points reached the threshold of {threshold}",
            )
        return [standing]

    def standing(self, customer_id: UUID) -> dict:
        try:
            standing = self.repository.get(Standing.id_for(customer_id))
        except AggregateNotFoundError:
            return {"customer_id": str(customer_id), "penalty_points": 0, "threshold_passed": False}
        return {
            "customer_id": str(customer_id),
            "penalty_points": standing.total,
            "threshold_passed": standing.suspended_at_total is not None,
        }

    def abuse_due(self, now: datetime, limit: int = 100) -> list[UUID]:
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT ticket_id FROM abuse_deadlines WHERE pending AND deadline <= %s"
                " ORDER BY deadline LIMIT %s",
                (now, limit),
            )
            return [r["ticket_id"] for r in curs.fetchall()]

    def act_on_abuse(self, ticket_id: UUID, notify_staff_ids: list) -> Ticket | None:
        """The deadline passed without an answer: move the ticket to the active requests or
        ask orders to suspend the customer's services. Once, whoever runs it."""
        ticket = self.ticket(ticket_id)
        if not ticket.abuse_due(clock.now()):
            return None
        before = len(ticket.messages)
        ticket.act_on_abuse(notify_staff_ids, clock.now())
        if ticket.abuse["action"] == "suspend_services" and ticket.customer_id is not None:
            ticket.request_suspension(
                ticket.customer_id,
                f"abuse notice {ticket.tracking_number} was not answered by its deadline",
            )
        try:
            self.save(ticket, *_message_index(ticket, ticket.messages[before:]))
        except IntegrityError:
            return None  # changed meanwhile (answered, or acted on elsewhere): look again later
        return ticket

    # -- lists ----------------------------------------------------------------------------------

    def ticket_counts(self, statuses: list[str]) -> list[dict]:
        """How many tickets each department has in each of `statuses` (those it has any
        in), from the read model's counts: what `ticket_list`'s total says for one
        department and status, for all of them in one query."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT department_id, status, sum(n)::bigint AS n FROM ticket_counts"
                " WHERE status = ANY(%s) GROUP BY department_id, status HAVING sum(n) > 0",
                (list(statuses),),
            )
            return [
                {"department_id": str(r["department_id"]), "status": r["status"], "count": r["n"]}
                for r in curs.fetchall()
            ]

    def ticket_list(self, filters: dict, page: int, page_size: int) -> dict:
        limit, offset = page_window(page, page_size)
        where, params = [], []
        for key in ("department_id", "assigned_to", "customer_id", "status", "tracking_number"):
            value = filters.get(key)
            if value is None:
                continue
            column = "assignee" if key == "assigned_to" else key
            where.append(f"{column} = %s")
            params.append(value)
        if filters.get("archived") is not None:
            where.append("archived = %s")
            params.append(filters["archived"])
        if filters.get("exclude_merged"):
            where.append("merged_into IS NULL")
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        counted = {k for k, v in filters.items() if v is not None} <= {"department_id", "status"}
        with self.datastore.transaction() as curs:
            if counted:
                # kept by the read model per department and status (see ticket_counts)
                curs.execute(
                    f"SELECT coalesce(sum(n), 0)::bigint AS n FROM ticket_counts{clause}", params
                )
            else:
                curs.execute(f"SELECT count(*) AS n FROM ticket_list{clause}", params)
            total = curs.fetchone()["n"]
            curs.execute(
                "SELECT ticket_id, tracking_number, department_id, customer_id, guest_email,"
                " subject, status, archived, priority, assignee, merged_into, opened_at,"
                f" updated_at FROM ticket_list{clause}"
                " ORDER BY updated_at DESC, ticket_id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = curs.fetchall()
        return {
            "items": [row_view(r, filters.get("client", False)) for r in rows],
            "total": total,
            "page": page,
            "page_size": page_size,
        }


class DuplicateMail(Exception):
    """This Message-ID was already received."""


class Replayed(Exception):
    """This Idempotency-Key was used before with the same request: `answer` was the answer."""

    def __init__(self, answer: dict):
        super().__init__("replayed")
        self.answer = answer


def _unique_lower(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(a.strip().lower() for a in addresses))


def _address_taken() -> Conflict:
    return Conflict(
        "An address already feeds another department.",
        {"addresses": ["Already used by another department."]},
    )


def _message_index(ticket: Ticket, messages: list[dict]) -> list[TicketMessage]:
    """The index entries of messages just written on `ticket`, saved with them."""
    return [TicketMessage(message_id=m["id"], ticket_id=ticket.id) for m in messages]
