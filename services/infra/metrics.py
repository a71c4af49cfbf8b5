"""Prometheus metrics of every process.

Each process serves, on its own port (HOSTLEDGER_METRICS_PORT; 0 or unset: none;
HOSTLEDGER_METRICS_HOST: the address, 127.0.0.1 by default), /metrics beside its
probes /livez and /readyz (services.infra.probes). A nameko service's probes:

    live   the eventlet hub answers and no service container of the process has died
    ready  live, and the broker answers, and (services with an event store) the database
           answers and every read model is within HOSTLEDGER_READY_MAX_LAG events of
           the log

What is counted as it happens (cheap, in memory): RPC calls by method and outcome with
their latency, scheduler runs by job, consumer handlers' latency, consumed events by
outcome. What needs the database (consumer positions, parked events, relay position,
read-model positions) or the broker (messages waiting on each consumer's queue) is read
when Prometheus scrapes, with one short query per kind, never per event.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from nameko.extensions import DependencyProvider
from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.infra.probes import (
    PROBE_TIMEOUT,
    Broker,
    _timeout,
    add_live_check,
    add_ready_check,
    serve,
)

log = logging.getLogger(__name__)

# no `_created` series beside each counter and histogram: half the series, no use here
disable_created_metrics()

# latencies of calls and requests: from a cached read (ms) to the RPC timeout (30 s)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCHEDULER_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

RPC_DURATION = Histogram(
    "hostledger_rpc_duration_seconds",
    "Time to answer an RPC call, by service, method and outcome (ok, error).",
    ["service", "method", "outcome"],
    buckets=LATENCY_BUCKETS,
)
SCHEDULER_RUNS = Counter(
    "hostledger_scheduler_runs_total",
    "Runs of a scheduled job (a nameko timer), by service, job and outcome (ok, error).",
    ["service", "job", "outcome"],
)
SCHEDULER_DURATION = Histogram(
    "hostledger_scheduler_run_duration_seconds",
    "How long one run of a scheduled job took.",
    ["service", "job"],
    buckets=SCHEDULER_BUCKETS,
)
SCHEDULER_LAST_RUN = Gauge(
    "hostledger_scheduler_last_run_timestamp_seconds",
    "When a scheduled job last finished a run (Unix time, this process's wall clock).",
    ["service", "job"],
)
HANDLER_DURATION = Histogram(
    "hostledger_event_handler_duration_seconds",
    "Time a consumer's handler took for one integration event, by upstream and type.",
    ["service", "upstream", "type", "outcome"],
    buckets=LATENCY_BUCKETS,
)


# -- scrape-time figures of a service -----------------------------------------------------------


def _table(schema: str | None, name: str):
    from psycopg import sql

    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _gauge(name: str, documentation: str, labels: list[str], samples) -> GaugeMetricFamily:
    """A gauge family with its samples: (label values, value) pairs."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


