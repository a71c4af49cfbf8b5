"""Nothing of a test stack outlives it: not after a failed start, not after the test run
itself dies."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from tests.stack import Stack, rabbitmqctl


class _BillingWillNotStart(Stack):
    """A stack whose billing process exits at once (a setting it cannot read)."""

    def start(self, name, extra_env=None, instance=None):
        if name == "billing":
            extra_env = dict(extra_env or {}, HOSTLEDGER_DB_POOL_SIZE="not-a-number")
        super().start(name, extra_env, instance)


def _processes_of(stack: Stack) -> list[int]:
    """Every process on this machine running with the stack's settings (its services and
    their children), found by the database prefix in their environment."""
    marker = f"HOSTLEDGER_DB_PREFIX={stack.settings.db_prefix}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def _databases_of(stack: Stack) -> list[str]:
    with psycopg.connect(stack.settings.database.conninfo("postgres")) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
            (stack.settings.db_prefix,),
        ).fetchall()
    return [name for (name,) in rows]


def test_a_stack_that_fails_to_start_leaves_nothing_behind():
    stack = _BillingWillNotStart()
    with pytest.raises(RuntimeError, match="billing exited"):
        stack.up()
    assert _processes_of(stack) == []
    assert _databases_of(stack) == []
    assert stack.vhost not in rabbitmqctl("list_vhosts", "name").split()
    assert stack not in Stack.live


def test_a_stack_process_dies_with_the_test_run_even_if_it_ignores_sigterm(tmp_path):
    """The test run is killed outright (no finalizer runs): its stack processes go too,
    even one whose graceful stop would hang."""
    pid_file = tmp_path / "child.pid"
    run = textwrap.dedent(
        f"""
        import signal, subprocess, sys, time
        from services.infra.processes import dies_with_this_process
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "time.sleep(600)"],
            start_new_session=True,
            preexec_fn=dies_with_this_process(signal.SIGKILL),
        )
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """
    )
    test_run = subprocess.Popen([sys.executable, "-c", run], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        test_run.send_signal(signal.SIGKILL)
        test_run.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if test_run.poll() is None:
            test_run.kill()
            test_run.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
