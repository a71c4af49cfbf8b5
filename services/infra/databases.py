"""Create each service's PostgreSQL database if missing (`python -m services.infra.databases`)."""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql

from services.infra.settings import SERVICES, Settings, settings


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


def ensure_all(cfg: Settings | None = None) -> list[str]:
    cfg = cfg or settings()
    return [cfg.database_name(s) for s in SERVICES if ensure_database(cfg, cfg.database_name(s))]


def main() -> int:
    cfg = settings()
    try:
        created = ensure_all(cfg)
    except psycopg.OperationalError as exc:
        print(f"cannot reach PostgreSQL at {cfg.database.host}:{cfg.database.port}: {exc}")
        return 1
    for name in created:
        print(f"created database {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
