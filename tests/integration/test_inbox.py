"""The consumer's rule on the real database: in order, once, gaps filled, failures parked.

The upstream is a real customers application; `fetch` reads its log exactly as its
`integration_events` RPC does; the downstream is a real billing application.
"""

import pytest
from eventsourcing.utils import get_topic

from services.billing.domain import PersonalAccount
from services.infra.application import _USED
from services.infra.context import Actor, acting
from services.infra.inbox import Inbox, list_parked
from services.infra.relay import integration_events


def _register(customers, n):
    return [
        customers.register_customer(
            {
                "kind": "individual",
                "email": f"i{i}-{id(customers)}@example.com",
                "country": "DE",
                "contact_person": f"P{i}",
                "password": "z" * 12,
            }
        )["id"]
        for i in range(n)
    ]


def _published(customers):
    return integration_events(customers, 0, 1000)["events"]


def _make_inbox(customers, billing, handler=None, attempts=3):
    calls = []

    def open_account(event):
        calls.append(event.position)
        billing.open_account(event.payload["customer_id"], event.payload["currency"])

    handler = handler or open_account

    def apply(event, tracking):
        with acting(Actor("service", "billing"), cause=event.ref, tracking=tracking) as cur:
            handler(event)
            if cur.tracking is not _USED:
                billing.recorder.record_alone(tracking=cur.tracking)

    inbox = Inbox(
        billing,
        "customers",
        apply=apply,
        fetch=lambda after, until: integration_events(customers, after, 500, until),
        attempts=attempts,
        backoff=(0.0,),
    )
    return inbox, calls


def _opened(billing):
    topic = get_topic(PersonalAccount.Opened)
    return [
        billing.mapper.to_domain_event(n).customer_id
        for n in billing.recorder.select_notifications(1, 10000, topics=[topic])
    ]


def test_in_order_delivery_applies_each_once(customers, billing):
    ids = _register(customers, 3)
    inbox, _ = _make_inbox(customers, billing)
    for env in _chain(_published(customers)):
        assert inbox.receive(env) == "applied"
    assert [str(c) for c in _opened(billing)] == ids
    assert inbox.last_position() == _published(customers)[-1]["position"]


def test_duplicates_are_skipped(customers, billing):
    _register(customers, 2)
    inbox, calls = _make_inbox(customers, billing)
    envs = _chain(_published(customers))
    for env in envs + envs + [envs[0]]:
        inbox.receive(env)
    assert len(_opened(billing)) == 2
    assert len(calls) == 2
    assert inbox.stats.duplicates == 3


def test_out_of_order_and_lost_events_are_filled_in_order(customers, billing):
    ids = _register(customers, 4)
    inbox, calls = _make_inbox(customers, billing)
    envs = _chain(_published(customers))
    # the last arrives first; the second is never delivered
    assert inbox.receive(envs[3]) == "applied"
    assert [str(c) for c in _opened(billing)] == ids
    assert calls == [e["position"] for e in envs]
    for env in (envs[0], envs[2]):
        assert inbox.receive(env) == "duplicate"
    assert inbox.stats.gaps_filled == 3


def test_catch_up_applies_what_was_never_delivered(customers, billing):
    ids = _register(customers, 5)
    inbox, _ = _make_inbox(customers, billing)
    assert inbox.catch_up() == 5
    assert [str(c) for c in _opened(billing)] == ids
    assert inbox.catch_up() == 0


def test_failing_handler_is_retried_then_parked_and_the_stream_goes_on(customers, billing):
    ids = _register(customers, 3)
    attempts = []

    def flaky(event):
        attempts.append(event.position)
        if str(event.payload["customer_id"]) == ids[1]:
            raise RuntimeError("the handler has a bug")
        billing.open_account(event.payload["customer_id"], event.payload["currency"])

    inbox, _ = _make_inbox(customers, billing, handler=flaky, attempts=3)
    outcomes = [inbox.receive(env) for env in _chain(_published(customers))]
    assert outcomes == ["applied", "parked", "applied"]
    envs = _published(customers)
    assert attempts.count(envs[1]["position"]) == 3
    [parked] = list_parked(billing)
    assert parked["position"] == envs[1]["position"]
    assert "the handler has a bug" in parked["error"]
    assert parked["envelope"]["aggregate_id"] == ids[1]
    assert [str(c) for c in _opened(billing)] == [ids[0], ids[2]]
    # parked counts as passed: redelivery does not run it again
    assert inbox.receive(_chain(envs)[1]) == "duplicate"


def test_handler_saving_twice_is_refused(customers, billing):
    _register(customers, 1)

    def saves_twice(event):
        billing.open_account(event.payload["customer_id"], "EUR")
        billing.open_account(event.payload["customer_id"], "USD")

    inbox, _ = _make_inbox(customers, billing, handler=saves_twice, attempts=1)
    assert inbox.receive(_chain(_published(customers))[0]) == "parked"
    assert "may save only once" in list_parked(billing)[0]["error"]


def _chain(envs):
    previous = None
    out = []
    for env in envs:
        out.append(dict(env, previous_position=previous))
        previous = env["position"]
    return out


@pytest.fixture(autouse=True)
def _no_leftover_context():
    yield
    from services.infra.context import current

    assert current.tracking is None


def test_stray_envelope_beyond_the_log_does_not_stall_the_stream(customers, billing):
    ids = _register(customers, 2)
    inbox, _ = _make_inbox(customers, billing)
    envs = _chain(_published(customers))
    stray = dict(envs[0], position=10**9, previous_position=10**9 - 1)
    assert inbox.receive(stray) == "parked"
    forged = dict(envs[1], position=10**9 + 1, previous_position=10**9)
    forged["payload"] = dict(forged["payload"], customer_id="not-a-uuid")
    assert inbox.receive(forged) == "parked"
    # what the log really holds was applied while looking for the stray's position
    assert inbox.last_position() == envs[-1]["position"]
    assert [str(c) for c in _opened(billing)] == ids
    for env in envs:
        assert inbox.receive(env) == "duplicate"
    assert {p["position"] for p in list_parked(billing)} == {10**9, 10**9 + 1}


def test_corrupted_envelope_is_replaced_by_the_upstream_copy(customers, billing):
    ids = _register(customers, 1)
    inbox, _ = _make_inbox(customers, billing)
    env = _chain(_published(customers))[0]
    env["payload"] = dict(env["payload"], currency="euro")
    assert inbox.receive(env) == "applied"
    assert [str(c) for c in _opened(billing)] == ids
    assert list_parked(billing) == []


def test_a_catch_up_passes_over_what_the_position_passed_while_it_read(customers, billing):
    """A page of the upstream's log can take long to come (the upstream slow or away); what
    the position passed meanwhile (a tool that marks events as applied) is passed over,
    not tried one event at a time as duplicates."""
    from eventsourcing.persistence import Tracking

    _register(customers, 6)
    envs = _published(customers)
    inbox, calls = _make_inbox(customers, billing)
    pages = []

    def fetch(after, until):
        pages.append(after)
        if len(pages) == 2:  # while the second page is asked for, the position moves on
            billing.recorder.record_alone(tracking=Tracking("customers", envs[3]["position"]))
        return integration_events(customers, after, 2, until)

    inbox.fetch = fetch
    assert inbox.catch_up() == 4
    assert calls == [envs[i]["position"] for i in (0, 1, 4, 5)]
    assert inbox.stats.duplicates == 0
    assert inbox.last_position() == envs[-1]["position"]
