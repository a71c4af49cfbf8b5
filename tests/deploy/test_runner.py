"""The local runner (`make run`) keeps every process running, as compose and Kubernetes do.

Real processes on this machine (no broker or database): a Procfile of small Python
programs, run by `python -m deploy.runner` as `deploy/run.sh` runs it. What is checked
is what the runner does and says (its announced pauses), never how long anything took.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.runner import Backoff, _exec
from tests.deploy.test_manifests import K8S, load, load_all

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PY = sys.executable

STEADY = f"{PY} -c \"import os,time; print('steady', os.getpid(), flush=True); time.sleep(600)\""
CRASH = f"{PY} -c \"import sys; print('crashing', flush=True); sys.exit(3)\""
# a process with a child of its own (as the mail gateway has its mail-in process)
PARENT = (
    f"{PY} -c \"import os,subprocess,time; c=subprocess.Popen(['sleep','600']);"
    " print('parent', os.getpid(), 'child', c.pid, flush=True); time.sleep(600)\""
)


class Running:
    """`python -m deploy.runner` on a Procfile, its output collected line by line."""

    def __init__(self, tmp_path: Path, procfile: str, *args: str):
        (tmp_path / "Procfile").write_text(procfile)
        self.lines: list[str] = []
        command = [PY, "-m", "deploy.runner", "-f", str(tmp_path / "Procfile"), "-d", tmp_path]
        pauses = ["--backoff", "0.1", "--backoff-max", "0.4", "--healthy-after", "60"]
        self.proc = subprocess.Popen(
            [*command, *pauses, "--grace", "5", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> list[re.Match]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for line in list(self.lines) if (m := re.search(pattern, line))]
            if len(found) >= count:
                return found
            assert self.proc.poll() is None or time.monotonic() < deadline, self.lines
            assert time.monotonic() < deadline, f"no {count} x {pattern!r} in {self.lines}"
            time.sleep(0.05)

    def stop(self, sig=signal.SIGINT, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its reaper is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _gone(pids, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def runner(tmp_path):
    started: list[Running] = []

    def start(procfile: str, *args: str) -> Running:
        r = Running(tmp_path, procfile, *args)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def test_backoff_doubles_to_its_cap():
    backoff = Backoff(first=1, most=60)
    assert [backoff.pause(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_simple_commands_replace_the_shell_compound_ones_do_not():
    assert _exec("nameko run x") == "exec nameko run x"
    assert _exec("a && b") == "a && b"
    assert _exec("a; b") == "a; b"
    assert _exec("a | b") == "a | b"
    assert _exec("(a)") == "(a)"
    assert _exec(STEADY) == f"exec {STEADY}"  # quoted ; and ( are the program's own


def test_a_process_that_keeps_exiting_is_started_again_with_doubling_pauses(runner):
    r = runner(f"steady: {STEADY}\ncrash: {CRASH}\n")
    exits = r.wait_for(r"crash\.1 exited with code 3 after .*starting it again in (\S+)s", 5)
    assert [float(m.group(1)) for m in exits[:5]] == [0.1, 0.2, 0.4, 0.4, 0.4]
    # the other process was not touched: started once, still running
    [steady] = r.wait_for(r"steady (\d+)")
    assert len([line for line in r.lines if "steady.1 started" in line]) == 1
    assert _alive(int(steady.group(1)))
    assert r.stop() == 0
    assert _gone([int(steady.group(1))])
    assert any("SIGINT received, stopping all" in line for line in r.lines)


def test_a_killed_process_is_started_again_and_ctrl_c_stops_every_process_and_child(runner):
    r = runner(f"parent: {PARENT}\nsteady: {STEADY}\n", "-c", "steady=2")
    [first] = r.wait_for(r"parent (\d+) child (\d+)")
    steadies = [int(m.group(1)) for m in r.wait_for(r"steady\.\d .*steady (\d+)", 2)]
    os.kill(int(first.group(1)), signal.SIGKILL)  # a crash
    r.wait_for(r"parent\.1 exited with SIGKILL after .*starting it again in 0\.1s")
    second = r.wait_for(r"parent (\d+) child (\d+)", 2)[1]
    assert second.group(1) != first.group(1)

    assert r.stop() == 0
    pids = [int(second.group(1)), int(second.group(2)), *steadies]
    assert _gone(pids), [p for p in pids if _alive(p)]


def test_sigterm_stops_all_too(runner):
    r = runner(f"steady: {STEADY}\n")
    [m] = r.wait_for(r"steady (\d+)")
    assert r.stop(signal.SIGTERM) == 0
    assert _gone([int(m.group(1))])


def test_processes_do_not_outlive_a_runner_that_was_killed(runner):
    r = runner(f"steady: {STEADY}\n")
    [m] = r.wait_for(r"steady (\d+)")
    r.proc.kill()  # no chance to stop anything itself
    r.proc.wait()
    assert _gone([int(m.group(1))])


def test_run_sh_runs_the_procfile_with_this_runner():
    script = (DEPLOY / "run.sh").read_text()
    assert "python -m deploy.runner" in script
    assert not re.search(r"^\s*exec honcho", script, re.M)


# -- the other ways to run it restart a process that exits, too ----------------------------


def test_compose_restarts_every_long_running_process():
    for name, service in load(DEPLOY / "compose.yaml")["services"].items():
        if name == "setup":  # one-shot
            assert service["restart"] == "no"
        else:
            assert service.get("restart") in ("unless-stopped", "always"), name


def test_kubernetes_deployments_restart_their_containers():
    deployments = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in load_all(path)
        if doc.get("kind") == "Deployment"
    ]
    assert deployments
    for doc in deployments:
        assert doc["spec"]["template"]["spec"]["restartPolicy"] == "Always", doc["metadata"]


def test_each_process_gets_a_metrics_port_of_its_own(runner):
    show = f"{PY} -c \"import os,time; print('ports', os.environ['HOSTLEDGER_METRICS_PORT'],"
    show += " os.environ['HOSTLEDGER_MAILIN_METRICS_PORT'], flush=True); time.sleep(600)\""
    r = runner(f"one: {show}\ntwo: {show}\n", "--metrics-port-base", "19400", "-c", "two=2")
    ports = r.wait_for(r"ports (\d+) (\d+)", count=3)
    assert sorted(int(m.group(1)) for m in ports) == [19400, 19401, 19402]
    assert {int(m.group(2)) for m in ports} == {19403}
    r.wait_for(r"one.1 started \(pid=\d+, metrics on port 19400\)")
    assert r.stop() == 0


def test_callers_stop_before_the_services_they_call(runner, tmp_path):
    """The gateway is gone (it takes a while to stop) before customers is asked to stop;
    two orders processes stop side by side."""
    slow = f'{PY} -c "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: '
    slow += "(time.sleep(0.5), sys.exit(0))); print('up', flush=True); time.sleep(600)\""
    up = f"{PY} -c \"import time; print('up', flush=True); time.sleep(600)\""
    r = runner(f"customers: {up}\norders: {up}\ngateway: {slow}\n", "-c", "orders=2")
    r.wait_for(r"\| up", count=4)
    assert r.stop() == 0
    said = [line.split("| ", 1)[1] for line in r.lines if "system" in line.split("|")[0]]
    said = [
        re.sub(r" \(.*\)$", "", line)
        for line in said
        if re.match(r"(stopping \S+|\S+ stopped)", line)
    ]
    assert said[:2] == ["stopping gateway.1", "gateway.1 stopped"]
    assert sorted(said[2:4]) == ["stopping orders.1", "stopping orders.2"]
    assert said[-2:] == ["stopping customers.1", "customers.1 stopped"]
