"""Each service's PostgreSQL database (`hostledger databases` creates them), how its
connection pool checks a connection before handing it out, and the one connection per
process and database that holds its session-level locks."""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from services.infra.settings import SERVICES, Settings, settings

log = logging.getLogger(__name__)


def ensure_database(cfg: Settings, dbname: str) -> bool:
    """Create `dbname` unless it exists; True when it was created."""
    with psycopg.connect(cfg.database.conninfo("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


def drop_database(cfg: Settings, dbname: str) -> None:
    with psycopg.connect(cfg.database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def check_idle_connection(conn) -> None:
    """The pool's check of a connection before it hands it out, with no round trip.

    A pooled connection is idle: the server writes nothing to it until it is sent a
    statement. So when its socket has something to read, the server closed it (a restart,
    `pg_terminate_backend`, `idle_session_timeout`: PostgreSQL sends its reason, then
    closes) or sent something out of turn: the connection is closed and the pool hands
    out another one (psycopg_pool: a connection that fails its check is replaced). A
    closed connection fails too. This costs a look at the socket instead of the library's
    ping (`POSTGRES_PRE_PING`), a round trip to the server before every transaction, and
    catches the same lost connections. One lost between the check and its first statement
    (the server's goodbye still on its way) fails that statement: a transaction's BEGIN is
    then sent again on a fresh connection (`RetryingDatastore`), and the library's
    recorders retry their own statements."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except ValueError:  # a descriptor past select()'s limit: ping as the library would
        conn.execute("")
        return
    if readable:
        conn.close()
        raise psycopg.OperationalError("the server closed the idle connection")


class RetryingDatastore(PostgresDatastore):
    """The library's datastore, whose `transaction()` sends its BEGIN again on another
    connection when the first one handed out turns out lost on that BEGIN (nothing was
    done on it yet, so nothing is done twice). Any later failure is the caller's, as
    before."""

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Any]:
        for attempt in (1, 2):
            with self.get_connection() as conn:
                tx = conn.transaction(force_rollback=not commit)
                try:
                    tx.__enter__()  # BEGIN
                except psycopg.OperationalError:
                    if attempt == 1 and (conn.closed or conn.broken):
                        continue  # the pool discards the lost connection
                    raise
                try:
                    yield conn.cursor()
                except BaseException as exc:
                    if not tx.__exit__(type(exc), exc, exc.__traceback__):
                        raise
                else:
                    tx.__exit__(None, None, None)
                return


def run_each(app, statements: list[tuple[str, tuple]]) -> None:
    """Run each `(statement, params)` in a transaction of its own, in order (a schema's
    CREATE ... IF NOT EXISTS at start): one holds one table's lock at a time and only
    waits for it, where one transaction for all would hold the first tables' locks while
    waiting for the next, and deadlock with a running instance writing those tables in
    another order."""
    for statement, params in statements:
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(statement, params or None)


def without_pre_ping(datastore: PostgresDatastore) -> None:
    """Make a service's datastore check the connections it hands out with
    `check_idle_connection` (no round trip) and retry a lost one's BEGIN
    (`RetryingDatastore`); psycopg_pool calls its `_check` on each connection it hands out."""
    datastore.pre_ping = False
    datastore.pool._check = check_idle_connection
    datastore.__class__ = RetryingDatastore


class SessionLocks:
    """The session-level advisory locks of this process on one database, all held on one
    connection of their own (the relay's, the mail outbox's, one per consumed upstream):
    one connection per process instead of one per lock.

    The connection is shared, so it is never left waiting: locks are taken with
    `pg_try_advisory_lock`, and `lock()` polls. Each step holds a lock of this object
    (green under eventlet). In the process, a key has one holder at a time (PostgreSQL
    would let the same session take it twice). A lost connection loses every lock on it:
    holders see it in `holds()` (checked at most every `check_interval` seconds) and
    take their lock again. Get the one of a database with `session_locks(conninfo)`.
    """

    check_interval = 2.0
    poll_interval = (0.01, 0.2)  # first and longest wait between two tries of lock()

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._guard = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._held: dict[str, object] = {}
        self._checked = 0.0
        self._users: set[object] = set()

    # -- holders ------------------------------------------------------------------------

    def attach(self, holder: object) -> None:
        """`holder` uses these locks; the connection stays open while any holder does."""
        with self._guard:
            self._users.add(holder)

    def detach(self, holder: object) -> None:
        """`holder` is done: its locks are released, and the connection closed when it
        was the last holder."""
        with self._guard:
            for key in [k for k, owner in self._held.items() if owner is holder]:
                self._unlock(key)
            self._users.discard(holder)
            if not self._users and not self._held:
                self._close()

    # -- locks --------------------------------------------------------------------------

    def try_lock(self, key: str, holder: object) -> bool:
        """Take `key` for `holder` now if no one (here or in another process) holds it."""
        with self._guard:
            owner = self._held.get(key)
            if owner is not None:
                return owner is holder
            row = self._execute("SELECT pg_try_advisory_lock(hashtext(%s))", key)
            if row[0]:
                self._held[key] = holder
            return bool(row[0])

    def lock(self, key: str, holder: object, timeout: float, give_up=None) -> None:
        """Take `key` for `holder`, waiting up to `timeout` seconds (TimeoutError), or
        until `give_up()` says to stop waiting (TimeoutError too)."""
        deadline = time.monotonic() + timeout
        wait, longest = self.poll_interval
        while not self.try_lock(key, holder):
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"the lock {key!r} stayed taken for {timeout:g}s")
            if give_up is not None and give_up():
                raise TimeoutError(f"no more waiting for the lock {key!r}")
            time.sleep(wait)  # green under eventlet: the connection is free meanwhile
            wait = min(wait * 2, longest)

    def unlock(self, key: str, holder: object) -> None:
        with self._guard:
            if self._held.get(key) is holder:
                self._unlock(key)

    def holds(self, key: str, holder: object) -> bool:
        """Whether `holder` still holds `key` (False once the connection was lost)."""
        with self._guard:
            if self._held.get(key) is not holder:
                return False
            if time.monotonic() - self._checked >= self.check_interval:
                try:
                    self._execute("SELECT 1")
                except psycopg.Error:
                    return False
            return key in self._held

    # -- other short statements -----------------------------------------------------------

    def fetch_one(self, statement: str, *params):
        """Run one short statement that answers a row (or None) on this connection, for
        another part of the process that needs the database outside any transaction of
        the pool (the customers' data keys, services.infra.personal_data): one connection
        per process serves both. Never waits on a lock; a failure closes the connection
        as a lock's would (its holders take their locks again)."""
        with self._guard:
            return self._execute(statement, *params)

    # -- the connection (under the guard) -----------------------------------------------

    def _execute(self, statement: str, *params):
        """Run one statement on the connection, opening it when needed; on failure the
        connection is closed, and every lock on it counts as lost."""
        try:
            if self._conn is None or self._conn.closed:
                self._lost()
                self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            row = self._conn.execute(statement, params or None).fetchone()
        except psycopg.Error as exc:
            log.warning("the lock connection failed (%s); its locks are lost", exc)
            self._close()
            raise
        self._checked = time.monotonic()
        return row

    def _unlock(self, key: str) -> None:
        self._held.pop(key, None)
        if self._conn is None or self._conn.closed:
            return
        try:
            self._execute("SELECT pg_advisory_unlock(hashtext(%s))", key)
        except psycopg.Error:
            pass  # the connection is gone, and the lock with it

    def _lost(self) -> None:
        if self._held:
            log.warning("locks lost with their connection: %s", ", ".join(sorted(self._held)))
        self._held.clear()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._lost()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


_sessions: dict[str, SessionLocks] = {}
_sessions_guard = threading.Lock()


def session_locks(conninfo: str) -> SessionLocks:
    """This process's session locks on the database of `conninfo`."""
    with _sessions_guard:
        locks = _sessions.get(conninfo)
        if locks is None:
            locks = _sessions[conninfo] = SessionLocks(conninfo)
        return locks


def ensure_all(cfg: Settings | None = None) -> list[str]:
    cfg = cfg or settings()
    return [cfg.database_name(s) for s in SERVICES if ensure_database(cfg, cfg.database_name(s))]
