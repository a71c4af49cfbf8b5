"""Every process's metrics and probes, scraped from the running system: the gateway
counts requests by route template and status, billing's consumer position follows the
customers service's relay, a parked event shows, and every probe answers."""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Connection, Producer
from prometheus_client.parser import text_string_to_metric_families

from services.infra.amqp import events_exchange
from services.infra.settings import SERVICES
from tests.stack import Stack

CUSTOMER_ROUTE = "/api/v1/staff/customers/{customer_id}"


@pytest.fixture(scope="module")
def stack():
    """A stack of this module's own: a test parks a stray message on billing's queue,
    which the session stack's closing checks should not meet."""
    s = Stack(name="mx" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def scrape(stack, process: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, of one process's /metrics."""
    r = stack.metrics(process)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_every_process_is_live_and_ready_on_its_metrics_port(stack):
    for process in (*SERVICES, "gateway", "mailin"):
        if process == "mailin":
            # the mail-in child serves /metrics only (its parent's probes cover it)
            r = stack.wait_until(lambda: _answer(stack, "mailin"), what="mail-in metrics")
            assert "hostledger_mail_in_messages_total" in r.text
            continue
        live = stack.metrics(process, "/livez")
        assert live.status_code == 200, (process, live.text)
        ready = stack.metrics(process, "/readyz")
        assert ready.status_code == 200, (process, ready.text)
        checks = ready.json()["checks"]
        assert checks["broker"] == "ok", process
        if process != "gateway":
            assert checks[f"database:{process}"] == "ok"
            assert checks[f"read_models:{process}"] == "ok"
    assert stack.metrics("mailgateway", "/readyz").json()["checks"]["mail-in"] == "ok"
    assert stack.metrics("gateway", "/nothing").status_code == 404


def _answer(stack, process):
    try:
        r = stack.metrics(process)
    except OSError:
        return None
    return r if r.status_code == 200 else None


def test_gateway_counts_requests_by_route_template_and_status(stack):
    customer = stack.register_customer()
    before = scrape(stack, "gateway")
    ok = dict(method="GET", route=CUSTOMER_ROUTE, status="200")
    missing = dict(method="GET", route=CUSTOMER_ROUTE, status="404")
    for _ in range(3):
        r = stack.http("GET", f"/api/v1/staff/customers/{customer['id']}", stack.admin_token)
        assert r.status_code == 200, r.text
    r = stack.http("GET", f"/api/v1/staff/customers/{uuid.uuid4()}", stack.admin_token)
    assert r.status_code == 404, r.text
    assert stack.http("GET", "/api/v1/no/such/route/" + customer["id"]).status_code == 404
    after = scrape(stack, "gateway")

    def rose(name, labels) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert rose("hostledger_http_requests_total", ok) == 3
    assert rose("hostledger_http_requests_total", missing) == 1
    unmatched = dict(method="GET", route="(unmatched)", status="404")
    assert rose("hostledger_http_requests_total", unmatched) == 1
    timed = dict(method="GET", route=CUSTOMER_ROUTE)
    assert rose("hostledger_http_request_duration_seconds_count", timed) == 4
    assert value(after, "hostledger_http_request_duration_seconds_bucket", le="+Inf", **timed)
    # labels are templates: no id the requests carried appears in any label
    labels = {v for (_, pairs) in after for _, v in pairs}
    assert not any(customer["id"] in v for v in labels)


def test_billing_follows_the_customers_relay_and_its_lag_returns_to_zero(stack):
    start = scrape(stack, "billing")
    position = value(start, "hostledger_consumer_position", service="billing", upstream="customers")
    assert position is not None
    stack.register_customer()

    def caught_up():
        billing, customers = scrape(stack, "billing"), scrape(stack, "customers")
        now = value(
            billing, "hostledger_consumer_position", service="billing", upstream="customers"
        )
        published = value(customers, "hostledger_relay_published_position", service="customers")
        lag = value(billing, "hostledger_consumer_lag", service="billing", upstream="customers")
        relay_lag = value(customers, "hostledger_relay_lag", service="customers")
        if None in (now, published, lag, relay_lag):
            return None
        if now > position and now == published and lag == 0 and relay_lag == 0:
            return billing, customers
        return None

    billing, customers = stack.wait_until(caught_up, timeout=60, interval=0.5, what="caught up")
    applied = value(
        billing,
        "hostledger_consumer_events_total",
        service="billing",
        upstream="customers",
        outcome="applied",
    )
    assert applied >= 1
    head = value(customers, "hostledger_log_head_position", service="customers")
    assert head >= value(customers, "hostledger_relay_position", service="customers") > 0
    # the customers service answered the gateway's RPC calls, timed
    calls = [
        v
        for (name, labels), v in customers.items()
        if name == "hostledger_rpc_duration_seconds_count"
        and dict(labels)["method"] == "register_customer"
        and dict(labels)["outcome"] == "ok"
    ]
    assert calls and calls[0] >= 2
    model = value(
        customers, "hostledger_readmodel_position", service="customers", read_model="customer_list"
    )
    assert 0 < model <= head


def test_a_parked_event_shows_until_it_is_resolved(stack):
    samples = scrape(stack, "billing")
    assert value(samples, "hostledger_parked_events", service="billing", loop="customers") is None
    stray = {"source": "customers", "position": "not-a-position", "type": "CustomerRegistered"}
    with Connection(stack.env["AMQP_URI"]) as conn:
        exchange = events_exchange(stack.settings)
        Producer(conn).publish(
            json.dumps(stray),
            exchange=exchange,
            routing_key="customers.CustomerRegistered",
            content_type="application/json",
            content_encoding="utf-8",
            declare=[exchange],
        )

    def parked():
        now = scrape(stack, "billing")
        return value(now, "hostledger_parked_events", service="billing", loop="customers")

    assert stack.wait_until(parked, timeout=60, interval=0.5, what="the parked gauge") == 1
    now = scrape(stack, "billing")
    assert (
        value(
            now, "hostledger_parked_oldest_timestamp_seconds", service="billing", loop="customers"
        )
        > 0
    )
    assert (
        value(
            now,
            "hostledger_consumer_events_total",
            service="billing",
            upstream="customers",
            outcome="parked",
        )
        == 1
    )
    # staff see the same event, and once it is resolved the gauge goes away
    r = stack.http("GET", "/api/v1/staff/parked-events", stack.admin_token)
    (item,) = [p for p in r.json()["items"] if p["service"] == "billing"]
    with stack.db("billing") as db:
        db.execute(
            "UPDATE parked_events SET resolved_at = now(), resolution = 'test' WHERE id = %s",
            (item["id"],),
        )
    assert stack.wait_until(lambda: parked() is None, timeout=30, what="the gauge gone")


def test_outbox_and_schedulers_are_reported(stack):
    def scheduled():
        samples = scrape(stack, "billing")
        return value(
            samples,
            "hostledger_scheduler_runs_total",
            service="billing",
            job="run_schedule",
            outcome="ok",
        )

    assert stack.wait_until(scheduled, timeout=30, interval=0.5, what="a scheduler run") >= 1
    samples = scrape(stack, "billing")
    last = value(
        samples,
        "hostledger_scheduler_last_run_timestamp_seconds",
        service="billing",
        job="run_schedule",
    )
    assert last > 0
    mail = scrape(stack, "mailgateway")
    assert value(mail, "hostledger_outbox_depth", service="mailgateway") is not None
    assert value(mail, "hostledger_outbox_oldest_age_seconds", service="mailgateway") is not None
    assert value(mail, "hostledger_metrics_scrape_ok", service="mailgateway") == 1
