"""Refund rules as pure domain code, and reading Stripe's refund notifications."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain import Invoice, InvoiceNotRefundable, Refund
from services.billing.processors import Stripe
from services.infra import clock
from services.infra.clock import FixedClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock():
    previous = clock.use_clock(FixedClock(T0))
    yield
    clock.use_clock(previous)


def _paid_invoice(total=1000, source="stripe", reference="pi_1"):
    invoice = Invoice(
        customer_id=uuid4(),
        project_id=None,
        number="000001",
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
    invoice.mark_paid(source, reference, T0)
    return invoice


@given(st.lists(st.integers(min_value=1, max_value=600), max_size=12))
def test_refunds_never_exceed_what_was_paid(amounts):
    invoice = _paid_invoice(1000)
    reserved = 0
    for amount in amounts:
        refund_id = uuid4()
        if reserved + amount <= 1000:
            invoice.request_refund(refund_id, amount, "account", T0)
            invoice.complete_refund(refund_id, "r", T0)
            reserved += amount
        else:
            with pytest.raises(InvoiceNotRefundable):
                invoice.request_refund(refund_id, amount, "account", T0)
        assert invoice.refunded == reserved == invoice.total - invoice.refundable
        assert invoice.status == ("refunded" if reserved == 1000 else "paid")


def test_a_pending_refund_holds_its_amount_and_completes_once():
    invoice = _paid_invoice(1000)
    refund_id = uuid4()
    invoice.request_refund(refund_id, 1000, "processor", T0)
    assert invoice.status == "paid" and invoice.refundable == 0
    with pytest.raises(InvoiceNotRefundable):
        invoice.request_refund(uuid4(), 1, "account", T0)
    invoice.complete_refund(refund_id, "r", T0)
    invoice.complete_refund(refund_id, "r", T0)
    assert invoice.status == "refunded" and invoice.refunded == 1000
    assert invoice.processor_payment() == {"source": "stripe", "reference": "pi_1", "at": T0}
    assert _paid_invoice(source="bank_transfer").processor_payment() is None


def test_an_answered_failure_moves_to_a_new_key_and_a_lost_answer_does_not():
    refund = Refund(
        refund_id=uuid4(),
        customer_id=uuid4(),
        invoice_id=uuid4(),
        invoice_number="000001",
        credit_note_id=uuid4(),
        credit_note_number="CN-000001",
        amount=100,
        currency="EUR",
        to="processor",
        processor="stripe",
        payment_reference="pi_1",
        reason="r",
        requested_at=T0,
    )
    first = refund.attempt_key
    refund.fail("no answer", answered=False, at=T0)
    assert refund.attempt_key == first and refund.status == "failed"
    refund.check_retryable()
    refund.fail("Stripe answered 500", answered=True, at=T0)
    assert refund.attempt_key != first
    refund.complete("re_1", T0)
    assert refund.status == "completed" and refund.error is None
    with pytest.raises(Exception, match="completed"):
        refund.check_retryable()


def test_stripe_refund_notifications_are_read_as_documented():
    stripe = Stripe("whsec_x")
    refund = {
        "id": "re_1",
        "object": "refund",
        "status": "succeeded",
        "metadata": {"hostledger_refund_id": "abc"},
    }
    [update] = stripe.refund_updates(
        {"id": "evt_1", "type": "refund.updated", "data": {"object": refund}}
    )
    assert (update.refund_id, update.processor_refund_id, update.status) == (
        "abc",
        "re_1",
        "succeeded",
    )
    charge = {"id": "ch_1", "object": "charge", "refunds": {"data": [refund]}}
    [again] = stripe.refund_updates(
        {"id": "evt_2", "type": "charge.refunded", "data": {"object": charge}}
    )
    assert again == update
    assert stripe.refund_updates({"id": "evt_3", "type": "payment_intent.succeeded"}) == []