class StoreCollector(Collector):
    """Reads one service's own tables when Prometheus scrapes: the relay's position and
    the log's head, each consumer's position per upstream, each read model's position,
    the parked events per loop; and from the broker, the messages waiting on each
    consumer's queue; and what `add_probe` added for the service (the mail gateway's
    outbox)."""

    def __init__(self, service: str, store, consumer=None, broker=None):
        self.service = service
        self.store = store
        self.consumer = consumer
        self.broker = broker

    def describe(self):
        return []  # collected on demand only: no query at registration

    def collect(self):
        families: list = []
        try:
            with _timeout(PROBE_TIMEOUT):
                families += self._from_database()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            log.warning("metrics of %s not read from its database: %s", self.service, exc)
        families += self._inbox_counters()
        families += self._queues()
        for probe in list(_probes.get(self.service, {}).values()):
            try:
                with _timeout(PROBE_TIMEOUT):
                    families += list(probe())
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                log.warning("a metrics probe of %s failed: %s", self.service, exc)
        up = GaugeMetricFamily(
            "hostledger_metrics_scrape_ok",
            "1 when this scrape read the service's database, 0 when it could not.",
            labels=["service"],
        )
        up.add_metric([self.service], 1.0 if self._db_ok else 0.0)
        families.append(up)
        return families

    _db_ok = False

    def _from_database(self) -> list:
        from psycopg import sql

        app = self.store.app
        recorder = app.recorder
        schema = getattr(recorder.datastore, "schema", None)
        inboxes = sorted(self.consumer.inboxes) if self.consumer is not None else []
        self._db_ok = False
        with app.datastore.transaction() as curs:
            curs.execute(
                sql.SQL("SELECT max(notification_id) AS head FROM {}").format(
                    _table(schema, recorder.events_table_name)
                )
            )
            head = curs.fetchone()["head"] or 0
            relay = None
            if self.store.relay_enabled:
                curs.execute(
                    "SELECT scanned, published FROM relay_position WHERE name = %s",
                    (f"relay:{app.service}",),
                )
                relay = curs.fetchone()
            positions: dict[str, int] = {}
            if inboxes:
                curs.execute(
                    sql.SQL(
                        "SELECT u AS upstream, (SELECT max(notification_id) FROM {} t"
                        " WHERE t.application_name = u) AS position FROM unnest(%s::text[]) u"
                    ).format(_table(schema, recorder.tracking_table_name)),
                    (inboxes,),
                )
                positions = {r["upstream"]: r["position"] or 0 for r in curs.fetchall()}
            curs.execute("SELECT name, position FROM readmodel_positions")
            models = {r["name"]: r["position"] for r in curs.fetchall()}
            curs.execute(
                "SELECT upstream, count(*) AS n, min(parked_at) AS oldest FROM parked_events"
                " WHERE resolved_at IS NULL GROUP BY upstream"
            )
            parked = curs.fetchall()
        self._db_ok = True
        s = self.service
        out = [
            _gauge(
                "hostledger_log_head_position",
                "The last position (notification id) of the service's own event log.",
                ["service"],
                [([s], head)],
            )
        ]
        if relay is not None:
            out += [
                _gauge(
                    "hostledger_relay_position",
                    "The last log position the relay has read (and published, when it was"
                    " an integration event).",
                    ["service"],
                    [([s], relay["scanned"])],
                ),
                _gauge(
                    "hostledger_relay_published_position",
                    "The log position of the last integration event the broker confirmed.",
                    ["service"],
                    [([s], relay["published"] or 0)],
                ),
                _gauge(
                    "hostledger_relay_lag",
                    "Log positions the relay has not read yet (head minus relay position).",
                    ["service"],
                    [([s], max(head - relay["scanned"], 0))],
                ),
            ]
        models = sorted(models.items())
        out += [
            _gauge(
                "hostledger_consumer_position",
                "The upstream's log position this service has applied, in order, up to.",
                ["service", "upstream"],
                [([s, upstream], value) for upstream, value in sorted(positions.items())],
            ),
            _gauge(
                "hostledger_readmodel_position",
                "The log position a read model has projected up to.",
                ["service", "read_model"],
                [([s, name], value) for name, value in models],
            ),
            _gauge(
                "hostledger_readmodel_lag",
                "Log positions a read model has not projected yet.",
                ["service", "read_model"],
                [([s, name], max(head - value, 0)) for name, value in models],
            ),
            _gauge(
                "hostledger_parked_events",
                "Events (or scheduler items) a loop could not apply and parked, not resolved"
                " yet, by loop: an upstream (a consumer), readmodel:<name>, scheduler:<job>.",
                ["service", "loop"],
                [([s, row["upstream"]], row["n"]) for row in parked],
            ),
            _gauge(
                "hostledger_parked_oldest_timestamp_seconds",
                "When the oldest unresolved parked event of a loop was parked (Unix time).",
                ["service", "loop"],
                [([s, row["upstream"]], row["oldest"].timestamp()) for row in parked],
            ),
        ]
        return out

    def _inbox_counters(self) -> list:
        if self.consumer is None:
            return []
        family = CounterMetricFamily(
            "hostledger_consumer_events",
            "Integration events this process's consumer handled since it started, by"
            " upstream and outcome (applied, duplicate, gap_filled, parked, retried).",
            labels=["service", "upstream", "outcome"],
        )
        names = {"duplicates": "duplicate", "gaps_filled": "gap_filled"}
        for upstream, inbox in sorted(self.consumer.inboxes.items()):
            for key, value in inbox.stats.to_dict().items():
                family.add_metric([self.service, upstream, names.get(key, key)], value)
        return [family]

    def _queues(self) -> list:
        if self.consumer is None or self.broker is None or not self.consumer.inboxes:
            return []
        from services.infra.amqp import inbox_queue
        from services.infra.settings import settings

        cfg = settings()
        waiting = GaugeMetricFamily(
            "hostledger_consumer_lag",
            "Integration events waiting for this service on its queue from an upstream"
            " (ready messages at the broker; those already delivered to a consumer are"
            " not counted).",
            labels=["service", "upstream"],
        )
        consumers = GaugeMetricFamily(
            "hostledger_consumer_queue_consumers",
            "Consumers attached to the service's queue of an upstream (its instances).",
            labels=["service", "upstream"],
        )
        names = {
            upstream: inbox_queue(
                cfg, self.consumer.container.service_name, upstream, feed.binding
            ).name
            for upstream, feed in self.consumer.feeds.items()
        }
        try:
            with _timeout(PROBE_TIMEOUT):
                depths = self.broker.queue_depths(names)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            log.warning("queue depths of %s not read from the broker: %s", self.service, exc)
            return []
        for upstream, (messages, attached) in sorted(depths.items()):
            waiting.add_metric([self.service, upstream], messages)
            consumers.add_metric([self.service, upstream], attached)
        return [waiting, consumers]


# -- the dependency every nameko service has ---------------------------------------------------


