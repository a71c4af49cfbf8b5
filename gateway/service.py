"""The HTTP gateway: the only thing browsers and API clients talk to.

It owns no business state: it authenticates, checks roles, validates input, calls
the services over RPC as the person calling, and shapes their answers.
"""

from __future__ import annotations

import eventlet
from marshmallow import Schema, fields, validate

from gateway import openapi
from gateway.http import Call, Route, ServiceRpc, json_response, route
from gateway.schemas import (
    AccountSchema,
    CustomerSchema,
    HealthSchema,
    LoginRequest,
    LoginResponse,
    MeSchema,
    ParkedList,
    StaffRegisterCustomer,
)
from services.infra.service import Runtime
from services.infra.settings import SERVICES

ALL_STAFF = ("admin", "support", "billing")
HEALTH_TIMEOUT = 2.0


class ParkedQuery(Schema):
    include_resolved = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class GatewayService:
    name = "gateway"
    services = ServiceRpc()
    runtime = Runtime()

    # -- public ---------------------------------------------------------------------------

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

    @route("GET", "/api/v1/openapi.json", summary="this document", tags=("ops",))
    def openapi_document(self, call: Call):
        routes = [e for e in self.runtime.entrypoints if isinstance(e, Route)]
        return openapi.build(routes)

    # -- sessions -------------------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/auth/login",
        body=LoginRequest,
        response=LoginResponse,
        summary="log in (client or staff)",
        tags=("auth",),
    )
    def login(self, call: Call):
        return call.services.customers.login(call.body)

    @route(
        "POST",
        "/api/v1/auth/logout",
        client=True,
        roles=ALL_STAFF,
        tags=("auth",),
        summary="end this session",
    )
    def logout(self, call: Call):
        call.services.customers.logout(call.token)
        return {"status": "logged_out"}

    @route(
        "GET",
        "/api/v1/me",
        client=True,
        roles=ALL_STAFF,
        response=MeSchema,
        tags=("auth",),
        summary="who is logged in",
    )
    def me(self, call: Call):
        return call.principal

    # -- staff: customers -----------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/staff/customers",
        body=StaffRegisterCustomer,
        response=CustomerSchema,
        roles=("admin", "support"),
        status=201,
        tags=("customers",),
        summary="register a customer",
    )
    def register_customer(self, call: Call):
        payload = dict(call.body, registration_ip=call.request.remote_addr)
        if payload.get("project_id") is not None:
            payload["project_id"] = str(payload["project_id"])
        return call.services.customers.register_customer(payload)

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>",
        response=CustomerSchema,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="one customer",
    )
    def get_customer(self, call: Call):
        return call.services.customers.get_customer(str(call.path["customer_id"]))

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>/account",
        response=AccountSchema,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="the customer's personal account",
    )
    def customer_account(self, call: Call):
        customer = call.services.customers.get_customer(str(call.path["customer_id"]))
        return call.services.billing.get_account(customer["id"], customer["currency"])

    # -- staff: operations ----------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/parked-events",
        query=ParkedQuery,
        response=ParkedList,
        roles=("admin",),
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
        page, size = call.query["page"], call.query["page_size"]
        return {
            "items": items[(page - 1) * size : page * size],
            "total": len(items),
            "page": page,
            "page_size": size,
        }

    @route(
        "POST",
        "/api/v1/staff/parked-events/<any(customers,billing,orders,helpdesk,"
        "mailgateway):service>/<int:parked_id>/retry",
        roles=("admin",),
        tags=("ops",),
        summary="apply a parked event again",
    )
    def retry_parked(self, call: Call):
        service = getattr(call.services, call.path["service"])
        return service.retry_parked(call.path["parked_id"])
