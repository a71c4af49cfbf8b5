"""A test service run by `nameko run` in a process of its own, on the shared broker in a
vhost of its own, with hostledger's graceful stop (tests/integration/test_shutdown_grace.py,
test_http_drain.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.stack import ROOT, rabbitmqctl

NAMEKO = str(Path(sys.executable).parent / "nameko")


@contextlib.contextmanager
def scratch_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost of the test's own, deleted after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@contextlib.contextmanager
def nameko_process(
    service: str, config: str, tmp_path: Path, grace: float, ready: Callable[[], bool]
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`nameko run service` with `config` (YAML text) and HOSTLEDGER_SHUTDOWN_GRACE=`grace`,
    once `ready()` says it serves; its process and its log (stdout and stderr). Killed
    after the test if it still runs."""
    config_file = tmp_path / "nameko.yaml"
    config_file.write_text(config)
    log = tmp_path / "service.log"
    env = dict(os.environ, HOSTLEDGER_SHUTDOWN_GRACE=str(grace), PYTHONWARNINGS="ignore")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [NAMEKO, "run", "--config", str(config_file), service],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_line(proc: subprocess.Popen, log: Path, line: str, timeout: float = 10) -> None:
    """Until the process has written `line` to its log (a request it serves has begun)."""
    deadline = time.monotonic() + timeout
    while line not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
