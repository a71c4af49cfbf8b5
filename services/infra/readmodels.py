"""Read models: query tables fed, in order and once, from the service's own log.

A `ReadModel` names its tables and projects one domain event at a time inside a
transaction; the `Follower` moves it along the log, writing the rows and the
model's position in the same transaction, under an advisory lock so that several
instances of a service don't project the same events. One event that keeps failing is
parked and skipped (see `Follower`). `rebuild` empties the tables and replays the whole
log: the same rows come back (`hostledger readmodels rebuild <service> [<model>]`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import ClassVar

from services.infra import context
from services.infra.databases import run_each
from services.infra.inbox import is_transient
from services.infra.parking import park_statement, resolve_statement

log = logging.getLogger(__name__)

POSITIONS_TABLE = """
CREATE TABLE IF NOT EXISTS readmodel_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0
)
"""


class ReadModel:
    """Subclass: set `name`, `tables` (CREATE statements), `table_names`, and `project`."""

    name: ClassVar[str] = ""
    tables: ClassVar[Sequence[str]] = ()
    table_names: ClassVar[Sequence[str]] = ()

    def project(self, curs, event) -> None:
        """Apply one domain event to the tables, using `curs` (inside the transaction)."""
        handler = getattr(self, "on_" + type(event).__qualname__.replace(".", "_"), None)
        if handler is not None:
            handler(curs, event)

    def project_stored(self, curs, position: int, event) -> None:
        """Apply the event stored at `position` in the log: what the follower calls. A
        model that keeps positions (the audit index) overrides it; others `project`."""
        self.project(curs, event)


class Follower:
    """Moves one read model along the service's log.

    Batches are projected in one transaction each. When a batch fails for a reason that is
    not transient (see inbox.is_transient: a database that is away is waited for, as the
    loop around does), its events are projected one at a time to find the one that fails;
    that one is tried `attempts` times with `backoff` between, then parked in
    `parked_events` (upstream `readmodel:<name>`, its position, type and error) and the
    position moves past it in the same transaction: the events after it are projected.
    The model says it skipped it (`status()`) until staff retry it (`retry`), which projects
    that one event again.

    While events keep coming, the next batch is read from where this follower's last batch
    left the model, without asking the database first (one transaction less per batch);
    the projecting transaction checks that position under its lock, as always, and a
    follower that finds the model moved elsewhere (another instance, a rebuild) or has
    nothing to read asks again.
    """

    def __init__(
        self,
        app,
        model: ReadModel,
        batch_size: int = 500,
        attempts: int = 3,
        backoff: Sequence[float] = (0.1, 0.5, 2.0),
    ):
        self.app = app
        self.model = model
        self.batch_size = batch_size
        self.attempts = max(1, attempts)
        self.backoff = tuple(backoff) or (0.0,)
        self._known: int | None = None  # where this follower's last batch left the model
        bind = getattr(model, "bind", None)
        if bind is not None:  # a model that reads the log itself (the audit index)
            bind(app)
        # each statement in a transaction of its own: a start holds one table's lock at a
        # time and only waits for it, so it never deadlocks with another instance writing
        # several of the models' tables in one transaction (read models move together)
        run_each(
            app,
            [
                (POSITIONS_TABLE, ()),
                *((statement, ()) for statement in model.tables),
                (
                    "INSERT INTO readmodel_positions (name) VALUES (%s) ON CONFLICT DO NOTHING",
                    (model.name,),
                ),
            ],
        )

    @property
    def lock_key(self) -> str:
        return f"readmodel:{self.app.service}:{self.model.name}"

    @property
    def upstream(self) -> str:
        """How its parked events are named in `parked_events`."""
        return f"readmodel:{self.model.name}"

    def position(self) -> int:
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT position FROM readmodel_positions WHERE name = %s", (self.model.name,)
            )
            return curs.fetchone()["position"]

    def run_once(self) -> int:
        """Project the next batch; the number of events read (0: up to date or busy elsewhere)."""
        known, self._known = self._known, None
        position = self.position() if known is None else known
        batch = self.app.recorder.select_notifications(position + 1, self.batch_size)
        if not batch:
            return 0
        return self.run_batch(position, batch)

    def run_batch(self, position: int, batch) -> int:
        """Project `batch`, the events after `position`; how many the model moved past."""
        try:
            projected = self._project(position, batch)
            if projected:
                self._known = batch[-1].id
            return projected
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(batch) > 1:
                log.warning(
                    "read model %s: a batch of %d events from position %d failed (%s);"
                    " projecting them one at a time",
                    self.model.name,
                    len(batch),
                    batch[0].id,
                    _describe(exc),
                )
        return self._one_at_a_time(position, batch)

    def _lock(self, curs, position: int) -> bool:
        """In the transaction: this instance projects, and the position is still `position`."""
        curs.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (self.lock_key,))
        if not curs.fetchone()["ok"]:
            return False
        curs.execute(
            "SELECT position FROM readmodel_positions WHERE name = %s FOR UPDATE",
            (self.model.name,),
        )
        return curs.fetchone()["position"] == position  # else another instance moved it

    def _project(self, position: int, batch) -> int:
        with self.app.datastore.transaction(commit=True) as curs:
            if not self._lock(curs, position):
                return 0
            for notification in batch:
                event = self.app.mapper.to_domain_event(notification)
                # what projecting it logs names the request that stored it
                with context.tracing(getattr(event, "request_id", None)):
                    self.model.project_stored(curs, notification.id, event)
            curs.execute(
                "UPDATE readmodel_positions SET position = %s WHERE name = %s",
                (batch[-1].id, self.model.name),
            )
        return len(batch)

    def _one_at_a_time(self, position: int, batch) -> int:
        """Project `batch` event by event up to the first one that keeps failing, and park
        that one; how many events the position moved past (0: busy elsewhere)."""
        done = 0
        for notification in batch:
            error: BaseException | None = None
            for attempt in range(self.attempts):
                try:
                    moved = self._project(position, [notification])
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    error = exc
                    log.warning(
                        "read model %s: event %d (%s) failed, attempt %d of %d: %s",
                        self.model.name,
                        notification.id,
                        _event_type(notification),
                        attempt + 1,
                        self.attempts,
                        _describe(exc),
                    )
                    if attempt + 1 < self.attempts:
                        time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
                    continue
                if not moved:
                    return done
                error = None
                break
            if error is not None:
                if not self._park(position, notification, error):
                    return done
                return done + 1  # back to whole batches for the events after it
            done += 1
            position = notification.id
        return done

    def _park(self, position: int, notification, error: BaseException) -> bool:
        log.error(
            "read model %s: parking event %d (%s) after %d attempts: %s",
            self.model.name,
            notification.id,
            _event_type(notification),
            self.attempts,
            _describe(error),
        )
        envelope = {
            "source": self.app.service,
            "read_model": self.model.name,
            "position": notification.id,
            "type": _event_type(notification),
            "aggregate_id": str(notification.originator_id),
            "version": notification.originator_version,
        }
        statement, params = park_statement(
            self.upstream,
            notification.id,
            _event_type(notification),
            envelope,
            _describe(error),
            self.attempts,
            reopen=True,
        )
        with self.app.datastore.transaction(commit=True) as curs:
            if not self._lock(curs, position):
                return False
            curs.execute(statement, params)
            curs.execute(
                "UPDATE readmodel_positions SET position = %s WHERE name = %s",
                (notification.id, self.model.name),
            )
        return True

    def catch_up(self, progress=None) -> int:
        """Project up to the log's head; `progress(position)` after each batch."""
        total = 0
        while True:
            self._known = None  # from where the model is (a rebuild may have just reset it)
            n = self.run_once()
            if not n:
                return total
            total += n
            if progress is not None:
                progress(self.position())

    def rebuild(self, progress=None) -> int:
        """Empty the model's tables and replay the whole log into them. Events parked before
        are tried again: those that still fail are parked again (the same rows, open)."""
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.lock_key,))
            for table in self.model.table_names:
                curs.execute(f'TRUNCATE "{table}"')  # names are the model's own constants
            curs.execute(
                "UPDATE readmodel_positions SET position = 0 WHERE name = %s", (self.model.name,)
            )
            curs.execute(
                "UPDATE parked_events SET resolved_at = now(), resolution = 'rebuilt'"
                " WHERE upstream = %s AND resolved_at IS NULL",
                (self.upstream,),
            )
        return self.catch_up(progress)

    # -- what it skipped ---------------------------------------------------------------------

    def skipped(self) -> list[dict]:
        """The parked events this model has not projected (until staff retry them)."""
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT id, position, type, error, attempts FROM parked_events"
                " WHERE upstream = %s AND resolved_at IS NULL ORDER BY position",
                (self.upstream,),
            )
            return [dict(r) for r in curs.fetchall()]

    def status(self) -> dict:
        """Where the model is in the log, and the events it skipped."""
        skipped = self.skipped()
        head = self.app.recorder.max_notification_id() or 0
        position = self.position()
        return {
            "service": self.app.service,
            "read_model": self.model.name,
            "position": position,
            "head": head,
            "behind": max(head - position, 0),
            "skipped": len(skipped),
            "skipped_events": [
                {"parked_id": s["id"], "position": s["position"], "type": s["type"]}
                for s in skipped
            ],
        }

    def retry(self, parked_id: int) -> None:
        """Project one parked event of this model again, in one transaction that also marks
        it resolved; raises what the projection raises (the row stays open). A model whose
        later events depended on it is exact again after a rebuild."""
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT position FROM parked_events WHERE id = %s AND upstream = %s"
                " AND resolved_at IS NULL",
                (parked_id, self.upstream),
            )
            row = curs.fetchone()
        if row is None or row["position"] is None:
            raise LookupError(f"no open parked event {parked_id} of read model {self.model.name}")
        found = self.app.recorder.select_notifications(row["position"], 1, stop=row["position"])
        if not found:
            raise LookupError(f"position {row['position']} is not in the log")
        event = self.app.mapper.to_domain_event(found[0])
        with self.app.datastore.transaction(commit=True) as curs:
            # wait for a batch under way: the model changes one transaction at a time
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.lock_key,))
            # and for another retry of the same event: projected once, then resolved
            curs.execute(
                "SELECT 1 FROM parked_events WHERE id = %s AND resolved_at IS NULL FOR UPDATE",
                (parked_id,),
            )
            if curs.fetchone() is None:
                raise LookupError(f"parked event {parked_id} was resolved meanwhile")
            self.model.project_stored(curs, found[0].id, event)
            curs.execute(*resolve_statement(parked_id, "projected again"))