def _server_settings() -> tuple[str, int]:
    from services.infra.settings import settings

    cfg = settings()
    return cfg.metrics_host, cfg.metrics_port


class Metrics(DependencyProvider):
    """Serves this process's metrics and probes (once per process), registers the
    scrape-time figures of the container's event store, and times every worker: RPC
    calls, scheduler runs (timers), consumed events."""

    def setup(self):
        host, port = _server_settings()
        serve(host, port)
        container = self.container
        add_live_check(
            f"container:{container.service_name or 'base'}",
            lambda: "the service container died" if _died(container) else None,
        )

    def start(self):
        from nameko.constants import AMQP_URI_CONFIG_KEY

        from services.infra.consumer import Handles
        from services.infra.store import EventStore

        service = self.container.service_name
        store = next((d for d in self.container.dependencies if isinstance(d, EventStore)), None)
        amqp_uri = self.container.config.get(AMQP_URI_CONFIG_KEY)
        broker = _broker(amqp_uri) if amqp_uri else None
        if broker is not None:
            add_ready_check("broker", broker.check)
        if store is None or not service:
            return
        consumer = next(
            (e.inbox_consumer for e in self.container.entrypoints if isinstance(e, Handles)),
            None,
        )
        self.collector = StoreCollector(service, store, consumer, broker)
        with contextlib.suppress(ValueError):  # a container started again in one process
            REGISTRY.register(self.collector)
        _collectors[service] = self.collector
        add_ready_check(f"database:{service}", lambda: database_check(store))
        add_ready_check(f"read_models:{service}", lambda: read_models_check(store))

    def stop(self):
        collector = getattr(self, "collector", None)
        if collector is not None:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(collector)
            _collectors.pop(self.container.service_name, None)

    def worker_setup(self, worker_ctx):
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(id(worker_ctx), None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        outcome = "ok" if exc_info is None else "error"
        observe_worker(self.container.service_name, worker_ctx, elapsed, outcome)

    def __init__(self, **kwargs):
        self._started: dict[int, float] = {}
        super().__init__(**kwargs)


def observe_worker(service: str, worker_ctx, elapsed: float, outcome: str) -> None:
    from nameko.rpc import Rpc
    from nameko.timer import Timer

    from services.infra.consumer import Handles

    entrypoint = worker_ctx.entrypoint
    name = entrypoint.method_name
    if isinstance(entrypoint, Rpc):
        RPC_DURATION.labels(service, name, outcome).observe(elapsed)
    elif isinstance(entrypoint, Timer):
        SCHEDULER_RUNS.labels(service, name, outcome).inc()
        SCHEDULER_DURATION.labels(service, name).observe(elapsed)
        SCHEDULER_LAST_RUN.labels(service, name).set(time.time())
    elif isinstance(entrypoint, Handles):
        event = worker_ctx.args[0] if worker_ctx.args else None
        upstream = getattr(event, "source", None) or entrypoint.upstream or "?"
        HANDLER_DURATION.labels(
            service, upstream, getattr(event, "type", entrypoint.event_type), outcome
        ).observe(elapsed)


def _died(container) -> bool:
    died = getattr(container, "_died", None)
    return died is not None and died.ready()


_collectors: dict[str, StoreCollector] = {}
_brokers: dict[str, Broker] = {}


def _broker(amqp_uri: str) -> Broker:
    if amqp_uri not in _brokers:
        _brokers[amqp_uri] = Broker(amqp_uri)
    return _brokers[amqp_uri]


_probes: dict[str, dict[str, Callable[[], Iterable]]] = {}


def add_probe(service: str, name: str, probe: Callable[[], Iterable]) -> None:
    """More scrape-time figures of `service`, read with its own: `probe` returns metric
    families (the mail gateway's outbox)."""
    _probes.setdefault(service, {})[name] = probe


def database_check(store) -> str | None:
    try:
        with store.app.datastore.transaction() as curs:
            curs.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - whatever it is, the database is not usable
        return f"the database does not answer: {exc}"
    return None


def read_models_check(store) -> str | None:
    """Each read model within HOSTLEDGER_READY_MAX_LAG events of the log."""
    from services.infra.settings import settings

    most = settings().ready_max_lag
    if most <= 0:
        return None
    app = store.app
    recorder = app.recorder
    from psycopg import sql

    schema = getattr(recorder.datastore, "schema", None)
    with app.datastore.transaction() as curs:
        curs.execute(
            sql.SQL(
                "SELECT name, (SELECT max(notification_id) FROM {}) - position AS behind"
                " FROM readmodel_positions"
            ).format(_table(schema, recorder.events_table_name))
        )
        behind = {r["name"]: r["behind"] or 0 for r in curs.fetchall()}
    late = {name: n for name, n in behind.items() if n > most}
    if late:
        listed = ", ".join(f"{name} {n}" for name, n in sorted(late.items()))
        return f"read models behind the log by more than {most} events: {listed}"
    return None
