"""Gateway routes of the helpdesk: departments, tickets, attachments, messages."""

from __future__ import annotations


class HelpdeskRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""
