"""The client area at `/`: one mixin per topic, composed here for GatewayService."""

from __future__ import annotations

from gateway.web.client.affiliate import AffiliatePages
from gateway.web.client.auth import AuthPages
from gateway.web.client.dashboard import DashboardPages
from gateway.web.client.finances import FinancesPages
from gateway.web.client.help import HelpPages
from gateway.web.client.ordering import OrderingPages
from gateway.web.client.security import SecurityPages
from gateway.web.client.services import ServicePages
from gateway.web.client.settings import SettingsPages
from gateway.web.client.support import SupportPages


class ClientPages(
    AuthPages,
    DashboardPages,
    SupportPages,
    AffiliatePages,
    HelpPages,
    FinancesPages,
    ServicePages,
    OrderingPages,
    SettingsPages,
    SecurityPages,
):
    """Every page of the client area (the templates are in templates/client/)."""
