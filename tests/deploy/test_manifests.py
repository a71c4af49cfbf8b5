"""The deployment files agree with each other and with the processes that exist.

Plain parsing, no network: the Procfile is the list of processes; the compose
file, the Kubernetes manifests, the nameko config and the scripts are checked
against it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

PROCESSES = {"customers", "billing", "orders", "helpdesk", "mailgateway", "gateway"}
NAMEKO_CONFIG = "deploy/nameko.yaml"


class PlainLoader(yaml.SafeLoader):
    """SafeLoader without any implicit tag added by others (nameko adds !env_var)."""


PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.startswith("!")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path):
    with path.open() as f:
        return yaml.load(f, Loader=PlainLoader)


def load_all(path: Path) -> list[dict]:
    with path.open() as f:
        return [doc for doc in yaml.load_all(f, Loader=PlainLoader) if doc]


# the class is named: nameko runs every service class a module holds (the imported base too)
SERVICE_CLASSES = {
    "customers": "CustomersService",
    "billing": "BillingService",
    "orders": "OrdersService",
    "helpdesk": "HelpdeskService",
    "mailgateway": "MailGatewayService",
    "gateway": "GatewayService",
}


def expected_module(process: str) -> str:
    module = "gateway.service" if process == "gateway" else f"services.{process}.service"
    return f"{module}:{SERVICE_CLASSES[process]}"


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        assert name.strip() not in processes, f"{name} twice in the Procfile"
        processes[name.strip()] = shlex.split(command)
    return processes


def nameko_module(argv: list[str]) -> str:
    """The service of a `nameko run --config deploy/nameko.yaml MODULE:CLASS` command."""
    assert argv[:2] == ["nameko", "run"], argv
    assert "--config" in argv, argv
    assert argv[argv.index("--config") + 1] == NAMEKO_CONFIG, argv
    modules = [a for a in argv[2:] if not a.startswith("-") and a != NAMEKO_CONFIG]
    assert len(modules) == 1, argv
    return modules[0]


# ----------------------------------------------------------------------------- Procfile


def test_procfile_has_exactly_the_processes():
    assert set(procfile()) == PROCESSES


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_procfile_runs_each_service_module_with_the_shared_config(process):
    assert nameko_module(procfile()[process]) == expected_module(process)


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_each_process_runs_its_own_service_class_alone(process):
    """`module:Class` names a class of that module that is the process's service (a bare
    module would also run the base class it imports, as a second service)."""
    import importlib

    module, _, name = expected_module(process).partition(":")
    service = getattr(importlib.import_module(module), name)
    assert isinstance(service, type) and service.name == process


# ------------------------------------------------------------------------- nameko config


def _nameko_loader():
    """A SafeLoader with nameko's own environment substitution (as `nameko run`
    sets it up), kept off the global SafeLoader."""
    from nameko.cli import main as nameko_cli

    class NamekoLoader(PlainLoader):
        pass

    NamekoLoader.add_constructor("!env_var", nameko_cli.env_var_constructor)
    NamekoLoader.add_implicit_resolver("!env_var", nameko_cli.IMPLICIT_ENV_VAR_MATCHER, None)
    return NamekoLoader


def load_nameko_config():
    with (DEPLOY / "nameko.yaml").open() as f:
        return yaml.load(f, Loader=_nameko_loader())


def test_nameko_config_defaults(monkeypatch):
    for name in (
        "AMQP_URI",
        "HOSTLEDGER_HTTP_HOST",
        "HOSTLEDGER_HTTP_PORT",
        "HOSTLEDGER_LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    config = load_nameko_config()
    assert config["AMQP_URI"] == "pyamqp://guest:guest@localhost:5672/"
    assert config["WEB_SERVER_ADDRESS"] == "127.0.0.1:8000"
    assert config["max_workers"] == 10
    assert config["serializer"] == "json"
    assert config["LOGGING"]["root"]["level"] == "INFO"


def test_nameko_config_takes_the_environment(monkeypatch):
    monkeypatch.setenv("AMQP_URI", "pyamqp://u:p@rabbitmq:5672/vhost")
    monkeypatch.setenv("HOSTLEDGER_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("HOSTLEDGER_HTTP_PORT", "9000")
    config = load_nameko_config()
    assert config["AMQP_URI"] == "pyamqp://u:p@rabbitmq:5672/vhost"
    assert config["WEB_SERVER_ADDRESS"] == "0.0.0.0:9000"


def test_nameko_logging_config_is_accepted_by_dictconfig(monkeypatch):
    import logging.config

    from services.infra import logs
    from services.infra.settings import reset_settings

    monkeypatch.delenv("HOSTLEDGER_LOG_LEVEL", raising=False)
    logging_config = load_nameko_config()["LOGGING"]
    assert logging_config["disable_existing_loggers"] is False
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        # JSON lines unless HOSTLEDGER_LOG_FORMAT says text (services/infra/logs.py)
        for value, kind in ((None, logs.JsonFormatter), ("text", logs.TextFormatter)):
            if value is None:
                monkeypatch.delenv("HOSTLEDGER_LOG_FORMAT", raising=False)
            else:
                monkeypatch.setenv("HOSTLEDGER_LOG_FORMAT", value)
            reset_settings()
            logging.config.dictConfig(logging_config)
            assert [type(h.formatter) for h in root.handlers] == [kind]
    finally:
        reset_settings()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


# ------------------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose():
    return load(DEPLOY / "compose.yaml")


def test_compose_has_a_service_per_process_running_its_module(compose):
    services = compose["services"]
    for process in PROCESSES:
        assert process in services, f"no compose service for {process}"
        command = services[process]["command"]
        assert isinstance(command, list), f"{process}: command should be a list"
        assert nameko_module(command) == expected_module(process)


def test_compose_services_have_an_image_or_build(compose):
    for name, service in compose["services"].items():
        assert service.get("image") or service.get("build"), name


def test_compose_builds_from_the_root_dockerfile(compose):
    for process in PROCESSES | {"setup"}:
        build = compose["services"][process]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_compose_depends_on_targets_exist(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        targets = depends if isinstance(depends, list) else list(depends)
        for target in targets:
            assert target in services, f"{name} depends on missing {target}"
            assert target != name, f"{name} depends on itself"


def test_compose_processes_wait_for_setup_and_the_servers(compose):
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:15"
    for node in BROKER_NODES:
        assert services[node]["image"].startswith("rabbitmq:3.13-management")
    for process in PROCESSES:
        depends = services[process]["depends_on"]
        assert depends["setup"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        for node in BROKER_NODES:
            assert depends[node]["condition"] == "service_healthy"
    for server in ("postgres", *BROKER_NODES):
        assert services["setup"]["depends_on"][server]["condition"] == "service_healthy"
        assert services[server]["healthcheck"]["test"]



def test_compose_stops_callers_before_the_services_they_call(compose):
    """Compose stops a service after those that depend on it: each process depends on the
    next tier of services.infra.processes.STOP_ORDER, so `docker compose stop` or `down`
    stops the gateway first and customers last, as make run and the tests do."""
    from services.infra.processes import STOP_ORDER

    services = compose["services"]

    def reaches(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for target in services[todo.pop()].get("depends_on") or {}:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    tiers = [[s for s in tier if s in services] for tier in STOP_ORDER]
    for i, tier in enumerate(tiers):
        for name in tier:
            later = {s for t in tiers[i + 1 :] for s in t}
            assert later <= reaches(name), f"{name} is stopped before {later - reaches(name)}"
            earlier = {s for t in tiers[: i + 1] for s in t}
            assert not earlier & reaches(name), f"{name} waits on {earlier & reaches(name)}"
            for target in set(services[name].get("depends_on") or {}) & later:
                assert services[name]["depends_on"][target]["condition"] == "service_started"


BROKER_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")


def test_compose_runs_the_broker_as_a_three_node_cluster(compose):
    services = compose["services"]
    conf = (DEPLOY / "rabbitmq" / "cluster.conf").read_text()
    cookies = set()
    for index, node in enumerate(BROKER_NODES, start=1):
        service = services[node]
        assert service["hostname"] == node
        # each node is named in the peer list the nodes form their cluster from
        assert f"cluster_formation.classic_config.nodes.{index} = rabbit@{node}" in conf
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}
        assert mounts["/etc/rabbitmq/conf.d/20-cluster.conf"] == "./rabbitmq/cluster.conf"
        assert mounts["/var/lib/rabbitmq"] == f"{node}-data"  # a volume of its own
        cookies.add(service["environment"]["RABBITMQ_ERLANG_COOKIE"])
    assert cookies == {"${RABBITMQ_ERLANG_COOKIE:?set RABBITMQ_ERLANG_COOKIE}"}
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert "cluster_partition_handling = pause_minority" in conf
    assert "rabbitmq" not in services  # no single node beside the cluster


def test_compose_processes_fail_over_between_the_broker_nodes(compose):
    from kombu import Connection

    env = compose["services"]["billing"]["environment"]
    uri = interpolate(env["AMQP_URI"], SECRETS)
    connection = Connection(uri)
    hosts = [Connection(alt).hostname for alt in connection.alt]
    assert hosts == list(BROKER_NODES)
    assert {Connection(alt).password for alt in connection.alt} == {"mq-secret"}


def test_compose_setup_creates_databases_and_the_administrator(compose):
    setup = compose["services"]["setup"]
    command = " ".join(setup["command"])
    assert "hostledger databases" in command
    assert "hostledger first-admin" in command
    assert command.index("hostledger databases") < command.index("hostledger first-admin")
    assert setup["restart"] == "no"


def test_compose_points_every_process_at_the_compose_servers(compose):
    services = compose["services"]
    for process in PROCESSES | {"setup"}:
        env = services[process]["environment"]
        for node in BROKER_NODES:
            assert f"@{node}:5672/" in env["AMQP_URI"], process
        assert "@postgres:5432" in env["DATABASE_URL"], process
        assert env["HOSTLEDGER_HTTP_HOST"] == "0.0.0.0", process
        assert env["HOSTLEDGER_LOG_FORMAT"] == "json", process


def _published(service) -> set[str]:
    return {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}


def test_compose_publishes_http_and_smtp_only(compose):
    services = compose["services"]
    assert _published(services["gateway"]) == {"8000"}
    assert _published(services["mailgateway"]) == {"2525"}
    for name in PROCESSES - {"gateway", "mailgateway"}:
        assert not services[name].get("ports"), f"{name} should publish nothing"
    for name in ("gateway", "mailgateway"):
        assert services[name]["healthcheck"]["test"], name
    assert "/health" in " ".join(services["gateway"]["healthcheck"]["test"])


_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


def interpolate(text: str, env: dict) -> str:
    """What Compose makes of `text` under `env`: ${VAR:-default}, ${VAR:?error}, ${VAR}."""

    def value(match):
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {rest}")
        return rest if kind == "-" else ""

    return _VARIABLE.sub(value, text)


SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "RABBITMQ_PASSWORD": "mq-secret",
    "RABBITMQ_ERLANG_COOKIE": "mq-cookie",
}


def test_compose_publishes_on_loopback_unless_told_otherwise(compose):
    for name in ("gateway", "mailgateway"):
        for port in compose["services"][name]["ports"]:
            host = interpolate(str(port), SECRETS).rsplit(":", 2)[0]
            assert host == "127.0.0.1", (name, port)
            wide = interpolate(str(port), dict(SECRETS, HOSTLEDGER_BIND="0.0.0.0"))
            assert wide.rsplit(":", 2)[0] == "0.0.0.0", (name, port)


def test_compose_has_no_default_password(compose):
    text = (DEPLOY / "compose.yaml").read_text()
    for name, kind, default in _VARIABLE.findall(text):
        if "PASSWORD" in name:  # required, or empty (HOSTLEDGER_ADMIN_PASSWORD: generated)
            assert kind == "?" or default == "", f"{name} defaults to {default!r}"
    for secret in SECRETS:
        with pytest.raises(LookupError, match=secret):
            interpolate(text, {k: v for k, v in SECRETS.items() if k != secret})
    env = compose["services"]["gateway"]["environment"]
    assert "pg-secret@postgres" in interpolate(env["DATABASE_URL"], SECRETS)
    assert ":mq-secret@rabbitmq-1" in interpolate(env["AMQP_URI"], SECRETS)
    assert "guest" not in env["AMQP_URI"]
    for node in BROKER_NODES:
        rabbit = compose["services"][node]["environment"]
        assert interpolate(rabbit["RABBITMQ_DEFAULT_PASS"], SECRETS) == "mq-secret"
        assert interpolate(rabbit["RABBITMQ_ERLANG_COOKIE"], SECRETS) == "mq-cookie"
    postgres = compose["services"]["postgres"]["environment"]
    assert interpolate(postgres["POSTGRES_PASSWORD"], SECRETS) == "pg-secret"


def test_compose_mentions_scaling(compose):
    assert "--scale billing=3" in (DEPLOY / "compose.yaml").read_text()


def _compose_available() -> str | None:
    """Why `docker compose` cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return "the docker CLI has no compose plugin"
    return None


