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
