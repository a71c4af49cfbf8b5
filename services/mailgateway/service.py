"""The mailgateway service: notifications out (outbox + sender), staff's view of mail.

Incoming mail (SMTP server, IMAP poller) runs in a child process,
`python -m services.mailgateway.mailin` (see background.py): aiosmtpd is asyncio and
this process is eventlet.
"""

from __future__ import annotations

import base64
import logging
import uuid

from nameko.exceptions import MethodNotFound
from nameko.rpc import RpcProxy

from contracts import mail as mail_contract
from contracts.envelope import IntegrationEvent
from contracts.errors import Conflict, NotFound
from services.infra import clock
from services.infra.consumer import handles
from services.infra.rpc import load, rpc
from services.infra.service import ServiceBase
from services.infra.settings import settings
from services.infra.store import EventStore
from services.mailgateway import compose, erasure, held, notifications, ticket_mail
from services.mailgateway.application import MailGateway
from services.mailgateway.audit import MailGatewayAuditIndex
from services.mailgateway.background import (
    MailInProcess,
    OutboxSender,
    mail_identity,
    signature,
)

log = logging.getLogger(__name__)

APPLICATION = MailGateway
READ_MODELS = (MailGatewayAuditIndex,)


def _reset_page(recipient: dict) -> str:
    """Where a reset link leads: staff set theirs on the staff panel's page (which then
    leads to the staff login), everyone else on the client area's."""
    return "/staff/reset-password" if recipient.get("kind") == "staff" else "/reset-password"


