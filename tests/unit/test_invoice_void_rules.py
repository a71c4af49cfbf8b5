"""Voiding an invoice as pure domain code: only an unpaid one, its number kept, and a
void invoice can no longer be paid."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.billing.application import invoice_view, staff_invoice_view
from services.billing.domain import Invoice, InvoiceNotPayable, InvoiceNotVoidable

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _invoice(total=1000):
    return Invoice(
        customer_id=uuid4(),
        project_id=None,
        number="000042",
        purpose="manual",
        lines=[],
        currency="EUR",
        total=total,
        issued_at=T0,
        due_date="2026-01-15",
        buyer={},
        seller={},
        subtotal=total,
        tax=None,
    )


def test_an_unpaid_invoice_is_voided_with_its_reason_and_keeps_its_number():
    invoice = _invoice()
    invoice.void(reason="issued twice", at=T0)
    view = staff_invoice_view(invoice)
    assert (view["status"], view["number"]) == ("void", "000042")
    assert view["void_reason"] == "issued twice"
    assert view["voided_at"] == "2026-01-01T00:00:00Z"
    with pytest.raises(InvoiceNotPayable, match="void"):
        invoice.mark_paid("bank_transfer", "TX-1", T0)


@pytest.mark.parametrize("make", ["paid", "void", "cancelled"])
def test_only_an_unpaid_invoice_is_voided(make):
    invoice = _invoice()
    if make == "paid":
        invoice.mark_paid("bank_transfer", "TX-1", T0)
    elif make == "void":
        invoice.void(reason="first", at=T0)
    else:
        invoice.cancel(reason="order not placed")
    with pytest.raises(InvoiceNotVoidable, match=f"is {make}"):
        invoice.void(reason="again", at=T0)


def test_a_paid_invoice_lists_its_payment():
    invoice = _invoice()
    invoice.mark_paid("bank_transfer", "TX-9", T0)
    view = staff_invoice_view(invoice)
    assert view["payments"] == [
        {"source": "bank_transfer", "reference": "TX-9", "at": "2026-01-01T00:00:00Z"}
    ]
    assert view["voided_at"] is None and view["void_reason"] is None
    # clients see neither the payments' details nor a void reason
    assert not {"payments", "voided_at", "void_reason"} & set(invoice_view(invoice))
