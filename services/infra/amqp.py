"""RabbitMQ: names and declarations shared by the relay and the consumers, and what
keeps every process running while the broker restarts (bottom)."""

from __future__ import annotations

import contextlib
import itertools
import logging

import eventlet
from amqp.exceptions import AMQPError, PreconditionFailed
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

from contracts.errors import HostledgerError, Unavailable
from services.infra.inbox import is_transient
from services.infra.settings import Settings

log = logging.getLogger(__name__)


def events_exchange(cfg: Settings) -> Exchange:
    return Exchange(cfg.events_exchange, type="topic", durable=True, auto_delete=False)


def routing_key(source: str, event_type: str) -> str:
    return f"{source}.{event_type}"


INBOX_QUEUE_ARGUMENTS = {"x-queue-type": "quorum", "x-single-active-consumer": True}


def inbox_queue(cfg: Settings, service: str, upstream: str, binding: str | None = None) -> Queue:
    """One durable queue per (consumer service, upstream), bound to all its events (or,
    for a feed of some of them, to `binding`).

    A quorum queue: on a cluster of RabbitMQ nodes it is replicated (Raft) and survives
    the loss of a minority of them; on the single node of a local run it is just a
    durable queue. Single active consumer: however many instances of the service run,
    one of them receives the upstream's events, in order; another takes over if it stops.

    Quorum queues may drop a message redelivered more often than their delivery limit
    (RabbitMQ 4 sets one by default): nothing is lost by it, the inbox's periodic catch-up
    reads every event it has not applied from the upstream's log.
    """
    return Queue(
        f"{cfg.events_exchange}.{service}.from.{upstream}",
        exchange=events_exchange(cfg),
        routing_key=binding or f"{upstream}.#",
        durable=True,
        auto_delete=False,
        queue_arguments=dict(INBOX_QUEUE_ARGUMENTS),
    )


def declare_inbox_queue(connection, queue: Queue) -> None:
    """Declare `queue` (and its binding) on a channel of its own, replacing a queue of the
    same name declared by an earlier version as a classic queue (a queue's type cannot
    change: RabbitMQ answers PRECONDITION_FAILED and closes the channel).

    The old queue is deleted only when no consumer uses it (an instance of the earlier
    version still running keeps it until it stops: then this raises, and the caller's
    reconnect loop tries again). Its messages are not needed: the inbox reads every event
    it has not applied from the upstream's log."""
    channel = connection.channel()
    try:
        try:
            queue.bind(channel).declare()
            return
        except PreconditionFailed:
            log.warning(
                "queue %s exists with other arguments (a classic queue of an earlier "
                "version?): replacing it by a quorum queue",
                queue.name,
            )
        channel = connection.channel()  # the failed declaration closed the other
        channel.queue_delete(queue.name, if_unused=True)
        queue.bind(channel).declare()
    finally:
        with contextlib.suppress(*BROKER_ERRORS):
            channel.close()


# -- surviving a broker restart ------------------------------------------------------------
#
# nameko 2.14 reconnects its consumers by itself (kombu's ConsumerMixin), but two things it
# does on the way kill the whole process (the container dies with the failing thread):
#
# - A worker that finishes after its connection died acknowledges its message on that
#   connection. nameko skips the ack only when kombu has already noticed the loss; in the
#   window before, the ack raises ConnectionResetError / BrokenPipeError (or py-amqp's
#   RecoverableConnectionError), which nameko does not catch (nameko#511 fixed a part).
# - An RPC worker publishes its reply with three retries; a broker away for longer makes
#   the publish raise from `handle_result`.
#
# Neither loses anything if it is let go: a message that was not acknowledged stays with
# the broker, which delivers it again once a consumer is back (RPC requests are answered
# once per request id: services.infra.requests; events are applied once by tracking). So
# a failed ack or requeue is logged and dropped, and a reply that cannot be sent leaves its
# request to the broker.
#
# And what crosses RPC says "try again" in one typed way: a worker that failed because the
# infrastructure was away for a moment (a dropped database connection, a lock not taken in
# time, the broker unreachable: `inbox.is_transient`) answers `Unavailable` (503 with
# Retry-After at the gateway), however deep the call chain, not nameko's RemoteError.

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    AMQPError,  # py-amqp's connection and channel errors (CONNECTION_FORCED on shutdown, ...)
    KombuOperationalError,  # kombu gave up reconnecting
    OSError,  # the socket: ECONNRESET, EPIPE, ECONNREFUSED, timeouts
)


def _settle(action: str):
    def settle(self, message) -> None:
        channel = message.channel
        if channel is None or not channel.connection:
            return  # the connection is gone: the broker has taken the message back
        try:
            getattr(message, action)()
        except BROKER_ERRORS as exc:
            log.warning(
                "could not %s a message (%s: %s); the broker delivers it again",
                action,
                type(exc).__name__,
                exc,
            )

    settle.__name__ = f"{action}_message"
    return settle