class Followers:
    """Moves all the read models of a service along its log together: what each wake-up
    of the service costs once instead of once per model.

    One read of the new notifications serves every model (from the lowest position of
    them; a model further on takes the part after its own position), and one transaction
    projects them into every model: each model's advisory lock and position are taken as
    `Follower` takes them (a model busy in another instance, or moved elsewhere, is left
    out of it), and each model's position moves with its rows. When that transaction
    fails for a reason that is not transient, nothing of it is kept and each model goes
    on alone (`Follower.run_batch`): the one that fails finds its failing event and parks
    it, the others project as usual.
    """

    def __init__(self, followers: Sequence[Follower], batch_size: int = 500):
        self.followers = list(followers)
        self.batch_size = batch_size

    def positions(self) -> dict[str, int]:
        with self.followers[0].app.datastore.transaction() as curs:
            curs.execute(
                "SELECT name, position FROM readmodel_positions WHERE name = ANY(%s)",
                ([f.model.name for f in self.followers],),
            )
            return {r["name"]: r["position"] for r in curs.fetchall()}

    def run_once(self) -> int:
        """Project the next batch into every model; the number of events read (0: every
        model is up to date or busy elsewhere)."""
        if not self.followers:
            return 0
        app = self.followers[0].app
        known = {f.model.name: f._known for f in self.followers}
        for follower in self.followers:
            follower._known = None
        if any(position is None for position in known.values()):
            asked = self.positions()
            known = {n: asked.get(n, 0) if p is None else p for n, p in known.items()}
        start = min(known.values())
        batch = app.recorder.select_notifications(start + 1, self.batch_size)
        if not batch:
            return 0
        work = []  # (follower, its position, its part of the batch)
        for follower in self.followers:
            position = known[follower.model.name]
            part = [n for n in batch if n.id > position]
            if part:
                work.append((follower, position, part))
            else:
                follower._known = position
        if not work:
            return 0
        try:
            moved = self._project(app, work)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning(
                "read models of %s: a batch of %d events from position %d failed (%s);"
                " each model goes on alone",
                app.service,
                len(batch),
                batch[0].id,
                _describe(exc),
            )
            return max(f.run_batch(position, part) for f, position, part in work)
        for follower, _position, part in work:
            if follower.model.name in moved:
                follower._known = part[-1].id
        busy = {f.model.name for f, _, _ in work} - moved
        if busy:
            # A model busy elsewhere (another instance, a rebuild) must not hold the others
            # back: the read starts at the lowest position, so a model further on than
            # this batch reaches would get nothing while the busy one lags. Each of the
            # others goes on alone from its own position this time.
            return len(batch) * bool(moved) + sum(
                f.run_once()
                for f in self.followers
                if f.model.name not in busy and f.model.name not in moved
            )
        return len(batch) if moved else 0

    def _project(self, app, work) -> set[str]:
        """One transaction for every model of `work` that this instance may project; the
        names of those it projected."""
        names = [f.model.name for f, _, _ in work]
        moved: set[str] = set()
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT k.name, pg_try_advisory_xact_lock(hashtext(k.lock_key)) AS ok"
                " FROM unnest(%s::text[], %s::text[]) AS k(name, lock_key)",
                (names, [f.lock_key for f, _, _ in work]),
            )
            locked = [r["name"] for r in curs.fetchall() if r["ok"]]
            if not locked:
                return moved
            curs.execute(
                "SELECT name, position FROM readmodel_positions WHERE name = ANY(%s)"
                " ORDER BY name FOR UPDATE",
                (locked,),
            )
            found = {r["name"]: r["position"] for r in curs.fetchall()}
            events: dict[int, object] = {}
            for follower, position, part in work:
                if found.get(follower.model.name) != position:
                    continue  # busy in another instance, or moved elsewhere (a rebuild)
                for notification in part:
                    event = events.get(notification.id)
                    if event is None:
                        event = events[notification.id] = app.mapper.to_domain_event(notification)
                    # what projecting it logs names the request that stored it
                    with context.tracing(getattr(event, "request_id", None)):
                        follower.model.project_stored(curs, notification.id, event)
                moved.add(follower.model.name)
            if moved:
                ends = {f.model.name: part[-1].id for f, _, part in work}
                curs.execute(
                    "UPDATE readmodel_positions AS p SET position = m.position"
                    " FROM unnest(%s::text[], %s::bigint[]) AS m(name, position)"
                    " WHERE p.name = m.name",
                    (sorted(moved), [ends[n] for n in sorted(moved)]),
                )
        return moved


def _event_type(notification) -> str:
    """The event class of a stored topic: `Customer.Registered` (after the module)."""
    return notification.topic.rpartition(":")[2] or notification.topic


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
