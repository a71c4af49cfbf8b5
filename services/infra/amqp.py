"""Names and declarations on RabbitMQ shared by the relay and the consumers."""

from __future__ import annotations

from kombu import Exchange, Queue

from services.infra.settings import Settings


def events_exchange(cfg: Settings) -> Exchange:
    return Exchange(cfg.events_exchange, type="topic", durable=True, auto_delete=False)


def routing_key(source: str, event_type: str) -> str:
    return f"{source}.{event_type}"


def inbox_queue(cfg: Settings, service: str, upstream: str) -> Queue:
    """One durable queue per (consumer service, upstream), bound to all its events.

    Single active consumer: however many instances of the service run, one of them
    receives the upstream's events, in order; another takes over if it stops.
    """
    return Queue(
        f"{cfg.events_exchange}.{service}.from.{upstream}",
        exchange=events_exchange(cfg),
        routing_key=f"{upstream}.#",
        durable=True,
        auto_delete=False,
        queue_arguments={"x-single-active-consumer": True},
    )
