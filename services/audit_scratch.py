"""A read model replayed apart from the live one: a scratch schema of the service's
database, fed from the service's log up to a given position (`hostledger audit
verify-replay`, services/audit_replay.py).

The model's own CREATE statements and projections run with the scratch schema first on
`search_path`, so its unqualified table names are the scratch copies; every transaction
checks that it changed no table outside the scratch schema (`ReplayEscaped` otherwise).
The replay has a lock of its own, so the live model's followers and it never wait for
each other, and parks what fails as the live follower does.
"""

from __future__ import annotations

from contextlib import contextmanager

from psycopg import sql

from services.infra.readmodels import Follower

REPLAY_BATCH = 1000


class ReplayEscaped(BaseException):
    """A read model's projection wrote outside the scratch schema: the replay stops (a
    BaseException so that the follower does not park it as a failing event)."""


class _BoundedRecorder:
    """The service's recorder, reading the log no further than `stop`."""

    def __init__(self, recorder):
        self._recorder = recorder
        self.stop = 0

    def select_notifications(self, start, limit, stop=None, topics=(), **kwargs):
        stop = self.stop if stop is None else min(stop, self.stop)
        if start > stop:
            return []
        return self._recorder.select_notifications(start, limit, stop=stop, topics=topics, **kwargs)

    def max_notification_id(self):
        return self.stop

    def __getattr__(self, name):
        return getattr(self._recorder, name)


class _ScratchDatastore:
    """The service's datastore, each transaction with the scratch schema first on its path."""

    GUARD = (
        "SELECT schemaname || '.' || relname AS name FROM pg_stat_xact_user_tables"
        " WHERE schemaname <> %s AND n_tup_ins + n_tup_upd + n_tup_del > 0"
    )

    def __init__(self, datastore, schema: str, search_path: str):
        self._datastore = datastore
        self.schema = schema
        self.search_path = search_path

    @contextmanager
    def transaction(self, *, commit: bool = False):
        with self._datastore.transaction(commit=commit) as curs:
            curs.execute("SELECT set_config('search_path', %s, true)", (self.search_path,))
            yield curs
            curs.execute(self.GUARD, (self.schema,))
            escaped = [r["name"] for r in curs.fetchall()]
            if escaped:
                raise ReplayEscaped(
                    f"a read model's projection wrote to {', '.join(escaped)}, outside its "
                    "tables: it cannot be replayed apart from the live one"
                )


class ScratchApp:
    """What a Follower uses of an application, pointed at the scratch schema."""

    def __init__(self, app, schema: str, search_path: str):
        self.service = app.service
        self.mapper = app.mapper
        self.recorder = _BoundedRecorder(app.recorder)
        self.datastore = _ScratchDatastore(app.datastore, schema, search_path)


class ReplayFollower(Follower):
    """A follower of the scratch copy: a lock of its own (the live model's followers do
    not wait for it, nor it for them), one attempt per failing event (a projection that
    fails is deterministic here: nothing else runs on the scratch tables)."""

    def __init__(self, scratch: ScratchApp, model):
        super().__init__(scratch, model, batch_size=REPLAY_BATCH, attempts=1, backoff=(0.0,))

    @property
    def lock_key(self) -> str:
        return f"replay:{self.app.datastore.schema}:{self.model.name}"

    def replay_to(self, position: int, progress=None) -> int:
        """Project the log up to `position` exactly; the events projected now."""
        if self.position() > position:  # the live model was rebuilt meanwhile
            self.reset()
        self.app.recorder.stop = position
        return self.catch_up(progress)

    def reset(self) -> None:
        schema = sql.Identifier(self.app.datastore.schema)
        with self.app.datastore.transaction(commit=True) as curs:
            for table in self.model.table_names:
                curs.execute(sql.SQL("TRUNCATE {}.{}").format(schema, sql.Identifier(table)))
            curs.execute(
                sql.SQL("UPDATE {}.readmodel_positions SET position = 0 WHERE name = %s").format(
                    schema
                ),
                (self.model.name,),
            )
            curs.execute(
                sql.SQL("DELETE FROM {}.parked_events WHERE upstream = %s").format(schema),
                (self.upstream,),
            )
