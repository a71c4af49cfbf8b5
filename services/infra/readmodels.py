"""Read models: query tables fed, in order and once, from the service's own log.

A `ReadModel` names its tables and projects one domain event at a time inside a
transaction; the `Follower` moves it along the log, writing the rows and the
model's position in the same transaction, under an advisory lock so that several
instances of a service don't project the same events. `rebuild` empties the tables
and replays the whole log: the same rows come back.

    python -m services.infra.readmodels rebuild <service> [<model>]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

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


class Follower:
    def __init__(self, app, model: ReadModel, batch_size: int = 500):
        self.app = app
        self.model = model
        self.batch_size = batch_size
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(POSITIONS_TABLE)
            for statement in model.tables:
                curs.execute(statement)
            curs.execute(
                "INSERT INTO readmodel_positions (name) VALUES (%s) ON CONFLICT DO NOTHING",
                (model.name,),
            )

    @property
    def lock_key(self) -> str:
        return f"readmodel:{self.app.service}:{self.model.name}"

    def position(self) -> int:
        with self.app.datastore.transaction() as curs:
            curs.execute(
                "SELECT position FROM readmodel_positions WHERE name = %s", (self.model.name,)
            )
            return curs.fetchone()["position"]

    def run_once(self) -> int:
        """Project the next batch; the number of events read (0: up to date or busy elsewhere)."""
        position = self.position()
        batch = self.app.recorder.select_notifications(position + 1, self.batch_size)
        if not batch:
            return 0
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (self.lock_key,))
            if not curs.fetchone()["ok"]:
                return 0
            curs.execute(
                "SELECT position FROM readmodel_positions WHERE name = %s FOR UPDATE",
                (self.model.name,),
            )
            if curs.fetchone()["position"] != position:
                return 0  # another instance moved it meanwhile
            for notification in batch:
                self.model.project(curs, self.app.mapper.to_domain_event(notification))
            curs.execute(
                "UPDATE readmodel_positions SET position = %s WHERE name = %s",
                (batch[-1].id, self.model.name),
            )
        return len(batch)

    def catch_up(self) -> int:
        total = 0
        while n := self.run_once():
            total += n
        return total

    def rebuild(self) -> int:
        """Empty the model's tables and replay the whole log into them."""
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.lock_key,))
            for table in self.model.table_names:
                curs.execute(f'TRUNCATE "{table}"')  # names are the model's own constants
            curs.execute(
                "UPDATE readmodel_positions SET position = 0 WHERE name = %s", (self.model.name,)
            )
        return self.catch_up()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="python -m services.infra.readmodels")
    sub = parser.add_subparsers(dest="command", required=True)
    rebuild = sub.add_parser("rebuild", help="empty a service's read models and replay its log")
    rebuild.add_argument("service")
    rebuild.add_argument("model", nargs="?", help="one model's name (default: all)")
    args = parser.parse_args(argv)

    module = importlib.import_module(f"services.{args.service}.service")
    app_cls = module.APPLICATION
    models = [m for m in module.READ_MODELS if args.model in (None, m.name)]
    if not models:
        parser.error(f"{args.service} has no read model named {args.model!r}")
    app = app_cls()
    for model_cls in models:
        count = Follower(app, model_cls()).rebuild()
        print(f"{args.service}.{model_cls.name}: replayed {count} events")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
