"""The aggregate bases every service's domain uses: timestamps from the one clock, and
`KeyedIndex` for aggregates found by a key (a login name, an invoice, a promo code)."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, ClassVar
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


class KeyedIndex(Aggregate):
    """An aggregate whose id is derived from a key, so it is read by that key and a second
    one for the same key cannot be saved (its creation conflicts with the first).

    A subclass names the `__init__` arguments that make the key and how the id is made:

        class LoginName(KeyedIndex):
            id_namespace = _INDEX_NS
            id_prefix = "login"
            key_fields = ("name",)

            @classmethod
            def key_text(cls, name):
                return name.strip().lower()

    The id is `uuid5(id_namespace, "<id_prefix>:<key_text(*key)>")` (without a prefix:
    `uuid5(id_namespace, key_text(*key))`); `key_text` joins the key's parts with ":" unless
    a subclass normalises them. Ids are stored: a subclass must never change how they
    are made.
    """

    id_namespace: ClassVar[UUID]
    id_prefix: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.key_fields and "create_id" not in cls.__dict__:
            # the library passes create_id() the __init__ arguments its signature names
            fields = cls.key_fields

            def create_id(**init_kwargs: Any) -> UUID:
                return cls.id_for(*(init_kwargs[name] for name in fields))

            create_id.__signature__ = inspect.Signature(
                [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in fields]
            )
            cls.create_id = staticmethod(create_id)
        super().__init_subclass__(**kwargs)

    @classmethod
    def key_text(cls, *key: Any) -> str:
        return ":".join(str(part) for part in key)

    @classmethod
    def id_for(cls, *key: Any) -> UUID:
        """The id of the aggregate for `key` (the values of `key_fields`, in order)."""
        if len(key) != len(cls.key_fields):
            raise TypeError(f"{cls.__name__} is found by {cls.key_fields}, not {key!r}")
        text = cls.key_text(*key)
        return uuid5(cls.id_namespace, f"{cls.id_prefix}:{text}" if cls.id_prefix else text)


class IdempotencyKey(KeyedIndex):
    """The first answer to a request sent with this key; saved in the same save as what
    the request did, so a retried request is answered, never done twice."""

    id_namespace = uuid5(NAMESPACE_URL, "https://hostledger.invalid/idempotency")
    key_fields = ("scope", "key")

    @event("Used")
    def __init__(self, scope: str, key: str, request_hash: str, answer: dict):
        self.scope = scope
        self.key = key
        self.request_hash = request_hash
        self.answer = answer
