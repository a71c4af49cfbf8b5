"""Stopping a process: SIGTERM lets what is in flight finish, within a grace period.

`nameko run` stops its services on SIGTERM with `ServiceRunner.stop()`: the entrypoints
stop taking work (RPC consumers cancelled, the HTTP server draining, inboxes stop
consuming), the running workers are waited for, then the dependencies stop their loops
at a safe point and release their locks. nameko itself waits for that as long as it
takes (it has no time limit), and a second SIGTERM does nothing more. So every
hostledger process runs `nameko run` with this in place of `nameko.cli.run.run`
(installed when any hostledger service module is imported; the command stays the same):

- SIGTERM or SIGINT (Ctrl-C): a graceful stop, as above; the log says so, and says
  `stopped cleanly` when done, then the process exits with code 0.
- The stop takes longer than `HOSTLEDGER_SHUTDOWN_GRACE` seconds (20), or a second
  SIGTERM/SIGINT comes: the process exits at once with code 1, saying what was still
  running. Nothing is lost by it: a message not yet acknowledged (an RPC request, an
  event delivery) goes back to the broker, which delivers it to another instance (or to
  this one when it is back), and a database transaction not committed is rolled back
  (an event is applied together with its tracking record, or not at all).

The grace must be shorter than what the platform waits before SIGKILL: compose's
`stop_grace_period` and Kubernetes' `terminationGracePeriodSeconds` (deploy/README.md).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time

import eventlet
import nameko.cli.run as nameko_run
from eventlet import patcher
from nameko.runners import ServiceRunner

from services.infra.settings import settings

log = logging.getLogger(__name__)

# a real thread and a real clock: the grace runs out even if the hub were stuck
_threading = patcher.original("threading")
_time = patcher.original("time")

FORCED_EXIT_CODE = 1

_requested = False


def requested() -> bool:
    """True once this process has been asked to stop (its loops' own `stop` may come
    later: a supervisor must not start again a child that the signal ended meanwhile)."""
    return _requested


def _say(text: str) -> None:
    """Write a line to stderr without `logging` (whose locks are green, and may be held
    by a greenlet, when the watchdog's real thread needs to speak)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    os.write(2, f"{stamp} WARNING {__name__}: {text}\n".encode("utf-8", "replace"))


class GracefulStop:
    """The signal handling of one `nameko run` process."""

    def __init__(self, runner: ServiceRunner, grace: float):
        self.runner = runner
        self.grace = grace
        self.requested_at: float | None = None
        self.names = ", ".join(c.service_name for c in runner.containers) or "nothing"

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        # a signal must wake eventlet's hub: otherwise the stop the handler spawns waits
        # for the hub's next I/O or timer (Python resumes an interrupted epoll wait)
        self._wakeup, writer = socket.socketpair()
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno())
        self._wakeup_writer = writer  # kept open as long as the process runs
        eventlet.spawn_n(self._read_wakeups)
        from services.infra import probes

        # /readyz says so from the signal on: nothing should send this process more work
        probes.add_ready_check("stopping", lambda: "stopping (SIGTERM)" if _requested else None)

    def _read_wakeups(self) -> None:
        while self._wakeup.recv(512):
            pass

    def on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested_at is not None:
            _say(f"{name} again while stopping {self.names}: exiting now ({self.running()})")
            os._exit(FORCED_EXIT_CODE)
        self.requested_at = time.monotonic()
        global _requested
        _requested = True
        watchdog = _threading.Thread(target=self._watch, name="shutdown-grace", daemon=True)
        watchdog.start()
        # a signal handler runs in the main loop, where eventlet primitives cannot be
        # used: the stop runs in a green thread of its own (as nameko's own handler does),
        # which also logs (not in the name of whatever request the signal interrupted)
        eventlet.spawn_n(self._stop, name)

    def _stop(self, name: str) -> None:
        log.info(
            "%s received: %s stops taking work and finishes what is in flight "
            "(at most %gs, HOSTLEDGER_SHUTDOWN_GRACE)",
            name,
            self.names,
            self.grace,
        )
        self.runner.stop()

    def _watch(self) -> None:
        _time.sleep(self.grace)
        _say(
            f"{self.names} did not stop within {self.grace:g}s (HOSTLEDGER_SHUTDOWN_GRACE): "
            f"exiting now ({self.running()}); unacknowledged messages go back to the broker"
        )
        _say("where the green threads wait:\n" + _green_stacks())
        os._exit(FORCED_EXIT_CODE)

    def running(self) -> str:
        """What is still running, for the log (read without locks: an estimate)."""
        parts = []
        for container in list(self.runner.containers):
            workers = [getattr(ctx, "call_id", "?") for ctx in list(container._worker_threads)]
            threads = [str(ident) for ident in list(container._managed_threads.values())]
            parts.append(
                f"{container.service_name}: {len(workers)} worker(s)"
                + (f" {', '.join(workers)}" if workers else "")
                + f", threads: {', '.join(threads) or 'none'}"
            )
        return "; ".join(parts) or "nothing running"

    def stopped(self) -> None:
        if self.requested_at is not None:
            log.info(
                "%s stopped cleanly in %.1fs", self.names, time.monotonic() - self.requested_at
            )


def _green_stacks() -> str:
    """Where each suspended green thread waits (innermost frames last), for the log of a
    stop that ran out of time. Read from the watchdog's thread: best effort."""
    import gc
    import traceback

    import greenlet

    lines = []
    try:
        for obj in gc.get_objects():
            if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
                frames = traceback.extract_stack(obj.gr_frame)[-12:]
                lines.append("--")
                lines += [f"  {f.filename}:{f.lineno} {f.name}" for f in frames]
    except Exception as exc:  # noqa: BLE001 - a diagnostic only
        lines.append(f"(stacks not readable: {exc})")
    return "\n".join(lines)


def run(services, config, backdoor_port=None):
    """`nameko run`'s own `run`, with the stop above instead of nameko's signal handler."""
    runner = ServiceRunner(config)
    for service_cls in services:
        runner.add_service(service_cls)
    stop = GracefulStop(runner, settings().shutdown_grace)
    stop.install()
    if backdoor_port is not None:
        nameko_run.setup_backdoor(runner, backdoor_port)
    runner.start()
    # as nameko does: a signal that arrives while the hub waits on a socket surfaces as
    # EINTR in the main greenlet, so the runner is waited for in a green thread of its own
    runnlet = eventlet.spawn(runner.wait)
    while True:
        try:
            runnlet.wait()
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        break
    stop.stopped()
    sys.stdout.flush()


def install() -> None:
    """Make `nameko run` in this process stop as described above (idempotent)."""
    nameko_run.run = run


install()
