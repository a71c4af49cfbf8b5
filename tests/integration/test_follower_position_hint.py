"""A read-model follower reads its next batch from where its last one left the model, and
still notices when something else moved the model (another instance, a rebuild)."""

from uuid import uuid4

from services.billing.readmodels import AccountList
from services.infra.readmodels import Follower


def _rows(billing) -> list:
    with billing.datastore.transaction() as curs:
        curs.execute("SELECT customer_id FROM account_list ORDER BY opened_at, customer_id")
        return [r["customer_id"] for r in curs.fetchall()]


def test_the_next_batch_is_read_without_asking_where_the_model_is(billing, monkeypatch):
    follower = Follower(billing, AccountList())
    billing.open_account(uuid4(), "EUR")
    assert follower.run_once() > 0
    asked = []
    real = Follower.position
    monkeypatch.setattr(Follower, "position", lambda self: asked.append(1) or real(self))
    billing.open_account(uuid4(), "EUR")
    assert follower.run_once() > 0
    assert asked == []
    # nothing more to read: the next round asks the database again
    assert follower.run_once() == 0
    assert follower.run_once() == 0
    assert asked == [1]
    assert len(_rows(billing)) == 2


def test_a_model_moved_by_someone_else_is_noticed_and_nothing_is_projected_twice(billing):
    mine, other = Follower(billing, AccountList()), Follower(billing, AccountList())
    billing.open_account(uuid4(), "EUR")
    assert mine.run_once() > 0
    # another instance projects the next events, then the model is rebuilt from the log
    billing.open_account(uuid4(), "EUR")
    assert other.run_once() > 0
    other.rebuild()
    # this follower's idea of the position is stale: it projects nothing, then goes on
    assert mine.run_once() == 0
    billing.open_account(uuid4(), "EUR")
    assert mine.run_once() > 0
    assert mine.position() == billing.recorder.max_notification_id()
    assert len(_rows(billing)) == 3


def test_its_own_rebuild_replays_the_whole_log(billing):
    follower = Follower(billing, AccountList())
    for _ in range(3):
        billing.open_account(uuid4(), "EUR")
    assert follower.run_once() > 0  # it knows where it left the model
    assert follower.rebuild() == billing.recorder.max_notification_id()
    assert len(_rows(billing)) == 3
