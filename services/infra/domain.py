"""The aggregate base every service's domain uses: timestamps from the one clock."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate as _Aggregate
from eventsourcing.domain import event

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


_IDEMPOTENCY_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/idempotency")


class IdempotencyKey(Aggregate):
    """The first answer to a request sent with this key; saved in the same save as what
    the request did, so a retried request is answered, never done twice."""

    @event("Used")
    def __init__(self, scope: str, key: str, request_hash: str, answer: dict):
        self.scope = scope
        self.key = key
        self.request_hash = request_hash
        self.answer = answer

    @staticmethod
    def create_id(scope: str, key: str, **_) -> UUID:
        return IdempotencyKey.id_for(scope, key)

    @staticmethod
    def id_for(scope: str, key: str) -> UUID:
        return uuid5(_IDEMPOTENCY_NS, f"{scope}:{key}")
