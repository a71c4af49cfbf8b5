"""Billing: personal accounts (more to come: invoices, payments)."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts import billing as contract
from contracts.errors import NotFound
from services.billing.domain import PersonalAccount
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat


class Billing(HostledgerApplication):
    name = "billing"
    service = "billing"
    publications = {PersonalAccount.Opened: contract.AccountOpened}

    def open_account(self, customer_id: UUID, currency: str) -> PersonalAccount:
        """Open the customer's account in `currency`; opening it again changes nothing."""
        account_id = PersonalAccount.id_for(customer_id, currency)
        try:
            return self.repository.get(account_id)
        except AggregateNotFoundError:
            pass
        account = PersonalAccount(customer_id=customer_id, currency=currency, opened_at=clock.now())
        self.save(account)
        return account

    def accounts_of(self, customer_id: UUID) -> list[PersonalAccount]:
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT account_id FROM account_list WHERE customer_id = %s ORDER BY opened_at",
                (customer_id,),
            )
            ids = [r["account_id"] for r in curs.fetchall()]
        return [self.repository.get(i) for i in ids]

    def account(self, customer_id: UUID, currency: str) -> PersonalAccount:
        try:
            return self.repository.get(PersonalAccount.id_for(customer_id, currency))
        except AggregateNotFoundError:
            raise NotFound("This customer has no personal account in that currency.") from None

    @staticmethod
    def account_view(a: PersonalAccount) -> dict:
        return {
            "id": str(a.id),
            "customer_id": str(a.customer_id),
            "currency": a.currency,
            "balance": a.balance.to_dict(),
            "entries": list(a.entries),
            "opened_at": isoformat(a.opened_at),
        }
