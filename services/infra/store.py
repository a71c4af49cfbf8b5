"""The event store dependency: a service's Application, its relay and its read models.

    class BillingService(ServiceBase):
        name = "billing"
        app = EventStore(Billing, read_models=[AccountList])

`setup` builds the application on the service's own database (creating tables) and
refuses to start when psycopg would block eventlet's hub. `start` runs the relay and
the read-model followers in green threads of their own. Around every worker it binds
who is acting, so that each event saved records its actor.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import eventlet
import psycopg
import psycopg.waiting
from eventlet.event import Event
from eventlet.semaphore import Semaphore
from eventsourcing.persistence import Tracking
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from psycopg import sql

from services.infra import clock, context, logs
from services.infra.amqp import events_exchange
from services.infra.chainkeeper import ChainKeeper
from services.infra.readmodels import Follower, Followers
from services.infra.relay import AdvisoryLock, ConfirmedPublisher, Relay
from services.infra.settings import settings

log = logging.getLogger(__name__)

TRACKING_HEADER = "hl_tracking"
PARKED_HEADER = "hl_parked_id"
CAUSE_HEADER = "hl_cause"


def check_psycopg_is_green() -> None:
    """The C wait function of psycopg's binary build blocks eventlet's hub (DESIGN.md, traps)."""
    wait = psycopg.waiting.wait
    if getattr(wait, "__name__", "") == "wait_c" or "_psycopg" in getattr(wait, "__module__", ""):
        raise RuntimeError(
            "psycopg's C wait function is active: under eventlet it serializes every "
            "database call. Install the pure-Python psycopg (no psycopg[binary] or psycopg[c])."
        )


class EventStore(DependencyProvider):
    def __init__(self, application_cls, read_models=(), relay: bool = True, **kwargs):
        self.application_cls = application_cls
        self.read_model_classes = list(read_models)
        self.relay_enabled = relay
        self.app = None
        self.followers: list[Follower] = []
        self._running = False
        self._threads = []
        self._watch_thread = None
        self._grown = Event()
        self._stopping = Event()  # sent by `stop`: every pause of the loops ends then
        self._users = []  # other dependencies' loops on `app`: each says when it stopped
        super().__init__(**kwargs)

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self):
        check_psycopg_is_green()
        logs.set_process_name(self.container.service_name)
        from services.infra.databases import ensure_database

        cfg = settings()
        if cfg.clock_file:
            # tests and replays move this process's time through that file
            clock.use_clock(clock.FileClock(cfg.clock_file))
        dbname = cfg.database_name(self.application_cls.service)
        ensure_database(cfg, dbname)
        # instances starting together must not create the same tables at once
        with psycopg.connect(cfg.database.conninfo(dbname), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('schema'))")
            try:
                self.app = self.application_cls()
                self.followers = [Follower(self.app, cls()) for cls in self.read_model_classes]
                self._setup_chain(cfg)
                if self.relay_enabled:
                    self._setup_relay(cfg)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('schema'))")

    def _setup_relay(self, cfg):
        amqp_uri = self.container.config[AMQP_URI_CONFIG_KEY]
        self.publisher = ConfirmedPublisher(amqp_uri, events_exchange(cfg))
        self.relay = Relay(self.app, self.publisher)
        self.relay_lock = AdvisoryLock(
            cfg.database.conninfo(cfg.database_name(self.app.service)),
            f"relay:{self.app.service}",
        )

    def _setup_chain(self, cfg):
        self.chain_keeper = ChainKeeper(
            self.app,
            every=cfg.chain_checkpoint_events,
            interval=cfg.chain_checkpoint_interval,
        )
        self.chain_lock = AdvisoryLock(
            cfg.database.conninfo(cfg.database_name(self.app.service)),
            f"chain:{self.app.service}",
        )

    def start(self):
        self._running = True
        self._stopping = Event()
        self._watch_thread = self.container.spawn_managed_thread(self._watch_loop, "log-watch")
        self._threads.append(self._watch_thread)
        self._threads.append(
            self.container.spawn_managed_thread(self._housekeeping_loop, "housekeeping")
        )
        if self.relay_enabled:
            self._threads.append(self.container.spawn_managed_thread(self._relay_loop, "relay"))
        self._threads.append(self.container.spawn_managed_thread(self._chain_loop, "chain"))
        if self.followers:
            # one loop moves every read model: one read of the log and one transaction per
            # wake-up for all of them (services.infra.readmodels.Followers)
            self._threads.append(
                self.container.spawn_managed_thread(
                    lambda: self._follow_loop(Followers(self.followers)), "readmodels"
                )
            )

    def stop(self):
        self._running = False
        # wake every loop now (a pause, a wait for the log to grow) instead of letting
        # each wait out its second: a service asked to stop has nothing left to wait for
        if not self._stopping.ready():
            self._stopping.send(True)
        self._wake()
        if self._watch_thread is not None:
            # it only listens for new events (its connection closes as it ends): ended
            # now, not after its listening connection's next second-long wait
            self._threads.remove(self._watch_thread)
            self._watch_thread.kill()
            self._watch_thread = None
        for thread in self._threads:
            thread.wait()
        self._threads = []
        for lock in (getattr(self, "relay_lock", None), getattr(self, "chain_lock", None)):
            if lock is not None:
                lock.release()
        if getattr(self, "publisher", None) is not None:
            self.publisher.close()
        # the other dependencies stop beside this one: their loops finish what they were
        # doing with the application (a row being sent) before its pool closes
        while not all(stopped() for stopped in self._users):
            eventlet.sleep(0.05)
        if self.app is not None:
            # close the pool now, in a live green thread, not in __del__ at exit
            self.app.close()

    def kill(self):
        self._running = False
        for thread in self._threads:
            thread.kill()

    def used_by(self, stopped) -> None:
        """Another dependency runs a loop on the application: `stop` closes the application
        only once `stopped()` says that loop has ended."""
        self._users.append(stopped)

    # -- background loops -------------------------------------------------------------------
    #
    # The relay and the read-model followers sleep until the log grows: every insert
    # into the events table NOTIFYs its channel (the eventsourcing library does it in
    # the insert's transaction), and one LISTENing connection wakes them all. They
    # also look every IDLE_POLL seconds, so a lost notification only delays them.

    IDLE_POLL = 1.0

    def _watch_loop(self):
        channel = self.app.recorder.channel_name
        cfg = settings()
        conninfo = cfg.database.conninfo(cfg.database_name(self.app.service))
        while self._running:
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._wake()  # anything written before we listened
                    while self._running:
                        for _ in conn.notifies(timeout=1.0):
                            self._wake()
            except psycopg.Error as exc:
                log.warning(
                    "listening for new events of %s failed (%s); retrying", self.app.service, exc
                )
                self._pause(1.0)

    def _wake(self):
        grown, self._grown = self._grown, Event()
        grown.send(True)

    def _wait_for_growth(self, grown: Event) -> None:
        """Until the log grows, IDLE_POLL at most; `stop` ends the wait too (it wakes all)."""
        if not self._running:
            return
        with eventlet.Timeout(self.IDLE_POLL, False):
            grown.wait()

    def _relay_loop(self):
        """Publish the log (services.infra.relay), one instance at a time."""
        self._keep_running("relay", self.relay.run_once, self.relay_lock)

    def _chain_loop(self):
        """Hash the log into its chain (services.infra.chainkeeper), one instance at a time."""
        self._keep_running("chain", self.chain_keeper.run_once, self.chain_lock)

    def _keep_running(self, what: str, step, lock: AdvisoryLock) -> None:
        """While the service runs and this instance holds `lock`: run `step` (a pass over
        the log, answering how many it handled), and wait for the log to grow (or the
        service to stop) when it had nothing to do. While the broker or the database is
        away, retry every second, logging the first failure in full and then a line a
        minute."""
        failures = 0
        while self._running:
            grown = self._grown
            try:
                if not lock.try_acquire():
                    self._pause(1.0)  # another instance does it
                    continue
                if step() == 0:
                    self._wait_for_growth(grown)
                if failures:
                    log.info("%s of %s goes on (%d failed tries)", what, self.app.service, failures)
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.exception("%s of %s failed; retrying", what, self.app.service)
                elif failures % 60 == 0:
                    log.warning(
                        "%s of %s still failing (%d tries): %s",
                        what,
                        self.app.service,
                        failures,
                        exc,
                    )
                self._pause(1.0)

    HOUSEKEEPING_INTERVAL = 3600.0

    def _housekeeping_loop(self):
        """Once an hour (soon after start too): forget requests past their retention."""
        from services.infra.requests import forget_old_requests

        self._pause(random.uniform(5.0, 60.0))
        while self._running:
            try:
                dropped = forget_old_requests(self.app, settings().request_retention_days)
                if dropped:
                    log.info("forgot %d request records past their retention", dropped)
            except Exception as exc:  # noqa: BLE001 - tried again at the next round
                log.warning("request records not cleaned up now: %s", exc)
            self._pause(self.HOUSEKEEPING_INTERVAL)

    def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, no longer than the service runs: `stop` waits for this
        thread, and a process asked to stop must not wait out an hour (or be killed), nor
        the rest of a second."""
        if not self._running:
            return
        with eventlet.Timeout(seconds, False):
            self._stopping.wait()

    # read models may lag a moment: a follower woken by new events waits this long so
    # that a burst of events is projected in one transaction, not one each
    FOLLOW_BATCHING = 0.05

    def _follow_loop(self, followers: Follower | Followers):
        """An event that keeps failing is parked by the follower itself; what reaches here
        is transient (the database away): wait, logging once per failure and then seldom."""
        if isinstance(followers, Followers):
            name = ", ".join(f.model.name for f in followers.followers)
        else:
            name = followers.model.name
        failures = 0
        while self._running:
            grown = self._grown
            try:
                if followers.run_once() == 0:
                    self._wait_for_growth(grown)
                    eventlet.sleep(self.FOLLOW_BATCHING)
                if failures:
                    log.info("read model %s goes on", name)
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.exception("read model %s cannot go on now; retrying", name)
                elif failures % 60 == 0:
                    log.warning(
                        "read model %s still cannot go on (%d tries): %s",
                        name,
                        failures,
                        exc,
                    )
                self._pause(min(1.0 * failures, 10.0))

    def follower(self, name: str) -> Follower:
        for follower in self.followers:
            if follower.model.name == name:
                return follower
        from contracts.errors import NotFound

        raise NotFound(f"{self.app.service} has no read model named {name!r}")

    # -- workers ----------------------------------------------------------------------------

    def get_dependency(self, worker_ctx):
        return self.app

    def worker_setup(self, worker_ctx):
        data = worker_ctx.data
        context.current.actor = context.Actor.from_header(data.get(context.ACTOR_HEADER))
        context.current.on_behalf_of = context.Actor.from_header(
            data.get(context.ON_BEHALF_OF_HEADER)
        )
        context.current.cause = data.get(CAUSE_HEADER)
        context.current.tracking = None
        context.current.also = None
        context.current.request = data.get(context.REQUEST_HEADER) or None
        request_id = data.get(context.REQUEST_ID_HEADER)
        context.current.request_id = request_id if logs.valid_request_id(request_id) else None
        deadline = data.get(context.DEADLINE_HEADER)
        context.current.deadline = float(deadline) if deadline else None
        context.current.command_key = None
        context.current.command_recorded = False
        worker_ctx.hl_started = time.perf_counter()
        if _is_inbox_worker(worker_ctx):
            tracking = data.get(TRACKING_HEADER)
            if tracking:
                upstream, _, position = tracking.rpartition(":")
                context.current.tracking = Tracking(upstream, int(position))
            parked_id = data.get(PARKED_HEADER)
            if parked_id:
                from services.infra.parking import resolve_statement

                context.current.also = [resolve_statement(int(parked_id), "retried")]

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        """Its line in the log (services.infra.logs), while its context is still bound."""
        started = getattr(worker_ctx, "hl_started", None)
        if started is not None:
            elapsed = time.perf_counter() - started
            logs.log_worker(self.container.service_name, worker_ctx, elapsed, exc_info)

    def worker_teardown(self, worker_ctx):
        context.current.actor = context.current.on_behalf_of = context.current.cause = None
        context.current.tracking = context.current.also = None
        context.current.request = context.current.deadline = context.current.command_key = None
        context.current.command_recorded = False
        context.current.request_id = None


