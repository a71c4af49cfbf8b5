"""The whole system as real processes on the real broker and database, isolated per run.

Each `Stack` gets its own RabbitMQ virtual host, its own databases (a prefix of
its own) and a free HTTP port, so runs never see each other or a running `make run`.

A stack starts only when PostgreSQL has room for its connection budget
(`connection_budget`), so a run never fails halfway with "too many clients".

Nothing of a stack outlives it: a failed `up()` takes down what it started, `down()`
stops each process with the process group it leads (the mail gateway's mail-in child
too), callers before the services they call (services.infra.processes.STOP_ORDER), a
stack still up when the interpreter exits is taken down then, and each process is
killed by the kernel if the test run itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests

from services.infra.application import pool_limits
from services.infra.databases import drop_database, ensure_database
from services.infra.processes import dies_with_this_process, stop_tiers
from services.infra.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
NAMEKO = str(Path(sys.executable).parent / "nameko")
# `module:Class`: nameko runs every service class a module holds (the imported base too)
MODULES = {
    "customers": "services.customers.service:CustomersService",
    "billing": "services.billing.service:BillingService",
    "orders": "services.orders.service:OrdersService",
    "helpdesk": "services.helpdesk.service:HelpdeskService",
    "mailgateway": "services.mailgateway.service:MailGatewayService",
    "gateway": "gateway.service:GatewayService",
}
# processes that are not nameko services: name -> python -m module (the sink catches
# outgoing mail; the mailgateway service runs its SMTP server itself)
PROGRAMS = {"mailsink": "services.mailgateway.sink"}
ADMIN_PASSWORD = "stack-admin-password"
STRIPE_SECRET = "whsec_test_hostledger"
STRIPE_API_KEY = "sk_test_hostledger"
PROVISIONING_SECRET = "provisioning-test-secret"
TRUSTED_PROXY = "127.0.0.3"
# the shared broker's management API (deploy/preflight.sh enables the plugin)
RABBITMQ_MANAGEMENT_URL = "http://localhost:{}".format(
    os.environ.get("HOSTLEDGER_RABBITMQ_MANAGEMENT_PORT") or "15672"
)
MAIL_AUTHSERV_ID = "mx.hostledger.test"


# what the harness itself opens beside the stack's processes (the bootstrap process,
# tests reading a service's database directly)
HARNESS_CONNECTIONS = 3


def connection_budget(settings: Settings) -> int:
    """The most PostgreSQL connections one stack holds at once, by design: each service
    process its pool at its largest plus a LISTEN connection and a session-lock connection
    (services/infra/application.py, databases.py), the mail-in process one per worker
    thread, and the harness's own. docs/benchmarks.md ("Connections") has the measured ones."""
    from services.mailgateway.mailin import WORKERS

    _, pool_max = pool_limits(settings)
    return len(SERVICES) * (pool_max + 2) + WORKERS + HARNESS_CONNECTIONS