def test_docker_compose_accepts_the_file():
    reason = _compose_available()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    kustomization = load(K8S / "kustomization.yaml")
    docs = []
    for resource in kustomization["resources"]:
        docs.extend(load_all(K8S / resource))
    return docs


def of_kind(manifests, kind) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_kustomization_lists_every_manifest_and_only_existing_ones():
    kustomization = load(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_every_manifest_has_kind_api_version_and_name(manifests):
    for m in manifests:
        assert m.get("apiVersion") and m.get("kind"), m
        assert m["metadata"]["name"], m


def deployment_for(manifests, process) -> dict:
    found = [
        d
        for d in of_kind(manifests, "Deployment").values()
        if any(
            nameko_module(c["command"]) == expected_module(process)
            for c in d["spec"]["template"]["spec"]["containers"]
        )
    ]
    assert len(found) == 1, f"{len(found)} Deployments run {process}"
    return found[0]


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_deployment_per_process(manifests, process):
    deployment = deployment_for(manifests, process)
    assert deployment["spec"]["replicas"] >= 1


def test_deployments_are_exactly_the_processes(manifests):
    assert len(of_kind(manifests, "Deployment")) == len(PROCESSES)


def test_billing_shows_scaling(manifests):
    assert deployment_for(manifests, "billing")["spec"]["replicas"] == 2


def test_deployment_selectors_match_their_template_labels(manifests):
    for name, d in of_kind(manifests, "Deployment").items():
        selector = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selector, name
        assert selector.items() <= labels.items(), name


def test_selectors_pick_one_deployment_each(manifests):
    deployments = list(of_kind(manifests, "Deployment").values())
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"].items()
        matching = [
            other
            for other in deployments
            if selector <= other["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching == [d], d["metadata"]["name"]


def _containers(manifests):
    for kind in ("Deployment", "Job"):
        for name, m in of_kind(manifests, kind).items():
            for c in m["spec"]["template"]["spec"]["containers"]:
                yield f"{kind}/{name}", c


def test_containers_have_image_requests_and_the_settings(manifests):
    config_maps = of_kind(manifests, "ConfigMap")
    secrets = of_kind(manifests, "Secret")
    for where, c in _containers(manifests):
        assert c["image"], where
        requests = c["resources"]["requests"]
        assert requests["cpu"] and requests["memory"], where
        refs = {
            ("ConfigMap", s["configMapRef"]["name"])
            if "configMapRef" in s
            else ("Secret", s["secretRef"]["name"])
            for s in c["envFrom"]
        }
        for kind, name in refs:
            assert name in (config_maps if kind == "ConfigMap" else secrets), (where, name)
        assert {kind for kind, _ in refs} == {"ConfigMap", "Secret"}, where


def test_secret_placeholder_holds_the_connection_urls(manifests):
    (secret,) = of_kind(manifests, "Secret").values()
    assert set(secret["stringData"]) >= {"DATABASE_URL", "AMQP_URI"}


def test_config_map_listens_on_all_interfaces(manifests):
    (config_map,) = of_kind(manifests, "ConfigMap").values()
    assert config_map["data"]["HOSTLEDGER_HTTP_HOST"] == "0.0.0.0"
    assert config_map["data"]["HOSTLEDGER_LOG_FORMAT"] == "json"
    assert all(isinstance(v, str) for v in config_map["data"].values())


def _port_names(container) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def test_gateway_is_ready_through_its_own_probe(manifests):
    """Ready when it can serve (the broker answers), not when every service answers:
    a service away must not take the whole site out of its Service (GET /health says
    which services answer)."""
    (container,) = deployment_for(manifests, "gateway")["spec"]["template"]["spec"]["containers"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"
    port = probe["port"]
    assert (_port_names(container)[port] if isinstance(port, str) else port) == 9310


@pytest.mark.parametrize(("process", "port"), [("gateway", 8000), ("mailgateway", 2525)])
def test_services_expose_gateway_and_mailgateway(manifests, process, port):
    deployment = deployment_for(manifests, process)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    services = [
        s
        for s in of_kind(manifests, "Service").values()
        if s["spec"]["selector"].items() <= labels.items()
    ]
    assert len(services) == 1, f"{len(services)} Services select {process}"
    (service_port,) = services[0]["spec"]["ports"]
    assert service_port["port"] == port
    target = service_port["targetPort"]
    assert (_port_names(container)[target] if isinstance(target, str) else target) == port


def test_setup_job_creates_databases_and_the_administrator(manifests):
    (job,) = of_kind(manifests, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    assert "hostledger databases" in command
    assert "hostledger first-admin" in command
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


# ----------------------------------------------------------------------- scripts, image


SCRIPTS = [*sorted(DEPLOY.glob("*.sh")), ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_parse_and_are_executable(script):
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert "set -euo pipefail" in script.read_text()


def test_the_scripts_exist():
    names = {p.name for p in DEPLOY.glob("*.sh")}
    assert {"preflight.sh", "run.sh"} <= names


@pytest.mark.parametrize(
    ("url", "default_port", "expected"),
    [
        ("postgresql://postgres@localhost:5432/", 5432, "localhost 5432"),
        ("postgresql://u:p%40ss@db.internal:6543/x?sslmode=require", 5432, "db.internal 6543"),
        ("postgresql://postgres@127.0.0.1/", 5432, "127.0.0.1 5432"),
        ("postgresql:///", 5432, "localhost 5432"),
        ("postgresql://u@[::1]:5433/d", 5432, "::1 5433"),
        ("pyamqp://guest:guest@localhost:5672/", 5672, "localhost 5672"),
        ("pyamqp://guest:guest@rabbitmq/vhost", 5672, "rabbitmq 5672"),
    ],
)
def test_preflight_reads_host_and_port_from_urls(url, default_port, expected):
    result = subprocess.run(
        [
            "bash",
            "-c",
            'source "$0"; url_host_port "$1" "$2"',
            str(DEPLOY / "preflight.sh"),
            url,
            str(default_port),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("postgres", False),
        ("10.0.0.5", False),
    ],
)
def test_preflight_only_treats_loopback_as_local(host, local):
    result = subprocess.run(
        ["bash", "-c", 'source "$0"; is_local "$1"', str(DEPLOY / "preflight.sh"), host],
        capture_output=True,
        check=False,
    )
    assert (result.returncode == 0) is local


@pytest.mark.parametrize(
    ("scale", "complaint"),
    [
        ("gateway=2", "gateway listens on a fixed port"),
        ("mailgateway=3", "mailgateway listens on a fixed port"),
        ("invoices=2", "not a process"),
        ("billing", "not name=count"),
    ],
)
def test_run_refuses_bad_scale_before_starting_anything(scale, complaint):
    env = {**os.environ, "SCALE": scale, "VENV": sys.prefix}
    if not Path(sys.prefix, "bin", "honcho").exists():
        pytest.skip("honcho is not installed next to this python")
    result = subprocess.run(
        [str(DEPLOY / "run.sh")], capture_output=True, text=True, env=env, check=False, timeout=30
    )
    assert result.returncode != 0
    assert complaint in result.stderr
    assert "preflight" not in result.stderr


def test_readme_names_every_process():
    readme = (DEPLOY / "README.md").read_text()
    for process in PROCESSES:
        assert re.search(rf"\b{process}\b", readme), process


def test_dockerfile_runs_as_non_root_on_python_311():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"pip install .*\.", dockerfile)


def test_dockerignore_keeps_the_virtualenv_and_git_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git"} <= ignored
