"""The orders service: catalog, orders and the lifecycle of services."""

from __future__ import annotations

from services.infra.service import ServiceBase
from services.infra.store import EventStore
from services.orders.application import Orders

APPLICATION = Orders
READ_MODELS = ()


class OrdersService(ServiceBase):
    name = "orders"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
