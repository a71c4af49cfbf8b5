"""A whole system stops callers before the services they call (STOP_ORDER), so no worker
finishing its work at the stop waits for an answer from a service already gone."""

import re
from pathlib import Path

from services.infra.processes import STOP_ORDER, stop_tiers
from services.infra.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
# calls made only to serve a request (which ended with the gateway, stopped first)
FOR_REQUESTS_ONLY = {("customers", "billing"), ("customers", "orders"), ("billing", "orders")}


def _tier(service: str) -> int:
    [tier] = [i for i, names in enumerate(STOP_ORDER) if service in names]
    return tier


def test_every_process_of_the_system_has_one_place():
    named = [service for tier in STOP_ORDER for service in tier]
    assert sorted(named) == sorted({*SERVICES, "gateway", "mailsink"})
    assert _tier("gateway") == 0


def test_each_service_stops_before_every_service_it_calls():
    calls = set()
    for service in SERVICES:
        source = (ROOT / "services" / service / "service.py").read_text()
        calls |= {(service, callee) for callee in re.findall(r'RpcProxy\("(\w+)"\)', source)}
    assert ("mailgateway", "customers") in calls  # the finding: read from the source
    for caller, callee in calls - FOR_REQUESTS_ONLY:
        assert _tier(caller) < _tier(callee), (caller, callee)


def test_processes_are_grouped_by_their_service_in_stop_order():
    processes = ["customers", "orders-2", "mailsink", "gateway", "orders", "tool", "billing"]
    tiers = stop_tiers(processes, lambda key: key.split("-", 1)[0])
    assert tiers == [
        ["gateway", "tool"],
        ["orders-2", "orders"],
        ["billing"],
        ["customers", "mailsink"],
    ]
    assert [len(tier) for tier in stop_tiers(["customers"] * 3, str)] == [3]
