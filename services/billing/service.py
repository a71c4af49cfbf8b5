"""The billing service: personal accounts."""

from __future__ import annotations

from uuid import UUID

from contracts.envelope import IntegrationEvent
from contracts.errors import NotFound
from services.billing.application import Billing
from services.billing.readmodels import AccountList
from services.infra.consumer import handles
from services.infra.failpoints import failpoint_raise
from services.infra.rpc import rpc
from services.infra.service import ServiceBase
from services.infra.store import EventStore

APPLICATION = Billing
READ_MODELS = (AccountList,)


class BillingService(ServiceBase):
    name = "billing"
    app = EventStore(APPLICATION, read_models=READ_MODELS)

    @handles("customers", "CustomerRegistered")
    def open_account(self, event: IntegrationEvent) -> None:
        """Every new customer gets a personal account in their currency."""
        failpoint_raise("billing.open_account")
        self.app.open_account(event.payload["customer_id"], event.payload["currency"])

    @rpc
    def get_account(self, customer_id: str, currency: str | None = None) -> dict:
        """The customer's personal account (by id: never lags the write that opened it)."""
        try:
            cid = UUID(str(customer_id))
        except ValueError:
            raise NotFound("No such customer.") from None
        if currency:
            return self.app.account_view(self.app.account(cid, currency))
        accounts = self.app.accounts_of(cid)
        if not accounts:
            raise NotFound("This customer has no personal account yet.")
        return self.app.account_view(accounts[0])
