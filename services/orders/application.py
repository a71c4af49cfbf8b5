"""The orders application: catalog, orders and the lifecycle of services."""

from __future__ import annotations

from services.infra.application import HostledgerApplication


class Orders(HostledgerApplication):
    name = "orders"
    service = "orders"
