"""A service's read models move along its log together: one read of the new events and one
transaction for all of them per wake-up, each model still projected once, in order, and
one model's bad event parked without holding up the others."""

from uuid import uuid4

from services.billing.audit import BillingAuditIndex
from services.billing.readmodels import AccountList, Ledger
from services.infra.readmodels import Follower, Followers, ReadModel


def _accounts(billing) -> list:
    with billing.datastore.transaction() as curs:
        curs.execute("SELECT customer_id FROM account_list ORDER BY opened_at, customer_id")
        return [r["customer_id"] for r in curs.fetchall()]


def _audit_positions(billing) -> list[int]:
    with billing.datastore.transaction() as curs:
        curs.execute("SELECT position FROM audit_events ORDER BY position")
        return [r["position"] for r in curs.fetchall()]


class _Spy:
    """Counts the reads of the log and the transactions of the application."""

    def __init__(self, billing, monkeypatch):
        self.reads = 0
        self.transactions = 0
        recorder, datastore = billing.recorder, billing.datastore
        read, transaction = recorder.select_notifications, datastore.transaction

        def counted_read(*args, **kwargs):
            self.reads += 1
            return read(*args, **kwargs)

        def counted_transaction(*args, **kwargs):
            self.transactions += 1
            return transaction(*args, **kwargs)

        monkeypatch.setattr(recorder, "select_notifications", counted_read)
        monkeypatch.setattr(datastore, "transaction", counted_transaction)


def test_one_read_and_one_transaction_move_every_model(billing, monkeypatch):
    models = [AccountList(), Ledger(), BillingAuditIndex()]
    group = Followers([Follower(billing, m) for m in models])
    opened = [uuid4() for _ in range(3)]
    for customer in opened:
        billing.open_account(customer, "EUR")
    head = billing.recorder.max_notification_id()
    assert group.run_once() == head  # the first round asks where the models are
    billing.open_account(uuid4(), "EUR")
    head = billing.recorder.max_notification_id()
    spy = _Spy(billing, monkeypatch)
    assert group.run_once() > 0
    assert spy.reads == 1
    # one transaction for all three models, their locks and positions (each model alone:
    # a read and a transaction each)
    assert spy.transactions == 1
    assert group.run_once() == 0
    assert group.positions() == {m.name: head for m in models}
    assert len(_accounts(billing)) == 4
    assert _audit_positions(billing) == list(range(1, head + 1))


def test_a_model_further_on_is_given_only_what_it_has_not_projected(billing):
    accounts, audit = Follower(billing, AccountList()), Follower(billing, BillingAuditIndex())
    billing.open_account(uuid4(), "EUR")
    assert audit.run_once() > 0  # the audit index alone, ahead of the account list
    billing.open_account(uuid4(), "EUR")
    group = Followers([accounts, audit])
    assert group.run_once() > 0
    head = billing.recorder.max_notification_id()
    assert group.positions() == {"account_list": head, audit.model.name: head}
    # each event once in each model (the audit index refuses nothing twice silently:
    # its positions are its rows' keys)
    assert _audit_positions(billing) == list(range(1, head + 1))
    assert len(_accounts(billing)) == 2


class _Fails(ReadModel):
    """A model that cannot project one event (as a bad event would make a real one fail)."""

    name = "fails_on_one"
    tables = ("CREATE TABLE IF NOT EXISTS fails_on_one (position bigint PRIMARY KEY)",)
    table_names = ("fails_on_one",)
    bad: set[int] = set()

    def project_stored(self, curs, position, event) -> None:
        if position in self.bad:
            raise ValueError(f"cannot project {position}")
        curs.execute("INSERT INTO fails_on_one (position) VALUES (%s)", (position,))


def test_one_models_bad_event_is_parked_and_the_others_project_it(billing):
    billing.open_account(uuid4(), "EUR")
    first = billing.recorder.max_notification_id()
    billing.open_account(uuid4(), "EUR")
    head = billing.recorder.max_notification_id()
    fails = _Fails()
    fails.bad = {first}
    failing = Follower(billing, fails, backoff=(0.0,))
    group = Followers([Follower(billing, AccountList()), failing])
    while group.run_once():
        pass
    assert group.positions() == {"account_list": head, "fails_on_one": head}
    assert len(_accounts(billing)) == 2
    assert [s["position"] for s in failing.skipped()] == [first]
    with billing.datastore.transaction() as curs:
        curs.execute("SELECT position FROM fails_on_one ORDER BY position")
        assert [r["position"] for r in curs.fetchall()] == [
            p for p in range(1, head + 1) if p != first
        ]


def test_a_model_busy_in_another_instance_is_left_to_it(billing):
    import psycopg

    accounts = Follower(billing, AccountList())
    audit = Follower(billing, BillingAuditIndex())
    group = Followers([accounts, audit])
    billing.open_account(uuid4(), "EUR")
    head = billing.recorder.max_notification_id()
    dbname = billing.datastore.pool.kwargs["dbname"]
    kwargs = {k: v for k, v in billing.datastore.pool.kwargs.items() if k != "row_factory"}
    with psycopg.connect(**{**kwargs, "dbname": dbname}) as other, other.transaction():
        # another instance projects the account list now
        other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (accounts.lock_key,))
        assert group.run_once() > 0
        assert group.positions() == {"account_list": 0, audit.model.name: head}
    assert group.run_once() > 0
    assert group.positions() == {"account_list": head, audit.model.name: head}
    assert len(_accounts(billing)) == 1


def test_a_model_held_elsewhere_far_behind_does_not_hold_the_others_back(billing):
    """A model being rebuilt (its position far behind, its lock held by the rebuild) and
    one up to date: the read starts at the lowest position, yet the one up to date follows
    the new events beyond what that read reaches."""
    import psycopg

    accounts = Follower(billing, AccountList())
    audit = Follower(billing, BillingAuditIndex())
    for _ in range(3):
        billing.open_account(uuid4(), "EUR")
    assert Followers([accounts, audit]).run_once() > 0
    # the account list is rebuilt elsewhere: its position back to 0, its lock held
    with billing.datastore.transaction(commit=True) as curs:
        curs.execute("UPDATE readmodel_positions SET position = 0 WHERE name = 'account_list'")
    group = Followers([accounts, audit], batch_size=2)  # a read reaches 2 events
    billing.open_account(uuid4(), "EUR")
    head = billing.recorder.max_notification_id()
    kwargs = {k: v for k, v in billing.datastore.pool.kwargs.items() if k != "row_factory"}
    with psycopg.connect(**kwargs) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (accounts.lock_key,))
        while group.run_once():
            pass
        assert group.positions() == {"account_list": 0, audit.model.name: head}
    assert _audit_positions(billing) == list(range(1, head + 1))
