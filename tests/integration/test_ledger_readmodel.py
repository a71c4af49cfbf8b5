"""The ledger read model on PostgreSQL: the balance is the sum of the entries it serves,
now and at any past instant, whether or not its follower has caught up with the account."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.billing.readmodels import Ledger
from services.infra.money import Money
from services.infra.readmodels import Follower

T0 = datetime(2026, 1, 1, tzinfo=UTC)

operations = st.lists(
    st.tuples(
        st.sampled_from(["credit", "debit"]),
        st.integers(min_value=1, max_value=10**6),
        # minutes the clock was moved back before this entry (mostly none)
        st.sampled_from([0, 0, 0, 0, 3]),
    ),
    min_size=1,
    max_size=40,
)


def _all_entries(billing, account, at=None, page_size=7):
    entries, page = [], 1
    while True:
        view = billing.account_view(account, at, page, page_size)
        entries += view["entries"]
        if page * page_size >= view["total"]:
            assert len(entries) == view["total"]
            return view, entries
        page += 1


def _check(billing, account, minutes: int):
    view, entries = _all_entries(billing, account)
    running = 0
    for e in entries:
        running += e["amount"]["amount"]
        assert e["balance_after"]["amount"] == running
    assert view["balance"]["amount"] == account.balance.amount == running
    when = T0 + timedelta(minutes=minutes, seconds=30)
    then, before = _all_entries(billing, account, when)
    assert then["balance"]["amount"] == sum(e["amount"]["amount"] for e in before)
    expected = [e["id"] for e in entries if datetime.fromisoformat(e["at"]) <= when]
    assert [e["id"] for e in before] == expected


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, cut=st.integers(min_value=0, max_value=40), minute=st.integers(0, 45))
def test_balance_is_the_sum_of_the_served_entries(billing, ops, cut, minute):
    follower = Follower(billing, Ledger())
    account = billing.open_account(uuid4(), "EUR", {})
    for i, (op, amount, back) in enumerate(ops):
        at = T0 + timedelta(minutes=i - back)
        if op == "credit":
            account.credit("payment", Money(amount, "EUR"), f"ref-{i}", None, at)
        elif amount <= account.balance.amount:
            account.debit("invoice_payment", Money(amount, "EUR"), f"INV-{i}", None, at)
        billing.save(account)
        if i == cut:
            follower.catch_up()
    # the follower is behind by the operations after `cut`: they come from the store
    _check(billing, account, minute)
    follower.catch_up()
    _check(billing, account, minute)
    with billing.datastore.transaction() as curs:
        curs.execute(
            "SELECT balance, version FROM ledger_accounts WHERE account_id = %s", (account.id,)
        )
        row = curs.fetchone()
    assert row["balance"] == account.balance.amount and row["version"] == account.version


def test_rebuilding_the_ledger_gives_the_same_rows(billing):
    follower = Follower(billing, Ledger())
    account = billing.open_account(uuid4(), "EUR", {})
    for i in range(30):
        account.credit("payment", Money(100 + i, "EUR"), None, None, T0 + timedelta(minutes=i))
    billing.save(account)
    follower.catch_up()
    before = _all_entries(billing, account)[1]
    follower.rebuild()
    assert _all_entries(billing, account)[1] == before


def test_a_clock_moved_back_still_gives_the_entries_and_sum_up_to_then(billing):
    follower = Follower(billing, Ledger())
    account = billing.open_account(uuid4(), "EUR", {})
    for minute, amount in ((0, 100), (10, 20), (5, 3)):
        account.credit("payment", Money(amount, "EUR"), None, None, T0 + timedelta(minutes=minute))
    billing.save(account)
    follower.catch_up()
    with billing.datastore.transaction() as curs:
        curs.execute("SELECT in_order FROM ledger_accounts WHERE account_id = %s", (account.id,))
        assert curs.fetchone()["in_order"] is False
    then = billing.account_view(account, T0 + timedelta(minutes=7))
    assert then["balance"]["amount"] == 103 and then["total"] == 2
    assert [e["amount"]["amount"] for e in then["entries"]] == [100, 3]
    assert billing.account_view(account)["balance"]["amount"] == 123
