"""SIGTERM to a `nameko run` process (services/infra/shutdown.py): the request in flight is
answered and the process exits 0; a request that outlasts the grace period is left to
the broker (unacknowledged, delivered again) and the process exits 1 when the grace runs
out; a second SIGTERM exits at once. On the shared broker, in a vhost of its own."""

from __future__ import annotations

import signal
import time

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.integration.nameko_process import nameko_process, scratch_vhost, wait_for_line
from tests.stack import rabbitmqctl

GRACE = 3.0


@pytest.fixture
def vhost():
    with scratch_vhost("hltest_stop") as name:
        yield name


def _queue(vhost: str) -> tuple[int, int]:
    """(messages, consumers) of the service's RPC queue."""
    for line in rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages", "consumers"
    ).splitlines():
        parts = line.split()
        if parts and parts[0] == "rpc-stoppingtest":
            return int(parts[1]), int(parts[2])
    return 0, 0


@pytest.fixture
def service(vhost, tmp_path):
    uri = f"pyamqp://guest:guest@localhost:5672/{vhost}"
    with nameko_process(
        "tests.integration.stopping_service:StoppingService",
        f"AMQP_URI: {uri}\nserializer: json\n",
        tmp_path,
        GRACE,
        lambda: _queue(vhost)[1] >= 1,
    ) as (proc, log):
        yield proc, log, uri


def _wait(proc, timeout: float) -> float:
    started = time.monotonic()
    proc.wait(timeout)
    return time.monotonic() - started


def test_the_request_in_flight_is_answered_and_the_process_exits_0(service):
    proc, log, uri = service
    with ClusterRpcProxy({"AMQP_URI": uri, "serializer": "json"}, timeout=30) as rpc:
        reply = rpc.stoppingtest.sleep.call_async(1.5)
        wait_for_line(proc, log, "sleeping 1.5")  # delivered and running
        proc.send_signal(signal.SIGTERM)
        assert reply.result() == 1.5
    took = _wait(proc, GRACE + 5)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert took < GRACE, (took, text)
    assert "SIGTERM received" in text and "stoppingtest stopped cleanly" in text, text


def test_a_request_outlasting_the_grace_goes_back_to_the_broker(service, vhost):
    proc, log, uri = service
    with ClusterRpcProxy({"AMQP_URI": uri, "serializer": "json"}, timeout=30) as rpc:
        rpc.stoppingtest.sleep.call_async(60)
        wait_for_line(proc, log, "sleeping 60")
        proc.send_signal(signal.SIGTERM)
        took = _wait(proc, GRACE + 10)
        text = log.read_text()
        assert proc.returncode == 1, text
        assert GRACE - 0.5 < took < GRACE + 3, (took, text)
        assert f"did not stop within {GRACE:g}s" in text, text
        # not acknowledged: the broker holds it for the next instance
        deadline = time.monotonic() + 10
        while _queue(vhost)[0] != 1:
            assert time.monotonic() < deadline, _queue(vhost)
            time.sleep(0.2)


def test_a_second_sigterm_exits_at_once(service):
    proc, log, uri = service
    with ClusterRpcProxy({"AMQP_URI": uri, "serializer": "json"}, timeout=30) as rpc:
        rpc.stoppingtest.sleep.call_async(60)
        wait_for_line(proc, log, "sleeping 60")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for its request
        proc.send_signal(signal.SIGTERM)
        took = _wait(proc, 5)
    text = log.read_text()
    assert proc.returncode == 1, text
    assert took < 1.5, (took, text)
    assert "SIGTERM again" in text, text
