"""The `hostledger` command, run as operators run it: the console script in the
virtualenv, against real databases of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.infra.databases import drop_database
from services.infra.settings import SERVICES, Settings

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env():
    prefix = f"hlcli_{uuid.uuid4().hex[:8]}_"
    environ = dict(
        os.environ,
        HOSTLEDGER_DB_PREFIX=prefix,
        HOSTLEDGER_DB_POOL_SIZE="2",
        HOSTLEDGER_ADMIN_USERNAME="chief",
        HOSTLEDGER_ADMIN_PASSWORD="a long and strong passphrase 42",
    )
    yield environ
    cfg = Settings.from_env({"HOSTLEDGER_DB_PREFIX": prefix})
    for service in SERVICES:
        drop_database(cfg, cfg.database_name(service))


def run(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_command_is_installed_and_each_subcommand_has_help():
    assert COMMAND.exists(), "the package installs the `hostledger` console script"
    for args in (
        ["--help"],
        ["databases", "--help"],
        ["first-admin", "--help"],
        ["readmodels", "--help"],
        ["readmodels", "rebuild", "--help"],
        ["readmodels", "status", "--help"],
    ):
        done = run(dict(os.environ), *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "usage: hostledger" in done.stdout
    done = run(dict(os.environ))
    assert done.returncode == 2 and "required: <command>" in done.stderr


def test_set_up_then_inspect_and_rebuild_read_models(env):
    done = run(env, "databases")
    assert done.returncode == 0, done.stderr
    prefix = env["HOSTLEDGER_DB_PREFIX"]
    assert sorted(done.stdout.split()) == sorted(
        ["created", "database"] * len(SERVICES) + [prefix + s for s in SERVICES]
    )
    again = run(env, "databases")
    assert again.returncode == 0 and again.stdout.strip() == "every service's database exists"

    done = run(env, "first-admin")
    assert done.returncode == 0, done.stderr
    assert "first administrator created: username 'chief'" in done.stdout
    assert "generated password" not in done.stdout  # the one given is used
    again = run(env, "first-admin")
    assert again.stdout.strip() == "staff accounts exist; no administrator created"

    done = run(env, "readmodels", "status", "customers")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert "customers.staff_list" in rows, done.stdout
    head = int(rows["customers.staff_list"][1])
    assert head >= 1  # the administrator's events are in the log

    done = run(env, "readmodels", "rebuild", "customers", "staff_list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"customers.staff_list: replayed {head} events"
    done = run(env, "readmodels", "status", "customers")
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    position, _head, behind, parked = rows["customers.staff_list"]
    assert (int(position), int(behind), int(parked)) == (head, 0, 0)

    done = run(env, "readmodels", "rebuild", "customers", "no_such_model")
    assert done.returncode == 1
    assert "customers has no read model named 'no_such_model'" in done.stderr
    assert "staff_list" in done.stderr  # the ones it has are named


def test_errors_name_what_is_wrong_without_a_traceback(env):
    done = run(env, "readmodels", "rebuild", "nowhere")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("hostledger: no service named 'nowhere'")
    # the databases were never created: the message says which and what creates them
    done = run(env, "readmodels", "status", "billing")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"database {env['HOSTLEDGER_DB_PREFIX']}billing" in done.stderr
    assert "`hostledger databases` creates missing ones" in done.stderr