class MailGatewayService(ServiceBase):
    name = "mailgateway"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
    outbox_sender = OutboxSender()
    mail_in = MailInProcess()
    customers = RpcProxy("customers")
    helpdesk = RpcProxy("helpdesk")

    # -- notifications from other services' events ---------------------------------------------

    def _customer(self, customer_id) -> tuple[dict | None, dict | None]:
        """The customer (None once deleted) and its notification settings, as the customers
        service answers them (the notices of a batch of events for one customer ask once:
        MailGateway.asked_about)."""
        return self.app.asked_about(customer_id, self._ask_customer)

    def _ask_customer(self, customer_id: str) -> tuple[dict | None, dict | None]:
        """One question to the customers service: the customer and its settings."""
        try:
            answer = self.customers.get_customer_and_notification_settings(customer_id)
        except NotFound:
            return None, None
        except MethodNotFound:
            # a customers service of an earlier release (during an upgrade): two questions
            try:
                customer = self.customers.get_customer(customer_id)
            except NotFound:
                return None, None
            return customer, self.customers.get_notification_settings(customer_id)
        return answer["customer"], answer["notification_settings"]

    def _notify(
        self,
        event: IntegrationEvent,
        kind: str,
        customer_id,
        context: dict,
        in_reply_to: str | None = None,
        message_id: str | None = None,
        skip_reason: str | None = None,
    ) -> None:
        customer, prefs = self._customer(customer_id)
        _, domain = mail_identity()
        self.app.queue(
            notifications.for_customer(
                key=f"{event.ref}:{kind}",
                kind=kind,
                customer=customer,
                settings=prefs,
                context=context,
                domain=domain,
                company=signature(),
                in_reply_to=in_reply_to,
                message_id=message_id,
                skip_reason=skip_reason,
            )
        )

    @handles("billing", "InvoiceIssued", batch=True)
    def invoice_issued(self, event: IntegrationEvent) -> None:
        p = event.payload
        _, domain = mail_identity()
        self._notify(
            event,
            "invoice_issued",
            p["customer_id"],
            {
                "number": p["number"],
                "total": p["total"],
                "currency": p["currency"],
                "due_date": str(p["due_date"]),
            },
            message_id=compose.thread_root(f"invoice-{p['invoice_id']}", domain),
        )

    @handles("billing", "CreditNoteIssued", batch=True)
    def credit_note_issued(self, event: IntegrationEvent) -> None:
        p = event.payload
        _, domain = mail_identity()
        self._notify(
            event,
            "credit_note_issued",
            p["customer_id"],
            {
                "number": p["number"],
                "invoice_number": p["invoice_number"],
                "total": p["total"],
                "currency": p["currency"],
                "reason": p["reason"],
            },
            in_reply_to=compose.thread_root(f"invoice-{p['invoice_id']}", domain),
        )

    @handles("billing", "PaymentReceived", batch=True)
    def payment_received(self, event: IntegrationEvent) -> None:
        p = event.payload
        _, domain = mail_identity()
        thread = compose.thread_root(f"invoice-{p['invoice_id']}", domain)
        self._notify(
            event,
            "payment_received",
            p["customer_id"],
            {"amount": p["amount"], "currency": p["currency"], "method": p["method"]},
            in_reply_to=thread if p.get("invoice_id") else None,
        )

    @handles("billing", "InvoiceDueSoon", batch=True)
    def invoice_due(self, event: IntegrationEvent) -> None:
        self._invoice_notice(event, "invoice_due")

    @handles("billing", "InvoiceOverdue", batch=True)
    def invoice_overdue(self, event: IntegrationEvent) -> None:
        self._invoice_notice(event, "invoice_overdue")

    def _invoice_notice(self, event: IntegrationEvent, kind: str) -> None:
        p = event.payload
        _, domain = mail_identity()
        self._notify(
            event,
            kind,
            p["customer_id"],
            notifications.invoice_context(p),
            in_reply_to=compose.thread_root(f"invoice-{p['invoice_id']}", domain),
        )

    @handles("orders", "ServiceActivated", batch=True)
    def service_activated(self, event: IntegrationEvent) -> None:
        """Remembered to know whom a later suspension of the service concerns, when the
        suspension (recorded before it named the customer) does not say."""
        p = event.payload
        self.app.record_service_owner(p["service_id"], p["customer_id"])

    @handles("orders", "ServiceSuspended")
    def service_suspended(self, event: IntegrationEvent) -> None:
        self._service_notice(event, "service_suspended")

    @handles("orders", "ServiceUnsuspended")
    def service_unsuspended(self, event: IntegrationEvent) -> None:
        self._service_notice(event, "service_unsuspended")

    def _service_notice(self, event: IntegrationEvent, kind: str) -> None:
        p = event.payload
        owner = p.get("customer_id") or self.app.service_owner(p["service_id"])
        if owner is None:
            # an old event, and its service's activation never applied here (parked):
            # failing parks this one too, visibly, to be retried once that one is
            raise LookupError(f"{kind} of service {p['service_id']}, whose owner is unknown")
        self._notify(
            event,
            kind,
            owner,
            {"service_id": str(p["service_id"]), "reason": p["reason"]},
        )

    @handles("customers", "CustomerErased")
    def erase_personal_data(self, event: IntegrationEvent) -> None:
        """A deleted customer's mail loses its addresses, subjects and bodies here."""
        from services.infra.context import Actor, current

        current.actor = Actor.from_dict(event.actor)
        current.on_behalf_of = Actor.from_dict(event.on_behalf_of)
        self.app.erase_customer(event.payload["customer_id"], event.payload["reason"])

    @handles("customers", "CustomerRegistered", batch=True)
    def customer_registered(self, event: IntegrationEvent) -> None:
        """The customer's address is kept, for its erasure to find what came from it."""
        self.app.learn_address(event.payload["customer_id"], event.payload["email"])

    @handles("customers", "CustomerUpdated", batch=True)
    def customer_updated(self, event: IntegrationEvent) -> None:
        """A changed address is kept beside the earlier ones, for the customer's erasure."""
        email = event.payload["changes"].get("email")
        if isinstance(email, str) and "@" in email:
            self.app.learn_address(event.payload["customer_id"], email)

    @handles("customers", "PasswordChanged", batch=True)
    def password_changed(self, event: IntegrationEvent) -> None:
        """Sent whatever the customer's notification settings (it is about the security of
        the account), never with a password; a stale one is recorded as skipped."""
        p = event.payload
        self._notify(
            event,
            "password_changed",
            p["customer_id"],
            {"changed_by": p["changed_by"]},
            skip_reason=notifications.stale_alert(p["occurred_at"], clock.now()),
        )

    # -- ticket mail ---------------------------------------------------------------------------

    @handles("helpdesk", "TicketOpened")
    def ticket_opened(self, event: IntegrationEvent) -> None:
        self._ticket_mail(event)

    @handles("helpdesk", "TicketMessageAdded")
    def ticket_message_added(self, event: IntegrationEvent) -> None:
        self._ticket_mail(event)

    @handles("helpdesk", "TicketNoteAdded")
    def ticket_note_added(self, event: IntegrationEvent) -> None:
        self._ticket_mail(event)

    def _ticket_mail(self, event: IntegrationEvent) -> None:
        p = event.payload
        customer, prefs = (None, None)
        if p.get("customer_id"):
            customer, prefs = self._customer(p["customer_id"])
        staff = []
        if p.get("notify_staff_ids"):
            staff = self.customers.staff_members([str(s) for s in p["notify_staff_ids"]])
        _, domain = mail_identity()
        mails, statements = ticket_mail.for_event(
            ref=event.ref,
            event_type=event.type,
            payload=p,
            client=ticket_mail.client_of(p, customer),
            client_prefs=prefs,
            staff=staff,
            threads=self.app.threads(p["ticket_id"]),
            domain=domain,
        )
        for file_id in self.app.attachments_missing(ticket_mail.attachments_of(mails)):
            content = self.helpdesk.attachment(str(p["ticket_id"]), file_id)["content"]
            statements.append(
                (
                    "INSERT INTO mail_attachments (id, content) VALUES (%s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    (file_id, base64.b64decode(content)),
                )
            )
        if p.get("customer_id"):
            # which customer's tickets these are, for its erasure
            statements.append(erasure.learn_ticket_statement(p["ticket_id"], p["customer_id"]))
        self.app.queue_with(mails, statements)

    # -- commands -----------------------------------------------------------------------------

    @rpc
    def send_account_credentials(
        self, customer_id: str, username: str, password: str, reason: str | None = None
    ) -> dict:
        """Queue the new-account mail with a generated password: the only notification that
        carries one. The password is never stored beside the notification once it is sent.
        With `reason` (`order`: the account an order created), the same customer and reason
        queue one mail however often this is called (a redelivered request, a retry); without
        it every call queues a new mail."""
        customer, prefs = self._customer(customer_id)
        if customer is None:
            raise NotFound("No such customer.")
        _, domain = mail_identity()
        key = f"credentials:{customer_id}:{reason or uuid.uuid4()}"
        notification = notifications.for_customer(
            key=key,
            kind="account_credentials",
            customer=customer,
            settings=prefs,
            context={"username": username},
            domain=domain,
            company=signature(),
            secret=password,
        )
        self.app.queue(notification)
        return {"key": key, "status": notification.status}

    @rpc
    def send_password_reset(self, recipient: dict, token: str, key: str | None = None) -> dict:
        """Queue the mail with a password reset link to `recipient` ({"email", "name",
        "language", "customer_id"?, "expires_minutes", "kind"}): a client, a client's user
        or a staff member (kind "staff": the link leads to the staff panel's page). The
        token, like a generated password, is kept apart from the notification and erased
        once it is sent. With `key` (the request's own), the same request queues one mail
        however often it is handed over."""
        _, domain = mail_identity()
        key = f"password_reset:{key or uuid.uuid4()}"
        language = recipient.get("language") or "en"
        notification = notifications.Notification(
            key=key,
            kind="password_reset",
            recipient=recipient["email"],
            language=language if language in notifications.LANGUAGES else "en",
            context={
                "customer_name": recipient.get("name") or "",
                "company": signature(),
                "reset_url": f"{settings().public_url}{_reset_page(recipient)}",
                "expires_minutes": int(recipient.get("expires_minutes") or 60),
                "secret_as": "token",
            },
            message_id=compose.notification_message_id(key, domain),
            customer_id=recipient.get("customer_id"),
            secret=token,
        )
        self.app.queue(notification)
        return {"key": key, "status": notification.status}

    @rpc
    def send_email_change(self, recipient: dict, token: str, key: str | None = None) -> dict:
        """Queue the mail with the link that confirms a client's new address, to that
        address (`recipient`: {"email", "name", "language", "customer_id",
        "expires_hours"}). The token is kept apart and erased once sent, as a reset
        token is; with `key`, one mail per request however often it is handed over."""
        return self._account_mail(
            "email_change",
            recipient,
            key,
            {
                "confirm_url": f"{settings().public_url}/settings/email/confirm",
                "expires_hours": int(recipient.get("expires_hours") or 24),
                "secret_as": "token",
            },
            secret=token,
        )

    @rpc
    def send_email_changed(self, recipient: dict, key: str | None = None) -> dict:
        """Queue the notice to a client's old address that its address was changed
        (`recipient`: {"email" (the old one), "name", "language", "customer_id",
        "new_email"})."""
        return self._account_mail(
            "email_changed", recipient, key, {"new_email": recipient["new_email"]}
        )

    def _account_mail(
        self, kind: str, recipient: dict, key: str | None, context: dict, secret=None
    ) -> dict:
        _, domain = mail_identity()
        key = f"{kind}:{key or uuid.uuid4()}"
        language = recipient.get("language") or "en"
        notification = notifications.Notification(
            key=key,
            kind=kind,
            recipient=recipient["email"],
            language=language if language in notifications.LANGUAGES else "en",
            context={"customer_name": recipient.get("name") or "", "company": signature()}
            | context,
            message_id=compose.notification_message_id(key, domain),
            customer_id=recipient.get("customer_id"),
            secret=secret,
        )
        self.app.queue(notification)
        return {"key": key, "status": notification.status}

    # -- staff ----------------------------------------------------------------------------------

    @rpc
    def outbox(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        kind: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> dict:
        """Notifications, oldest first, with their state (never a password)."""
        return self.app.outbox(status, customer_id, kind, int(page), int(page_size))

    @rpc
    def resend_notification(self, notification_id: int) -> dict:
        """Send a failed, uncertain or bounced notification again."""
        row = self.app.resend(int(notification_id))
        self.outbox_sender.wake()
        return row

    @rpc
    def list_templates(self) -> dict:
        return self.app.list_templates()

    @rpc
    def get_template(self, kind: str, language: str) -> dict:
        return self.app.template_view(kind, language)

    @rpc
    def edit_template(self, kind: str, language: str, subject: str, body: str) -> dict:
        """Staff's own text; refused (validation error) unless it compiles and renders."""
        data = load(mail_contract.EditTemplate, {"subject": subject, "body": body})
        return self.app.edit_template(kind, language, data["subject"], data["body"])

    @rpc
    def reset_template(self, kind: str, language: str) -> dict:
        return self.app.reset_template(kind, language)

    @rpc
    def preview_template(self, kind: str, language: str, subject: str, body: str) -> dict:
        """The mail staff's text would give on sample values, nothing saved (refused as an
        edit would be)."""
        data = load(mail_contract.EditTemplate, {"subject": subject, "body": body})
        return self.app.preview_template(kind, language, data["subject"], data["body"])

    @rpc
    def held_mail(self, page: int = 1, page_size: int = 50, status: str | None = "held") -> dict:
        """Incoming mail kept for staff (unparseable, refused by the helpdesk, rate-limited):
        still waiting (`held`), `released`, `discarded`, or all (None)."""
        return self.app.held_mail(int(page), int(page_size), status)

    @rpc
    def held_message(self, held_id: int) -> dict:
        """One kept message: what was recorded of it, and its headers, text body and
        attachments read as text (`content`)."""
        row = self.app.held_message(int(held_id))
        _, domain = mail_identity()
        return row | {"content": held.describe(self.app.held_raw(int(held_id)), domain)}

    @rpc
    def held_raw(self, held_id: int) -> str:
        """One kept message as received, base64."""
        import base64

        return base64.b64encode(self.app.held_raw(int(held_id))).decode("ascii")

    @rpc
    def release_held(self, held_id: int, department_id: str | None = None) -> dict:
        """Hand a kept message to the helpdesk as if it had just arrived, or into the
        department staff chose; then it is released (once: again is a 409)."""
        chosen = load(mail_contract.ReleaseHeld, {"department_id": department_id})
        department_id = str(chosen["department_id"]) if chosen["department_id"] else None
        row = self.app.held_message(int(held_id))
        if row["status"] != "held":
            raise Conflict(f"This message was already {row['status']}.")
        _, domain = mail_identity()
        answer = held.release(
            self.helpdesk,
            self.app.held_raw(int(held_id)),
            row,
            department_id,
            domain,
            settings().mail_authserv_id,
        )
        return self.app.decide_held(
            int(held_id),
            "released",
            department_id=department_id,
            ticket_id=str(answer["ticket_id"]),
            tracking_number=str(answer.get("tracking_number") or "") or None,
        )

    @rpc
    def discard_held(self, held_id: int, reason: str) -> dict:
        """Set a kept message aside for good, saying why (once: again is a 409)."""
        data = load(mail_contract.DiscardHeld, {"reason": reason})
        return self.app.decide_held(int(held_id), "discarded", reason=data["reason"])

    @rpc
    def received_mail(self, sender: str | None = None, page: int = 1, page_size: int = 50) -> dict:
        """Incoming mail taken, with what became of each message."""
        return self.app.received_mail(sender, int(page), int(page_size))
