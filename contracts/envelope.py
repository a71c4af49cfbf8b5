"""The integration event envelope: what every relay publishes and every consumer reads.

`position` is the event's notification id in the source's log; `previous_position`
is the position of the event the source published just before it (None for the
first), so a consumer can tell a duplicate, the next event, or a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from contracts.fields import Json, Text


class ActorSchema(Schema):
    kind = Text(
        required=True,
        validate=validate.OneOf(["staff", "client", "system", "mail", "service", "anonymous"]),
    )
    id = Text(load_default=None, allow_none=True)


class EnvelopeSchema(Schema):
    class Meta:
        # a field a later version adds to the envelope is ignored, not poison: its events
        # still apply while the services are upgraded one after another (the payload is
        # checked by each event's own contract)
        unknown = EXCLUDE

    source = Text(required=True, validate=validate.Length(min=1))
    position = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    previous_position = fields.Integer(load_default=None, allow_none=True, strict=True)
    type = Text(required=True, validate=validate.Length(min=1))
    aggregate_id = fields.UUID(required=True)
    version = fields.Integer(required=True, strict=True)
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    actor = fields.Nested(ActorSchema, required=True)
    on_behalf_of = fields.Nested(ActorSchema, load_default=None, allow_none=True)
    cause = Text(load_default=None, allow_none=True)
    # the request that stored the event (the gateway's X-Request-Id), to follow it in logs
    request_id = Text(load_default=None, allow_none=True, validate=validate.Length(max=128))
    # each event's own contract (contracts/registry.py) loads the payload after this
    payload = fields.Dict(keys=Text(), values=Json(), required=True)


@dataclass(frozen=True)
class IntegrationEvent:
    """An envelope after validation; `payload` has been loaded by the event's contract."""

    source: str
    position: int
    previous_position: int | None
    type: str
    aggregate_id: Any
    version: int
    occurred_at: datetime
    actor: dict
    on_behalf_of: dict | None
    cause: str | None
    payload: dict = field(default_factory=dict)
    request_id: str | None = None

    @property
    def ref(self) -> str:
        """`source:position`, how an auditor names this event."""
        return f"{self.source}:{self.position}"
