"""What the customers service runs beside its workers: handing the recorded mail requests
(mail_requests.py) to the mail gateway."""

from __future__ import annotations

import logging
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy

from services.customers.mail_requests import MAX_BACKOFF
from services.infra import clock
from services.infra.settings import settings
from services.infra.store import EventStore

log = logging.getLogger(__name__)


class MailRequests(DependencyProvider):
    """Hands the recorded mail requests to the mail gateway, in a green thread of its own.

    Any number of instances may run it: a row is claimed (FOR UPDATE SKIP LOCKED) and
    leased for longer than a call can take; a claim whose holder died is due again once
    its lease ends. `wake()` hands over at once what a request just recorded."""

    IDLE_POLL = 1.0

    def __init__(self):
        self._running = False
        self._gt = None
        self._wake = eventlet.event.Event()
        self._proxy = None
        self._rpc = None

    def start(self):
        store = next(d for d in self.container.dependencies if isinstance(d, EventStore))
        self.app = store.app
        self._running = True
        self._gt = self.container.spawn_managed_thread(self._loop, "mail-requests")
        store.used_by(lambda: self._gt is None)

    # how long a stop waits for a hand-over under way: the mail gateway may be stopping
    # too (it stops first: services.infra.processes.STOP_ORDER) and an RPC to it would
    # hold the stop for the whole RPC timeout. A hand-over cut off is not lost: its claim
    # is leased, the request is handed over again once the lease ends, and the mail
    # gateway queues one mail per request key however often it is handed one
    STOP_WAIT = 2.0

    def stop(self):
        self._running = False
        self.wake()
        if self._gt is not None:
            with eventlet.Timeout(self.STOP_WAIT, False):
                self._gt.wait()
            self._gt.kill()  # no-op when it has ended
            self._gt = None
        self._close()

    def kill(self):
        self._running = False
        if self._gt is not None:
            self._gt.kill()
        self._close()

    def wake(self):
        wake, self._wake = self._wake, eventlet.event.Event()
        wake.send(True)

    def get_dependency(self, worker_ctx):
        return self

    def _loop(self):
        while self._running:
            wake = self._wake
            try:
                handed = self.run_once()
            except Exception:
                log.exception("handing mail requests over failed; trying again")
                handed = 0
            if handed == 0:
                with eventlet.Timeout(self.IDLE_POLL, False):
                    wake.wait()

    def run_once(self) -> int:
        """Hand over the requests due now; how many were taken by the mail gateway."""
        handed = 0
        while self._running and (row := self._claim()) is not None:
            try:
                self._hand_over(row)
            except Exception as exc:  # noqa: BLE001 - recorded; tried again after a while
                self._failed(row, exc)
                continue
            self._handed_over(row)
            handed += 1
        return handed

    def _claim(self) -> dict | None:
        cfg = settings()
        now = clock.now()
        lease = timedelta(seconds=cfg.rpc_timeout + 10)
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE mail_requests SET next_attempt_at = %s, attempts = attempts + 1"
                " WHERE id = (SELECT id FROM mail_requests WHERE handed_over_at IS NULL"
                " AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT 1"
                " FOR UPDATE SKIP LOCKED)"
                " RETURNING id, kind, customer_id, details, secret, attempts",
                (now + lease, now),
            )
            return curs.fetchone()

    def _hand_over(self, row: dict) -> None:
        mailgateway = self._mailgateway()
        details = row["details"]
        if row["kind"] == "account_credentials":
            mailgateway.send_account_credentials(
                str(row["customer_id"]),
                details["username"],
                row["secret"],
                reason=details["reason"],
            )
        elif row["kind"] == "email_change":
            mailgateway.send_email_change(
                details["recipient"], row["secret"], key=f"customers:{row['id']}"
            )
        elif row["kind"] == "email_changed":
            mailgateway.send_email_changed(details["recipient"], key=f"customers:{row['id']}")
        else:
            mailgateway.send_password_reset(
                details["recipient"], row["secret"], key=f"customers:{row['id']}"
            )

    def _handed_over(self, row: dict) -> None:
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE mail_requests SET handed_over_at = %s, secret = NULL, last_error = NULL"
                " WHERE id = %s",
                (clock.now(), row["id"]),
            )

    def _failed(self, row: dict, exc: Exception) -> None:
        self._close()  # a fresh connection to the broker next time
        wait = min(settings().outbox_backoff * 2 ** (row["attempts"] - 1), MAX_BACKOFF)
        log.warning(
            "the %s mail request %s was not taken by the mail gateway (%s); again in %.1fs",
            row["kind"],
            row["id"],
            type(exc).__name__,
            wait,
        )
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE mail_requests SET next_attempt_at = %s, last_error = %s WHERE id = %s",
                (
                    clock.now() + timedelta(seconds=wait),
                    f"{type(exc).__name__}: {exc}"[:500],
                    row["id"],
                ),
            )

    def _mailgateway(self):
        if self._rpc is None:
            proxy = ClusterRpcProxy(self.container.config, timeout=settings().rpc_timeout)
            self._rpc = proxy.start()
            self._proxy = proxy
        return self._rpc.mailgateway

    def _close(self):
        proxy, self._proxy, self._rpc = self._proxy, None, None
        if proxy is not None:
            try:
                proxy.stop()
            except Exception:
                log.debug("closing the RPC proxy failed", exc_info=True)
