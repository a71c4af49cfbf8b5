"""The helpdesk service: departments, tickets, attachments, messages to customers, abuse
notices, and the mail the mail gateway hands in."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import datetime
from uuid import UUID, uuid4

from nameko.rpc import RpcProxy
from nameko.timer import timer

from contracts import helpdesk as contract
from contracts.envelope import IntegrationEvent
from contracts.errors import (
    Conflict,
    Forbidden,
    HostledgerError,
    NotFound,
    ValidationFailed,
)
from contracts.fields import MAX_PAGE_SIZE, invalid
from services.helpdesk.application import Helpdesk, Replayed
from services.helpdesk.attachments import decode_upload
from services.helpdesk.audit import HelpdeskAuditIndex
from services.helpdesk.broadcasts import BROADCAST_SCOPE
from services.helpdesk.domain import Broadcast, sole_customer
from services.helpdesk.erased_files import TicketFiles
from services.helpdesk.mail import MailIntake
from services.helpdesk.readmodels import HelpdeskLists
from services.helpdesk.views import broadcast_view, department_view, template_view, ticket_view
from services.infra import clock, context, shutdown
from services.infra.consumer import handles
from services.infra.context import Actor
from services.infra.failpoints import failpoint
from services.infra.inbox import is_transient
from services.infra.parking import ScheduledItems
from services.infra.rpc import load, rpc
from services.infra.service import ServiceBase
from services.infra.settings import settings
from services.infra.store import EventStore

log = logging.getLogger(__name__)

# how long the background sender goes on with one message before the next one's turn
SENDING_SLICE_SECONDS = 10.0

APPLICATION = Helpdesk
READ_MODELS = (HelpdeskLists, TicketFiles, HelpdeskAuditIndex)


def _uuid(value, what: str = "ticket") -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def _uploads(files: list[dict] | None) -> list[tuple[str, bytes]]:
    return [decode_upload(f) for f in files or ()]


def _fingerprint(uploads: list[tuple[str, bytes]]) -> list[str]:
    """The files of a request, as the Idempotency-Key compares them."""
    return [f"{name}:{hashlib.sha256(content).hexdigest()}" for name, content in uploads]


def _recipient_choice(data: dict) -> str:
    chosen = [c for c in contract.RECIPIENT_CHOICES if data.get(c)]
    return chosen[0] if chosen else "customer_ids"


def _check_message(data: dict) -> None:
    """What a message to customers must say beyond its fields' own rules (400 naming the
    fields at fault)."""
    chosen = [c for c in contract.RECIPIENT_CHOICES if data.get(c)]
    if not chosen:
        raise ValidationFailed(
            "Name the customers, a group, a project or a filter, or send to all.",
            {"customer_ids": ["Required."]},
        )
    if len(chosen) > 1:
        raise ValidationFailed(
            f"Choose one way to name the recipients, not {' and '.join(chosen)}.",
            {name: ["Only one way to name the recipients."] for name in chosen},
        )
    if data["strict_language"] and not data["language"]:
        raise ValidationFailed("A strict language needs a language.", {"language": ["Required."]})
    if not data["body"].strip() and not data["template_id"]:
        raise ValidationFailed("Write the message or choose a template.", {"body": ["Empty."]})
    abuse = data.get("abuse")
    if abuse and data["forbid_replies"]:
        raise ValidationFailed(
            "forbid_replies and abuse cannot go together: a violation notice must let the"
            " client answer before its deadline.",
            {
                "forbid_replies": ["Not with a violation notice (abuse)."],
                "abuse": ["Not with forbid_replies."],
            },
        )
    if abuse and abuse["deadline"] <= clock.now():
        raise ValidationFailed("The deadline has passed.", {"abuse": ["Deadline passed."]})


def _plain(value):
    """A loaded filter value as the customers service takes it (text, or a number)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, int | str) else str(value)


