"""How often the mail gateway asks the customers service about a notice's customer.

A notice needs its customer's record (address, language, name) and notification
settings: one question to the customers service per notice applied alone, and one per
customer for the notices of a batch of events (services.infra.inbox_batches). Counted
on the customers service's own metrics (RPC calls answered, by method), around what only
the mail gateway asks: issuing an invoice by hand asks the customers service nothing.
"""

from __future__ import annotations

import os
import signal

from tests.staff_api import client_with_account, issue_invoice

# every RPC of the customers service that answers a customer or its notification settings
ASKS = (
    "get_customer",
    "get_notification_settings",
    "get_customer_and_notification_settings",
)


def _asked(stack) -> float:
    """The customers service's answers about a customer so far."""
    return sum(
        stack.metric("customers", "hostledger_rpc_duration_seconds_count", method=m) for m in ASKS
    )


def _queue(stack) -> tuple[int, int]:
    return stack.consumer_queue("mailgateway", "billing")


def _notices(stack, customer_id: str) -> list[tuple[str, str, str | None]]:
    """(number, status, reason) of the customer's invoice notices, in the order queued."""
    with stack.db("mailgateway") as conn:
        return conn.execute(
            "SELECT context->>'number', status, reason FROM mail_outbox"
            " WHERE customer_id = %s AND kind = 'invoice_issued' ORDER BY id",
            (customer_id,),
        ).fetchall()


def _issue(stack, customer_id: str) -> str:
    return issue_invoice(stack, customer_id)["number"]


def _customer_with_account(stack) -> tuple[dict, str]:
    """A new customer whose personal account is open, and its client token; the mail
    gateway has applied every billing event so far."""
    customer, token = client_with_account(stack, language="en")
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="the mail gateway up to date")
    return customer, token


def _settled_asks(stack, before: float, expected: int) -> int:
    """The customers service's answers since `before`, once `expected` are counted (an
    answer is counted as its worker ends, just after the reply)."""
    try:
        stack.wait_until(
            lambda: _asked(stack) - before >= expected, timeout=10, what=f"{expected} asks"
        )
    except TimeoutError:
        pass  # fewer: the assertion says how many
    return int(_asked(stack) - before)


def test_a_notice_asks_the_customers_service_once_and_honours_a_settings_change(stack):
    c, token = _customer_with_account(stack)
    before = _asked(stack)
    number = _issue(stack, c["id"])
    stack.wait_until(lambda: _notices(stack, c["id"]), what="the invoice notice")
    assert _settled_asks(stack, before, 1) == 1  # was 2: the customer, then its settings
    [(queued, status, _)] = _notices(stack, c["id"])
    assert queued == number and status in ("pending", "sending", "sent")

    # the customer turns invoice notices off: the next invoice's notice is skipped
    r = stack.http(
        "PUT", "/api/v1/client/notification-settings", token, json={"invoice_issued": False}
    )
    assert r.status_code == 200, r.text
    assert r.json()["invoice_issued"] is False
    before = _asked(stack)
    second = _issue(stack, c["id"])
    stack.wait_until(lambda: len(_notices(stack, c["id"])) == 2, what="the second notice")
    assert _settled_asks(stack, before, 1) == 1
    assert _notices(stack, c["id"])[1] == (
        second,
        "skipped",
        "the customer turned off invoice_issued notifications",
    )


def test_the_notices_of_a_batch_ask_once_per_customer(stack):
    """Invoices issued to two customers while the mail gateway is frozen (SIGSTOP) wait in
    its socket together; running again, it applies them as one batch."""
    first, _ = _customer_with_account(stack)
    second, _ = _customer_with_account(stack)
    proc = stack.procs["mailgateway"]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        numbers = {first["id"]: [], second["id"]: []}
        for customer_id in [first["id"], second["id"], first["id"], first["id"], second["id"]]:
            numbers[customer_id].append(_issue(stack, customer_id))
        stack.wait_until(
            lambda: (q := _queue(stack))[0] == 0 and q[1] >= 5, what="5 deliveries in flight"
        )
        before = _asked(stack)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    for customer_id, issued in numbers.items():
        stack.wait_until(
            lambda customer_id=customer_id, issued=issued: (
                [n for n, _, _ in _notices(stack, customer_id)] == issued
            ),
            what="every notice queued",
        )
    assert _settled_asks(stack, before, 2) == 2  # was 4: two questions per customer
    stack.wait_until(lambda: _queue(stack) == (0, 0), what="the mail gateway's queue empty")
