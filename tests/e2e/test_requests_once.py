"""Every command runs once, even when its request is delivered twice (services.infra.requests).

A redelivered RPC request is the same message with the same context data: these tests
send a service the same command with the same request id again, at once and later, as
RabbitMQ does after a broker restart in the middle of a request; and a request whose
caller already stopped waiting, as one that sat in a queue while its service was down.
"""

from __future__ import annotations

import time
import uuid

import eventlet
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from contracts.errors import Conflict, Unavailable, ValidationFailed
from services.infra.context import ACTOR_HEADER, DEADLINE_HEADER, REQUEST_HEADER
from tests.e2e.test_helpdesk import _client, _department, _open

KEY = "Idempotency-Key"


def _staff_id(stack) -> str:
    r = stack.http("GET", "/api/v1/me", stack.admin_token)
    assert r.status_code == 200, r.text
    return r.json()["staff_id"]


def _as_staff(stack, **context) -> ClusterRpcProxy:
    import services.infra.rpc  # noqa: F401 - typed errors

    data = {ACTOR_HEADER: f"staff:{_staff_id(stack)}"}
    data.update(context)
    return ClusterRpcProxy({"AMQP_URI": stack.env["AMQP_URI"]}, context_data=data, timeout=60)


def _staff_messages(stack, ticket_id) -> list[dict]:
    r = stack.http("GET", f"/api/v1/staff/tickets/{ticket_id}", stack.admin_token)
    assert r.status_code == 200, r.text
    return [m for m in r.json()["messages"] if m["author_kind"] == "staff"]


@pytest.fixture
def ticket(stack):
    _, token = _client(stack)
    return _open(stack, token, _department(stack))


def test_a_redelivered_staff_reply_is_answered_not_run_again(stack, ticket):
    request = f"staff-test|{uuid.uuid4()}"
    body = {"body": "We are on it."}
    with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc:
        first = rpc.helpdesk.staff_reply(ticket["id"], body)
        again = rpc.helpdesk.staff_reply(ticket["id"], body)
    assert again == first
    assert [m["body"] for m in _staff_messages(stack, ticket["id"])] == ["We are on it."]
    # the same request id with another body is another command
    with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc:
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "And one more thing."})
    assert len(_staff_messages(stack, ticket["id"])) == 2


def test_one_request_delivered_twice_at_once_runs_once(stack, ticket):
    request = f"staff-test|{uuid.uuid4()}"
    body = {"body": "Both deliveries carry this."}

    def reply(_):
        with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc:
            return rpc.helpdesk.staff_reply(ticket["id"], body)

    answers = list(eventlet.GreenPool(4).imap(reply, range(4)))
    assert all(a == answers[0] for a in answers)
    assert [m["body"] for m in _staff_messages(stack, ticket["id"])] == [body["body"]]


def test_a_request_whose_caller_stopped_waiting_changes_nothing(stack, ticket):
    late = {REQUEST_HEADER: f"staff-test|{uuid.uuid4()}", DEADLINE_HEADER: repr(time.time() - 1)}
    with _as_staff(stack, **late) as rpc, pytest.raises(Unavailable):
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "Too late."})
    assert _staff_messages(stack, ticket["id"]) == []
    # the same request in time is carried out
    late[DEADLINE_HEADER] = repr(time.time() + 30)
    with _as_staff(stack, **late) as rpc:
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "In time."})
    assert [m["body"] for m in _staff_messages(stack, ticket["id"])] == ["In time."]


