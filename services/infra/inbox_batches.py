"""A consumer's batch: a run of one upstream's integration events applied in one transaction.

The inbox (services.infra.inbox) hands a run of events that follow each other to
`InboxConsumer.apply_batch`, which opens a `Unit` for them and runs each event's
handler as its own worker, in order. While the unit is open:

- a handler's `save()` (HostledgerApplication.save) writes nothing: the new events,
  stamped as usual with the handler's actor, cause and request, and its extra SQL
  (`also`) are collected into the unit; the rule of one save per event still holds;
- `repository.get` of an aggregate that an earlier handler of the batch saved answers
  that aggregate as it stands in the batch: each handler sees the events before it as
  applied, as it would one event at a time;

then `Unit.commit` records every collected event, in the order the handlers saved them,
with the tracking record of the batch's last event, in one transaction. Nothing of a
batch is written unless all of it is: a handler that fails, or a commit that fails,
leaves the batch unapplied, and the inbox applies its events one at a time instead.

Only events whose handler says it can take part (`@handles(..., batch=True)`: it changes
state through `save()` only) or that no handler here takes are batched; any other event
is applied alone, exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import eventlet
from eventsourcing.application import ProcessingEvent, Repository

from services.infra import context

# (upstream, position) of every event in an open batch -> its unit
_OPEN: dict[tuple[str, int], Unit] = {}
# a handler's green thread -> the unit it saves into (found once, kept after its save)
_WORKERS: dict = {}


class Unit:
    """What the handlers of one batch saved, written at once by `commit`."""

    def __init__(self, app):
        self.app = app
        self.processing = ProcessingEvent()
        self.also: list = []
        self.saves = 0
        self._keys: list[tuple[str, int]] = []
        self._workers: list = []

    def collect(self, processing_event: ProcessingEvent) -> None:
        """A handler's save: its new events and extra SQL join the batch."""
        self.processing.events.extend(processing_event.events)
        self.processing.aggregates.update(processing_event.aggregates)
        kwargs = dict(processing_event.saved_kwargs)
        self.also.extend(kwargs.pop("also", None) or ())
        self.processing.saved_kwargs.update(kwargs)
        self.saves += 1

    def add_also(self, statements: Iterable) -> None:
        """Extra SQL of a handler that saved nothing."""
        self.also.extend(statements)

    def aggregate(self, aggregate_id):
        """The aggregate as a handler of this batch saved it, or None."""
        return self.processing.aggregates.get(aggregate_id)

    def commit(self, tracking) -> list:
        """Write everything collected, with `tracking`, in one transaction."""
        processing = self.processing
        processing.tracking = tracking
        processing.saved_kwargs["also"] = self.also
        recordings = self.app._record(processing)
        self.app._take_snapshots(processing)
        self.app._notify(recordings)
        return recordings


@contextmanager
def opened(unit: Unit, keys: Iterable[tuple[str, int]]) -> Iterator[Unit]:
    """Handlers of the events named by `keys` (upstream, position) save into `unit`
    meanwhile."""
    unit._keys = list(keys)
    for key in unit._keys:
        _OPEN[key] = unit
    try:
        yield unit
    finally:
        for key in unit._keys:
            if _OPEN.get(key) is unit:
                del _OPEN[key]
        for worker in unit._workers:
            _WORKERS.pop(worker, None)
        unit._workers = []


def current_unit() -> Unit | None:
    """The batch the code running now (a handler's worker) saves into, if any."""
    me = eventlet.getcurrent()
    unit = _WORKERS.get(me)
    if unit is not None:
        return unit
    tracking = context.current.tracking
    position = getattr(tracking, "notification_id", None)
    if position is None:
        return None
    unit = _OPEN.get((tracking.application_name, position))
    if unit is not None:
        _WORKERS[me] = unit
        unit._workers.append(me)
    return unit


class BatchRepository(Repository):
    """The application's repository, which answers an aggregate saved earlier in the
    current batch as that batch left it (the latest version only)."""

    def get(self, aggregate_id, *, version=None, **kwargs):
        if version is None and (_OPEN or _WORKERS):
            unit = current_unit()
            if unit is not None:
                found = unit.aggregate(aggregate_id)
                if found is not None:
                    return found
        return super().get(aggregate_id, version=version, **kwargs)
