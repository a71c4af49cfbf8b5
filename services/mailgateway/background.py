"""What the mailgateway service runs beside its workers: the outbox sender, and the
mail-in process (SMTP server and IMAP poller) as a supervised child."""

from __future__ import annotations

import logging
import time
from email.utils import parseaddr

import eventlet
from nameko.extensions import DependencyProvider

from services.infra import metrics, probes, shutdown
from services.infra.processes import die_with_parent
from services.infra.relay import AdvisoryLock
from services.infra.settings import settings
from services.infra.store import EventStore
from services.mailgateway.metrics import outbox_probe
from services.mailgateway.outbox import Relay, Sender

log = logging.getLogger(__name__)


def mail_identity() -> tuple[str, str]:
    """(From header, domain of our Message-IDs)."""
    cfg = settings()
    domain = cfg.mail_domain
    return (cfg.mail_from or f"hostledger <noreply@{domain}>"), domain


def signature() -> str:
    """Who signs notifications: the display name of HOSTLEDGER_MAIL_FROM."""
    sender, domain = mail_identity()
    return parseaddr(sender)[0] or domain


class OutboxSender(DependencyProvider):
    """Runs the one sender of this service's outbox in a green thread of its own.

    Only the instance holding the `outbox:<service>` advisory lock sends; when it takes
    the lock it first settles what a dead holder left `sending` (see outbox.py)."""

    IDLE_POLL = 0.2

    def __init__(self):
        self._running = False
        self._gt = None
        self._wake = eventlet.event.Event()

    def start(self):
        store = next(d for d in self.container.dependencies if isinstance(d, EventStore))
        cfg = settings()
        sender, domain = mail_identity()
        self.sender = Sender(
            store.app,
            Relay(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout, local_hostname=domain),
            sender=sender,
            domain=domain,
            backoff=cfg.outbox_backoff,
        )
        self.lock = AdvisoryLock(
            cfg.database.conninfo(cfg.database_name(store.app.service)), "outbox:mailgateway"
        )
        # the outbox's depth and oldest age, read when Prometheus scrapes
        metrics.add_probe(store.app.service, "outbox", outbox_probe(store.app))
        self._running = True
        # woken once queued notifications are committed (services.mailgateway.application)
        store.app.on_queued = self.wake
        self._gt = self.container.spawn_managed_thread(self._loop, "outbox-sender")
        store.used_by(lambda: self._gt is None)

    def stop(self):
        self._running = False
        if getattr(self, "sender", None) is not None:
            self.sender.stopping = True  # after the row being sent, not the next one
        self.wake()
        if self._gt is not None:
            self._gt.wait()
            self._gt = None
        if getattr(self, "sender", None) is not None:
            self.sender.relay.close()
            self.lock.release()

    def kill(self):
        self._running = False
        if self._gt is not None:
            self._gt.kill()

    def wake(self):
        wake, self._wake = self._wake, eventlet.event.Event()
        wake.send(True)

    def _loop(self):
        holding = False
        while self._running:
            wake = self._wake
            try:
                if not self.lock.try_acquire():
                    holding = False
                    eventlet.sleep(1.0)  # another instance sends
                    continue
                if not holding:
                    settled = self.sender.settle_crashed()
                    if settled:
                        log.warning("%d notifications left mid-send are now uncertain", settled)
                    holding = True
                if self.sender.run_once() == 0:
                    with eventlet.Timeout(self.IDLE_POLL, False):
                        wake.wait()
            except Exception:
                log.exception("the outbox sender failed; retrying")
                # a claim whose commit failed may have left a row `sending`: settle it
                # like a dead sender's on the next round
                holding = False
                eventlet.sleep(1.0)

    def get_dependency(self, worker_ctx):
        return self


class MailInProcess(DependencyProvider):
    """Runs `python -m services.mailgateway.mailin` (SMTP server, IMAP poller) as a child
    of this service and starts it again if it dies.

    aiosmtpd is asyncio and this process runs under eventlet's monkey-patching, which
    asyncio does not survive reliably; as a child process it runs on a plain interpreter
    while deploying stays one process per service (the mailgateway owns port 2525).
    HOSTLEDGER_MAIL_IN=0 leaves it out (to run `mailin` on its own instead)."""

    def __init__(self):
        self._running = False
        self._gt = None
        self.proc = None

    def start(self):
        if not settings().mail_in:
            return
        self._running = True
        self._gt = self.container.spawn_managed_thread(self._supervise, "mailin")
        # not ready (no SMTP traffic) while the child that takes the mail is not running
        probes.add_ready_check("mail-in", self._child_running)

    def _child_running(self) -> str | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return "the mail-in process (SMTP server, IMAP poller) is not running"
        return None

    def _supervise(self):
        import subprocess
        import sys

        delay = 1.0
        while self._running:
            started = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.mailgateway.mailin"],
                preexec_fn=die_with_parent,
            )
            while self._running and self.proc.poll() is None:
                eventlet.sleep(0.5)
            if shutdown.requested():
                # the stop's signal reached the child too (its process group): no restart
                while self._running:
                    eventlet.sleep(0.2)
            if self._running:
                # one that dies at once (its port taken, ...) is retried ever more slowly
                delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 60.0)
                log.warning(
                    "the mail-in process exited (%s); starting it again in %.0fs",
                    self.proc.poll(),
                    delay,
                )
                # in short steps: a stop (the whole process group is signalled, the child
                # first) must neither wait out the pause nor see a new child started
                until = time.monotonic() + delay
                while self._running and time.monotonic() < until:
                    eventlet.sleep(0.2)

    def stop(self):
        self._running = False
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            for _ in range(40):
                if proc.poll() is not None:
                    break
                eventlet.sleep(0.25)
            else:
                proc.kill()
        if self._gt is not None:
            self._gt.wait()
            self._gt = None

    def kill(self):
        self._running = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def get_dependency(self, worker_ctx):
        return None
