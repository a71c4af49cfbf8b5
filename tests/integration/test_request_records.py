"""A command's request is recorded in the same transaction as its events, once, and
forgotten after its retention (services.infra.requests), on the real database."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from services.infra import clock
from services.infra.context import current
from services.infra.money import Money
from services.infra.requests import AlreadyHandled, forget_old_requests, keep_answer, lookup


def _count(app, key):
    with app.datastore.transaction() as curs:
        curs.execute("SELECT count(*) AS n FROM handled_requests WHERE key = %s", (key,))
        return curs.fetchone()["n"]


def _events(app) -> int:
    return app.recorder.max_notification_id() or 0


@pytest.fixture
def command():
    def run(key):
        current.command_key, current.command_recorded = key, False

    yield run
    current.command_key, current.command_recorded = None, False
    current.command_answer, current.command_answer_kept = None, False


def test_the_first_save_records_the_request_and_a_second_delivery_cannot_save(billing, command):
    customer = uuid4()
    billing.open_account(customer, "EUR", {})
    key = f"request|{uuid4()}|billing.record_payment|x"
    command(key)
    billing.record_payment(customer, Money(500, "EUR"), "bank", "ref 1", None, None, {})
    assert current.command_recorded and _count(billing, key) == 1
    keep_answer(billing, key, answer={"id": "p1"})
    assert lookup(billing, key).replay() == {"id": "p1"}

    # another delivery of the same request, run before it saw the record: nothing saved,
    # and the command is refused at its first save, not tried again as if it had lost a
    # race (its save could never succeed): once_per_request then answers the first answer
    before = _events(billing)
    command(key)
    with pytest.raises((AlreadyHandled, OperationalError)):  # the pipeline may say so
        billing.record_payment(customer, Money(500, "EUR"), "bank", "ref 1", None, None, {})
    assert _events(billing) == before
    assert billing.account(customer, "EUR").balance == Money(500, "EUR")


def test_a_save_that_fails_records_nothing(billing, command):
    customer = uuid4()
    billing.open_account(customer, "EUR", {})
    billing.record_payment(customer, Money(500, "EUR"), "bank", "ref 2", None, None, {})
    mine, theirs = billing.account(customer, "EUR"), billing.account(customer, "EUR")
    for account in (mine, theirs):
        account.debit("invoice_payment", Money(100, "EUR"), "INV-1", None, clock.now())
    billing.save(theirs)
    key = f"request|{uuid4()}|billing.debit|x"
    command(key)
    with pytest.raises(IntegrityError):  # another save got there first: it conflicts
        billing.save(mine)
    assert not current.command_recorded and _count(billing, key) == 0


def test_records_past_their_retention_are_forgotten(customers):
    old, new = f"request|{uuid4()}|old", f"request|{uuid4()}|new"
    with customers.datastore.transaction(commit=True) as curs:
        curs.execute(
            "INSERT INTO handled_requests (key, recorded_at) VALUES (%s, %s), (%s, %s)",
            (old, clock.now() - timedelta(days=8), new, clock.now() - timedelta(days=6)),
        )
        curs.execute(
            "INSERT INTO request_keys (key, request_hash, claimed_at) VALUES (%s, 'h', %s)",
            (old, clock.now() - timedelta(days=8)),
        )
    assert forget_old_requests(customers, 7) == 2
    assert _count(customers, old) == 0 and _count(customers, new) == 1
