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
    # one event per entry: the history explains the balance, and each entry says the
    # balance after it
    entries = [e for e in account.collect_events() if hasattr(e, "entry_id")]
    assert len(entries) == account.entry_count
    running = 0
    for e in entries:
        running += e.amount
        assert e.balance_after == running >= 0
    assert account.balance.amount == running == sum(e.amount for e in entries)


def test_a_snapshot_holds_no_entries_however_many():
    account = _account()
    for i in range(1000):
        account.credit("payment", Money(1, "EUR"), None, None, T0 + timedelta(minutes=i))
    account.collect_events()
    snapshot = PersonalAccount.Snapshot.take(account)
    assert "entries" not in snapshot.state
    assert len(repr(snapshot.state)) < 1000
    assert snapshot.mutate(None).balance == Money(1000, "EUR")


def test_a_snapshot_from_when_entries_lived_in_the_account_is_upcast():
    account = _account()
    account.collect_events()
    old = PersonalAccount.Snapshot.take(account)
    new_fields = ("balance_amount", "entry_count", "last_entry_at", "entries_in_order")
    state = {k: v for k, v in old.state.items() if k not in new_fields}
    state.pop("class_version")
    later = T0 + timedelta(hours=1)
    state["entries"] = [{"amount": 500, "at": later}, {"amount": -200, "at": T0}]
    restored = PersonalAccount.Snapshot(
        originator_id=old.originator_id,
        originator_version=old.originator_version,
        timestamp=old.timestamp,
        topic=old.topic,
        state=state,
    ).mutate(None)
    assert restored.balance == Money(300, "EUR") and restored.entry_count == 2
    assert restored.last_entry_at == later and restored.entries_in_order is False


def test_an_entry_recorded_before_balance_after_existed_still_applies():
    account = _account()
    account.credit("payment", Money(700, "EUR"), None, None, T0)
    created, credited = account.collect_events()
    del credited.__dict__["balance_after"]
    replayed = credited.mutate(created.mutate(None))
    assert replayed.balance == Money(700, "EUR")


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
