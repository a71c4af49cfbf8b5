"""Batches of an upstream's events on the real database: one transaction with the tracking
of the last event, in order, once; a batch that fails is applied one event at a time.

As in test_inbox.py, the upstream is a real customers application read as its
`integration_events` RPC reads it and the downstream a real billing application; the
batch is applied as InboxConsumer.apply_batch does, without nameko's workers.
"""

import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from services.billing.domain import PersonalAccount
from services.infra.application import _USED
from services.infra.context import Actor, acting
from services.infra.inbox import Inbox, list_parked
from services.infra.inbox_batches import Batch
from services.infra.relay import integration_events


def _register(customers, n):
    return [
        customers.register_customer(
            {
                "kind": "individual",
                "email": f"b{i}-{id(customers)}@example.com",
                "country": "DE",
                "contact_person": f"P{i}",
                "password": "z" * 12,
            }
        )["id"]
        for i in range(n)
    ]


def _chain(envs):
    previous = 0
    out = []
    for env in envs:
        out.append(dict(env, previous_position=previous))
        previous = env["position"]
    return out


def _published(customers):
    return _chain(integration_events(customers, 0, 1000)["events"])


def _opened(billing):
    topic = get_topic(PersonalAccount.Opened)
    return [
        str(billing.mapper.to_domain_event(n).customer_id)
        for n in billing.recorder.select_notifications(1, 10000, topics=[topic])
    ]


class _Handlers:
    """The consumer's two ways of applying, around one handler function."""

    def __init__(self, billing, handler):
        self.billing = billing
        self.handler = handler
        self.calls: list[tuple[str, int]] = []  # ("alone" | "batch", position)
        self.commits = 0

    def _run(self, event, tracking, how):
        self.calls.append((how, event.position))
        with acting(Actor("service", "billing"), cause=event.ref, tracking=tracking) as cur:
            self.handler(event)
            return cur.tracking, cur.also

    def apply(self, event, tracking):
        left, also = self._run(event, tracking, "alone")
        if left is not _USED or also:
            self.billing.recorder.record_alone(tracking=None if left is _USED else left, also=also)

    def apply_batch(self, events, tracking):
        batch = Batch(self.billing, "customers", [e.position for e in events])
        with self.billing.batches.applying(batch):
            for event in events:
                self._run(event, Tracking("customers", event.position), "batch")
        batch.commit(tracking)
        self.commits += 1


def _make_inbox(customers, billing, handler=None, can_batch=None):
    def open_account(event):
        billing.open_account(event.payload["customer_id"], event.payload["currency"])

    handlers = _Handlers(billing, handler or open_account)
    inbox = Inbox(
        billing,
        "customers",
        apply=handlers.apply,
        fetch=lambda after, until: integration_events(customers, after, 500, until),
        attempts=2,
        backoff=(0.0,),
        apply_batch=handlers.apply_batch,
        can_batch=can_batch,
    )
    return inbox, handlers


@pytest.fixture(autouse=True)
def _no_leftover_context(billing):
    yield
    from services.infra.context import current

    assert current.tracking is None
    assert not billing.batches  # every batch closed once applied (or failed)


def test_deliveries_waiting_together_are_applied_in_one_transaction(customers, billing):
    ids = _register(customers, 5)
    inbox, handlers = _make_inbox(customers, billing)
    envs = _published(customers)
    outcomes, error = inbox.receive_many(envs)
    assert error is None and outcomes == ["applied"] * 5
    assert handlers.commits == 1 and inbox.stats.batches == 1
    assert handlers.calls == [("batch", e["position"]) for e in envs]
    assert _opened(billing) == ids  # in order
    assert inbox.last_position() == envs[-1]["position"]
    # every event of it carries its own cause (the event it answers)
    causes = [
        billing.mapper.to_domain_event(n).cause
        for n in billing.recorder.select_notifications(1, 10000)
        if n.topic == get_topic(PersonalAccount.Opened)
    ]
    assert causes == [f"customers:{e['position']}" for e in envs]
    # delivered again (a crash between commit and acknowledgement): nothing applied twice
    outcomes, error = inbox.receive_many(envs)
    assert error is None and outcomes == ["duplicate"] * 5
    assert _opened(billing) == ids


