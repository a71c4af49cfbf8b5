"""The renewal run in batches: billing issues a batch of renewal invoices in one save
(numbers of a series consecutive, without gaps), priced with the discounts the customers
service published (a customer's own and its groups', changed a moment before the run);
a second run over the same day issues nothing; and an orders service that dies between
billing's save and its own record neither loses nor doubles an invoice."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

from services.infra.clock import FileClock
from tests.e2e.test_order_faults import _orders_failing_at
from tests.e2e.test_orders import _move_clock_to, _paid_order, _renewals, _service


def _active(stack, customer_id: str) -> dict:
    return stack.wait_until(
        lambda: (s := _service(stack, customer_id)) and s["status"] == "active" and s,
        what="the service active",
    )


def _renewal_recorded(stack, service_id: str) -> str | None:
    """The renewal invoice the orders service recorded on the service (its aggregate)."""
    with stack.rpc() as rpc:
        return rpc.orders.staff_service(service_id)["renewal_invoice_id"]


def _discount(stack, **body) -> dict:
    r = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _default_series_numbers(stack) -> list[int]:
    """Every number the default series gave, as billing's event store holds the invoices."""
    with stack.db("billing") as conn:
        rows = conn.execute(
            "SELECT state FROM billing_events WHERE topic LIKE %s", ("%Invoice.Issued",)
        ).fetchall()
    numbers = [json.loads(bytes(state))["number"] for (state,) in rows]
    return sorted(int(n) for n in numbers if re.fullmatch(r"\d{6}", n))


def test_a_batch_of_renewals_is_numbered_without_gaps_and_priced_with_published_discounts(
    stack,
):
    customers = {}
    for who in ("own", "group", "changed", "none"):
        _, order = _paid_order(stack, f"batch-{who}")
        customers[who] = order["customer_id"]
    services = {who: _active(stack, cid) for who, cid in customers.items()}

    _discount(stack, name="Loyal", kind="percentage", percent="10", customer_id=customers["own"])
    r = stack.http(
        "POST", "/api/v1/staff/customer-groups", stack.admin_token, json={"name": "Resellers"}
    )
    assert r.status_code == 201, r.text
    group = r.json()
    _discount(stack, name="Resellers", kind="percentage", percent="20", group_id=group["id"])
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customers['group']}",
        stack.admin_token,
        json={"group_ids": [group["id"]]},
    )
    assert r.status_code == 200, r.text
    # a discount given, then ended and another given just before the run
    old = _discount(
        stack, name="Welcome", kind="percentage", percent="5", customer_id=customers["changed"]
    )
    r = stack.http("DELETE", f"/api/v1/staff/discounts/{old['id']}", stack.admin_token)
    assert r.status_code in (200, 204), r.text
    _discount(
        stack,
        name="Apology",
        kind="fixed",
        amount={"amount": 125, "currency": "EUR"},
        customer_id=customers["changed"],
    )

    due = max(date.fromisoformat(s["next_due_date"]) for s in services.values())
    try:
        _move_clock_to(stack, due - timedelta(days=6))
        with stack.rpc() as rpc:
            rpc.orders.run_renewals()
        renewals = {
            who: stack.wait_until(lambda c=cid: _renewals(stack, c), what=f"{who}'s renewal")
            for who, cid in customers.items()
        }
        with stack.rpc() as rpc:
            again = rpc.orders.run_renewals()
        assert again["renewal_invoices"] == 0
        totals = {who: [i["total"]["amount"] for i in found] for who, found in renewals.items()}
        assert totals == {"own": [450], "group": [400], "changed": [375], "none": [500]}
        with stack.rpc() as rpc:
            [line] = rpc.billing.get_invoice(renewals["changed"][0]["id"])["lines"]
        assert line["discount"]["name"] == "Apology"
        for who, service in services.items():
            [renewal] = renewals[who]
            assert _renewal_recorded(stack, service["id"]) == renewal["id"]
        numbers = _default_series_numbers(stack)
        assert numbers == list(range(1, len(numbers) + 1))  # no gap, none twice
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))


def test_orders_dying_between_billings_save_and_its_own_neither_loses_nor_doubles(stack):
    _, order = _paid_order(stack, "batch-crash")
    customer_id = order["customer_id"]
    service = _active(stack, customer_id)
    due = date.fromisoformat(service["next_due_date"])
    try:
        with _orders_failing_at(stack, "orders.renew.after_invoices"):
            _move_clock_to(stack, due - timedelta(days=6))
            # the scheduler's run issues the invoice in billing, then the process dies
            stack.wait_until(lambda: _renewals(stack, customer_id), what="the invoice issued")
            stack.wait_until(lambda: stack.procs["orders"].poll() is not None, what="orders died")
        # started again without the fault: the next run is answered the same invoice
        recorded = stack.wait_until(
            lambda: _renewal_recorded(stack, service["id"]), what="the renewal recorded"
        )
        [renewal] = _renewals(stack, customer_id)
        assert recorded == renewal["id"]
        with stack.rpc() as rpc:
            assert rpc.orders.run_renewals()["renewal_invoices"] == 0
        assert len(_renewals(stack, customer_id)) == 1
        numbers = _default_series_numbers(stack)
        assert numbers == list(range(1, len(numbers) + 1))
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
