"""A failure of the infrastructure that passes answers 503 with Retry-After, never 500, and
the same request sent again (same Idempotency-Key) is carried out once.

The faults are the ones seen live: a lock on the service's events table that cannot be
taken in time, and the service's database connections dropped under it.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from contracts.errors import Unavailable
from tests.e2e.test_billing import _customer_with_account


def _pay(stack, customer_id, amount, key):
    return stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "amount": {"amount": amount, "currency": "EUR"},
            "method": "bank_transfer",
            "reference": f"TX-{key[:10]}",
        },
        headers={"Idempotency-Key": key},
    )


def _payments(stack, token):
    account = stack.http("GET", "/api/v1/client/account", token).json()
    return [e["amount"]["amount"] for e in account["entries"] if e["kind"] == "payment"]


def _assert_unavailable(r):
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "unavailable"


def test_a_lock_not_taken_in_time_is_503_and_the_retry_is_carried_out_once(stack):
    customer, token = _customer_with_account(stack)
    key = uuid.uuid4().hex
    # billing gives up on a lock after 1 s (the event store tries 10 times) instead of 5 s
    stack.restart("billing", {"HOSTLEDGER_LOCK_TIMEOUT": "1"})
    try:
        stack.wait_for_service("billing")
        with stack.db("billing") as conn, conn.transaction():
            # as a long write or a migration would: billing cannot save until it ends
            conn.execute("LOCK TABLE billing_events IN EXCLUSIVE MODE")
            # the gateway's own wait may end first: a 503 either way, never a 500
            _assert_unavailable(_pay(stack, customer["id"], 1234, key))
            # what billing itself answers once it gives up: Unavailable, typed across RPC
            # (not nameko's RemoteError), so that every caller can tell "try again"
            with stack.rpc() as rpc, pytest.raises(Unavailable) as raised:
                rpc.billing.record_payment(
                    {
                        "customer_id": customer["id"],
                        "amount": {"amount": 99, "currency": "EUR"},
                        "method": "cash",
                        "reference": "never",
                    }
                )
            assert "billing service" in str(raised.value)
            assert raised.value.retry_after > 0
    finally:
        stack.restart("billing")
        stack.wait_for_service("billing")

    again = _pay(stack, customer["id"], 1234, key)
    assert again.status_code == 201, again.text
    assert _pay(stack, customer["id"], 1234, key).json() == again.json()
    assert _payments(stack, token) == [1234]


def test_dropped_database_connections_are_503_or_done_never_500(stack):
    customer, token = _customer_with_account(stack)
    statuses = []
    paid = []
    for amount in range(501, 506):
        server = stack.settings.database.conninfo("postgres")
        with psycopg.connect(server, autocommit=True) as admin:
            # every connection billing holds, as a database restart or failover does
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (stack.settings.database_name("billing"),),
            )
        key = uuid.uuid4().hex
        for _ in range(60):  # a client repeats the request with its key until it is done
            r = _pay(stack, customer["id"], amount, key)
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) > 0
                continue
            assert r.status_code == 201, r.text
            paid.append(amount)
            break
    assert 500 not in statuses, statuses
    assert paid == list(range(501, 506)), statuses
    assert sorted(_payments(stack, token)) == paid
    stack.wait_healthy()
