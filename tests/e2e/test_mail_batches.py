"""The mail gateway queues the notices of billing's events that wait together in one
transaction, and a crash inside that batch loses and doubles no mail.

The mail gateway is frozen (SIGSTOP) while invoices are issued to one customer, so that
their `InvoiceIssued` events wait in its socket together; once it runs again it applies
them as one batch (one save with the tracking of the last, the customer asked about
once) and dies (a failpoint: `os._exit`, as a crash) after its handlers ran and before
the commit, or after the commit and before the deliveries were acknowledged. Started
again, it has queued one notice per invoice, in the order billing issued them, sent
each once, parked nothing, and its tracking of billing's log is the last event
published.
"""

from __future__ import annotations

import json
import os
import signal

import pytest


def _queue(stack) -> tuple[int, int]:
    """The mail gateway's queue from billing: (ready, delivered and not acknowledged)."""
    return stack.consumer_queue("mailgateway", "billing")


def _stats(stack) -> dict:
    with stack.rpc() as rpc:
        return rpc.mailgateway.consumer_stats()["billing"]


def _parked(stack) -> list:
    with stack.db("mailgateway") as conn:
        return conn.execute(
            "SELECT position FROM parked_events WHERE upstream = 'billing' AND resolved_at IS NULL"
        ).fetchall()


def _notices(stack, customer_id: str) -> list[tuple[str, str]]:
    """(number, status) of the customer's invoice notices, in the order they were queued."""
    with stack.db("mailgateway") as conn:
        rows = conn.execute(
            "SELECT context->>'number', status FROM mail_outbox"
            " WHERE customer_id = %s AND kind = 'invoice_issued' ORDER BY id",
            (customer_id,),
        ).fetchall()
    return [(number, status) for number, status in rows]


def _mails_to(stack, address: str) -> list[str]:
    """The subjects of every message the sink received for `address`."""
    subjects = []
    if stack.mail_dir.exists():
        for meta_path in sorted(stack.mail_dir.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            if address.lower() in [r.lower() for r in meta["rcpt_tos"]]:
                raw = meta_path.with_suffix(".eml").read_bytes()
                subjects.extend(
                    line.split(b":", 1)[1].strip().decode()
                    for line in raw.splitlines()
                    if line.lower().startswith(b"subject:")
                )
    return subjects


def _issue(stack, customer_id: str, n: int) -> list[str]:
    numbers = []
    for k in range(n):
        r = stack.http(
            "POST",
            "/api/v1/staff/invoices",
            stack.admin_token,
            json={
                "customer_id": customer_id,
                "lines": [
                    {
                        "description": f"Hosting {k}",
                        "quantity": 1,
                        "unit_price": {"amount": 1000 + k, "currency": "EUR"},
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        numbers.append(r.json()["number"])
    return numbers


@pytest.mark.parametrize("point", ["consumer.batch_before_commit", "consumer.batch_before_ack"])
def test_a_crash_inside_a_batch_of_invoice_notices_loses_and_doubles_no_mail(stack, point):
    c = stack.register_customer(language="en")
    token = stack.login(c["credentials"]["username"], c["credentials"]["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    parked_before = _parked(stack)
    stack.restart(
        "mailgateway", {"HOSTLEDGER_FAILPOINTS": point, "HOSTLEDGER_CATCHUP_INTERVAL": "3600"}
    )
    stack.wait_for_service("mailgateway")
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="the mail gateway up to date")
    proc = stack.procs["mailgateway"]

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        numbers = _issue(stack, c["id"], 6)
        stack.wait_until(
            lambda: (q := _queue(stack))[0] == 0 and q[1] >= 6, what="6 deliveries in flight"
        )
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=60) == 70, f"the mail gateway did not stop at {point}"
    if point == "consumer.batch_before_commit":
        # nothing of the batch was written
        assert _notices(stack, c["id"]) == []
    else:
        # the batch was written, every notice of it at once
        assert [n for n, _ in _notices(stack, c["id"])] == numbers

    numbers += _issue(stack, c["id"], 2)  # while the mail gateway is down, more wait for it
    stack.start("mailgateway")
    stack.wait_for_service("mailgateway")

    stack.wait_until(
        lambda: [s for _, s in _notices(stack, c["id"])] == ["sent"] * len(numbers),
        timeout=120,
        interval=0.3,
        what="every notice sent",
    )
    # one notice per invoice, queued in the order billing issued them
    assert [n for n, _ in _notices(stack, c["id"])] == numbers
    subjects = stack.wait_until(
        lambda: (lambda s: s if len(s) >= len(numbers) else None)(_mails_to(stack, c["email"])),
        what="every mail in the sink",
    )
    assert sorted(subjects) == sorted(f"Invoice {n} issued" for n in numbers)
    # the tracking of billing's log is its last event, and nothing was parked
    last = stack.published("billing")[-1]["position"]
    stack.wait_until(lambda: _stats(stack)["position"] >= last, what="tracking at the last")
    assert _parked(stack) == parked_before
    if point == "consumer.batch_before_ack":
        # the batch came again and was recognised as applied
        stack.wait_until(lambda: _stats(stack)["duplicates"] >= 2, what="the batch again")
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="the mail gateway's queue empty")
