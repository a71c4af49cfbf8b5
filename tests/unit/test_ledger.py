"""The personal account ledger, as pure domain code: its balance is the sum of its entries."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain import InsufficientBalance, Invoice, InvoiceNotPayable, PersonalAccount
from services.infra import clock
from services.infra.clock import FixedClock
from services.infra.money import Money

T0 = datetime(2026, 1, 1, tzinfo=UTC)

operations = st.lists(
    st.tuples(st.sampled_from(["credit", "debit"]), st.integers(min_value=1, max_value=10**9)),
    max_size=60,
)


def _account():
    return PersonalAccount(customer_id=uuid4(), currency="EUR", opened_at=T0, buyer={})


@given(operations)
def test_balance_is_the_sum_of_entries_and_never_negative(ops):
    account = _account()
    expected = 0
    for i, (op, amount) in enumerate(ops):
        at = T0 + timedelta(minutes=i)
        if op == "credit":
            account.credit("payment", Money(amount, "EUR"), None, None, at)
            expected += amount
        elif amount <= expected:
            account.debit("invoice_payment", Money(amount, "EUR"), None, None, at)
            expected -= amount
        else:
            with pytest.raises(InsufficientBalance):
                account.debit("invoice_payment", Money(amount, "EUR"), None, None, at)
        assert account.balance == Money(expected, "EUR")
        assert account.balance.amount == sum(e["amount"] for e in account.entries) >= 0


@given(operations, st.integers(min_value=0, max_value=70))
def test_balance_at_is_the_sum_of_entries_up_to_then(ops, minute):
    account = _account()
    for i, (op, amount) in enumerate(ops):
        at = T0 + timedelta(minutes=i)
        if op == "credit" or amount <= account.balance.amount:
            kind = "payment" if op == "credit" else "invoice_payment"
            getattr(account, op)(kind, Money(amount, "EUR"), None, None, at)
    when = T0 + timedelta(minutes=minute)
    balance, entries = account.balance_at(when)
    assert all(e["at"] <= when for e in entries)
    assert balance.amount == sum(e["amount"] for e in entries)
    assert len(entries) == len([e for e in account.entries if e["at"] <= when])


def test_replaying_the_events_gives_the_same_balance():
    account = _account()
    account.credit("payment", Money(500, "EUR"), "tx", None, T0)
    account.debit("invoice_payment", Money(200, "EUR"), "INV-1", None, T0)
    events = account.collect_events()
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed.balance == account.balance == Money(300, "EUR")


def test_entries_are_positive_and_in_the_account_currency():
    account = _account()
    with pytest.raises(ValueError):
        account.credit("payment", Money(0, "EUR"), None, None, T0)
    with pytest.raises(ValueError):
        account.credit("payment", Money(100, "USD"), None, None, T0)
    with pytest.raises(ValueError):
        account.credit("gift", Money(100, "EUR"), None, None, T0)


def test_an_invoice_is_paid_once():
    previous = clock.use_clock(FixedClock(T0))
    try:
        invoice = Invoice(
            customer_id=uuid4(),
            project_id=None,
            number="000001",
            purpose="manual",
            lines=[],
            currency="EUR",
            total=100,
            issued_at=T0,
            due_date="2026-01-15",
            buyer={},
            seller={},
            subtotal=100,
            tax=None,
        )
        invoice.mark_paid("balance", None, T0)
        assert invoice.status == "paid" and invoice.paid_at == T0
        with pytest.raises(InvoiceNotPayable):
            invoice.mark_paid("balance", None, T0)
        with pytest.raises(InvoiceNotPayable):
            invoice.cancel("late")
    finally:
        clock.use_clock(previous)
