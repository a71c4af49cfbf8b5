"""Operations routes: health, this OpenAPI document, parked events, read models."""

from __future__ import annotations

import logging
import time

import eventlet
from marshmallow import fields

from gateway import openapi
from gateway.api.common import Page, paged
from gateway.http import Call, Route, json_response, route
from gateway.schemas import (
    HealthSchema,
    OpenApiDocument,
    ParkedEvent,
    ParkedList,
    ReadModelList,
)
from services.infra.settings import SERVICES, settings

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0


def _read_model_row(service: str, model: dict) -> dict:
    position, head = model["position"], model["head"]
    return {
        "service": service,
        "name": model["read_model"],
        "status": "ok",
        "position": position,
        "head": head,
        "lag": max(head - position, 0),
        "skipped": model["skipped"],
        "skipped_positions": [s["position"] for s in model["skipped_events"]],
    }


def _unavailable_row(service: str) -> dict:
    return {
        "service": service,
        "name": None,
        "status": "unavailable",
        "position": None,
        "head": None,
        "lag": None,
        "skipped": None,
        "skipped_positions": [],
    }


class ParkedQuery(Page):
    include_resolved = fields.Boolean(load_default=False)


class OpsRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    @route("GET", "/health", response=HealthSchema, summary="every service answers", tags=("ops",))
    def health(self, call: Call):
        replies = {}
        for service in SERVICES:
            try:
                replies[service] = getattr(call.services, service).ping.call_async()
            except Exception:  # noqa: BLE001 - an absent service is exactly what we report
                replies[service] = None
        answer = {}
        for service, reply in replies.items():
            status = "unavailable"
            if reply is not None:
                try:
                    with eventlet.Timeout(HEALTH_TIMEOUT):
                        status = "ok" if reply.result() == "ok" else "unavailable"
                except (Exception, eventlet.Timeout):  # noqa: BLE001
                    status = "unavailable"
            answer[service] = status
        ok = all(s == "ok" for s in answer.values())
        return json_response(
            {"status": "ok" if ok else "unavailable", "services": answer}, 200 if ok else 503
        )

    @route(
        "GET",
        "/api/v1/openapi.json",
        response=OpenApiDocument,
        summary="this document",
        tags=("ops",),
    )
    def openapi_document(self, call: Call):
        routes = [e for e in self.runtime.entrypoints if isinstance(e, Route)]
        return openapi.build(routes)

    @route(
        "GET",
        "/api/v1/staff/parked-events",
        query=ParkedQuery,
        response=ParkedList,
        roles=("admin", "auditor"),
        tags=("ops",),
        summary="events a service could not apply",
    )
    def parked_events(self, call: Call):
        items = []
        for service in SERVICES:
            items.extend(
                getattr(call.services, service).parked_events(call.query["include_resolved"])
            )
        items.sort(key=lambda p: p["parked_at"])
        return paged(items, call.query)

    @route(
        "POST",
        "/api/v1/staff/parked-events/<any(customers,billing,orders,helpdesk,"
        "mailgateway):service>/<int:parked_id>/retry",
        response=ParkedEvent,
        roles=("admin",),
        tags=("ops",),
        summary="apply a parked event again",
    )
    def retry_parked(self, call: Call):
        service = getattr(call.services, call.path["service"])
        return service.retry_parked(call.path["parked_id"])

    @route(
        "GET",
        "/api/v1/staff/read-models",
        query=Page,
        response=ReadModelList,
        roles=("admin", "auditor"),
        tags=("ops",),
        summary="every service's read models: position, head, lag, the events each skipped",
    )
    def read_models(self, call: Call):
        replies = {}
        for service in SERVICES:
            try:
                replies[service] = getattr(call.services, service).read_models.call_async()
            except Exception:  # noqa: BLE001 - an absent service is listed as unavailable
                replies[service] = None
        # one deadline for all, well inside the route's own
        deadline = time.monotonic() + settings().rpc_timeout / 2
        items = []
        for service, reply in replies.items():
            models = None
            if reply is not None:
                with eventlet.Timeout(max(deadline - time.monotonic(), 0.01), False):
                    try:
                        models = reply.result()
                    except Exception as exc:  # noqa: BLE001 - reported as unavailable
                        log.warning("%s did not list its read models: %s", service, exc)
            if models is None:
                items.append(_unavailable_row(service))
            else:
                items.extend(_read_model_row(service, m) for m in models)
        return paged(items, call.query)
