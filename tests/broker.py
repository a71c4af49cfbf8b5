"""A RabbitMQ node of a test's own, to stop and start without touching anyone else.

The shared broker on 5672 carries every other test run (and perhaps `make run`):
restarting it would cut them all. A `PrivateBroker` is a second `rabbitmq-server`
started as the current user, with its own node name, AMQP and distribution ports,
Erlang cookie, database (mnesia) and log directories, all under one temporary
directory, and no plugins (vhosts are made with `rabbitmqctl -n <node>`). The epmd
daemon of the machine is shared, as it is between any Erlang nodes of one host.

    with PrivateBroker() as broker:
        broker.add_vhost("v")
        uri = broker.amqp_uri("v")
        broker.restart()          # a full stop and start; durable queues survive

The node is stopped, and its directory removed, when the `with` ends; it is killed by
the kernel if the test run dies first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from services.infra.processes import dies_with_this_process

RABBITMQ_BIN = Path(os.environ.get("HOSTLEDGER_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


class BrokerUnavailable(RuntimeError):
    """A private RabbitMQ node cannot run on this machine (the reason is in the message)."""


class PrivateBroker:
    def __init__(self, name: str | None = None):
        self.name = name or f"hltest_{uuid.uuid4().hex[:8]}"
        self.node = f"{self.name}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.port = _free_port()
        self.dist_port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        cookie = self.dir / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's NODENAME
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.console = true\nlog.console.level = warning\nlog.file.level = info\n"
        )
        self.env = dict(os.environ)
        self.env.update(
            {
                # the cookie is read from $HOME, for the server and rabbitmqctl alike
                "HOME": str(self.dir),
                "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1}"
                ),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                # the script then execs the Erlang VM instead of waiting on it: the VM is
                # our child, and the kernel kills it with this process (see `start`)
                "RUNNING_UNDER_SYSTEMD": "true",
            }
        )

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> PrivateBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, timeout: float = 90) -> None:
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise BrokerUnavailable(f"{server} is not installed")
        self.starts += 1
        log = open(self.dir / f"server-{self.starts}.log", "ab")
        self.proc = subprocess.Popen(
            [str(server)],
            env=self.env,
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_this_process(signal.SIGKILL),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.proc.poll() is not None:
                raise BrokerUnavailable(
                    f"rabbitmq-server exited ({self.proc.returncode}): {self.server_log()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"rabbitmq-server did not listen on {self.port}")
            time.sleep(0.2)
        self.ctl("await_startup", "--timeout", str(int(timeout)))

    def stop(self, timeout: float = 60) -> None:
        """Stop the node as an operator's restart does (SIGTERM: connections are closed
        with CONNECTION_FORCED, durable queues and persistent messages are kept)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # the Erlang VM's helpers (erl_child_setup) lead groups of their own and leave with it
        deadline = time.monotonic() + 10
        while _answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- using it -----------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self.env,
            cwd=self.dir,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        ).stdout

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def amqp_uri(self, vhost: str) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def server_log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("server-*.log")))