def unavailable_instead(exc_info, service: str):
    """`exc_info` of a worker of `service` as it should cross RPC: a transient
    infrastructure error becomes `Unavailable`; our typed errors and everything else
    stay as they are."""
    if exc_info is None:
        return None
    exc = exc_info[1]
    if isinstance(exc, HostledgerError) or not is_transient(exc):
        return exc_info
    error = Unavailable(
        f"The {service} service could not reach its database or the message broker for a "
        "moment; try again."
    )
    error.__cause__ = exc
    return (Unavailable, error, exc_info[2])


def _reply_or_leave(original):
    def handle_result(self, message, result, exc_info):
        exc_info = unavailable_instead(exc_info, self.container.service_name)
        try:
            return original(self, message, result, exc_info)
        except BROKER_ERRORS as exc:
            log.warning(
                "the answer to an RPC request could not be sent (%s: %s); the request goes "
                "back to the broker, which delivers it again",
                type(exc).__name__,
                exc,
            )
            self.queue_consumer.requeue_message(message)
            return result, exc_info

    handle_result.survives_broker_restarts = True
    return handle_result


def survive_broker_restarts() -> None:
    """Install the above into nameko (once; every hostledger process imports this module)."""
    if getattr(RpcConsumer.handle_result, "survives_broker_restarts", False):
        return
    QueueConsumer.ack_message = _settle("ack")
    QueueConsumer.requeue_message = _settle("requeue")
    RpcConsumer.handle_result = _reply_or_leave(RpcConsumer.handle_result)


survive_broker_restarts()


# -- stopping promptly -----------------------------------------------------------------------
#
# nameko's consumer thread (RPC requests, RPC replies) waits for deliveries one second at a
# time (kombu's `safety_interval`) and looks only between two waits whether an entrypoint
# asked to stop consuming: it cancels that entrypoint's consumer then (only this thread may
# use the channel), and once none is left it ends, after one more wait. A process asked to
# stop waited up to a second for each. Looking more often costs every idle process ten
# wake-ups a second; instead the thread is woken when there is something to do: when an
# entrypoint asks to stop consuming (`unregister_provider`) and when the consumer is
# stopped, the thread, if it is waiting for the broker, has its wait end as a wait that
# timed out ends (`socket.timeout`: py-amqp keeps the part of a frame it read, and reads
# the rest in the next wait), looks at once, and ends as soon as no consumer is left.


def _consume(self, limit=None, timeout=None, safety_interval=1, **kwargs):
    """kombu's `ConsumerMixin.consume`, which says while it waits for the broker (only then
    may the thread be woken: `_wake`) and ends as soon as nothing is left to consume."""
    elapsed = 0
    with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
        for _ in range(limit) if limit else itertools.count():
            if self.should_stop:
                break
            self.on_iteration()  # nameko: cancels the consumers asked to stop
            if self.should_stop:
                break  # none left (an ended wait would read nothing of use)
            if self._pending_remove_providers:
                continue  # asked while it cancelled another: no wait before this one
            self._waiting_for_broker = True
            try:
                conn.drain_events(timeout=safety_interval)
            except TimeoutError:
                conn.heartbeat_check()
                elapsed += safety_interval
                if timeout and elapsed >= timeout:
                    raise
            except OSError:
                if not self.should_stop:
                    raise
            else:
                yield
                elapsed = 0
            finally:
                self._waiting_for_broker = False


def _wake(consumer) -> None:
    """End the wait of `consumer`'s thread for the broker, if it is in one."""
    thread = getattr(consumer, "_gt", None)
    if getattr(consumer, "_waiting_for_broker", False) and thread is not None and not thread.dead:
        thread.kill(TimeoutError("woken to stop consuming"))


def _waking(method):
    def woken_when_waiting(self, *args, **kwargs):
        # runs once the caller waits (for the thread to cancel its consumer, or to end)
        eventlet.spawn_n(_wake, self)
        return method(self, *args, **kwargs)

    woken_when_waiting.wakes_consumer = True
    return woken_when_waiting


def stop_promptly() -> None:
    """Install the above into nameko (once; every hostledger process imports this module)."""
    if getattr(QueueConsumer.unregister_provider, "wakes_consumer", False):
        return
    QueueConsumer._waiting_for_broker = False
    QueueConsumer.consume = _consume
    QueueConsumer.unregister_provider = _waking(QueueConsumer.unregister_provider)
    QueueConsumer.stop = _waking(QueueConsumer.stop)
    QueueConsumer.kill = _waking(QueueConsumer.kill)


stop_promptly()
