"""The aggregate base every service's domain uses: timestamps from the one clock."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import Aggregate as _Aggregate

from services.infra import clock


class Aggregate(_Aggregate):
    class Event(_Aggregate.Event):
        @staticmethod
        def create_timestamp() -> datetime:
            return clock.now()

    class Created(Event, _Aggregate.Created):
        pass


class DomainError(Exception):
    """Base of the domain's own named errors; the application turns them into contract errors."""
