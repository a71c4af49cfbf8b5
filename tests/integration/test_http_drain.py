"""SIGTERM to a process serving HTTP with the gateway's web server (gateway/webserver.py):
it closes its port at once, closes idle keep-alive connections, answers the request in
flight in full, and exits 0 within its grace period."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from tests.integration.nameko_process import nameko_process, scratch_vhost, wait_for_line

GRACE = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    def serves() -> bool:
        try:
            requests.get(f"{base}/sleep/0.0", timeout=2)
            return True
        except requests.ConnectionError:
            return False

    with (
        scratch_vhost("hltest_drain") as vhost,
        nameko_process(
            "tests.integration.stopping_web_service:StoppingWebService",
            f"AMQP_URI: pyamqp://guest:guest@localhost:5672/{vhost}\n"
            f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}\n",
            tmp_path,
            GRACE,
            serves,
        ) as (proc, log),
    ):
        yield proc, log, base


def test_sigterm_answers_the_request_in_flight_and_closes_the_rest(web):
    proc, log, base = web
    idle = requests.Session()
    assert idle.get(f"{base}/sleep/0.0", timeout=5).status_code == 200  # kept alive, idle
    answers = []
    slow = threading.Thread(
        target=lambda: answers.append(requests.get(f"{base}/sleep/2.0", timeout=30))
    )
    slow.start()
    wait_for_line(proc, log, "sleeping 2.0")  # the slow request is being answered
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
