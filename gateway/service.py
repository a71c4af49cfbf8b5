"""The HTTP gateway: the only thing browsers and API clients talk to.

It owns no business state: it authenticates, checks roles, validates input, calls
the services over RPC as the person calling, and shapes their answers. The JSON API's
routes live in `gateway/api/` by domain, the web pages in `gateway/web/`; this module
only composes them into the nameko service (`nameko run gateway.service`).
"""

from __future__ import annotations

# the mixins by module: `nameko run` would take a top-level class with routes for a service
from gateway.api import (
    affiliate,
    audit,
    audit_export,
    billing,
    customers,
    helpdesk,
    mail,
    ops,
    orders,
    two_factor,
)
from gateway.http import ServiceRpc
from gateway.web import assets, client, staff
from services.infra.metrics import Metrics
from services.infra.service import Runtime


class GatewayService(
    ops.OpsRoutes,
    customers.CustomerRoutes,
    affiliate.AffiliateRoutes,
    two_factor.TwoFactorRoutes,
    billing.BillingRoutes,
    orders.OrderRoutes,
    helpdesk.HelpdeskRoutes,
    mail.MailRoutes,
    audit.AuditRoutes,
    audit_export.AuditExportRoutes,
    client.ClientPages,
    staff.StaffPages,
    assets.StaticFiles,
):
    name = "gateway"
    services = ServiceRpc()
    runtime = Runtime()
    # /metrics, /livez and /readyz on HOSTLEDGER_METRICS_PORT (services.infra.metrics)
    metrics = Metrics()
