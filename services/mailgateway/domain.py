"""The mail gateway's aggregates: staff's versions of the notification templates."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import event

from services.infra.domain import KeyedIndex

_TEMPLATE_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/mail-template")


class MailTemplate(KeyedIndex):
    """Staff's own text for one kind of notification in one language. Its history is the
    record of who changed what a customer is told; `reset` goes back to the shipped text."""

    id_namespace = _TEMPLATE_NS
    key_fields = ("kind", "language")

    @event("Edited")
    def __init__(self, kind: str, language: str, subject: str, body: str):
        self.kind = kind
        self.language = language
        self.subject = subject
        self.body = body
        self.customized = True

    @event("Changed")
    def change(self, subject: str, body: str) -> None:
        self.subject = subject
        self.body = body
        self.customized = True

    @event("Reset")
    def reset(self) -> None:
        self.customized = False


_HELD_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/held-mail")


class HeldMailDecision(KeyedIndex):
    """What staff did with one incoming message kept for them (the `mail_held` row
    `held_id`): `released` into a ticket (handed to the helpdesk, or into the department
    staff chose) or `discarded` with a reason. One per message: a second decision
    conflicts with the first. Its event records who decided, for the audit."""

    id_namespace = _HELD_NS
    key_fields = ("held_id",)

    @event("Decided")
    def __init__(
        self,
        held_id: int,
        decision: str,
        reason: str | None = None,
        department_id: str | None = None,
        ticket_id: str | None = None,
        tracking_number: str | None = None,
    ):
        self.held_id = held_id
        self.decision = decision
        self.reason = reason
        self.department_id = department_id
        self.ticket_id = ticket_id
        self.tracking_number = tracking_number
