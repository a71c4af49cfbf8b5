"""The mailgateway service: mail in and notifications out."""

from __future__ import annotations

from services.infra.service import ServiceBase
from services.infra.store import EventStore
from services.mailgateway.application import MailGateway

APPLICATION = MailGateway
READ_MODELS = ()


class MailGatewayService(ServiceBase):
    name = "mailgateway"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
