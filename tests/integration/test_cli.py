"""The `hostledger` command, run as operators run it: the console script in the
virtualenv, against real databases of its own."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import uuid
from pathlib import Path

import pytest

from services.cli import parser
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


def on_a_terminal(env, *args) -> tuple[int, str]:
    """Run the command with its output on a terminal (80 columns), as an operator sees it:
    its exit status and everything it wrote there."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [str(COMMAND), *args], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=side, stderr=side
    )
    os.close(side)
    written = b""
    while select.select([main], [], [], 120)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        written += chunk
    os.close(main)
    return process.wait(timeout=120), written.decode("utf-8", "replace")


def _every_subcommand(command=None, words=()) -> list[list[str]]:
    """Every command line the parser knows, down to each subcommand's subcommands."""
    command = command or parser()
    found = [list(words)]
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _every_subcommand(sub, (*words, name))
    return found


def test_the_command_is_installed_and_each_subcommand_has_help():
    assert COMMAND.exists(), "the package installs the `hostledger` console script"
    lines = _every_subcommand()
    # the tools that were `python -m` modules are under it, and the auditors' ones
    for expected in (
        ["databases"],
        ["first-admin"],
        ["readmodels", "rebuild"],
        ["readmodels", "status"],
        ["audit", "export"],
        ["audit", "verify-replay"],
        ["audit", "verify-chain"],
    ):
        assert expected in lines, lines
    for words in lines:
        done = run(dict(os.environ), *words, "--help")
        assert done.returncode == 0, (words, done.stderr)
        assert done.stdout.startswith(f"usage: hostledger {' '.join(words)}".rstrip()), done.stdout
        assert "options:" in done.stdout and "-h, --help" in done.stdout, words
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
    assert "%|" not in done.stderr  # no progress bar when the output is no terminal


def test_long_work_shows_a_progress_bar_on_a_terminal(env, tmp_path):
    assert run(env, "databases").returncode == 0
    assert run(env, "first-admin").returncode == 0
    # a rebuild: a bar per read model, counting the log's events
    status, written = on_a_terminal(env, "readmodels", "rebuild", "customers")
    assert status == 0, written
    assert "customers.staff_list: replayed" in written
    assert "customers.staff_list:" in written.replace("replayed", "")  # the bar's label
    assert "%|" in written and "event" in written, written
    # an export of what the audit indexes hold (rebuilt, as no service ran here)
    for service in ("billing", "orders", "helpdesk", "mailgateway"):
        assert run(env, "readmodels", "rebuild", service, "audit_index").returncode == 0
    out = tmp_path / "everything.jsonl"
    status, written = on_a_terminal(
        env, "audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", str(out)
    )
    assert status == 0, written
    assert "audit export:" in written and "%|" in written, written
    assert out.read_text().count("\n") >= 1
    # the replay of the service's history
    status, written = on_a_terminal(env, "audit", "verify-replay", "customers")
    assert status == 0, written
    assert "replaying customers." in written and "%|" in written, written


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