def test_handlers_of_one_batch_see_each_others_changes(customers, billing):
    ids = _register(customers, 3)

    def handler(event):
        customer_id = event.payload["customer_id"]
        if str(customer_id) == ids[2]:
            # the account opened two events before, in the same batch, not yet committed
            billing.update_buyer(ids[0], {"legal_name": "Changed in the batch"})
        else:
            billing.open_account(customer_id, event.payload["currency"])

    inbox, _ = _make_inbox(customers, billing, handler=handler)
    outcomes, error = inbox.receive_many(_published(customers))
    assert error is None and outcomes == ["applied"] * 3
    assert inbox.stats.batches == 1 and inbox.stats.batches_failed == 0
    account = billing.repository.get(PersonalAccount.id_for(ids[0], "EUR"))
    assert account.buyer["legal_name"] == "Changed in the batch"


def test_a_failing_handler_neither_loses_nor_reorders_the_others(customers, billing):
    ids = _register(customers, 4)

    def handler(event):
        if str(event.payload["customer_id"]) == ids[2]:
            raise RuntimeError("the handler has a bug")
        billing.open_account(event.payload["customer_id"], event.payload["currency"])

    inbox, handlers = _make_inbox(customers, billing, handler=handler)
    envs = _published(customers)
    outcomes, error = inbox.receive_many(envs)
    assert error is None
    assert outcomes == ["applied", "applied", "parked", "applied"]
    assert inbox.stats.batches_failed == 1
    # the batch wrote nothing; then each event alone, in order, the bad one twice then parked
    positions = [e["position"] for e in envs]
    assert handlers.calls[:3] == [("batch", p) for p in positions[:3]]
    assert handlers.calls[3:] == [
        ("alone", positions[0]),
        ("alone", positions[1]),
        ("alone", positions[2]),
        ("alone", positions[2]),
        ("alone", positions[3]),
    ]
    assert _opened(billing) == [ids[0], ids[1], ids[3]]
    [parked] = list_parked(billing)
    assert parked["position"] == positions[2]
    assert inbox.last_position() == positions[-1]


def test_an_event_that_cannot_batch_is_applied_alone_between_batches(customers, billing):
    ids = _register(customers, 5)
    envs = _published(customers)
    alone = envs[2]["position"]
    inbox, handlers = _make_inbox(
        customers, billing, can_batch=lambda event: event.position != alone
    )
    outcomes, error = inbox.receive_many(envs)
    assert error is None and outcomes == ["applied"] * 5
    assert [how for how, _ in handlers.calls] == ["batch", "batch", "alone", "batch", "batch"]
    assert handlers.commits == 2
    assert _opened(billing) == ids


def test_a_gap_before_a_run_is_filled_and_the_run_still_batched(customers, billing):
    ids = _register(customers, 6)
    envs = _published(customers)
    inbox, _ = _make_inbox(customers, billing)
    # the first two never arrived: read from the log (as a batch), then the run delivered
    outcomes, error = inbox.receive_many(envs[2:])
    assert error is None and outcomes == ["applied"] * 4
    assert _opened(billing) == ids
    assert inbox.stats.gaps_filled == 2


def test_catch_up_applies_the_log_in_batches(customers, billing):
    ids = _register(customers, 7)
    inbox, handlers = _make_inbox(customers, billing)
    assert inbox.catch_up() == 7
    assert handlers.commits == 1
    assert _opened(billing) == ids
    assert inbox.catch_up() == 0


def test_a_stopping_process_finishes_the_batch_and_leaves_the_rest(customers, billing):
    ids = _register(customers, 5)
    envs = _published(customers)
    alone = envs[2]["position"]
    inbox, _ = _make_inbox(customers, billing, can_batch=lambda event: event.position != alone)
    # asked to stop while the deliveries were read: the batch in hand (the first two
    # events, up to the one that cannot batch) is applied, the rest is left
    outcomes, error = inbox.receive_many(envs, stopping=lambda: True)
    assert error is None and outcomes == ["applied", "applied"]
    assert _opened(billing) == ids[:2]
    assert inbox.last_position() == envs[1]["position"]
    outcomes, error = inbox.receive_many(envs)
    assert outcomes == ["duplicate", "duplicate", "applied", "applied", "applied"]
    assert _opened(billing) == ids


