"""The bare substrate, measured the way the system uses it.

- PostgreSQL: a single-row INSERT per transaction (autocommit), one connection per client;
- the eventsourcing library: an in-process `Application` on PostgreSQL saving a new small
  aggregate (one event), and three at once (the shape of a customer registration);
- argon2id with the parameters the customers service uses, offloaded to real threads
  (eventlet's tpool) exactly as `services.infra.passwords.hash_password` does; and a
  verify of such a hash (a login's share of argon2);
- the eventsourcing library updating an existing aggregate and creating a new one in one
  save (a payment's shape), and the same on one aggregate shared by every client, the
  clients taking turns (an invoice's shape: one gapless series);
- RabbitMQ: publish a persistent message with publisher confirms to a durable queue and
  consume it (what the relay and a consumer do for each integration event).

All use the same pure-Python psycopg and the same eventlet hub as the services.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import psycopg
from eventlet.semaphore import Semaphore
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from tests.bench.drive import Result, distribution_ms, drive

INSERT_TABLE = """
CREATE TABLE IF NOT EXISTS bench_insert (
    id bigserial PRIMARY KEY,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def postgres_insert(conninfo: str, concurrency: int, seconds: float) -> Result:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(INSERT_TABLE)

    def factory(resources: contextlib.ExitStack):
        conn = resources.enter_context(psycopg.connect(conninfo, autocommit=True))

        def insert():
            conn.execute("INSERT INTO bench_insert (payload) VALUES (%s)", ("x" * 64,))

        return insert

    return drive(factory, concurrency, seconds=seconds, warmup=concurrency * 5)


class BenchItem(Aggregate):
    """A small aggregate: one creation event with one short field."""

    @event("Created")
    def __init__(self, name: str):
        self.name = name


class BenchCounter(Aggregate):
    """An existing aggregate that each operation changes: one more event on it."""

    @event("Created")
    def __init__(self):
        self.taken = 0

    @event("Taken")
    def take(self) -> None:
        self.taken += 1


class BenchApplication(Application):
    name = "bench"


def eventsourcing_env(server, dbname: str, concurrency: int) -> dict[str, str]:
    """The library's PostgreSQL persistence, pooled like a service but wide enough for everyone."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": server.host,
        "POSTGRES_PORT": str(server.port),
        "POSTGRES_USER": server.user,
        "POSTGRES_PASSWORD": server.password,
        "POSTGRES_POOL_SIZE": str(concurrency),
        "POSTGRES_MAX_OVERFLOW": "0",
        "POSTGRES_LOCK_TIMEOUT": "5",
        "CREATE_TABLE": "y",
    }


def eventsourcing_save(
    server, dbname: str, concurrency: int, seconds: float, aggregates_per_save: int = 1
) -> Result:
    app = BenchApplication(env=eventsourcing_env(server, dbname, concurrency))
    try:

        def factory(_resources):
            def save():
                app.save(*(BenchItem(name="bench item") for _ in range(aggregates_per_save)))

            return save

        return drive(factory, concurrency, seconds=seconds, warmup=concurrency * 3)
    finally:
        app.close()


def eventsourcing_update(
    server, dbname: str, concurrency: int, seconds: float, shared: bool = False
) -> Result:
    """Get an existing aggregate, add one event to it, save it with one new aggregate.

    Each client has its own counter aggregate (`shared=False`), or all of them take turns
    (a semaphore) on one counter (`shared=True`): a gapless number series in one process.
    """
    app = BenchApplication(env=eventsourcing_env(server, dbname, concurrency))
    lock = Semaphore()
    common = BenchCounter()
    app.save(common)
    try:

        def factory(_resources):
            counter_id = common.id
            if not shared:
                own = BenchCounter()
                app.save(own)
                counter_id = own.id

            def update():
                with lock if shared else contextlib.nullcontext():
                    counter = app.repository.get(counter_id)
                    counter.take()
                    app.save(counter, BenchItem(name="bench item"))

            return update

        return drive(factory, concurrency, seconds=seconds, warmup=concurrency * 3)
    finally:
        app.close()


def argon2_hash(concurrency: int, total: int, warmup: int) -> Result:
    from services.infra.passwords import hash_password  # same hasher, same tpool offload

    def factory(_resources):
        def hash_one():
            hash_password("correct horse battery staple")

        return hash_one

    start: list[float] = []
    result = drive(
        factory,
        concurrency,
        total=total,
        warmup=warmup,
        before_measure=lambda: start.append(time.process_time()),
    )
    result.cpu_seconds = time.process_time() - start[0]  # all threads of this process
    return result


def argon2_verify(concurrency: int, total: int, warmup: int) -> Result:
    """Verify a correct password against an argon2id hash made with the service's parameters.

    A hasher of our own with those parameters (`services.infra.passwords.PARAMETERS`),
    offloaded to eventlet's tpool as `verify_password` does.
    """
    from argon2 import PasswordHasher
    from eventlet import tpool

    from services.infra.passwords import PARAMETERS

    hasher = PasswordHasher(
        time_cost=PARAMETERS["time_cost"],
        memory_cost=PARAMETERS["memory_cost_kib"],
        parallelism=PARAMETERS["parallelism"],
    )
    password = "correct horse battery staple"
    stored = hasher.hash(password)

    def factory(_resources):
        def verify_one():
            if not tpool.execute(hasher.verify, stored, password):
                raise RuntimeError("argon2 verify failed")

        return verify_one

    start: list[float] = []
    result = drive(
        factory,
        concurrency,
        total=total,
        warmup=warmup,
        before_measure=lambda: start.append(time.process_time()),
    )
    result.cpu_seconds = time.process_time() - start[0]
    return result


def rabbitmq_roundtrip(amqp_uri: str, messages: int, warmup: int = 20) -> dict:
    """Sequential publish (persistent, confirmed) to a durable queue, then consume it.

    `confirm` is publish until RabbitMQ confirmed; `delivered` is publish until the
    consumer on another connection had the message.
    """
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    name = f"bench.roundtrip.{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=True, auto_delete=False)
    queue = Queue(name, exchange=exchange, routing_key="bench.#", durable=True, auto_delete=False)
    confirms: list[float] = []
    deliveries: list[float] = []
    arrived: list[float] = []

    with (
        Connection(amqp_uri, transport_options={"confirm_publish": True}) as pub_conn,
        Connection(amqp_uri) as sub_conn,
    ):
        channel = sub_conn.channel()
        queue(channel).declare()
        producer = Producer(pub_conn.channel(), exchange=exchange)

        def on_message(_body, message):
            arrived.append(time.perf_counter())
            message.ack()

        try:
            with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
                for i in range(warmup + messages):
                    before = len(arrived)
                    t0 = time.perf_counter()
                    producer.publish(
                        {"i": i, "pad": "x" * 400},
                        routing_key="bench.event",
                        delivery_mode=2,
                        serializer="json",
                    )
                    t1 = time.perf_counter()
                    while len(arrived) == before:
                        sub_conn.drain_events(timeout=10)
                    if i >= warmup:
                        confirms.append(t1 - t0)
                        deliveries.append(arrived[-1] - t0)
        finally:
            queue(channel).delete()
            exchange(channel).delete()
    return {
        "messages": messages,
        "confirm": distribution_ms(confirms),
        "delivered": distribution_ms(deliveries),
    }
