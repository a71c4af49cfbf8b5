"""An invoice line's period as dates through the API: an order's and a renewal's period
lines answer `period_start` and `period_end`, the days their words say (a setup fee
none), and staff issue an invoice by hand with them, read back on the staff's and the
client's invoice; days given wrong are a 400 naming the field, and no invoice is issued."""

from __future__ import annotations

from datetime import date, timedelta

from services.orders.domain import add_months
from tests.e2e.test_invoice_language import _paid
from tests.staff_api import client_with_account

PASSWORD = "client password 1"


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _days(invoice: dict) -> list[tuple]:
    return [(line["period_start"], line["period_end"]) for line in invoice["lines"]]


def _one_cycle(start: date, months: int) -> tuple[str, str]:
    return start.isoformat(), (add_months(start, months) - timedelta(days=1)).isoformat()


def test_an_orders_and_a_renewals_invoice_lines_give_their_periods_days(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "Period Hosting", "fr": "Hébergement période"},
            "prices": {"quarterly": _eur(900)},
            "setup_fee": _eur(500),
        },
    )
    assert r.status_code == 201, r.text
    product = r.json()
    customer = stack.register_customer(country="BE", language="fr", password=PASSWORD)
    token = stack.login(customer["username"], PASSWORD)
    item = {"product_id": product["id"], "billing_cycle": "quarterly"}
    r = stack.http("POST", "/api/v1/client/orders", token, json={"items": [item]})
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    ordered_on = date.fromisoformat(invoice["issued_at"][:10])
    assert _days(invoice) == [_one_cycle(ordered_on, 3), (None, None)]
    assert invoice["lines"][0]["period"]  # the words stay beside them
    # as billing answers it later, to the client and to staff
    shown = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert _days(shown) == _days(invoice)
    staff = stack.http("GET", f"/api/v1/staff/invoices/{invoice['id']}", stack.admin_token)
    assert _days(staff.json()) == _days(invoice)

    # the renewal covers the due date to the day before the next
    service = _paid(stack, token, customer["id"], invoice)
    due = date.fromisoformat(service["next_due_date"])
    r = stack.http("POST", f"/api/v1/client/services/{service['id']}/renew", token)
    assert r.status_code == 200, r.text
    renewal = r.json()["invoice"]
    assert _days(renewal) == [_one_cycle(due, 3)]
    shown = stack.http("GET", f"/api/v1/client/invoices/{renewal['id']}", token).json()
    assert _days(shown) == [_one_cycle(due, 3)]


def _manual(stack, customer_id: str, **days):
    return stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [
                {"description": "Consulting", "unit_price": _eur(4000), **days},
                {"description": "Travel", "unit_price": _eur(1500)},
            ],
        },
    )


def _invoice_count(stack, customer_id: str) -> int:
    r = stack.http(
        "GET",
        "/api/v1/staff/invoices",
        stack.admin_token,
        params={"customer_id": customer_id},
    )
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_staff_issue_an_invoice_with_a_periods_days_and_read_them_back(stack):
    customer, client = client_with_account(stack, country="DE")
    cid = customer["id"]
    r = _manual(stack, cid, period_start="2027-03-01", period_end="2027-03-31")
    assert r.status_code == 201, r.text
    issued = r.json()
    assert _days(issued) == [("2027-03-01", "2027-03-31"), (None, None)]
    assert issued["lines"][0]["period"] is None
    staff = stack.http("GET", f"/api/v1/staff/invoices/{issued['id']}", stack.admin_token)
    assert _days(staff.json()) == _days(issued)
    shown = stack.http("GET", f"/api/v1/client/invoices/{issued['id']}", client)
    assert shown.status_code == 200, shown.text
    assert _days(shown.json()) == _days(issued)
    # a line without them, as before: none
    r = _manual(stack, cid)
    assert r.status_code == 201, r.text
    assert _days(r.json()) == [(None, None), (None, None)]
    stack.wait_until(lambda: _invoice_count(stack, cid) == 2, what="both invoices listed")

    for days, field in (
        ({"period_start": "2027-03-01"}, "period_end"),
        ({"period_end": "2027-03-31"}, "period_start"),
        ({"period_start": "2027-04-01", "period_end": "2027-03-31"}, "period_end"),
        ({"period_start": "2027-02-30", "period_end": "2027-03-31"}, "period_start"),
        ({"period_start": "1 March 2027", "period_end": "2027-03-31"}, "period_start"),
    ):
        r = _manual(stack, cid, **days)
        assert r.status_code == 400, (days, r.text)
        assert list(r.json()["error"]["fields"]) == [f"lines.0.{field}"], (days, r.text)
    # nothing was issued for them: the next invoice is the customer's third
    assert _manual(stack, cid, period_start="2027-04-01", period_end="2027-04-01").ok
    stack.wait_until(lambda: _invoice_count(stack, cid) >= 3, what="the third invoice listed")
    assert _invoice_count(stack, cid) == 3
