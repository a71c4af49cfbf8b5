"""Which integration event types exist, by source, and the schema of each payload."""

from __future__ import annotations

from marshmallow import Schema

_EVENTS: dict[tuple[str, str], type[Schema]] = {}


def integration_event(source: str, type_name: str):
    """Class decorator declaring a payload schema as the contract of `source`'s `type_name`.

    A schema's `id_field` (when set) names the field that carries the aggregate's id.
    """

    def register(schema_cls: type[Schema]) -> type[Schema]:
        key = (source, type_name)
        if key in _EVENTS and _EVENTS[key] is not schema_cls:
            raise ValueError(f"integration event {source}.{type_name} is declared twice")
        _EVENTS[key] = schema_cls
        schema_cls.source = source
        schema_cls.event_type = type_name
        return schema_cls

    return register


def payload_schema(source: str, type_name: str) -> type[Schema] | None:
    _load_all()
    return _EVENTS.get((source, type_name))


def declared_events() -> dict[tuple[str, str], type[Schema]]:
    _load_all()
    return dict(_EVENTS)


def _load_all() -> None:
    # Importing the modules runs their declarations.
    from contracts import billing, chain, customers, helpdesk, orders  # noqa: F401