class StackWontFit(RuntimeError):
    """PostgreSQL has fewer free connections than a stack may need."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to every process of the group; False when the group is empty."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _end_group(pgid: int, timeout: float) -> None:
    """What is left of a group whose leader ended (a child still stopping) gets `timeout`
    seconds, then SIGKILL."""
    deadline = time.monotonic() + timeout
    while _signal_group(pgid, 0):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            return
        time.sleep(0.1)


class _Background:
    """`fn()` in a thread of its own (a green one in the monkey-patched test run);
    `result()` waits for it and raises what it raised."""

    def __init__(self, fn):
        self._result = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # no new thread at the interpreter's exit: here and now
            self._thread = None
            self._run(fn)

    def _run(self, fn) -> None:
        try:
            self._result = fn()
        except BaseException as exc:  # raised again by result()
            self._error = exc

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def result(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._result


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


class Stack:
    # stacks up (or partly up): taken down at exit if a test left one behind
    live: set[Stack] = set()

    def __init__(self, name: str | None = None, extra_env: dict | None = None, broker=None):
        """`broker`: a RabbitMQ node of this stack's own (tests.broker.PrivateBroker)
        instead of the shared one."""
        self.run_id = name or uuid.uuid4().hex[:8]
        self.vhost = f"hltest_{self.run_id}"
        self.broker = broker
        self.port = _free_port()
        self.logs = ROOT / ".hostledger" / "test-logs" / self.run_id
        self.logs.mkdir(parents=True, exist_ok=True)
        self.clock_file = str(self.logs / "clock-offset")
        # billing calls Stripe's API here; tests serve Stripe's format on this port
        self.stripe_api_port = _free_port()
        # incoming mail (the mailin process) and the sink that catches outgoing mail
        self.smtp_in_port = _free_port()
        self.smtp_out_port = _free_port()
        self.mail_dir = self.logs / "mail"
        self.env = dict(os.environ)
        self.env.update(
            {
                "AMQP_URI": broker.amqp_uri(self.vhost)
                if broker
                else f"pyamqp://guest:guest@localhost:5672/{self.vhost}",
                "HOSTLEDGER_DB_PREFIX": f"hlt_{self.run_id}_",
                "HOSTLEDGER_HTTP_PORT": str(self.port),
                "HOSTLEDGER_HTTP_HOST": "127.0.0.1",
                "HOSTLEDGER_ADMIN_USERNAME": "admin",
                "HOSTLEDGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "HOSTLEDGER_CATCHUP_INTERVAL": "2",
                "HOSTLEDGER_RPC_TIMEOUT": "8",
                # below `stop`'s wait (15 s): a process that cannot stop exits by itself
                "HOSTLEDGER_SHUTDOWN_GRACE": "10",
                "HOSTLEDGER_SCHEDULER_INTERVAL": "1",
                "HOSTLEDGER_PROVISIONING_SECRET": PROVISIONING_SECRET,
                "HOSTLEDGER_PROVISIONING_BACKOFF": "0.5",
                "HOSTLEDGER_STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
                "HOSTLEDGER_STRIPE_SECRET_KEY": STRIPE_API_KEY,
                "HOSTLEDGER_STRIPE_API_BASE": f"http://127.0.0.1:{self.stripe_api_port}",
                "HOSTLEDGER_CLOCK_FILE": self.clock_file,
                "HOSTLEDGER_DATA_DIR": str(self.logs / "data"),
                "PYTHONWARNINGS": "ignore",
                "HOSTLEDGER_SMTP_PORT": str(self.smtp_in_port),
                "HOSTLEDGER_SMTP_HOST": "127.0.0.1",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.smtp_out_port),
                "HOSTLEDGER_OUTBOX_BACKOFF": "0.5",
                "HOSTLEDGER_BROADCAST_INLINE": "3",
                "HOSTLEDGER_BROADCAST_BATCH": "2",
                "HOSTLEDGER_BROADCAST_INTERVAL": "0.5",
                # tests speak as a proxy from this address (X-Forwarded-For honoured)
                "HOSTLEDGER_TRUSTED_PROXIES": TRUSTED_PROXY,
                # the suite's own address: per-address limits are tested from others
                "HOSTLEDGER_RATE_LIMIT_EXEMPT": "127.0.0.1",
                # provisioning webhooks go to a receiver on this machine
                "HOSTLEDGER_PROVISIONING_ALLOW_PRIVATE": "1",
                # our "MTA": the Authentication-Results the tests write carry this id
                "HOSTLEDGER_MAIL_AUTHSERV_ID": MAIL_AUTHSERV_ID,
                # logs as deployed: one JSON object a line (tests/e2e/test_request_trace.py)
                "HOSTLEDGER_LOG_FORMAT": "json",
                # argon2id at its least cost: the suite hashes thousands of passwords
                # (production's cost: tests/unit/test_password_hashing.py)
                "HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES": "1",
            }
        )
        self.env.update(extra_env or {})
        self.settings = Settings.from_env(self.env)
        self.procs: dict[str, subprocess.Popen] = {}
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._admin_token: str | None = None
        # each process's /metrics, /livez and /readyz port (by process key: `orders-2`)
        self.metrics_ports: dict[str, int] = {"mailin": _free_port()}
        self.env["HOSTLEDGER_MAILIN_METRICS_PORT"] = str(self.metrics_ports["mailin"])

    # -- lifecycle --------------------------------------------------------------------

    def up(self) -> Stack:
        """Start everything and wait until it is healthy; on any failure, take down what
        was started (processes, databases, vhost) before raising."""
        self.check_room()
        Stack.live.add(self)
        try:
            # side by side: the vhost, each database (CREATE DATABASE one after another
            # took 0.7 s), and the first administrator (a process: 0.75 s), which creates
            # the customers database itself
            ready = [
                _Background(self.add_vhost),
                _Background(self._first_admin),
                *(_Background(lambda s=s: self._create(s)) for s in SERVICES if s != "customers"),
            ]
            for task in ready:
                task.join()  # all done before an error, if any, is raised
            for task in ready:
                task.result()
            for name in MODULES:
                self.start(name)
            for name in PROGRAMS:
                self.start(name)
            self.wait_healthy()
        except BaseException:
            self.down()
            raise
        return self

    def add_vhost(self) -> None:
        """This stack's vhost, on which guest may do anything."""
        if self._management("PUT", f"vhosts/{quote(self.vhost, safe='')}") and self._management(
            "PUT",
            f"permissions/{quote(self.vhost, safe='')}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        ):
            return
        self.rabbitmqctl("add_vhost", self.vhost)
        self.rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def delete_vhost(self) -> None:
        if not self._management("DELETE", f"vhosts/{quote(self.vhost, safe='')}"):
            self.rabbitmqctl("delete_vhost", self.vhost)

    def _management(self, method: str, path: str, body: dict | None = None) -> bool:
        """The shared broker's management API (milliseconds, where each rabbitmqctl starts
        an Erlang VM: a second or two); False when it cannot answer, so rabbitmqctl does it
        (a private broker has no management plugin)."""
        if self.broker is not None:
            return False
        try:
            r = requests.request(
                method,
                f"{RABBITMQ_MANAGEMENT_URL}/api/{path}",
                auth=("guest", "guest"),
                json=body,
                timeout=30,
            )
        except requests.RequestException:
            return False
        return r.status_code in (200, 201, 204) or (method == "DELETE" and r.status_code == 404)

    def rabbitmqctl(self, *args: str) -> str:
        """rabbitmqctl on this stack's broker node."""
        return self.broker.ctl(*args) if self.broker else rabbitmqctl(*args)

    def consumer_queue(self, service: str, upstream: str) -> tuple[int, int]:
        """`service`'s queue of `upstream`'s events: (ready, delivered and not yet
        acknowledged); (-1, -1) when there is no such queue."""
        name = f"{self.settings.events_exchange}.{service}.from.{upstream}"
        out = self.rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages_ready", "messages_unacknowledged"
        )
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == name:
                return int(parts[1]), int(parts[2])
        return -1, -1

    def close_connections(self, reason: str = "hostledger test: connection cut") -> int:
        """Cut every AMQP connection of this stack's vhost at once, and no other's (other
        runs share the broker); the number cut."""
        out = self.rabbitmqctl(
            "close_all_connections", "-p", self.vhost, "--limit", "1000000", reason
        )
        match = re.search(r"Closed (\d+) connection", out)
        return int(match.group(1)) if match else 0

    def check_room(self) -> None:
        """StackWontFit, before anything is started, unless PostgreSQL has room for this
        stack's connection budget beside what is connected now."""
        budget = connection_budget(self.settings)
        server = self.settings.database
        with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
            most, used, superuser, reserved = conn.execute(
                "SELECT current_setting('max_connections')::int,"
                " (SELECT count(*) FROM pg_stat_activity"
                "  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),"
                " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
                " current_setting('superuser_reserved_connections')::int"
                " + coalesce(current_setting('reserved_connections', true)::int, 0)"
            ).fetchone()
        free = most - used - (0 if superuser else reserved)
        if free < budget:
            raise StackWontFit(
                f"PostgreSQL at {server.host}:{server.port} has {free} of its {most}"
                f" connections free; a test stack may need {budget} (docs/benchmarks.md,"
                ' "Connections"). Stop what else is connected (another test run, a bench,'
                " `make run`) and try again."
            )

    def connections(self) -> dict[str, int]:
        """Open PostgreSQL connections to each of this stack's databases, by service."""
        prefix = self.settings.db_prefix
        with psycopg.connect(self.settings.database.conninfo("postgres")) as conn:
            rows = conn.execute(
                "SELECT datname, count(*) FROM pg_stat_activity"
                " WHERE starts_with(datname, %s) AND pid <> pg_backend_pid() GROUP BY datname",
                (prefix,),
            ).fetchall()
        return {name.removeprefix(prefix): count for name, count in rows}

    def down(self) -> None:
        """Stop every process, drop the databases, delete the vhost; safe to call twice."""
        try:
            self.stop_all()
        finally:
            vhost = _Background(self.delete_vhost)  # beside the databases' drop
            # side by side too: each DROP DATABASE waits for a checkpoint, and drops that
            # wait together share one (five one after another took 1.4 to 4.3 s here,
            # together 0.4 s)
            drops = [_Background(lambda s=service: self._drop(s)) for service in SERVICES]
            for drop in drops:
                drop.join()
            with contextlib.suppress(subprocess.SubprocessError):
                vhost.result()
            Stack.live.discard(self)

    def _first_admin(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "services.cli", "first-admin"],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _create(self, service: str) -> None:
        ensure_database(self.settings, self.settings.database_name(service))

    def _drop(self, service: str) -> None:
        with contextlib.suppress(psycopg.Error):
            drop_database(self.settings, self.settings.database_name(service))

    def start(self, name: str, extra_env: dict | None = None, instance: str | None = None) -> None:
        """Start `name`; with `instance`, one more instance of it (`orders-2`)."""
        env = dict(self.env, **(extra_env or {}))
        key = f"{name}-{instance}" if instance else name
        if name in MODULES:
            port = self.metrics_ports.setdefault(key, _free_port())
            env.setdefault("HOSTLEDGER_METRICS_PORT", str(port))
        log = open(self.logs / f"{key}.log", "ab")
        command = [NAMEKO, "run", "--config", "deploy/nameko.yaml", MODULES.get(name, "")]
        if name in PROGRAMS:
            command = [sys.executable, "-m", PROGRAMS[name], *self._program_args(name)]
        self.procs[key] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # its own process group (stopped as one: its children too); killed outright if
            # this process dies, as a graceful stop with no one waiting for it could hang
            start_new_session=True,
            preexec_fn=dies_with_this_process(signal.SIGKILL),
        )
        log.close()  # the child has its own copy

    def _program_args(self, name: str) -> list[str]:
        if name == "mailsink":
            return ["--port", str(self.smtp_out_port), "--dir", str(self.mail_dir)]
        return []

    def stop(self, name: str, timeout: float = 15) -> None:
        """SIGTERM to the process and its children; SIGKILL to what is left after `timeout`."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _end_group(proc.pid, timeout=5)

    def stop_all(self, timeout: float = 15) -> None:
        """`stop` for every process, callers before the services they call (STOP_ORDER:
        no worker finishing its work waits for a service already gone): the processes of
        a tier are sent SIGTERM together and stop side by side, SIGKILL to what is left
        of them after `timeout`, before the next tier is asked."""
        for tier in stop_tiers(list(self.procs), lambda key: key.split("-", 1)[0]):
            self._stop_together([self.procs.pop(key) for key in tier], timeout)

    @staticmethod
    def _stop_together(procs: list[subprocess.Popen], timeout: float) -> None:
        for proc in procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        deadline = time.monotonic() + 5
        for proc in procs:
            _end_group(proc.pid, timeout=max(0.0, deadline - time.monotonic()))

    def kill(self, name: str) -> None:
        """SIGKILL to the process alone, as a crash (its children notice it is gone)."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, name: str, extra_env: dict | None = None) -> None:
        self.stop(name)
        self.start(name, extra_env)

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: see {self.logs / (name + '.log')}")
            try:
                r = requests.get(self.base_url + "/health", timeout=5)
                last = r.text
                if r.status_code == 200:
                    return
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.3)
        raise TimeoutError(f"the stack did not become healthy: {last}")

    def wait_for_service(self, name: str, timeout: float = 60) -> None:
        """Until `name` answers RPC (after a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = requests.get(self.base_url + "/health", timeout=5)
            if r.json()["services"].get(name) == "ok":
                return
            time.sleep(0.3)
        raise TimeoutError(f"{name} did not come back")

    # -- talking to it ----------------------------------------------------------------

    def http(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def metrics(self, process: str, path: str = "/metrics"):
        """GET `path` of a process's metrics port (`gateway`, `billing`, `orders-2`,
        `mailin`): /metrics, /livez or /readyz."""
        port = self.metrics_ports[process]
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)

    def metric(self, process: str, name: str, **labels: str) -> float:
        """The sum of the samples `name` on a process's /metrics whose labels include
        `labels` (0 when there is none): e.g. `hostledger_scheduler_runs_total` of
        `orders-2` with job="run_schedule", outcome="ok"."""
        from prometheus_client.parser import text_string_to_metric_families

        r = self.metrics(process)
        assert r.status_code == 200, r.text
        return sum(
            s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    def wait_metric(
        self, process: str, name: str, at_least: float, timeout: float = 60, **labels: str
    ) -> None:
        """Until `metric(process, name, **labels)` is `at_least`: with a counter read once
        an action was done plus two, one whole run (of a timer, a poll) began after it."""
        self.wait_until(
            lambda: self.metric(process, name, **labels) >= at_least,
            timeout=timeout,
            interval=0.2,
            what=f"{name} {labels} of {process} at {at_least}",
        )

    def wait_projected(self, service: str, timeout: float = 60) -> None:
        """Until every read model of `service` has projected its log as far as it goes
        now: what was recorded before this call shows in the service's lists."""
        from prometheus_client.parser import text_string_to_metric_families

        def positions():
            r = self.metrics(service)
            assert r.status_code == 200, r.text
            found = {}
            for family in text_string_to_metric_families(r.text):
                for s in family.samples:
                    if s.name == "hostledger_log_head_position":
                        found["head"] = s.value
                    elif s.name == "hostledger_readmodel_position":
                        found[s.labels["read_model"]] = s.value
            return found

        head = self.wait_until(
            lambda: positions().get("head"), timeout=timeout, what=f"{service}'s log head"
        )
        self.wait_until(
            lambda: (
                len(p := positions()) > 1 and all(v >= head for k, v in p.items() if k != "head")
            ),
            timeout=timeout,
            interval=0.2,
            what=f"{service}'s read models at {head}",
        )

    def login(self, username: str, password: str) -> str:
        r = self.http(
            "POST", "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return r.json()["token"]

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.login("admin", ADMIN_PASSWORD)
        return self._admin_token

    def register_customer(self, **fields) -> dict:
        body = {
            "kind": "individual",
            "email": f"{uuid.uuid4().hex[:12]}@example.com",
            "country": "DE",
            "contact_person": "Test Person",
        }
        body.update(fields)
        r = self.http("POST", "/api/v1/staff/customers", self.admin_token, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def staff_member(self, role: str) -> tuple[dict, str]:
        """A new staff member with `role`, and a session token for it."""
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        r = self.http(
            "POST",
            "/api/v1/staff/staff",
            self.admin_token,
            json={
                "username": name,
                "name": name.title(),
                "role": role,
                "password": "staff-password-1",
            },
        )
        assert r.status_code == 201, r.text
        return r.json(), self.login(name, "staff-password-1")

    def rpc(self):
        """A standalone RPC proxy into this stack (use as a context manager)."""
        from nameko.standalone.rpc import ClusterRpcProxy

        import services.infra.rpc  # noqa: F401 - typed errors

        return ClusterRpcProxy({"AMQP_URI": self.env["AMQP_URI"]}, timeout=60)

    def published(self, service: str) -> list[dict]:
        """Every integration event `service` has published, oldest first (all pages)."""
        events, after = [], 0
        with self.rpc() as rpc:
            while True:
                page = getattr(rpc, service).integration_events(after, 1000)
                events.extend(page["events"])
                if not page["events"]:
                    return events
                after = page["scanned"]

    def db(self, service: str) -> psycopg.Connection:
        return psycopg.connect(
            self.settings.database.conninfo(self.settings.database_name(service)), autocommit=True
        )

    def wait_until(self, predicate, timeout: float = 60, interval: float = 0.1, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what or predicate}")

    def billing_accounts_opened(self) -> dict:
        """customer_id -> number of AccountOpened events in billing's store, in log order."""
        from eventsourcing.utils import get_topic

        from services.billing.domain import PersonalAccount

        topic = get_topic(PersonalAccount.Opened)
        with self.db("billing") as conn:
            rows = conn.execute(
                "SELECT state FROM billing_events WHERE topic = %s ORDER BY notification_id",
                (topic,),
            ).fetchall()
        import json

        counts: dict[str, int] = {}
        for (state,) in rows:
            customer_id = str(uuid.UUID(json.loads(bytes(state))["customer_id"]["_data_"]))
            counts[customer_id] = counts.get(customer_id, 0) + 1
        return counts


@atexit.register
def _down_leftovers() -> None:
    for stack in list(Stack.live):
        stack.down()
