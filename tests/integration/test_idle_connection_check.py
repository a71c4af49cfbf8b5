"""A service's pool hands out its connections without a round trip to the server first,
and still never hands out one the server has closed (terminated, restarted)."""

import time
import uuid

import psycopg
import pytest

from services.infra.databases import RetryingDatastore, check_idle_connection


def _admin(cfg):
    return psycopg.connect(cfg.database.conninfo("postgres"), autocommit=True)


def _last_statement(cfg, pid: int) -> str:
    with _admin(cfg) as admin:
        return admin.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()[0]


def _terminate(cfg, dbname: str) -> int:
    with _admin(cfg) as admin:
        return admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()) AS t",
            (dbname,),
        ).fetchone()[0]


def test_an_idle_connection_passes_the_check_without_a_statement(cfg):
    conninfo = cfg.database.conninfo(cfg.database_name("billing"))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT 'the last statement sent'")
        for _ in range(3):
            check_idle_connection(conn)
        # the server saw nothing after the last statement (the library's ping sends one)
        assert _last_statement(cfg, conn.info.backend_pid) == "SELECT 'the last statement sent'"
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_connection_the_server_closed_fails_the_check_and_is_closed(cfg):
    dbname = cfg.database_name("billing")
    with psycopg.connect(cfg.database.conninfo(dbname), autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert _terminate(cfg, dbname) >= 1
        for _ in range(50):  # the server's goodbye reaches the socket
            try:
                check_idle_connection(conn)
            except psycopg.OperationalError:
                break
            time.sleep(0.02)
        else:
            pytest.fail("a terminated connection passed the check")
        assert conn.closed
        with pytest.raises(psycopg.OperationalError):
            check_idle_connection(conn)


def test_the_pool_replaces_terminated_connections_and_the_app_goes_on(billing, cfg):
    assert billing.datastore.pool._check is check_idle_connection
    assert isinstance(billing.datastore, RetryingDatastore)
    assert billing.datastore.pre_ping is False
    dbname = cfg.database_name("billing")
    before = billing.recorder.max_notification_id() or 0
    billing.open_account(uuid.uuid4(), "EUR")
    one_account = billing.recorder.max_notification_id() - before  # its events
    for _ in range(3):
        with billing.datastore.transaction(commit=False) as curs:  # the pool has a connection
            curs.execute("SELECT 1")
        assert _terminate(cfg, dbname) >= 1
        # the next transactions get a working connection: no error reaches the caller
        for _ in range(3):
            with billing.datastore.transaction(commit=False) as curs:
                curs.execute("SELECT pg_backend_pid() AS pid")
                assert curs.fetchone()["pid"]
    assert _terminate(cfg, dbname) >= 1
    billing.open_account(uuid.uuid4(), "EUR")  # a save right after: done once
    assert billing.recorder.max_notification_id() == before + 2 * one_account
