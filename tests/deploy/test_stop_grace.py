"""The platforms wait longer than the processes' own grace period before they kill.

A process asked to stop (SIGTERM) finishes what is in flight within
HOSTLEDGER_SHUTDOWN_GRACE seconds and then exits anyway (services/infra/shutdown.py);
compose, Kubernetes (after the gateway's preStop pause) and the local runner must give it
that long, or they kill it in the middle. Plain parsing, no network.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _grace(env: dict | None = None) -> float:
    name = "HOSTLEDGER_SHUTDOWN_GRACE"
    return Settings.from_env({name: str((env or {}).get(name) or "")}).shutdown_grace


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(text))
    assert match and any(match.groups()), f"not a duration: {text!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def _configmap() -> dict:
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            return doc["data"]
    raise AssertionError("no ConfigMap")


def test_compose_waits_longer_than_each_process():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:2] != ["nameko", "run"]:
            continue
        grace = _grace(service.get("environment"))
        assert "stop_grace_period" in service, name
        assert _seconds(service["stop_grace_period"]) >= grace + 3, name


def test_kubernetes_waits_longer_than_each_process():
    grace = _grace(_configmap())
    assert grace == _grace()  # the configmap says the default out loud
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            pod = doc["spec"]["template"]["spec"]
            pause = 0.0
            for container in pod["containers"]:
                pre_stop = (container.get("lifecycle") or {}).get("preStop")
                if pre_stop:
                    command = pre_stop["exec"]["command"]
                    assert command[0] == "sleep", (path.name, command)
                    pause = max(pause, float(command[1]))
            total = pod.get("terminationGracePeriodSeconds", 30)
            assert total >= pause + grace + 3, (path.name, total, pause, grace)


def test_the_gateway_keeps_serving_while_it_leaves_the_endpoints():
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "gateway.yaml").read_text()):
        if doc and doc.get("kind") == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


def test_the_local_runner_waits_longer_than_each_process():
    from deploy.runner import main  # noqa: F401 - the module parses

    text = (DEPLOY / "runner.py").read_text()
    match = re.search(r'"--grace", type=float, default=([\d.]+)', text)
    assert match and float(match.group(1)) >= _grace() + 3
