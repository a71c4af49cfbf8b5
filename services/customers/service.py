"""The customers service: customers, staff, and who may log in."""

from __future__ import annotations

from uuid import UUID

from contracts import customers as contract
from contracts.errors import NotFound, ValidationFailed
from services.customers.application import Customers
from services.customers.readmodels import CustomerList, StaffList
from services.infra.rpc import load, rpc
from services.infra.service import ServiceBase
from services.infra.store import EventStore

APPLICATION = Customers
READ_MODELS = (CustomerList, StaffList)


def _uuid(value, field: str = "id") -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {field.replace('_id', '')}.") from None


class CustomersService(ServiceBase):
    name = "customers"
    app = EventStore(APPLICATION, read_models=READ_MODELS)

    @rpc
    def register_customer(self, payload: dict) -> dict:
        """Register a customer (staff or the order form). Answers the customer and, when the
        password was generated, `credentials` (shown once)."""
        data = load(contract.RegisterCustomer, payload)
        return self.app.register_customer(data)

    @rpc
    def get_customer(self, customer_id: str) -> dict:
        return self.app.customer_view(self.app.get_customer(_uuid(customer_id, "customer_id")))

    @rpc
    def login(self, payload: dict) -> dict:
        data = load(contract.Login, payload)
        return self.app.login(data["username"], data["password"])

    @rpc
    def resolve_session(self, token: str) -> dict:
        if not isinstance(token, str) or not token:
            raise ValidationFailed("A token is required.", {"token": ["Missing."]})
        return self.app.resolve_session(token)

    @rpc
    def logout(self, token: str) -> None:
        self.app.logout(token)

    @rpc
    def ensure_first_admin(self, username: str, password: str | None = None) -> dict | None:
        return self.app.ensure_first_admin(username, password)
