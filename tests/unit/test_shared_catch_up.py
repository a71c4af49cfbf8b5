"""Invoices issued side by side share one read of the customers service's log
(services.infra.store.SharedPass, behind the billing service's `customers_caught_up`),
and none is answered by a read that began before it asked: a discount the customers
service published a moment before an invoice was asked for is always applied first."""

from __future__ import annotations

import eventlet
from eventlet.event import Event

from services.infra.store import CaughtUp, SharedPass


class _Log:
    """An upstream's log read by a pass that takes as long as the test lets it: each pass
    sees the entries written before it began."""

    def __init__(self):
        self.written = 0
        self.passes: list[int] = []  # what each pass began from
        self.applied = 0
        self.release = Event()
        self.fail_next = False

    def read(self) -> None:
        begun_at = self.written
        self.passes.append(begun_at)
        self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the upstream is away")
        self.applied = max(self.applied, begun_at)


def _ask(shared: SharedPass, log: _Log, seen: list):
    """A request: what it saw applied when it was answered, beside what had been
    written when it asked."""
    asked_at = log.written
    shared.after_now(log.read)
    seen.append((asked_at, log.applied))


def _settle():
    for _ in range(5):
        eventlet.sleep(0)


def test_requests_at_once_share_one_pass_and_each_sees_what_was_written_before_it_asked():
    shared, log, seen = SharedPass(), _Log(), []
    log.written = 1
    first = eventlet.spawn(_ask, shared, log, seen)
    _settle()
    assert log.passes == [1]  # the first pass runs, held open
    # written while the first pass runs: the first pass may not have read it
    log.written = 2
    later = [eventlet.spawn(_ask, shared, log, seen) for _ in range(6)]
    _settle()
    log.release.send(True)
    first.wait()
    for g in later:
        g.wait()

    # seven requests, two passes: the six that asked during the first share the second
    assert log.passes == [1, 2]
    assert len(seen) == 7
    assert all(applied >= asked_at for asked_at, applied in seen), seen


def test_a_request_after_a_pass_ended_gets_a_pass_of_its_own():
    shared, log, seen = SharedPass(), _Log(), []
    log.release.send(True)
    log.written = 1
    _ask(shared, log, seen)
    log.written = 2
    _ask(shared, log, seen)
    assert log.passes == [1, 2]
    assert seen == [(1, 1), (2, 2)]


def test_a_failed_pass_answers_its_error_and_the_next_request_runs_its_own():
    shared, log, seen = SharedPass(), _Log(), []
    log.written = 1
    log.fail_next = True
    errors = []

    def ask_failing():
        try:
            _ask(shared, log, seen)
        except ConnectionError as exc:
            errors.append(exc)

    first = eventlet.spawn(ask_failing)
    _settle()
    waiting = eventlet.spawn(_ask, shared, log, seen)
    _settle()
    log.release.send(True)
    first.wait()
    waiting.wait()

    assert len(errors) == 1
    assert log.passes == [1, 1]  # the waiting request did not count the failed pass
    assert seen == [(1, 1)]


def test_each_container_has_passes_of_its_own():
    """The service class declares it once; each container running the class binds its
    own, so one container's pass never answers another's request."""

    class _Container:
        service_name = "billing"

    declared = CaughtUp("customers")
    bound = [declared.bind(_Container(), "customers_caught_up") for _ in range(2)]
    for provider in bound:
        provider.setup()

    assert declared.shared is None
    assert bound[0].shared is not bound[1].shared
    assert [p.upstream for p in bound] == ["customers", "customers"]
