"""Mail the mail gateway hands in: a new ticket, an answer on a ticket, a duplicate, a
bounce, or refused (contracts.helpdesk.IncomingMail).

A mail answers a ticket when its In-Reply-To/References name one of the ticket's messages
(our outgoing Message-IDs, or incoming mail already on the ticket) or its subject carries
`[#<tracking number>]`, and only when the sender may write there: the ticket's customer
(or one of its users), the guest who opened it, or the department's staff. Otherwise it
opens a ticket in the department that owns the recipient address, as the customer the
sender is, or as a guest when the department takes mail from unknown senders. The
Message-ID is claimed in the same save as what the mail did, so a mail taken twice is
recognised. Attachments follow the web's rules; a refused one becomes a note. A message
the mail gateway kept for staff and staff released into a department (`department_id`)
opens a ticket there, as the customer or a guest, whatever its address and threading.

A From header is easy to forge, so it alone never makes a staff answer: mail from a
department's staff address is a staff answer only when the provider's own mail server
found its DMARC passed (`sender_verified`, from Authentication-Results); otherwise it
becomes an internal note on the ticket. Mail whose check failed carries a note for
staff: "sender not verified".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from contracts.errors import TooLarge, UnsupportedType, ValidationFailed
from services.helpdesk.application import DuplicateMail, Helpdesk
from services.helpdesk.attachments import check_file, decode_upload

TRACKING_IN_SUBJECT = re.compile(r"\[#([A-Z0-9]{3}-[0-9]{6})\]", re.IGNORECASE)
NOT_VERIFIED = (
    "Sender not verified: the provider's mail server found this message's DMARC, SPF or "
    "DKIM check failed; the From address may be forged."
)


class MailIntake:
    def __init__(self, app: Helpdesk, people_with_email: Callable[[str], dict], notify: Callable):
        self.app = app
        self.people_with_email = people_with_email
        self._notify = notify

    def receive(self, data: dict) -> dict:
        message_id = data["message_id"].strip()
        seen = self.app.mail_seen(message_id)
        if seen is not None:
            return self._outcome("duplicate", self.app.ticket(seen))
        if data.get("bounce_of"):
            return self._bounce(data)
        people = self.people_with_email(data["sender"])
        ticket = None if data.get("department_id") else self._thread_of(data, people)
        attachments, notes = self._mail_files(data["attachments"])
        if data.get("sender_verified") is False:
            notes.insert(0, NOT_VERIFIED)
        try:
            if ticket is not None:
                return self._append_mail(data, people, ticket, attachments, notes)
            return self._open_by_mail(data, people, attachments, notes)
        except DuplicateMail:
            return self._outcome("duplicate", self.app.ticket(self.app.mail_seen(message_id)))

    def _outcome(self, outcome: str, ticket, reason: str | None = None) -> dict:
        answer = {
            "outcome": outcome,
            "ticket_id": str(ticket.id) if ticket else None,
            "tracking_number": ticket.tracking_number if ticket else None,
        }
        if reason:
            answer["reason"] = reason
        return answer

    def _bounce(self, data: dict) -> dict:
        ticket_id = self.app.ticket_of_message(data["bounce_of"])
        if ticket_id is None:
            return self._outcome("refused", None, "the bounced message is not one of ours")
        ticket, _ = self.app.add_message(
            ticket_id,
            f"Mail to the client could not be delivered ({data['sender']}): "
            f"{data['subject']}\n\n{data['body'][:4000]}",
            {"kind": "system", "id": None, "name": ""},
            internal=True,
            mail_message_id=data["message_id"],
        )
        return self._outcome("bounce_noted", ticket)

    def _may_write(
        self, ticket, people: dict, sender: str, verified: bool | None = None
    ) -> dict | None:
        """The author a mail from `sender` would be on `ticket`, or None if it may not write.
        The department's staff write a staff answer only when `verified`; unverified, their
        mail is an internal note (`note_only`)."""
        customer, staff = people.get("customer"), people.get("staff")
        if customer and ticket.customer_id is not None:
            if customer["customer_id"] == str(ticket.customer_id):
                return {
                    "kind": "mail",
                    "id": customer["user_id"] or customer["customer_id"],
                    "name": customer["name"],
                }
        if ticket.customer_id is None and ticket.guest_email:
            if ticket.guest_email.lower() == sender.lower():
                return {"kind": "mail", "id": None, "name": sender}
        if staff:
            department = self.app.department(ticket.department_id)
            if staff["staff_id"] in department.staff_ids:
                if verified is True:
                    return {"kind": "staff", "id": staff["staff_id"], "name": staff["name"]}
                return {"kind": "mail", "id": None, "name": sender, "note_only": True}
        return None

    def _thread_of(self, data: dict, people: dict):
        """The ticket this mail answers, when the sender may write there."""
        candidates = []
        for reference in [*data["in_reply_to"], *reversed(data["references"])]:
            ticket_id = self.app.ticket_of_message(reference)
            if ticket_id is not None:
                candidates.append(ticket_id)
        match = TRACKING_IN_SUBJECT.search(data["subject"] or "")
        if match:
            found = self.app.ticket_of_tracking_number(match.group(1).upper())
            if found is not None:
                candidates.append(found.id)
        for ticket_id in dict.fromkeys(candidates):
            ticket = self.app.ticket(ticket_id)
            while ticket.merged_into is not None:
                ticket = self.app.ticket(ticket.merged_into)
            if self._may_write(ticket, people, data["sender"], data.get("sender_verified")):
                return ticket
        return None

    def _mail_files(self, items: list[dict]) -> tuple[list[dict], list[str]]:
        """The attachments that pass the web's rules; each refused one becomes a note."""
        rules = self.app.attachment_rules()
        kept, notes, total = [], [], 0
        for item in items:
            try:
                name, content = decode_upload(item)
                described = check_file(name, content, rules)
                if total + len(content) > rules.max_message_bytes:
                    raise TooLarge("The files of this mail pass the per-message limit.")
            except (TooLarge, UnsupportedType, ValidationFailed) as exc:
                notes.append(f"Attachment {item.get('filename')!r} was refused: {exc.message}")
                continue
            total += len(content)
            self.app.files.put(content)
            kept.append(described)
        return kept, notes

    def _append_mail(self, data, people, ticket, attachments, notes) -> dict:
        author = self._may_write(ticket, people, data["sender"], data.get("sender_verified"))
        if author.pop("note_only", False):
            ticket, _ = self.app.add_message(
                ticket.id,
                f"Mail from the staff address {data['sender']}, not taken as a staff answer "
                "because its sender is not verified (answer on the web, or have the mail "
                f"server check DMARC). It said:\n\n{data['body'] or '(empty message)'}",
                author,
                internal=True,
                attachments=attachments,
                mail_message_id=data["message_id"],
                notes=notes,
            )
            return self._outcome("noted", ticket, "the staff sender is not verified")
        if author["kind"] == "mail" and ticket.forbid_replies:
            return self._outcome("refused", ticket, "the ticket does not take replies")
        department = self.app.department(ticket.department_id)
        kind = "ticket_reply"
        ticket, _ = self.app.add_message(
            ticket.id,
            data["body"] or "(empty message)",
            author,
            attachments=attachments,
            notify_staff_ids=self._notify(department, kind, ticket, author["id"]),
            mail_message_id=data["message_id"],
            notes=notes,
        )
        return self._outcome("appended", ticket)

    def _open_by_mail(self, data, people, attachments, notes) -> dict:
        chosen = data.get("department_id")
        if chosen is not None:  # released by staff into this department
            department = self.app.department(chosen)
        else:
            department = self.app.department_for_address(data["recipient"])
        if department is None:
            return self._outcome("refused", None, "no department takes mail at this address")
        customer = people.get("customer")
        if customer is None and chosen is None:
            allowed = department.accept_guests and self.app.settings_values()["accept_guest_mail"]
            if not allowed:
                return self._outcome("refused", None, "mail from unknown senders is not taken")
        subject = TRACKING_IN_SUBJECT.sub("", data["subject"] or "").strip() or "(no subject)"
        ticket = self.app.open_ticket(
            department,
            subject[:255],
            data["body"] or "(empty message)",
            {
                "kind": "mail",
                "id": (customer or {}).get("user_id") or (customer or {}).get("customer_id"),
                "name": (customer or {}).get("name") or data["sender_name"] or data["sender"],
            },
            customer=(
                {"id": customer["customer_id"], "language": customer["language"]}
                if customer
                else None
            ),
            guest_email=None if customer else data["sender"].lower(),
            attachments=attachments,
            via="mail",
            mail_message_id=data["message_id"],
            notify_staff_ids=self._notify(department, "new_ticket"),
            notes=notes,
        )
        return self._outcome("opened", ticket)