class SharedPass:
    """One pass over something (an upstream's log) that callers asking at once share: a
    caller is answered once a pass that began after it asked has ended, so what had
    happened before it asked is taken in; several asking side by side wait for one pass,
    not one each in turn. Passes run one at a time; one that fails raises to the caller
    that ran it, and the next caller waiting runs its own."""

    def __init__(self):
        self._lock = Semaphore()
        self._begun = 0  # passes begun so far (the last may still run)
        self._ended = 0  # the number of the last pass that ended well

    def after_now(self, run: Callable[[], object]) -> None:
        """Once a pass begun from now on has ended: `run` is it when none has yet."""
        wanted = self._begun + 1
        with self._lock:
            if self._ended >= wanted:
                return
            self._begun += 1
            number = self._begun
            run()
            self._ended = number


class CaughtUp(DependencyProvider):
    """`self.<name>()` in a worker applies what `upstream` has published until the moment
    it is called (services.infra.service.catch_up_with), sharing the read of the
    upstream's log with the service's workers that ask at the same time (`SharedPass`,
    one per container): for commands that must see an upstream's latest events.

        class BillingService(ServiceBase):
            customers_caught_up = CaughtUp("customers")
    """

    def __init__(self, upstream: str, **kwargs):
        self.upstream = upstream
        self.shared: SharedPass | None = None
        super().__init__(**kwargs)

    def setup(self):
        self.shared = SharedPass()

    def get_dependency(self, worker_ctx):
        from services.infra.service import catch_up_with

        service, upstream = worker_ctx.service, self.upstream
        return lambda: self.shared.after_now(lambda: catch_up_with(service, upstream))


def _is_inbox_worker(worker_ctx) -> bool:
    from services.infra.consumer import Handles

    return isinstance(worker_ctx.entrypoint, Handles)
