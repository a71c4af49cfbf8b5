"""What keeps a process running while RabbitMQ restarts, and what a transient failure
answers (services/infra/amqp.py, gateway/http.py). Pure code: the broker's side is
stood in for; tests/e2e/test_broker_restart.py restarts a real one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kombu.exceptions
import psycopg
import psycopg.errors
import pytest
from amqp.exceptions import ConnectionForced, RecoverableConnectionError
from eventsourcing.persistence import OperationalError as EsOperationalError
from nameko.exceptions import serialize
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

from contracts.errors import NotFound, Unavailable
from services.infra import amqp
from services.infra.inbox import is_transient

ROOT = Path(__file__).resolve().parents[2]


class Channel:
    def __init__(self, connected=True):
        self.connection = object() if connected else None


class Message:
    def __init__(self, fails_with: BaseException | None = None, connected=True):
        self.channel = Channel(connected)
        self.fails_with = fails_with
        self.calls: list[str] = []

    def ack(self):
        self.calls.append("ack")
        if self.fails_with:
            raise self.fails_with

    def requeue(self):
        self.calls.append("requeue")
        if self.fails_with:
            raise self.fails_with


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        RecoverableConnectionError("connection already closed"),
        ConnectionForced("CONNECTION_FORCED - broker forced connection closure"),
    ],
    ids=type,
)
@pytest.mark.parametrize("settle", ["ack_message", "requeue_message"])
def test_settling_a_message_on_a_dead_connection_leaves_it_to_the_broker(settle, error):
    message = Message(fails_with=error)
    getattr(QueueConsumer, settle)(None, message)  # does not raise: the process goes on
    assert message.calls == [settle.partition("_")[0]]


def test_a_message_whose_connection_is_known_gone_is_not_touched():
    message = Message(connected=False)
    QueueConsumer.ack_message(None, message)
    QueueConsumer.requeue_message(None, message)
    assert message.calls == []


def test_a_message_still_settles_normally():
    message = Message()
    QueueConsumer.ack_message(None, message)
    assert message.calls == ["ack"]


def test_other_failures_of_an_ack_are_not_swallowed():
    message = Message(fails_with=RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        QueueConsumer.ack_message(None, message)


class Consumer:
    """Stands in for nameko's RpcConsumer around `handle_result`."""

    def __init__(self):
        self.container = type("Container", (), {"service_name": "billing"})()
        self.queue_consumer = self
        self.requeued: list[Message] = []
        self.sent: list = []

    def requeue_message(self, message):
        self.requeued.append(message)


def _handle_result(publish_error: BaseException | None):
    def original(self, message, result, exc_info):
        if publish_error is not None:
            raise publish_error
        self.sent.append((result, exc_info))
        return result, exc_info

    return amqp._reply_or_leave(original)


def test_an_answer_that_cannot_be_sent_leaves_the_request_to_the_broker():
    consumer, message = Consumer(), Message()
    handle_result = _handle_result(kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"))
    assert handle_result(consumer, message, {"ok": 1}, None) == ({"ok": 1}, None)
    assert consumer.requeued == [message]


def test_an_answer_is_sent_as_before():
    consumer, message = Consumer(), Message()
    assert _handle_result(None)(consumer, message, "ok", None) == ("ok", None)
    assert consumer.sent == [("ok", None)] and consumer.requeued == []


def test_nameko_has_the_patch_once():
    installed = RpcConsumer.handle_result
    assert installed.survives_broker_restarts
    amqp.survive_broker_restarts()
    assert RpcConsumer.handle_result is installed


def _exc_info(exc):
    try:
        raise exc
    except BaseException as caught:
        return (type(caught), caught, caught.__traceback__)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        EsOperationalError("could not obtain lock"),
        kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"),
        RecoverableConnectionError("connection already closed"),
        ConnectionResetError(104, "reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_transient_failure_crosses_rpc_as_unavailable(error):
    assert is_transient(error)
    kind, crossing, _ = amqp.unavailable_instead(_exc_info(error), "billing")
    assert kind is Unavailable and isinstance(crossing, Unavailable)
    assert crossing.status == 503 and crossing.retry_after > 0
    assert "billing" in crossing.message
    # as nameko sends it: our typed error, which the caller rebuilds as itself
    assert serialize(crossing)["exc_type"] == "Unavailable"


@pytest.mark.parametrize(
    "error", [NotFound("no such invoice"), ValueError("a bug"), KeyError("x")], ids=repr
)
def test_other_errors_cross_as_they_are(error):
    info = _exc_info(error)
    assert amqp.unavailable_instead(info, "billing") is info


def test_unavailable_is_itself_transient_for_a_consumer():
    assert is_transient(Unavailable("try again"))


@pytest.mark.parametrize(
    "error",
    [
        kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"),
        psycopg.OperationalError("connection lost"),
        ConnectionResetError(104, "reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_the_gateway_answers_a_transient_failure_503_with_retry_after(error):
    from gateway.http import Route

    response = Route.response_from_exception(None, error)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert json.loads(response.get_data())["error"]["code"] == "unavailable"


def test_the_gateway_still_answers_a_bug_500():
    from gateway.http import Route

    assert Route.response_from_exception(None, ValueError("a bug")).status_code == 500


@pytest.mark.parametrize(
    "module",
    [
        "gateway.service",
        "services.customers.service",
        "services.billing.service",
        "services.orders.service",
        "services.helpdesk.service",
        "services.mailgateway.service",
    ],
)
def test_every_process_installs_it(module):
    """What `nameko run <module>` imports installs the patch (in a fresh interpreter)."""
    code = (
        f"import {module}\n"
        "from nameko.rpc import RpcConsumer\n"
        "assert RpcConsumer.handle_result.survives_broker_restarts\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
