"""Billing keeps an invoice line's period days in the invoice's stored event, read back by
another instance of the service; an invoice stored before lines had them still loads and
answers its lines with none."""

from __future__ import annotations

from uuid import uuid4

from contracts import billing as contract
from services.billing.application import Billing, invoice_view, staff_invoice_view
from services.billing.domain import Invoice, invoice_buyer
from services.infra import clock
from services.infra.rpc import load


def _customer(billing):
    customer_id = uuid4()
    billing.open_account(
        customer_id,
        "EUR",
        {"kind": "individual", "contact_person": "Petra Period", "country": "DE"},
    )
    return customer_id


def _lines(**days) -> list[dict]:
    """Lines as the RPC takes them, loaded and made plain as billing's service does."""
    data = load(
        contract.IssueInvoice,
        {
            "customer_id": str(uuid4()),
            "lines": [
                {
                    "description": "Hosting",
                    "unit_price": {"amount": 1000, "currency": "EUR"},
                    **days,
                },
                {"description": "Setup", "unit_price": {"amount": 300, "currency": "EUR"}},
            ],
        },
    )
    return contract.plain_lines(data["lines"])


def test_the_days_are_kept_in_the_stored_invoice(billing, cfg):
    customer_id = _customer(billing)
    lines = _lines(period_start="2027-01-05", period_end="2027-02-04")
    issued = billing.issue_invoice(customer_id, "EUR", lines, purpose="manual")
    assert [(x["period_start"], x["period_end"]) for x in issued["lines"]] == [
        ("2027-01-05", "2027-02-04"),
        (None, None),
    ]

    # another instance reads the invoice from its stored events alone
    other = Billing(cfg=cfg)
    try:
        stored = other.invoice(issued["id"])
        assert stored.lines[0]["period_start"] == "2027-01-05"
        assert stored.lines[0]["period_end"] == "2027-02-04"
        assert invoice_view(stored)["lines"] == issued["lines"]
        assert staff_invoice_view(stored)["lines"] == issued["lines"]
    finally:
        other.close()


def test_an_invoice_stored_before_lines_had_days_answers_none(billing, cfg):
    customer_id = _customer(billing)
    # the lines billing recorded before: no period_start, no period_end
    old_lines = [
        {
            "description": "VPS Start (monthly)",
            "product_id": None,
            "quantity": 1,
            "unit_price": 500,
            "period": "monthly",
            "discount": None,
            "total": 500,
        }
    ]
    older = Invoice(
        customer_id=customer_id,
        project_id=None,
        number="OLD-PERIOD-1",
        purpose="order",
        lines=old_lines,
        currency="EUR",
        total=500,
        issued_at=clock.now(),
        due_date="2030-01-01",
        buyer=invoice_buyer({}),
        seller={},
        subtotal=500,
        tax=None,
    )
    billing.save(older)

    other = Billing(cfg=cfg)
    try:
        [line] = invoice_view(other.invoice(older.id))["lines"]
    finally:
        other.close()
    assert line["period_start"] is None and line["period_end"] is None
    assert line["period"] == "monthly"
    assert line["description"] == "VPS Start (monthly)"
    assert line["unit_price"] == {"amount": 500, "currency": "EUR"}
