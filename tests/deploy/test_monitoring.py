"""The monitoring files of deploy/: Prometheus's scrape configs and alert rules (checked
and unit-tested by promtool, from Debian's prometheus: `make tools`), the Grafana
dashboard, and the probes and scrape ports of every Kubernetes Deployment and of compose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_manifests import DEPLOY, K8S, PROCESSES, ROOT, load, load_all

PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "hostledger.json"
PROMTOOL = os.environ.get("HOSTLEDGER_PROMTOOL", "/usr/bin/promtool")
METRICS_PORT = 9310


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    if not shutil.which(PROMTOOL):
        pytest.fail(f"promtool ({PROMTOOL}) is missing: `make tools` installs it")
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_alert_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_tests_say():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_scrape_config_is_valid():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_scrape_config_is_valid(tmp_path):
    """Debian's promtool is built without Kubernetes discovery: the rest of the file is
    checked with the discovery replaced by a static target, the discovery by its shape."""
    config = load(PROMETHEUS / "prometheus-kubernetes.yml")
    (job,) = config["scrape_configs"]
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == ["hostledger"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{METRICS_PORT}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    port_rule = next(
        r for r in keep if r["source_labels"] == ["__meta_kubernetes_pod_container_port_name"]
    )
    pattern = re.compile(port_rule["regex"])
    assert pattern.fullmatch("metrics") and pattern.fullmatch("mailin-metrics")
    assert not pattern.fullmatch("http") and not pattern.fullmatch("smtp")


def test_compose_scrapes_every_process():
    config = load(PROMETHEUS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (dns,) = jobs["hostledger"]["dns_sd_configs"]
    assert set(dns["names"]) == PROCESSES
    assert dns["port"] == METRICS_PORT
    assert jobs["hostledger-mailin"]["dns_sd_configs"][0]["names"] == ["mailgateway"]


# -- the metric names the rules and the dashboard use exist in the code --------------------


def _defined_metrics() -> set[str]:
    """Every hostledger_* metric the code defines, with the series a counter or a
    histogram adds."""
    names = set()
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py")]:
        for name in re.findall(r'"(hostledger_[a-z0-9_]+)"', path.read_text()):
            names.add(name)
    series = set(names)
    for name in names:
        series |= {f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return series


def _used_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(hostledger_[a-z0-9_]+)\b", text))


def test_rules_and_dashboard_use_only_metrics_that_exist():
    defined = _defined_metrics()
    assert "hostledger_consumer_position" in defined
    assert "hostledger_http_requests_total" in defined
    rules = (PROMETHEUS / "alerts.yml").read_text()
    dashboard = DASHBOARD.read_text()
    for where, text in (("alerts.yml", rules), ("hostledger.json", dashboard)):
        unknown = _used_metrics(text) - defined
        assert not unknown, f"{where} uses metrics no code defines: {sorted(unknown)}"


def test_the_alerts_the_operators_asked_for_exist():
    groups = load(PROMETHEUS / "alerts.yml")["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    for name in (
        "HostledgerProcessDown",
        "HostledgerConsumerLagGrowing",
        "HostledgerParkedEvents",
        "HostledgerRelayLag",
        "HostledgerOutboxOldest",
        "HostledgerHttp5xxRate",
        "HostledgerRpcLatencyP99",
    ):
        assert name in alerts, name
        assert alerts[name]["labels"]["severity"] in ("warning", "critical")
        assert alerts[name]["annotations"]["summary"]


def test_dashboard_is_grafana_json_with_a_panel_per_area():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hostledger"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "hostledger_http_requests_total",
        "hostledger_http_request_duration_seconds_bucket",
        "hostledger_rpc_duration_seconds_bucket",
        "hostledger_consumer_position",
        "hostledger_consumer_lag",
        "hostledger_parked_events",
        "hostledger_relay_lag",
        "hostledger_outbox_depth",
        "hostledger_outbox_oldest_age_seconds",
        "hostledger_scheduler_runs_total",
    ):
        assert metric in exprs, metric
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


# -- Kubernetes and compose ---------------------------------------------------------------------


def _deployments() -> dict[str, dict]:
    kustomization = load(K8S / "kustomization.yaml")
    found = {}
    for name in kustomization["resources"]:
        for doc in load_all(K8S / name):
            if doc["kind"] == "Deployment":
                found[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = doc
    return found


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_deployment_has_distinct_readiness_and_liveness_on_its_metrics_port(process):
    deployment = _deployments()[process]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORT
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert ready["httpGet"]["path"] == "/readyz"
    assert live["httpGet"]["path"] == "/livez"
    assert ready["httpGet"]["port"] == live["httpGet"]["port"] == "metrics"
    # a slow start is not a dead process: liveness waits longer than readiness
    assert live["initialDelaySeconds"] > ready["initialDelaySeconds"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_mail_in_process_has_its_own_scraped_port():
    (container,) = _deployments()["mailgateway"]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["mailin-metrics"] == METRICS_PORT + 1


def test_processes_are_told_their_metrics_ports():
    (config_map,) = [d for d in load_all(K8S / "configmap.yaml") if d["kind"] == "ConfigMap"]
    data = config_map["data"]
    assert data["HOSTLEDGER_METRICS_PORT"] == str(METRICS_PORT)
    assert data["HOSTLEDGER_MAILIN_METRICS_PORT"] == str(METRICS_PORT + 1)
    assert data["HOSTLEDGER_METRICS_HOST"] == "0.0.0.0"
    compose = load(DEPLOY / "compose.yaml")
    for process in PROCESSES:
        env = compose["services"][process]["environment"]
        assert env["HOSTLEDGER_METRICS_PORT"] == str(METRICS_PORT), process
        assert env["HOSTLEDGER_METRICS_HOST"] == "0.0.0.0", process
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert any("./prometheus:/etc/prometheus" in v for v in prometheus["volumes"])


def test_kustomize_renders_every_deployment_with_its_probes():
    """kubectl, where installed, builds the kustomization (client side, no cluster): what
    `kubectl apply -k deploy/k8s` would send keeps both probes of every Deployment."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployments = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in rendered
        if d["kind"] == "Deployment"
    }
    assert set(deployments) == PROCESSES
    for process, deployment in deployments.items():
        assert deployment["metadata"]["namespace"] == "hostledger", process
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", process
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", process
