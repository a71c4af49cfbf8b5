from datetime import UTC, datetime, timedelta

import pytest

from services.infra import clock
from services.infra.clock import FileClock, FixedClock, isoformat
from services.infra.settings import Settings


def test_defaults_work_on_one_machine():
    s = Settings.from_env({})
    assert s.amqp_uri == "pyamqp://guest:guest@localhost:5672/"
    assert (s.database.host, s.database.port, s.database.user) == ("localhost", 5432, "postgres")
    assert s.database_name("billing") == "hostledger_billing"
    assert (s.http_host, s.http_port, s.smtp_in_port) == ("127.0.0.1", 8000, 2525)
    assert s.admin_username == "admin" and s.admin_password is None


def test_environment_overrides_and_prefix():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u:p%40ss@db.example:6543/",
            "HOSTLEDGER_DB_PREFIX": "acme_",
            "HOSTLEDGER_HTTP_PORT": "9000",
            "HOSTLEDGER_FAILPOINTS": "a, b=raise",
        }
    )
    assert s.database.password == "p@ss" and s.database.port == 6543
    assert s.database_name("orders") == "acme_orders"
    assert s.http_port == 9000
    assert s.failpoints == {"a", "b=raise"}


def test_bad_settings_name_the_variable():
    with pytest.raises(ValueError, match="HOSTLEDGER_HTTP_PORT"):
        Settings.from_env({"HOSTLEDGER_HTTP_PORT": "eighty"})
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings.from_env({"DATABASE_URL": "mysql://x"})


def test_domain_time_comes_from_the_installed_clock():
    fixed = FixedClock(datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    previous = clock.use_clock(fixed)
    try:
        from services.billing.domain import PersonalAccount

        account = PersonalAccount(
            customer_id=__import__("uuid").uuid4(), currency="EUR", opened_at=clock.now(), buyer={}
        )
        assert account.created_on == fixed.at
        fixed.advance(timedelta(days=365))
        assert clock.now() == datetime(2027, 11, 21, 10, 0, tzinfo=UTC)
    finally:
        clock.use_clock(previous)


def test_file_clock_moves_running_processes(tmp_path):
    path = str(tmp_path / "offset")
    c = FileClock(path)
    before = c.now()
    FileClock.set_offset(path, timedelta(days=30))
    assert c.now() - before >= timedelta(days=30)


def test_iso_format_is_utc_with_z():
    assert isoformat(datetime(2026, 11, 21, 10, 0, tzinfo=UTC)) == "2026-11-21T10:00:00Z"
