"""Who reads the audit history: auditors read every staff read, and each kind of object's
history and past state is open to the roles gateway/api/audit.py says."""

from __future__ import annotations

from contracts import audit as contract
from gateway.api import audit
from gateway.http import ROUTE_ROLES, roles_of
from gateway.service import GatewayService


def _staff_routes() -> list[tuple[str, str, tuple]]:
    found = []
    for name in dir(GatewayService):
        options = getattr(getattr(GatewayService, name), "route_options", None)
        if options is None:
            continue
        method, url, kwargs = options
        if kwargs.get("roles"):
            found.append((method, url, tuple(kwargs["roles"])))
    return found


def test_an_auditor_reads_everything_staff_read():
    missing = [
        f"{m} {u}" for m, u, roles in _staff_routes() if m == "GET" and "auditor" not in roles
    ]
    assert not missing, missing


def test_each_kind_has_its_history_and_state_routes_with_its_roles():
    assert set(audit.ROLES) == set(contract.KINDS)
    for kind, roles in audit.ROLES.items():
        assert set(roles_of(audit.history_route(kind))) == set(roles), kind
        assert set(roles_of(audit.state_route(kind))) == set(roles), kind
        assert {"admin", "auditor"} <= set(roles)
    # support reads customers' and tickets' histories, not invoices' nor staff members'
    assert "support" in audit.ROLES["customer"] and "support" in audit.ROLES["ticket"]
    assert "support" not in audit.ROLES["invoice"] and "support" not in audit.ROLES["staff"]
    # billing reads customers', invoices' and accounts', not tickets'
    assert "billing" in audit.ROLES["customer"] and "billing" in audit.ROLES["account"]
    assert "billing" not in audit.ROLES["ticket"] and "billing" not in audit.ROLES["staff"]


def test_the_audit_routes_only_read():
    audit_routes = [k for k in ROUTE_ROLES if "/api/v1/staff/audit/" in k]
    assert len(audit_routes) == 10
    assert all(k.startswith("GET ") for k in audit_routes)
    assert "GET /api/v1/staff/audit/customers/<uuid:object_id>/history" in audit_routes
    # the export: administrators and auditors only
    assert set(ROUTE_ROLES["GET /api/v1/staff/audit/export"]) == {"admin", "auditor"}


def test_every_kind_has_an_owning_service_that_keeps_an_index():
    assert set(contract.OWNERS) == set(contract.KINDS)
    assert set(contract.OWNERS.values()) <= set(contract.SERVICES)
    import importlib

    for service in contract.SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        names = [m.name for m in module.READ_MODELS]
        assert "audit_index" in names, service
        index = next(m for m in module.READ_MODELS if m.name == "audit_index")
        for kind in {k for k, s in contract.OWNERS.items() if s == service}:
            assert index.mapping.types_of(kind), (service, kind)
