"""SIGTERM to a process serving HTTP with the gateway's web server (gateway/webserver.py):
it closes its port at once, closes idle keep-alive connections, answers the request in
flight in full, and exits 0 within its grace period."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.stack import ROOT, rabbitmqctl

GRACE = 5.0
NAMEKO = str(Path(sys.executable).parent / "nameko")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web(tmp_path):
    vhost = f"hltest_drain_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    port = _free_port()
    config = tmp_path / "nameko.yaml"
    config.write_text(
        f"AMQP_URI: pyamqp://guest:guest@localhost:5672/{vhost}\n"
        f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}\n"
    )
    log = tmp_path / "web.log"
    env = dict(os.environ, HOSTLEDGER_SHUTDOWN_GRACE=str(GRACE), PYTHONWARNINGS="ignore")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                NAMEKO,
                "run",
                "--config",
                str(config),
                "tests.integration.stopping_web_service:StoppingWebService",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            requests.get(f"{base}/sleep/0.0", timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    yield proc, log, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    rabbitmqctl("delete_vhost", vhost)


def test_sigterm_answers_the_request_in_flight_and_closes_the_rest(web):
    proc, log, base = web
    idle = requests.Session()
    assert idle.get(f"{base}/sleep/0.0", timeout=5).status_code == 200  # kept alive, idle
    answers = []
    slow = threading.Thread(
        target=lambda: answers.append(requests.get(f"{base}/sleep/2.0", timeout=30))
    )
    slow.start()
    time.sleep(0.5)  # the slow request is being answered
    started = time.monotonic()
    proc.terminate()
    time.sleep(0.5)
    with pytest.raises(requests.ConnectionError):  # the port is closed: no new connection
        requests.get(f"{base}/sleep/0.0", timeout=2)
    slow.join(30)
    (answer,) = answers
    assert answer.status_code == 200 and answer.text == "slept 2.0"
    proc.wait(GRACE + 5)
    took = time.monotonic() - started
    text = log.read_text()
    assert proc.returncode == 0, text
    assert took < GRACE, (took, text)
    assert "stoppingweb stopped cleanly" in text, text
    assert "killing" not in text, text
