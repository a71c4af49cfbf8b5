"""The HTTP gateway: the only thing browsers and API clients talk to.

It owns no business state: it authenticates, checks roles, validates input, calls
the services over RPC as the person calling, and shapes their answers. The routes
live in `gateway/api/` by domain; this module only composes them into the nameko
service (`nameko run gateway.service`).
"""

from __future__ import annotations

# the mixins by module: `nameko run` would take a top-level class with routes for a service
from gateway.api import billing, customers, helpdesk, mail, ops, orders
from gateway.http import ServiceRpc
from services.infra.service import Runtime


class GatewayService(
    ops.OpsRoutes,
    customers.CustomerRoutes,
    billing.BillingRoutes,
    orders.OrderRoutes,
    helpdesk.HelpdeskRoutes,
    mail.MailRoutes,
):
    name = "gateway"
    services = ServiceRpc()
    runtime = Runtime()
