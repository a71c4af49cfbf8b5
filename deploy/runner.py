"""The local runner of `make run`: every process of the Procfile, kept running.

    python -m deploy.runner [-f deploy/Procfile] [-d ROOT] [-c billing=3,orders=2]

As honcho does (its Procfile and `.env` parsing and its output format are used here),
each process runs in the foreground with its output prefixed by its name
(`12:00:00 billing.2 | ...`), and a `.env` file in ROOT adds to the environment. Unlike
honcho, one process exiting does not stop the others: a process that exits when
nobody asked it to is started again, as compose's `restart: unless-stopped` and
Kubernetes' `restartPolicy: Always` do, after a pause that doubles with each exit in
a row (1 s, 2 s, 4 s ... at most 60 s) and starts again from 1 s once the process had
been running for 30 s.

Each process gets its own metrics port (HOSTLEDGER_METRICS_PORT: /metrics, /livez,
/readyz): 9310 for the first of the Procfile, 9311 for the next, and so on, and the
mailgateway's mail-in process the one after the last (HOSTLEDGER_METRICS_PORT_BASE or
--metrics-port-base moves them; 0 turns them off).

Ctrl-C (SIGINT) or SIGTERM stops everything, callers before the services they call
(services.infra.processes.STOP_ORDER: the gateway first, customers last), the processes
of one tier side by side: SIGTERM to each process's group (its own children too), SIGKILL
after a grace period to whatever is left of the tier; then the next tier, and at the
end the runner exits.
A second Ctrl-C kills at once. If the runner itself dies, however it dies, the kernel
sends each process SIGTERM (services.infra.processes.die_with_parent).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from honcho.environ import expand_processes, parse, parse_procfile
from honcho.printer import Message, Printer

from services.infra.processes import die_with_parent, stop_tiers

SYSTEM = "system"
COLOURS = ["36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1"]


@dataclass
class Backoff:
    """How long to wait before starting a process again after it exited."""

    first: float = 1.0
    most: float = 60.0
    # a process that ran this long before it exited was healthy: the next pause is `first`
    healthy_after: float = 30.0

    def pause(self, exits_in_a_row: int) -> float:
        return min(self.first * 2 ** max(exits_in_a_row - 1, 0), self.most)


@dataclass
class Child:
    name: str
    command: str
    env: dict
    colour: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    exits_in_a_row: int = 0
    start_at: float | None = 0.0  # when to start it (again); None: not to be started
    readers: list[threading.Thread] = field(default_factory=list)


class Runner:
    POLL = 0.1

    def __init__(
        self, children: list[Child], cwd: Path, printer: Printer, backoff: Backoff, grace: float
    ):
        self.children = children
        self.cwd = cwd
        self.printer = printer
        self.backoff = backoff
        self.grace = grace
        self.stop_requested: int | None = None  # the signal that asked
        self.kill_requested = False
        self._print_lock = threading.Lock()

    # -- output -------------------------------------------------------------------------

    def say(self, text: str, name: str = SYSTEM, colour: str | None = None) -> None:
        with self._print_lock:
            self.printer.write(Message("line", text, datetime.datetime.now(), name, colour))

    def _copy_output(self, child: Child, proc: subprocess.Popen) -> None:
        for line in iter(proc.stdout.readline, b""):
            self.say(line.decode("utf-8", "replace").rstrip("\n"), child.name, child.colour)
        proc.stdout.close()

    # -- processes ------------------------------------------------------------------------

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(  # noqa: S602 - a Procfile line is a shell command
            _exec(child.command),
            shell=True,
            cwd=self.cwd,
            env=child.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # its own process group: stopped as one, with its children; Ctrl-C at the
            # terminal reaches only the runner, which stops everything in order
            start_new_session=True,
            # SIGTERM when the runner dies; started from the main thread, which lives as
            # long as the runner does (the signal follows the thread that forked)
            preexec_fn=die_with_parent,
        )
        child.started_at = time.monotonic()
        child.start_at = None
        reader = threading.Thread(target=self._copy_output, args=(child, child.proc), daemon=True)
        reader.start()
        child.readers = [r for r in child.readers if r.is_alive()] + [reader]
        metrics = child.env.get("HOSTLEDGER_METRICS_PORT")
        where = f", metrics on port {metrics}" if metrics and metrics != "0" else ""
        self.say(f"{child.name} started (pid={child.proc.pid}{where})")

    def exited(self, child: Child, returncode: int) -> None:
        """`child` exited on its own: start it again after a pause."""
        ran = time.monotonic() - child.started_at
        if ran >= self.backoff.healthy_after:
            child.exits_in_a_row = 0
        child.exits_in_a_row += 1
        pause = self.backoff.pause(child.exits_in_a_row)
        child.proc = None
        child.start_at = time.monotonic() + pause
        self.say(
            f"{child.name} exited with {_describe(returncode)} after {ran:.1f}s; "
            f"starting it again in {pause:g}s"
        )

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            while self.stop_requested is None:
                now = time.monotonic()
                for child in self.children:
                    if child.proc is not None:
                        code = child.proc.poll()
                        if code is not None:
                            self.exited(child, code)
                    elif child.start_at is not None and now >= child.start_at:
                        self.start(child)
                time.sleep(self.POLL)
        finally:
            self.stop_all()
        return 0

    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested is not None:
            self.kill_requested = True  # asked twice: no more waiting
        self.stop_requested = signum

    def stop_all(self) -> None:
        """Callers before the services they call (STOP_ORDER), each tier side by side
        and gone (SIGKILL after the grace) before the next is asked to stop."""
        if self.stop_requested is not None:
            self.say(f"{signal.Signals(self.stop_requested).name} received, stopping all")
        started = {c.name: c for c in self.children if c.proc is not None}
        for tier in stop_tiers(started, lambda name: name.rsplit(".", 1)[0]):
            self._stop_together([started[name] for name in tier])
        for child in self.children:
            for reader in child.readers:
                reader.join(timeout=2)

    def _stop_together(self, children: list[Child]) -> None:
        running = [c for c in children if c.proc.poll() is None]
        for child in running:
            self.say(f"stopping {child.name} (pid={child.proc.pid})")
            _signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(c.proc.poll() is None for c in running):
            if self.kill_requested or time.monotonic() > deadline:
                break
            time.sleep(self.POLL)
        for child in children:
            if child.proc.poll() is None:
                self.say(f"{child.name} did not stop in {self.grace:g}s: killing it")
            # the whole group: what a process started lives in it too (the mail-in child)
            _signal_group(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            self.say(f"{child.name} stopped ({_describe(child.proc.returncode)})")


def _exec(command: str) -> str:
    """A simple command runs in place of the shell (`exec`), so that the signal sent when
    the runner dies reaches the process itself; a compound one (`a && b`) runs as it is."""
    lexer = shlex.shlex(command, posix=False, punctuation_chars=";&|()")
    try:
        compound = "\n" in command or any(set(token) <= set(";&|()") for token in lexer)
    except ValueError:  # unbalanced quotes: the shell says what is wrong
        compound = True
    return command if compound else f"exec {command}"


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-returncode).name
    return f"code {returncode}"


def _concurrency(text: str | None) -> dict[str, int]:
    result: dict[str, int] = {}
    for item in filter(None, (text or "").split(",")):
        name, _, count = item.partition("=")
        result[name.strip()] = int(count)
    return result


def build(args) -> Runner:
    root = Path(args.app_root).resolve()
    procfile = parse_procfile(Path(args.procfile).read_text())
    dotenv = {}
    env_file = root / args.env
    if env_file.is_file():
        dotenv = parse(env_file.read_text())
    unknown = set(_concurrency(args.concurrency)) - set(procfile.processes)
    if unknown:
        raise SystemExit(f"runner: no process named {', '.join(sorted(unknown))} in the Procfile")
    expanded = expand_processes(
        procfile.processes, concurrency=_concurrency(args.concurrency), env=dotenv
    )
    children = [
        Child(p.name, p.cmd, {**os.environ, **p.env}, COLOURS[i % len(COLOURS)])
        for i, p in enumerate(expanded)
    ]
    if args.metrics_port_base:
        # each process its own /metrics port, in Procfile order; the mail-in process (a
        # child of the mailgateway, one instance) the one after the last
        for i, child in enumerate(children):
            child.env["HOSTLEDGER_METRICS_PORT"] = str(args.metrics_port_base + i)
            child.env["HOSTLEDGER_MAILIN_METRICS_PORT"] = str(
                args.metrics_port_base + len(children)
            )
    width = max([len(SYSTEM)] + [len(c.name) for c in children])
    printer = Printer(sys.stdout, width=width)
    backoff = Backoff(args.backoff, args.backoff_max, args.healthy_after)
    return Runner(children, root, printer, backoff, args.grace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.runner",
        description="Run every process of a Procfile; start again any that exits.",
    )
    parser.add_argument("-f", "--procfile", default="deploy/Procfile")
    parser.add_argument("-d", "--app-root", default=".")
    parser.add_argument("-e", "--env", default=".env", help="environment file in the app root")
    parser.add_argument("-c", "--concurrency", help="name=count[,name=count...]")
    # above the processes' own HOSTLEDGER_SHUTDOWN_GRACE (20 s), after which they exit anyway
    parser.add_argument("--grace", type=float, default=25.0, help="seconds a tier has to stop")
    parser.add_argument(
        "--metrics-port-base",
        type=int,
        default=int(os.environ.get("HOSTLEDGER_METRICS_PORT_BASE") or 9310),
        help="the first process's /metrics port, the next one's +1 ... (0: none)",
    )
    parser.add_argument("--backoff", type=float, default=1.0, help="first pause, seconds")
    parser.add_argument("--backoff-max", type=float, default=60.0, help="longest pause")
    parser.add_argument(
        "--healthy-after",
        type=float,
        default=30.0,
        help="a process that ran this long is restarted after the first pause again",
    )
    return build(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