def test_any_write_sent_again_with_its_idempotency_key_answers_the_first_answer(stack):
    """A merge keeps no key of its own at the gateway: the service's record of the request
    answers the repeat (without it the second merge is refused: already merged)."""
    _, token = _client(stack)
    department = _department(stack)
    kept, merged = _open(stack, token, department), _open(stack, token, department)
    key = {"Idempotency-Key": f"merge-{uuid.uuid4()}"}
    url = f"/api/v1/staff/tickets/{kept['id']}/merge"
    body = {"ticket_id": merged["id"]}
    first = stack.http("POST", url, stack.admin_token, json=body, headers=key)
    again = stack.http("POST", url, stack.admin_token, json=body, headers=key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    without_key = stack.http("POST", url, stack.admin_token, json=body)
    assert without_key.status_code == 409, without_key.text


def test_a_refused_command_records_nothing_and_may_be_sent_again(stack, ticket):
    """Refused before it changed anything: the same request, corrected, is carried out."""
    request = f"staff-test|{uuid.uuid4()}"
    with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc:
        for _ in range(2):
            with pytest.raises(ValidationFailed):
                rpc.helpdesk.staff_reply(ticket["id"], {"body": "   "})
        assert _staff_messages(stack, ticket["id"]) == []
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "Now with words."})
    assert [m["body"] for m in _staff_messages(stack, ticket["id"])] == ["Now with words."]


def test_two_staff_retries_of_one_parked_event_run_its_handler_once(stack):
    stack.restart("billing", {"HOSTLEDGER_FAILPOINTS": "billing.open_account=raise"})
    stack.wait_for_service("billing")
    try:
        customer = stack.register_customer()

        def parked():
            r = stack.http("GET", "/api/v1/staff/parked-events", stack.admin_token)
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            return [p for p in items if p["envelope"]["aggregate_id"] == customer["id"]]

        [item] = stack.wait_until(parked, what="the parked event")
    finally:
        stack.restart("billing")  # the fault is fixed
        stack.wait_for_service("billing")
    url = f"/api/v1/staff/parked-events/billing/{item['id']}/retry"
    answers = list(
        eventlet.GreenPool(2).imap(lambda _: stack.http("POST", url, stack.admin_token), range(2))
    )
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert "already resolved" in refused.json()["error"]["message"]
    assert stack.billing_accounts_opened()[customer["id"]] == 1
    [after] = [
        p
        for p in stack.http(
            "GET", "/api/v1/staff/parked-events?include_resolved=true", stack.admin_token
        ).json()["items"]
        if p["id"] == item["id"] and p["service"] == "billing"
    ]
    assert after["attempts"] == item["attempts"], "the second retry ran the handler again"


def test_a_request_saved_but_not_answered_is_never_run_twice(stack, ticket):
    """As if the service died after the command's save, before its answer was kept: a repeat
    runs it again for its answer, and its save cannot be recorded twice."""
    request = f"staff-test|{uuid.uuid4()}"
    with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc:
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "Saved once."})
    with stack.db("helpdesk") as conn:
        lost = conn.execute(
            "UPDATE handled_requests SET answer = NULL WHERE key LIKE %s", (f"{request}|%",)
        )
        assert lost.rowcount == 1
    with _as_staff(stack, **{REQUEST_HEADER: request}) as rpc, pytest.raises(Conflict):
        rpc.helpdesk.staff_reply(ticket["id"], {"body": "Saved once."})
    assert [m["body"] for m in _staff_messages(stack, ticket["id"])] == ["Saved once."]


def test_a_registration_saved_but_not_answered_answers_from_its_own_key(stack):
    """A command that keeps its Idempotency-Key with its events answers the repeat itself."""
    key = f"registration-{uuid.uuid4()}"
    body = {"kind": "individual", "email": f"{uuid.uuid4().hex[:12]}@example.com"}
    body.update(country="DE", contact_person="Kept Person")
    first = stack.http(
        "POST", "/api/v1/staff/customers", stack.admin_token, json=body, headers={KEY: key}
    )
    assert first.status_code == 201, first.text
    with stack.db("customers") as conn:
        lost = conn.execute(
            "UPDATE handled_requests SET answer = NULL WHERE key LIKE %s", (f"staff:%|{key}|%",)
        )
        assert lost.rowcount == 1
    again = stack.http(
        "POST", "/api/v1/staff/customers", stack.admin_token, json=body, headers={KEY: key}
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"] and "credentials" not in again.json()