def _recipient_filters(data: dict) -> dict | None:
    """The customer list's filters that find the recipients, or None for `customer_ids`
    and `all`; a strict language narrows them to that language."""
    if data["group_id"]:
        filters = {"group_id": str(data["group_id"])}
    elif data["project_id"]:
        filters = {"project_id": str(data["project_id"])}
    elif data["filter"] is not None:
        filters = {key: _plain(value) for key, value in data["filter"].items()}
    else:
        return None
    if data["strict_language"]:
        filters["language"] = data["language"]
    return filters


def _recipient(customer: dict) -> dict:
    """What a message needs of a customer the customers service gave."""
    return {
        "id": customer["id"],
        "language": customer["language"],
        "name": customer["contact_person"] or customer["name"],
    }


class HelpdeskService(ServiceBase):
    name = "helpdesk"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
    customers = RpcProxy("customers")

    # -- who is acting, whom to tell ----------------------------------------------------------

    def _staff_author(self) -> dict:
        actor = context.current.actor
        if actor is None or actor.kind != "staff":
            raise Forbidden("Only staff may do this.")
        members = self.customers.staff_members([actor.id])
        name = members[0]["name"] if members else ""
        return {"kind": "staff", "id": actor.id, "name": name}

    def _notify(self, department, kind: str, ticket=None, exclude: str | None = None) -> list:
        """The staff to tell: for a reply on an assigned ticket its assignee, otherwise the
        department's staff; only those who asked for this kind of notification."""
        ids = set(department.staff_ids)
        if kind == "ticket_reply" and ticket is not None and ticket.assignee is not None:
            ids = {str(ticket.assignee)}
        if not ids:
            return []
        members = self.customers.staff_members(sorted(ids))
        return [
            m["id"]
            for m in members
            if m["active"] and m["notifications"].get(kind) and m["id"] != exclude
        ]

    def _check_staff(self, staff_ids: list) -> None:
        wanted = {str(s) for s in staff_ids}
        if not wanted:
            return
        known = {m["id"] for m in self.customers.staff_members(sorted(wanted))}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValidationFailed(
                "Some staff members do not exist.",
                {"staff_ids": [f"{s}: no such staff member." for s in unknown]},
            )

    def _named_department(self, department_id, client: bool = False):
        """The department a request names (400 naming the field when there is none, or,
        for a client, when it is not open to clients)."""
        try:
            department = self.app.department(department_id)
        except NotFound:
            department = None
        if department is None or (client and not department.client_visible):
            raise ValidationFailed(
                "No such department.", {"department_id": ["No such department."]}
            )
        return department

    def _customer(self, customer_id: str) -> dict:
        return _recipient(self.customers.get_customer(customer_id))

    # -- erasure ------------------------------------------------------------------------------

    @handles("customers", "CustomerErased")
    def erase_personal_data(self, event: IntegrationEvent) -> None:
        """A deleted customer's tickets lose their texts here: its key is destroyed (their
        subjects, bodies, authors' names, attachments and extra fields read as erased) and
        the ticket lists say so (services.infra.personal_data); then the files only its
        tickets named are deleted (services.helpdesk.erased_files)."""
        context.current.actor = Actor.from_dict(event.actor)
        context.current.on_behalf_of = Actor.from_dict(event.on_behalf_of)
        self.app.erase_customer(event.payload["customer_id"], event.payload["reason"])
        self._sweep_erased_files()

    @timer(interval=settings().scheduler_interval)
    def sweep_erased_files(self) -> None:
        """Erased customers' files left by a sweep that was interrupted."""
        self._sweep_erased_files()

    def _sweep_erased_files(self) -> None:
        try:
            self.app.sweep_erased_files()
        except Exception:
            # the erasure itself is recorded; the files are settled by a later sweep
            log.exception("erased customers' files: the sweep failed; it is tried again")

    # -- settings -----------------------------------------------------------------------------

    @rpc
    def get_settings(self) -> dict:
        return self.app.settings_values()

    @rpc
    def change_settings(self, payload: dict) -> dict:
        return self.app.change_settings(load(contract.HelpdeskSettings, payload, partial=True))

    # -- departments --------------------------------------------------------------------------

    @rpc
    def create_department(self, payload: dict) -> dict:
        data = load(contract.DepartmentFields, payload)
        self._check_staff(data["staff_ids"])
        return department_view(self.app.create_department(data), False)

    @rpc
    def change_department(self, department_id: str, payload: dict) -> dict:
        changes = load(contract.DepartmentFields, payload, partial=True)
        self._check_staff(changes.get("staff_ids") or [])
        department = self.app.change_department(_uuid(department_id, "department"), changes)
        return department_view(department, False)

    @rpc
    def departments(self, client: bool = False) -> list[dict]:
        return [department_view(d, client) for d in self.app.departments(client)]

    @rpc
    def get_department(self, department_id: str) -> dict:
        return department_view(self.app.department(_uuid(department_id, "department")), False)

    # -- a client's tickets ---------------------------------------------------------------------

    @rpc
    def open_ticket(
        self,
        customer_id: str,
        payload: dict,
        files: list | None = None,
        user: dict | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """A client opens a ticket in a department open to clients; the department's
        required extra fields must be given (400 naming each). Files: 413/415 by the rules.
        The same Idempotency-Key and request answer the first answer again."""
        data = load(contract.OpenTicket, payload)
        department = self._named_department(data["department_id"], client=True)
        missing = department.missing_fields(data["fields"])
        if missing:
            raise ValidationFailed("Some fields this department needs are missing.", missing)
        customer = self._customer(customer_id)
        uploads = _uploads(files)
        request = dict(payload, customer_id=customer_id, files=_fingerprint(uploads))
        earlier = self.app.idempotent_answer("ticket", idempotency_key, request)
        if earlier is not None:
            return earlier
        attachments = self.app.store_files(uploads)
        try:
            ticket = self._open_client_ticket(
                department,
                data,
                customer,
                user,
                attachments,
                ("ticket", idempotency_key, request, lambda t: ticket_view(t, client=True)),
            )
        except Replayed as replay:
            return replay.answer
        return ticket_view(ticket, client=True)

    def _open_client_ticket(self, department, data, customer, user, attachments, idempotency):
        return self.app.open_ticket(
            department,
            data["subject"],
            data["body"],
            {
                "kind": "client",
                "id": (user or {}).get("id") or customer["id"],
                "name": (user or {}).get("name") or customer["name"],
            },
            customer=customer,
            fields=data["fields"],
            priority=data["priority"],
            attachments=attachments,
            notify_staff_ids=self._notify(department, "new_ticket"),
            idempotency=idempotency,
        )

    @rpc
    def client_tickets(
        self, customer_id: str, state: str | None = None, page: int = 1, page_size: int = 50
    ) -> dict:
        filters = {"customer_id": _uuid(customer_id, "customer"), "client": True}
        if state is not None:
            filters["archived"] = state == "archived"
        return self.app.ticket_list(filters, page, page_size)

    @rpc
    def client_ticket(self, customer_id: str, ticket_id: str) -> dict:
        ticket = self.app.client_ticket(_uuid(ticket_id), _uuid(customer_id, "customer"))
        return ticket_view(ticket, client=True)

    @rpc
    def client_reply(
        self,
        customer_id: str,
        ticket_id: str,
        payload: dict,
        files: list | None = None,
        user: dict | None = None,
    ) -> dict:
        """Appended at once; 403 when the ticket forbids replies."""
        data = load(contract.Reply, payload)
        owner = _uuid(customer_id, "customer")
        ticket = self.app.client_ticket(_uuid(ticket_id), owner)
        if ticket.forbid_replies:
            raise Forbidden("This ticket does not take replies.")
        customer = self._customer(customer_id)
        attachments = self.app.store_files(_uploads(files))
        department = self.app.department(ticket.department_id)
        ticket, _ = self.app.add_message(
            ticket.id,
            data["body"],
            {
                "kind": "client",
                "id": (user or {}).get("id") or customer["id"],
                "name": (user or {}).get("name") or customer["name"],
            },
            customer_id=owner,
            attachments=attachments,
            notify_staff_ids=self._notify(department, "ticket_reply", ticket),
        )
        return ticket_view(ticket, client=True)

    @rpc
    def client_archive(self, customer_id: str, ticket_id: str) -> dict:
        ticket = self.app.archive(_uuid(ticket_id), _uuid(customer_id, "customer"))
        return ticket_view(ticket, client=True)

    @rpc
    def client_reopen(self, customer_id: str, ticket_id: str) -> dict:
        ticket = self.app.client_reopen(_uuid(ticket_id), _uuid(customer_id, "customer"))
        return ticket_view(ticket, client=True)

    @rpc
    def attachment(self, ticket_id: str, file_id: str, customer_id: str | None = None) -> dict:
        """A file of a ticket the caller may see: {filename, content_type, size, content
        (base64)}; 404 for another customer's ticket or a file not on it."""
        owner = _uuid(customer_id, "customer") if customer_id else None
        described, content = self.app.attachment(_uuid(ticket_id), str(file_id), owner)
        return dict(described, content=base64.b64encode(content).decode("ascii"))

    # -- staff ----------------------------------------------------------------------------------

    @rpc
    def staff_tickets(self, filters: dict, page: int = 1, page_size: int = 50) -> dict:
        return self.app.ticket_list(filters, page, page_size)

    @rpc
    def ticket_counts(self, statuses: list) -> list[dict]:
        """`{"department_id", "status", "count"}` for each department and each of
        `statuses` it has tickets in (the staff dashboard's queues, in one call)."""
        if not isinstance(statuses, list) or not statuses:
            raise invalid("statuses", "A list of ticket statuses.")
        unknown = [s for s in statuses if s not in contract.STATUSES]
        if unknown:
            raise invalid("statuses", f"Unknown ticket status {unknown[0]!r}.")
        return self.app.ticket_counts(statuses)

    @rpc
    def staff_ticket(self, ticket_id: str) -> dict:
        return ticket_view(self.app.ticket(_uuid(ticket_id)), client=False)

    @rpc
    def staff_reply(self, ticket_id: str, payload: dict, files: list | None = None) -> dict:
        """A staff answer, or with `internal` a note the client never sees; `template_id`
        puts the reply template's text first, in the client's language, macros filled."""
        data = load(contract.StaffReply, payload)
        author = self._staff_author()
        ticket = self.app.ticket(_uuid(ticket_id))
        body = data["body"]
        if data.get("template_id"):
            try:
                template = self.app.template(data["template_id"])
            except NotFound:
                raise invalid("template_id", "No such reply template.") from None
            client_person = ""
            if ticket.customer_id is not None:
                client_person = self._customer(str(ticket.customer_id))["name"]
            text = template.text_for(ticket.language, client_person, author["name"])
            body = f"{text}\n\n{body}" if body.strip() else text
        if not body.strip():
            raise ValidationFailed("Write a reply or choose a template.", {"body": ["Empty."]})
        attachments = self.app.store_files(_uploads(files))
        department = self.app.department(ticket.department_id)
        ticket, _ = self.app.add_message(
            ticket.id,
            body,
            author,
            internal=data["internal"],
            attachments=attachments,
            notify_staff_ids=self._notify(department, "ticket_reply", ticket, author["id"]),
            close=data["close"],
        )
        return ticket_view(ticket, client=False)

    @rpc
    def assign(self, ticket_id: str, payload: dict) -> dict:
        data = load(contract.Assign, payload)
        staff_id = data["staff_id"]
        if staff_id is not None and not self.customers.staff_members([str(staff_id)]):
            raise ValidationFailed("No such staff member.", {"staff_id": ["Unknown."]})
        return ticket_view(self.app.assign(_uuid(ticket_id), staff_id), client=False)

    @rpc
    def change_ticket(self, ticket_id: str, payload: dict) -> dict:
        """Priority, department, or status `closed` / `open` (reopen)."""
        changes = load(contract.ChangeTicket, payload, partial=True)
        return ticket_view(self.app.change_ticket(_uuid(ticket_id), changes), client=False)

    @rpc
    def merge(self, ticket_id: str, payload: dict) -> dict:
        """Merge the ticket `ticket_id` of the payload into this one (same customer only)."""
        data = load(contract.Merge, payload)
        return ticket_view(self.app.merge(_uuid(ticket_id), data["ticket_id"]), client=False)

    @rpc
    def standing(self, customer_id: str) -> dict:
        return self.app.standing(_uuid(customer_id, "customer"))

    # -- reply templates ------------------------------------------------------------------------

    @rpc
    def create_template(self, payload: dict) -> dict:
        return template_view(self.app.create_template(load(contract.ReplyTemplate, payload)))

    @rpc
    def change_template(self, template_id: str, payload: dict) -> dict:
        changes = load(contract.ReplyTemplate, payload, partial=True)
        template = self.app.change_template(_uuid(template_id, "reply template"), changes)
        return template_view(template)

    @rpc
    def delete_template(self, template_id: str) -> None:
        self.app.delete_template(_uuid(template_id, "reply template"))

    @rpc
    def template(self, template_id: str) -> dict:
        return template_view(self.app.template(_uuid(template_id, "reply template")))

    @rpc
    def templates(self, department_id: str | None = None) -> list[dict]:
        wanted = _uuid(department_id, "department") if department_id else None
        return [template_view(t) for t in self.app.templates(wanted)]

    # -- messages to customers --------------------------------------------------------------------

    @rpc
    def send_message(
        self, payload: dict, files: list | None = None, idempotency_key: str | None = None
    ) -> dict:
        """One ticket per customer, macros filled in per customer, the files kept once and
        shared by every copy; an abuse notice gives its penalty points at once and starts
        its deadline. The message is recorded first (bad input records nothing), then up to
        HOSTLEDGER_BROADCAST_INLINE tickets are opened here: a message to no more customers
        answers `sent` with every ticket; a larger one answers `sending` with the tickets so
        far, and the helpdesk opens the rest in the background (GET it by `id`). Each
        customer's ticket is opened once, whatever fails or restarts. The same
        Idempotency-Key and request answer the same message again (another request: 409)."""
        data = load(contract.SendMessage, payload)
        _check_message(data)
        abuse = data.get("abuse")
        author = self._staff_author()
        department = self._named_department(data["department_id"])
        template = None
        if data["template_id"]:
            try:
                template = self.app.template(data["template_id"])
            except NotFound:
                raise invalid("template_id", "No such reply template.") from None
        uploads = _uploads(files)
        request = dict(payload, files=_fingerprint(uploads))
        idempotency = (BROADCAST_SCOPE, idempotency_key, request) if idempotency_key else None
        earlier = self.app.idempotent_answer(BROADCAST_SCOPE, idempotency_key, request)
        if earlier is not None:
            return broadcast_view(self.app.broadcast(UUID(earlier["id"])))
        recipients = self._recipients(data)
        attachments = self.app.store_files(uploads)
        broadcast = Broadcast(
            subject=data["subject"],
            body=data["body"],
            author=author,
            department_id=department.id,
            options={
                "forbid_replies": data["forbid_replies"],
                "assign_to_me": data["assign_to_me"],
                "strict_language": data["strict_language"],
                "language": data["language"],
                "all": data["all"],
                "recipients": _recipient_choice(data),
                "translations": data["translations"],
                "template": dict(template.bodies) if template else None,
            },
            abuse=dict(abuse) if abuse else None,
            recipients=recipients,
            attachments=attachments,
            at=clock.now(),
            customer_id=sole_customer(recipients, _recipient_choice(data)),
        )
        holder = uuid4().hex
        try:
            self.app.start_broadcast(broadcast, holder, idempotency)
        except Replayed as replay:
            return broadcast_view(self.app.broadcast(UUID(replay.answer["id"])))
        try:
            broadcast = self._send_batch(broadcast.id, holder, settings().broadcast_inline)
        except HostledgerError:
            # recorded: the background sender opens what this request could not
            log.exception("message %s: the first tickets failed; sending goes on", broadcast.id)
            broadcast = self.app.broadcast(broadcast.id)
        finally:
            self.app.release_lease(broadcast.id, holder)
        return broadcast_view(broadcast)

    def _send_batch(
        self, broadcast_id: UUID, holder: str, limit: int, background=False, seconds=None
    ):
        """Open the tickets of the next `limit` recipients without one, HOSTLEDGER_BROADCAST_
        BATCH per save (each save records them on the message: services.helpdesk.broadcasts);
        stop early when the lease passed to another sender, this process is stopping, or
        after `seconds`. Answers the broadcast as recorded."""
        until = time.monotonic() + (seconds if seconds is not None else float("inf"))
        broadcast = self.app.broadcast(broadcast_id)
        department = self.app.department(broadcast.department_id)
        # a recipient whose ticket keeps failing is parked (staff see it and retry it);
        # the others get theirs, and the message stays `sending` until that one has it
        items = ScheduledItems(self.app, "scheduler:broadcasts")
        pending = [
            customer
            for customer in broadcast.pending(len(broadcast.recipients))
            if not items.parked(f"{broadcast_id}:{customer['id']}")
        ][: max(limit, 0)]
        size = max(settings().broadcast_batch, 1)
        for start in range(0, len(pending), size):
            if background:
                failpoint("helpdesk.broadcast.before_record")
            batch = pending[start : start + size]
            try:
                broadcast = self.app.open_broadcast_tickets(broadcast, department, batch)
            except Exception as exc:
                if is_transient(exc) or isinstance(exc, Conflict):
                    raise
                # one recipient's ticket cannot be opened: each on its own, that one parked
                log.warning("message %s: a batch failed (%s); one at a time", broadcast_id, exc)
                broadcast = self._send_one_by_one(broadcast_id, department, batch, items)
            if start + size < len(pending) and (
                shutdown.requested()
                or time.monotonic() > until
                or not self.app.take_lease(broadcast_id, holder)
            ):
                break
        return broadcast

    def _send_one_by_one(self, broadcast_id, department, customers, items):
        broadcast = self.app.broadcast(broadcast_id)
        for customer in customers:
            opened = items.run(
                f"{broadcast_id}:{customer['id']}",
                lambda c=customer, b=broadcast: self.app.open_broadcast_tickets(b, department, [c]),
                type="message ticket",
            )
            broadcast = opened or self.app.broadcast(broadcast_id)
        return broadcast

    @rpc
    def messages(self, page: int = 1, page_size: int = 50) -> dict:
        """Messages to customers, newest first (a list: may lag a moment)."""
        return self.app.broadcast_list(page, page_size)

    @rpc
    def message(self, broadcast_id: str) -> dict:
        """One message to customers as it is now: status, recipients, tickets opened."""
        return broadcast_view(self.app.broadcast(_uuid(broadcast_id, "message")))

    @timer(interval=settings().broadcast_interval)
    def run_broadcasts(self) -> None:
        """Opens the tickets of messages still sending, where the request (or a sender that
        stopped) left off: batch after batch while it holds the message's lease, for up to
        SENDING_SLICE_SECONDS a message and run (then the next message has its turn), or
        until this process stops. Several instances may run it: a lease keeps them on
        different messages, and each ticket is opened once anyway."""
        for broadcast_id in self.app.sending_broadcasts():
            if shutdown.requested():
                return
            holder = uuid4().hex
            if not self.app.take_lease(broadcast_id, holder):
                continue
            try:
                broadcast = self.app.broadcast(broadcast_id)
                if broadcast.status != "sending":
                    continue
                author = Actor("staff", broadcast.author.get("id"))
                with context.acting(author, cause=f"broadcast:{broadcast_id}"):
                    self._send_batch(
                        broadcast_id,
                        holder,
                        len(broadcast.recipients),
                        background=True,
                        seconds=SENDING_SLICE_SECONDS,
                    )
            except Exception:
                # the next messages are sent all the same; this one is tried again next run
                log.exception("message %s: this batch failed; it is tried again", broadcast_id)
            finally:
                self.app.release_lease(broadcast_id, holder)

    def _recipients(self, data: dict) -> list[dict]:
        filters = _recipient_filters(data)
        if filters is not None:
            # a group, a project or the customer list's filters: the customers service's
            # list finds whom they match now (it may lag a registration by a moment)
            found, page = [], 1
            while True:
                listing = self.customers.list_customers(
                    dict(filters, page=page, page_size=MAX_PAGE_SIZE)
                )
                found += [
                    {"id": c["id"], "language": c["language"], "name": c["name"]}
                    for c in listing["items"]
                ]
                if page * MAX_PAGE_SIZE >= listing["total"] or not listing["items"]:
                    return list({c["id"]: c for c in found}.values())
                page += 1
        if not data["all"]:
            # asked all at once (the customers service answers them side by side): one
            # after the other, a list of hundreds took longer than the caller waits
            asked = [
                (customer_id, self.customers.get_customer.call_async(customer_id))
                for customer_id in dict.fromkeys(str(c) for c in data["customer_ids"])
            ]
            found = []
            for customer_id, reply in asked:
                try:
                    found.append(_recipient(reply.result()))
                except NotFound:
                    raise ValidationFailed(
                        "No such customer.", {"customer_ids": [f"{customer_id}: unknown."]}
                    ) from None
            return [
                c for c in found if not data["strict_language"] or c["language"] == data["language"]
            ]
        # every customer, from the customers service's event store (its list may lag)
        language = data["language"] if data["strict_language"] else None
        found, after = [], 0
        while after is not None:
            page = self.customers.every_customer(language, after, 500)
            found += page["items"]
            after = page["next"]
        return found

    @timer(interval=settings().scheduler_interval)
    def run_deadlines(self) -> None:
        """Abuse notices whose deadline passed without the client answering, on the
        injectable clock. Several instances may run it: each ticket acts once."""
        # a ticket that cannot be acted on is parked (staff see it and retry it) and the
        # other deadlines are handled
        items = ScheduledItems(self.app, "scheduler:abuse_deadlines")
        for ticket_id in self.app.abuse_due(clock.now(), limit=100 + len(items.open_items())):
            items.run(str(ticket_id), lambda t=ticket_id: self._act_on_abuse(t), "abuse deadline")

    def _act_on_abuse(self, ticket_id: UUID) -> None:
        ticket = self.app.ticket(ticket_id)
        department = self.app.department(ticket.department_id)
        try:
            notify = self._notify(department, "abuse_deadline")
        except HostledgerError:
            notify = []
        self.app.act_on_abuse(ticket_id, notify)

    # -- mail in ----------------------------------------------------------------------------------

    @rpc
    def receive_mail(self, mail: dict) -> dict:
        """One incoming e-mail (contracts.helpdesk.IncomingMail): see its docstring."""
        intake = MailIntake(self.app, self.customers.people_with_email, self._notify)
        return intake.receive(load(contract.IncomingMail, mail))
