"""The pure parts of the metrics: route labels, SMTP results, the probe endpoints."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.metrics import UNMATCHED, route_template
from services.infra import probes
from services.infra.settings import Settings
from services.mailgateway.metrics import smtp_result


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("/api/v1/staff/customers/<customer_id>", "/api/v1/staff/customers/{customer_id}"),
        (
            "/api/v1/staff/parked-events/<any(customers,billing,orders,helpdesk,"
            "mailgateway):service>/<int:parked_id>/retry",
            "/api/v1/staff/parked-events/{service}/{parked_id}/retry",
        ),
        ("/static/<path:name>", "/static/{name}"),
        ("/health", "/health"),
        (None, UNMATCHED),
    ],
)
def test_routes_are_labelled_by_their_template(url, template):
    assert route_template(url) == template


@pytest.mark.parametrize(
    ("reply", "result"),
    [
        ("250 OK", "taken"),
        ("451 4.3.0 try later", "deferred"),
        ("550 5.1.1 no such user", "refused"),
        ("", "refused"),
    ],
)
def test_smtp_replies_are_counted_by_class(reply, result):
    assert smtp_result(reply) == result


def _get(app, path: str) -> tuple[str, dict, bytes]:
    answer = {}

    def start_response(status, headers):
        answer["status"] = status
        answer["headers"] = dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return answer["status"], answer["headers"], body


@pytest.fixture
def checks(monkeypatch):
    live: dict = {}
    ready: dict = {}
    monkeypatch.setattr(probes, "_live_checks", live)
    monkeypatch.setattr(probes, "_ready_checks", ready)
    return live, ready


def test_ready_fails_with_what_is_missing_while_live_holds(checks):
    live, ready = checks
    live["loop"] = lambda: None
    ready["database"] = lambda: "the database does not answer: refused"
    app = probes.probe_app(CollectorRegistry())
    status, _, body = _get(app, "/livez")
    assert status.startswith("200")
    status, headers, body = _get(app, "/readyz")
    assert status.startswith("503")
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert answer["status"] == "failing"
    assert answer["checks"] == {
        "database": "the database does not answer: refused",
        "loop": "ok",
    }


def test_a_check_that_raises_fails_its_probe(checks):
    live, _ = checks

    def broken():
        raise RuntimeError("hub gone")

    live["loop"] = broken
    status, _, body = _get(probes.probe_app(CollectorRegistry()), "/livez")
    assert status.startswith("503")
    assert json.loads(body)["checks"]["loop"] == "RuntimeError: hub gone"


def test_ready_includes_the_live_checks(checks):
    live, ready = checks
    live["loop"] = lambda: "the service container died"
    ready["broker"] = lambda: None
    status, _, body = _get(probes.probe_app(CollectorRegistry()), "/readyz")
    assert status.startswith("503")
    assert json.loads(body)["checks"] == {"broker": "ok", "loop": "the service container died"}


def test_metrics_are_served_in_the_text_format(checks):
    registry = CollectorRegistry()
    Counter("hostledger_test_things", "Things.", registry=registry).inc(3)
    app = probes.probe_app(registry)
    status, headers, body = _get(app, "/metrics")
    assert status.startswith("200")
    assert headers["Content-Type"].startswith("text/plain")
    assert "hostledger_test_things_total 3.0" in body.decode()
    status, _, _ = _get(app, "/elsewhere")
    assert status.startswith("404")


def test_metrics_port_settings():
    default = Settings.from_env({})
    assert (default.metrics_port, default.metrics_host, default.mailin_metrics_port) == (
        0,
        "127.0.0.1",
        0,
    )
    assert default.ready_max_lag == 1000
    cfg = Settings.from_env(
        {
            "HOSTLEDGER_METRICS_PORT": "9310",
            "HOSTLEDGER_METRICS_HOST": "0.0.0.0",
            "HOSTLEDGER_MAILIN_METRICS_PORT": "9311",
            "HOSTLEDGER_READY_MAX_LAG": "0",
        }
    )
    assert (cfg.metrics_port, cfg.metrics_host, cfg.mailin_metrics_port) == (9310, "0.0.0.0", 9311)
    assert cfg.ready_max_lag == 0
    with pytest.raises(ValueError, match="HOSTLEDGER_METRICS_PORT"):
        Settings.from_env({"HOSTLEDGER_METRICS_PORT": "ninety"})


def test_no_port_serves_nothing():
    assert probes.serve("127.0.0.1", 0) is None
