"""The mailgateway application: mail in and notifications out."""

from __future__ import annotations

from services.infra.application import HostledgerApplication


class MailGateway(HostledgerApplication):
    name = "mailgateway"
    service = "mailgateway"
