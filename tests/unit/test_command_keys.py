"""The pure parts of 'every command runs once per request' (services.infra.requests)."""

from __future__ import annotations

import inspect
import time
import uuid
from datetime import UTC, datetime

import pytest

from contracts.errors import NotFound, Unavailable
from services.infra.context import current
from services.infra.requests import (
    RequestRecorded,
    check_deadline,
    command_key,
    once_per_request,
    without_secrets,
)


def test_one_command_of_one_request_has_one_key_whatever_the_order_of_its_fields():
    a = command_key("r1", "helpdesk.staff_reply", ("t", {"body": "x", "internal": False}), {})
    b = command_key("r1", "helpdesk.staff_reply", ("t", {"internal": False, "body": "x"}), {})
    assert a == b


@pytest.mark.parametrize(
    "other",
    [
        ("r2", "helpdesk.staff_reply", ("t", {"body": "x"}), {}),
        ("r1", "helpdesk.client_reply", ("t", {"body": "x"}), {}),
        ("r1", "helpdesk.staff_reply", ("t", {"body": "y"}), {}),
        ("r1", "helpdesk.staff_reply", ("t", {"body": "x"}), {"files": []}),
    ],
)
def test_another_request_command_or_argument_is_another_key(other):
    assert command_key("r1", "helpdesk.staff_reply", ("t", {"body": "x"}), {}) != command_key(
        *other
    )


def test_keys_take_the_values_rpc_arguments_carry():
    key = command_key("r", "s.m", (uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC), b"x"), {})
    assert key.startswith("r|s.m|")


def test_what_is_shown_once_is_left_out_of_a_kept_answer():
    answer = {
        "id": "c1",
        "credentials": {"username": "c1001", "password": "secret"},
        "users": [{"id": "u1", "password": "p"}],
    }
    assert without_secrets(answer) == {"id": "c1", "users": [{"id": "u1"}]}


def test_a_kept_answer_or_error_is_given_again():
    assert RequestRecorded({"answer": {"answer": {"id": 1}}}).replay() == {"id": 1}
    with pytest.raises(NotFound, match="No such ticket"):
        RequestRecorded(
            {"answer": {"error": {"type": "NotFound", "args": ["No such ticket."]}}}
        ).replay()
    recorded = RequestRecorded({"answer": None})
    assert recorded.found and not recorded.known
    assert not RequestRecorded(None).found


def test_a_command_past_its_deadline_is_refused_before_it_saves():
    current.deadline = time.time() - 0.5
    try:
        with pytest.raises(Unavailable) as refused:
            check_deadline()
        assert refused.value.status == 503 and refused.value.retry_after > 0
        current.deadline = time.time() + 30
        check_deadline()
    finally:
        current.deadline = None


def test_a_wrapped_command_keeps_its_signature_for_nameko():
    def staff_reply(self, ticket_id: str, payload: dict, files: list | None = None) -> dict:
        return {}

    wrapped = once_per_request(staff_reply)
    assert wrapped.__name__ == "staff_reply"
    with pytest.raises(TypeError):
        inspect.getcallargs(wrapped, None, "t", {}, [], "one too many")


def test_without_a_request_a_command_just_runs():
    class Service:
        name = "s"
        app = None

    calls = []
    wrapped = once_per_request(lambda self, x: calls.append(x) or x)
    assert wrapped(Service(), 5) == 5 and calls == [5]
