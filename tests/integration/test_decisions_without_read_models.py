"""Handlers and commands decide from the event store, never from a read model (issue 12).

The applications here run without their read-model followers: every read model is held
back (empty), as during a rebuild or behind a stuck follower. Each handler and command
that changes state still finds everything it changes.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.infra.readmodels import Follower


def _follow(app, model_cls) -> None:
    """Bring one read model up to date (for the cases that check the two agree)."""
    follower = Follower(app, model_cls())
    while follower.run_once():
        pass


# -- billing ------------------------------------------------------------------------------------


def test_customer_updates_reach_every_account_while_the_account_list_lags(billing):
    customer_id = uuid4()
    billing.open_account(customer_id, "EUR", {"name": "Old"})
    billing.open_account(customer_id, "USD", {"name": "Old"})

    billing.update_buyer(customer_id, {"name": "New", "referrer_id": str(uuid4())})

    accounts = billing.accounts_of(customer_id)
    assert [a.currency for a in accounts] == ["EUR", "USD"]
    assert all(a.buyer["name"] == "New" for a in accounts)
    assert all(a.buyer["referrer_id"] for a in accounts)


def test_changes_before_the_account_is_opened_wait_for_it(billing):
    """A CustomerUpdated applied before the account of its CustomerRegistered was opened
    (that event parked, then retried) is kept and given to the account."""
    customer_id = uuid4()
    billing.update_buyer(customer_id, {"name": "Changed", "affiliate_program": "partners"})
    assert billing.accounts_of(customer_id) == []

    account = billing.open_account(customer_id, "EUR", {"name": "Registered", "country": "DE"})

    assert account.buyer == {"name": "Changed", "affiliate_program": "partners", "country": "DE"}
    billing.update_buyer(customer_id, {"name": "Later"})
    assert billing.account(customer_id, "EUR").buyer["name"] == "Later"


def test_accounts_older_than_the_index_are_found_through_the_list(billing):
    """Accounts opened before the account index existed: the list (long projected) seeds
    the index the first time the customer is met."""
    from services.billing.domain import CustomerAccounts, PersonalAccount
    from services.billing.readmodels import AccountList
    from services.infra import clock

    customer_id = uuid4()
    billing.save(
        PersonalAccount(customer_id=customer_id, currency="EUR", opened_at=clock.now(), buyer={})
    )
    _follow(billing, AccountList)

    billing.update_buyer(customer_id, {"name": "Found"})

    assert billing.account(customer_id, "EUR").buyer["name"] == "Found"
    index = billing.repository.get(CustomerAccounts.id_for(customer_id))
    assert index.currencies == ["EUR"]
    billing.open_account(customer_id, "USD", {})
    assert [a.currency for a in billing.accounts_of(customer_id)] == ["EUR", "USD"]


@pytest.fixture
def orders(cfg):
    from services.orders.application import Orders

    app = Orders(cfg=cfg)
    yield app
    app.close()


@pytest.fixture
def helpdesk(cfg):
    from services.helpdesk.application import Helpdesk

    app = Helpdesk(cfg=cfg)
    yield app
    app.close()
