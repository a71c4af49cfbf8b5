"""Personal accounts: a ledger per customer and currency."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate
from services.infra.money import Money

_ACCOUNT_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/personal-account")


class PersonalAccount(Aggregate):
    """One per customer and currency; its balance is the sum of its entries."""

    @event("Opened")
    def __init__(self, customer_id: UUID, currency: str, opened_at: datetime):
        self.customer_id = customer_id
        self.currency = currency
        self.opened_at = opened_at
        self.entries: list[dict] = []

    @staticmethod
    def create_id(customer_id: UUID, currency: str, **_) -> UUID:
        return PersonalAccount.id_for(customer_id, currency)

    @staticmethod
    def id_for(customer_id: UUID, currency: str) -> UUID:
        return uuid5(_ACCOUNT_NS, f"{customer_id}:{currency}")

    @property
    def balance(self) -> Money:
        return Money(sum(e["amount"] for e in self.entries), self.currency)
