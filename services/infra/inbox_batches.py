"""A consumer's batch: a run of one upstream's integration events applied in one transaction.

The inbox (services.infra.inbox) hands a run of events that follow each other to
`InboxConsumer.apply_batch`, which makes a `Batch` of them, opens it on the application
(`app.batches.applying(batch)`) and runs each event's handler as its own worker, in
order. A handler knows which event it applies: its context carries that event's tracking
(upstream, position). While the batch is open, the application consults it for the
handlers of its events, and for them only (`app.batches.of(tracking)`):

- a handler's `save()` (HostledgerApplication.save) writes nothing: the new events,
  stamped as usual with the handler's actor, cause and request, and its extra SQL
  (`also`) are collected into the batch; the rule of one save per event still holds;
- the application's `repository` is the batch's view of it (`BatchRepository`): an
  aggregate that an earlier handler of the batch saved is answered as it stands in the
  batch, so each handler sees the events before it as applied, as it would one event at a
  time;

then `Batch.commit` records every collected event, in the order the handlers saved them,
with the tracking record of the batch's last event, in one transaction. Nothing of a
batch is written unless all of it is: a handler that fails, or a commit that fails,
leaves the batch unapplied, and the inbox applies its events one at a time instead.

The consumer owns the batch from its start to its commit; the application holds it only
while it is open (`OpenBatches`, one per application: at most one batch per upstream,
since an inbox applies its upstream's events under its lock). Nothing else is kept.

Only events whose handler says it can take part (`@handles(..., batch=True)`: it changes
state through `save()` only) or that no handler here takes are batched; any other event
is applied alone, exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking


class Batch:
    """What the handlers of the events at `positions` of `upstream` saved, written at once
    by `commit`."""

    def __init__(self, app, upstream: str, positions: Iterable[int]):
        self.app = app
        self.upstream = upstream
        self.positions = frozenset(positions)
        self.processing = ProcessingEvent()
        self.also: list = []
        self.saved_positions: set[int] = set()
        self.repository = BatchRepository(app, self)

    @property
    def saves(self) -> int:
        return len(self.saved_positions)

    def covers(self, tracking) -> bool:
        """Is `tracking` that of one of this batch's events?"""
        return (
            isinstance(tracking, Tracking)
            and tracking.application_name == self.upstream
            and tracking.notification_id in self.positions
        )

    def has_saved(self, tracking: Tracking) -> bool:
        """Did the handler of `tracking`'s event save already (it may save once)?"""
        return tracking.notification_id in self.saved_positions

    def collect(self, tracking: Tracking, processing_event: ProcessingEvent) -> None:
        """The save of the handler of `tracking`'s event: its new events and extra SQL
        join the batch."""
        self.saved_positions.add(tracking.notification_id)
        self.processing.events.extend(processing_event.events)
        self.processing.aggregates.update(processing_event.aggregates)
        kwargs = dict(processing_event.saved_kwargs)
        self.also.extend(kwargs.pop("also", None) or ())
        self.processing.saved_kwargs.update(kwargs)

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


class BatchRepository:
    """The application's repository as the handlers of one batch see it: an aggregate that
    a handler of the batch saved is answered as the batch left it (its latest version
    only); everything else is the application's own repository's."""

    def __init__(self, app, batch: Batch):
        self._app = app
        self._batch = batch

    @property
    def _repository(self):
        return self._app._repository  # the library's, which the application made

    def get(self, aggregate_id, *, version=None, **kwargs):
        if version is None:
            found = self._batch.aggregate(aggregate_id)
            if found is not None:
                return found
        return self._repository.get(aggregate_id, version=version, **kwargs)

    def __contains__(self, aggregate_id) -> bool:
        return self._batch.aggregate(aggregate_id) is not None or aggregate_id in self._repository

    def __getattr__(self, name):
        return getattr(self._repository, name)


class OpenBatches:
    """The batches being applied to one application now, by upstream."""

    def __init__(self):
        self._by_upstream: dict[str, Batch] = {}

    def __bool__(self) -> bool:
        return bool(self._by_upstream)

    @contextmanager
    def applying(self, batch: Batch) -> Iterator[Batch]:
        """The handlers of `batch`'s events save into it meanwhile."""
        if batch.upstream in self._by_upstream:
            raise RuntimeError(f"a batch of {batch.upstream} events is being applied already")
        self._by_upstream[batch.upstream] = batch
        try:
            yield batch
        finally:
            del self._by_upstream[batch.upstream]

    def of(self, tracking) -> Batch | None:
        """The open batch of the event `tracking` names (the event whose handler runs
        now, as its context says), or None: not a handler, or its event is applied alone."""
        if not self._by_upstream or not isinstance(tracking, Tracking):
            return None
        batch = self._by_upstream.get(tracking.application_name)
        return batch if batch is not None and batch.covers(tracking) else None
