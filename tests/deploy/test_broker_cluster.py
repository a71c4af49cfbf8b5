"""The production shape of the broker: three RabbitMQ nodes, which hostledger's quorum
queues (services/infra/amqp.py) are replicated on. Plain parsing and kustomize, no cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kombu import Connection

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _secret_amqp_uri() -> str:
    [secret] = [d for d in yaml.safe_load_all((K8S / "secret.yaml").read_text()) if d]
    return secret["stringData"]["AMQP_URI"]


def test_kubernetes_runs_three_rabbitmq_nodes_one_per_machine():
    kustomization = yaml.safe_load((K8S / "rabbitmq" / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "hostledger"
    [cluster] = [
        d
        for resource in kustomization["resources"]
        for d in yaml.safe_load_all((K8S / "rabbitmq" / resource).read_text())
        if d
    ]
    assert cluster["kind"] == "RabbitmqCluster"
    spec = cluster["spec"]
    assert spec["replicas"] == 3
    assert spec["persistence"]["storage"]
    assert "pause_minority" in spec["rabbitmq"]["additionalConfig"]
    [rule] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    # the operator names the cluster's Service after it: hostledger's secret points there
    host = Connection(_secret_amqp_uri()).hostname
    assert host == f"{cluster['metadata']['name']}.{kustomization['namespace']}.svc"


def test_the_broker_cluster_renders_with_kustomize():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "rabbitmq")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [doc] = [d for d in yaml.safe_load_all(out) if d]
    assert doc["metadata"]["namespace"] == "hostledger"
    assert doc["spec"]["replicas"] == 3