def test_events_the_position_passed_meanwhile_are_not_applied_again(customers, billing):
    _register(customers, 3)
    envs = _published(customers)
    inbox, handlers = _make_inbox(customers, billing)
    real = handlers.apply_batch

    def skipped_meanwhile(events, tracking):
        # a tool moves the position past these events while the batch is being applied
        billing.recorder.record_alone(tracking=tracking)
        real(events, tracking)

    inbox.apply_batch = skipped_meanwhile
    outcomes, error = inbox.receive_many(envs)
    assert error is None and outcomes == ["duplicate"] * 3
    assert [how for how, _ in handlers.calls] == ["batch"] * 3  # not run again one by one
    assert _opened(billing) == []


def test_only_the_handlers_of_the_open_batch_see_it_and_save_into_it(customers, billing):
    from eventsourcing.application import AggregateNotFoundError

    ids = _register(customers, 3)
    first = PersonalAccount.id_for(ids[0], "EUR")
    seen = {}

    def handler(event):
        billing.open_account(event.payload["customer_id"], event.payload["currency"])
        if str(event.payload["customer_id"]) != ids[1]:
            return
        # the handler itself sees the batch: the account opened by the handler before, and
        # its own, saved just now (neither committed yet)
        seen["handler"] = billing.repository.get(first).customer_id
        own = billing.repository.get(PersonalAccount.id_for(ids[1], "EUR"))
        seen["own"] = own.customer_id
        # any other code running meanwhile (a request: no event's tracking in its context)
        # sees the store only, and its save is written at once, not into the batch
        with acting(Actor("staff", "s1")):
            try:
                billing.repository.get(first)
            except AggregateNotFoundError:
                seen["request"] = "not found"
            billing.open_account(ids[2], "USD")
        seen["request_saved"] = str(billing.repository.get(first).customer_id)

    inbox, handlers = _make_inbox(customers, billing, handler=handler)
    outcomes, error = inbox.receive_many(_published(customers))
    assert error is None and outcomes == ["applied"] * 3
    assert handlers.commits == 1 and inbox.stats.batches_failed == 0
    assert str(seen["handler"]) == ids[0] and str(seen["own"]) == ids[1]
    assert seen["request"] == "not found"
    assert seen["request_saved"] == ids[0]  # back in the handler: the batch again
    # the request's save was written on its own, before the batch (its account first)
    opened = [
        billing.mapper.to_domain_event(n)
        for n in billing.recorder.select_notifications(1, 10000)
        if n.topic == get_topic(PersonalAccount.Opened)
    ]
    assert [(str(e.customer_id), e.currency) for e in opened] == [
        (ids[2], "USD"),
        (ids[0], "EUR"),
        (ids[1], "EUR"),
        (ids[2], "EUR"),
    ]


def test_a_handler_saves_once_in_a_batch_too(customers, billing):
    ids = _register(customers, 3)
    refused = []

    def handler(event):
        billing.open_account(event.payload["customer_id"], event.payload["currency"])
        if str(event.payload["customer_id"]) == ids[1]:
            try:
                billing.open_account(event.payload["customer_id"], "USD")  # a second save
            except Exception as exc:
                refused.append(type(exc).__name__)
                raise

    inbox, handlers = _make_inbox(customers, billing, handler=handler)
    envs = _published(customers)
    outcomes, error = inbox.receive_many(envs)
    assert error is None
    # refused in the batch (which wrote nothing), then alone, as it always was: its first
    # save carried the tracking, the second is refused, and in the next attempt the save
    # finds the event applied (its tracking recorded)
    assert refused == ["OneSavePerEvent", "OneSavePerEvent", "IntegrityError"]
    assert inbox.stats.batches_failed == 1
    assert [how for how, _ in handlers.calls[:2]] == ["batch", "batch"]
    assert outcomes == ["applied", "duplicate", "applied"]
    assert _opened(billing) == ids
