"""The helpdesk service: departments and tickets."""

from __future__ import annotations

from services.helpdesk.application import Helpdesk
from services.infra.service import ServiceBase
from services.infra.store import EventStore

APPLICATION = Helpdesk
READ_MODELS = ()


class HelpdeskService(ServiceBase):
    name = "helpdesk"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
