"""Who is acting, for the code running now.

Kept per green thread (eventlet patches `threading.local`): the event-store
dependency binds it from the worker's context data before a worker runs, and
`HostledgerApplication.save` stamps it on every new event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ACTOR_KINDS = ("staff", "client", "system", "mail", "service", "anonymous")


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"unknown actor kind {self.kind!r}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id}

    def header(self) -> str:
        return f"{self.kind}:{self.id or ''}"

    @classmethod
    def from_header(cls, value: str | None) -> Actor | None:
        if not value or ":" not in value:
            return None
        kind, _, ident = value.partition(":")
        return cls(kind, ident or None)

    @classmethod
    def from_dict(cls, data: dict | None) -> Actor | None:
        if not data:
            return None
        return cls(data["kind"], data.get("id"))


SYSTEM = Actor("system")

# context-data keys nameko carries from worker to worker over RPC
ACTOR_HEADER = "hl_actor"
ON_BEHALF_OF_HEADER = "hl_on_behalf_of"
# the request a command belongs to (the caller's scoped Idempotency-Key, or one the gateway
# made for the HTTP request), and when its caller stops waiting (seconds since the epoch)
REQUEST_HEADER = "hl_request"
DEADLINE_HEADER = "hl_deadline"
# the request id the operators follow in the logs (the gateway's X-Request-Id): carried
# over RPC, kept in the events a request stores, sent on with them (services.infra.logs)
REQUEST_ID_HEADER = "hl_request_id"


class _Current(threading.local):
    actor: Actor | None = None
    on_behalf_of: Actor | None = None
    cause: str | None = None
    tracking = None  # an eventsourcing Tracking for the event being consumed, used once
    also: list | None = None  # extra SQL to run in the same transaction as the next save
    request: str | None = None  # the request id the caller sent (REQUEST_HEADER)
    deadline: float | None = None  # when the caller stops waiting (DEADLINE_HEADER)
    # the command being run for a request: its key in handled_requests, and whether a
    # save recorded it there already (services.infra.requests)
    command_key: str | None = None
    command_recorded: bool = False
    # (answer, its stored JSON) when the command gave its answer before its first save
    # (requests.answer_with_save), and whether that save kept it
    command_answer: tuple | None = None
    command_answer_kept: bool = False
    request_id: str | None = None  # the request being served, for logs and events


current = _Current()


@contextmanager
def tracing(request_id: str | None) -> Iterator[None]:
    """Log (and stamp new events) as part of `request_id` meanwhile (None: of no request)."""
    saved = current.request_id
    current.request_id = request_id or None
    try:
        yield
    finally:
        current.request_id = saved


@contextmanager
def acting(
    actor: Actor | None,
    on_behalf_of: Actor | None = None,
    cause: str | None = None,
    tracking=None,
    also: list | None = None,
) -> Iterator[_Current]:
    saved = (current.actor, current.on_behalf_of, current.cause, current.tracking, current.also)
    current.actor, current.on_behalf_of, current.cause = actor, on_behalf_of, cause
    current.tracking, current.also = tracking, also
    try:
        yield current
    finally:
        (current.actor, current.on_behalf_of, current.cause, current.tracking, current.also) = saved
