"""The helpdesk application: departments and tickets."""

from __future__ import annotations

from services.infra.application import HostledgerApplication


class Helpdesk(HostledgerApplication):
    name = "helpdesk"
    service = "helpdesk"
