"""Incoming mail: the SMTP server for the provider's MTA and the IMAP poller.

    python -m services.mailgateway.mailin

The mailgateway service starts it as a child process and restarts it if it dies (or,
with HOSTLEDGER_MAIL_IN=0 there, it runs on its own): aiosmtpd runs on asyncio, and
nameko processes run under eventlet's monkey-patching, which asyncio does not survive
reliably. Here there is no eventlet: the asyncio loop only speaks SMTP; each message
is handled in a worker thread that parses it, applies the loop rules and the rate
limit, and hands it to the helpdesk over nameko's standalone RPC (one proxy per thread).
The process keeps no state of its own: everything is in the mailgateway's database,
so any number of them can run side by side.

Nothing is lost: a message is answered 250 only once the helpdesk has taken it (or it
was dropped by a loop rule, or kept for staff); when the helpdesk cannot be reached
the answer is 451 and the MTA tries again later. The helpdesk ignores a Message-ID it
has seen, so a retry after a lost answer opens nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.parser import BytesParser
from email.policy import compat32
from functools import partial

import psycopg
from psycopg.rows import dict_row

from contracts.errors import HostledgerError
from contracts.helpdesk import ticket_message_of
from services.infra import clock
from services.infra.parking import storable_text
from services.infra.settings import Settings, settings
from services.mailgateway import authresults, compose, parsing
from services.mailgateway.metrics import MAIL_IN, smtp_result
from services.mailgateway.tables import SCHEMA

log = logging.getLogger("hostledger.mailin")

MAX_MESSAGE = 25 * 1024 * 1024
WORKERS = 8


class TryLater(Exception):
    """The helpdesk (or the database) cannot take the message now: 451, the MTA retries."""


@dataclass
class Taken:
    """What became of one message: the SMTP answer and, per recipient, the outcome."""

    reply: str
    outcomes: list[str]


def _is_transport_error(exc: BaseException) -> bool:
    return type(exc).__name__ in (
        "UnknownService",
        "RpcTimeout",
        "RpcConnectionError",
        "ConnectionError",
    ) or isinstance(exc, (OSError, ConnectionError, TimeoutError))


# a message the helpdesk fails on (not for want of a connection) this many times in a row
# is kept for staff (held mail, reason `failed`) and the mailbox goes on with the next
HANDOFF_ATTEMPTS = 3


class MailIn:
    """Takes one raw message at a time (from SMTP or IMAP); thread-safe."""

    def __init__(self, cfg: Settings | None = None):
        self.cfg = cfg or settings()
        self.conninfo = self.cfg.database.conninfo(self.cfg.database_name("mailgateway"))
        self.domain = self.cfg.mail_domain
        self._local = threading.local()
        # messages the helpdesk failed on (not a transport error): how often, so that one
        # that keeps failing is kept for staff instead of stopping its mailbox's poller
        self._failures: dict[tuple[str, str], int] = {}
        self._failures_lock = threading.Lock()

    # -- resources per thread -----------------------------------------------------------

    def setup(self) -> None:
        from services.infra.databases import ensure_database

        ensure_database(self.cfg, self.cfg.database_name("mailgateway"))
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('schema'))")
            try:
                for statement in SCHEMA:
                    conn.execute(statement)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('schema'))")

    def _db(self) -> psycopg.Connection:
        conn = getattr(self._local, "db", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, row_factory=dict_row, connect_timeout=5
            )
            self._local.db = conn
        return conn

    def _execute(self, statement: str, params=()) -> list[dict]:
        try:
            with self._db().cursor() as curs:
                curs.execute(statement, params)
                return curs.fetchall() if curs.description else []
        except psycopg.Error as exc:
            conn = getattr(self._local, "db", None)
            if conn is not None:
                conn.close()
            raise TryLater(f"database: {exc}") from exc

    def _helpdesk(self):
        proxy = getattr(self._local, "rpc", None)
        if proxy is None:
            from nameko.standalone.rpc import ClusterRpcProxy

            import services.infra.rpc  # noqa: F401 - our typed errors travel as themselves

            cluster = ClusterRpcProxy({"AMQP_URI": self.cfg.amqp_uri}, timeout=self.cfg.rpc_timeout)
            proxy = (cluster, cluster.start())
            self._local.rpc = proxy
        return proxy[1].helpdesk

    def _drop_helpdesk(self) -> None:
        proxy = getattr(self._local, "rpc", None)
        self._local.rpc = None
        if proxy is not None:
            try:
                proxy[0].stop()
            except Exception:
                log.debug("stopping a broken RPC proxy failed", exc_info=True)

    # -- one message --------------------------------------------------------------------

    def take(self, raw: bytes, envelope_from: str | None, recipients: list[str]) -> Taken:
        """Handle one message; raises TryLater when it must be offered again later."""
        try:
            mail = parsing.parse(raw, envelope_from, lambda mid: compose.is_ours(mid, self.domain))
        except Exception as exc:  # noqa: BLE001 - whatever the parser trips on is kept
            # a message the parser cannot take would be offered again and again: keep it
            detail = str(exc) if isinstance(exc, parsing.Unparseable) else repr(exc)
            self.hold(raw, "unparseable", detail, envelope_from or "", recipients)
            return Taken("250 2.0.0 Kept for staff: the message could not be read", ["held"])
        now = clock.now()
        recipient = recipients[0] if recipients else ""
        if mail.loop is not None:
            return self._robot(raw, mail, recipients, now)
        if self._over_rate_limit(mail.sender, now):
            self.hold(
                raw,
                "rate_limited",
                f"more than {self.cfg.mail_rate_limit} messages in {self.cfg.mail_rate_window:g}s",
                mail.sender,
                recipients,
                mail.subject,
            )
            self._record(now, mail, recipient, "rate_limited")
            return Taken("250 2.0.0 Kept for staff: too many messages from this sender", ["held"])
        outcomes = []
        for rcpt in recipients or [recipient]:
            outcomes.append(self._hand_on(raw, mail, rcpt, now))
        return Taken("250 2.0.0 Taken", outcomes)

    def _robot(self, raw: bytes, mail: parsing.ParsedMail, recipients: list[str], now) -> Taken:
        """No ticket and no reply for robots' mail; a bounce of ours is noted where it
        belongs (on the ticket, or on the notification in the outbox)."""
        recipient = recipients[0] if recipients else ""
        if mail.bounce_of and ticket_message_of(mail.bounce_of):
            outcome = self._hand_on(raw, mail, recipient, now)
            return Taken("250 2.0.0 Bounce noted", [outcome])
        if mail.bounce_of:
            self._execute(
                "UPDATE mail_outbox SET status = 'bounced', last_error = %s"
                " WHERE message_id = %s AND status IN ('sent', 'uncertain')",
                (storable_text(f"bounced: {mail.subject}", 1000), storable_text(mail.bounce_of)),
            )
            self._record(now, mail, recipient, "bounce")
            return Taken("250 2.0.0 Bounce noted", ["bounce"])
        self._record(now, mail, recipient, f"ignored: {mail.loop}")
        return Taken("250 2.0.0 Taken (automatic mail: no ticket, no reply)", ["ignored"])

    def _hand_on(self, raw: bytes, mail: parsing.ParsedMail, recipient: str, now) -> str:
        try:
            payload = mail.payload(recipient)
            payload["sender_verified"] = authresults.sender_verified(
                BytesParser(policy=compat32).parsebytes(raw, headersonly=True),
                self.cfg.mail_authserv_id,
            )
            answer = self._helpdesk().receive_mail(payload)
        except HostledgerError as exc:
            # the helpdesk read it and said no for a reason of the message's own
            self.hold(
                raw,
                "refused",
                f"{type(exc).__name__}: {exc}",
                mail.sender,
                [recipient],
                mail.subject,
            )
            self._record(now, mail, recipient, "held")
            return "held"
        except Exception as exc:
            if _is_transport_error(exc) or type(exc).__name__ in ("MethodNotFound",):
                self._drop_helpdesk()
                raise TryLater(f"helpdesk: {type(exc).__name__}: {exc}") from exc
            self._drop_helpdesk()
            failed = self._failed_again(raw, mail, recipient)
            if failed < HANDOFF_ATTEMPTS:
                raise TryLater(f"helpdesk failed: {type(exc).__name__}: {exc}") from exc
            self.hold(
                raw,
                "failed",
                f"the helpdesk failed on it {failed} times: {type(exc).__name__}: {exc}",
                mail.sender,
                [recipient],
                mail.subject,
            )
            self._record(now, mail, recipient, "held")
            return "held"
        self._forget_failures(raw, mail, recipient)
        outcome = str(answer.get("outcome", "taken"))
        if answer.get("reason"):
            log.info("%s to %s: %s (%s)", mail.sender, recipient, outcome, answer["reason"])
        if outcome == "refused" and not mail.bounce_of:
            # no department at this address, a guest where guests are refused ...: the
            # sender gets no ticket, and staff can still read what was sent
            self.hold(
                raw, "refused", answer.get("reason") or "", mail.sender, [recipient], mail.subject
            )
        self._record(
            now,
            mail,
            recipient,
            outcome,
            answer.get("ticket_id"),
            answer.get("tracking_number"),
            answer.get("reason"),
        )
        return outcome

    def _over_rate_limit(self, sender: str, now) -> bool:
        since = now - timedelta(seconds=self.cfg.mail_rate_window)
        rows = self._execute(
            "SELECT count(*) AS n FROM mail_received WHERE sender = %s AND received_at > %s"
            " AND outcome NOT LIKE 'ignored%%'",
            (sender, since),
        )
        return rows[0]["n"] >= self.cfg.mail_rate_limit

    def _failure_key(self, raw: bytes, mail, recipient: str) -> tuple[str, str]:
        import hashlib

        return (mail.message_id or hashlib.sha256(raw).hexdigest(), recipient)

    def _failed_again(self, raw: bytes, mail, recipient: str) -> int:
        key = self._failure_key(raw, mail, recipient)
        with self._failures_lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            failed = self._failures[key] = self._failures.get(key, 0) + 1
            if failed >= HANDOFF_ATTEMPTS:
                del self._failures[key]
        return failed

    def _forget_failures(self, raw: bytes, mail, recipient: str) -> None:
        if self._failures:
            with self._failures_lock:
                self._failures.pop(self._failure_key(raw, mail, recipient), None)

    def _record(
        self, now, mail, recipient, outcome, ticket_id=None, tracking_number=None, reason=None
    ):
        self._execute(
            "INSERT INTO mail_received (received_at, sender, recipient, message_id, outcome,"
            " reason, ticket_id, tracking_number) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                now,
                storable_text(mail.sender or ""),
                storable_text(recipient or ""),
                storable_text(mail.message_id or ""),
                storable_text(outcome, 200),
                storable_text(reason or "", 1000) or None,
                str(ticket_id) if ticket_id else None,
                str(tracking_number) if tracking_number else None,
            ),
        )

    def hold(self, raw, reason, detail, sender, recipients, subject="") -> None:
        self._execute(
            "INSERT INTO mail_held (received_at, reason, detail, sender, recipient, subject, raw)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                clock.now(),
                reason,
                storable_text(detail, 2000),
                storable_text(sender or "", 320),
                storable_text(", ".join(recipients), 2000),
                storable_text(subject or "", 998),
                raw,
            ),
        )


class SmtpHandler:
    """aiosmtpd handler: each message is taken in a worker thread."""

    def __init__(self, mailin: MailIn, executor: ThreadPoolExecutor):
        self.mailin = mailin
        self.executor = executor
        self.taking = 0  # messages being taken now (a stop waits for their answers)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.taking += 1
        try:
            return await self._take(envelope)
        finally:
            self.taking -= 1

    async def _take(self, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            taken = await loop.run_in_executor(
                self.executor,
                partial(self.mailin.take, raw, envelope.mail_from, list(envelope.rcpt_tos)),
            )
        except TryLater as exc:
            log.warning("message from %s not taken now: %s", envelope.mail_from, exc)
            MAIL_IN.labels("smtp", "deferred").inc()
            return "451 4.3.0 Cannot take the message now, please try again later"
        except Exception:
            log.exception("unexpected failure taking a message from %s", envelope.mail_from)
            MAIL_IN.labels("smtp", "deferred").inc()
            return "451 4.3.0 Cannot take the message now, please try again later"
        log.info("message from %s: %s", envelope.mail_from, ", ".join(taken.outcomes))
        MAIL_IN.labels("smtp", smtp_result(taken.reply)).inc()
        return taken.reply


# seconds a stopping mail-in process waits for the messages being taken (its service's
# stop waits 10 s for it)
STOP_WAIT = 8.0


async def serve(mailin: MailIn, host: str, port: int, stop: asyncio.Event) -> None:
    from aiosmtpd.smtp import SMTP

    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mailin")
    handler = SmtpHandler(mailin, executor)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname=mailin.domain,
            data_size_limit=MAX_MESSAGE,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=300,
        ),
        host=host,
        port=port,
    )
    log.info("SMTP server listening on %s:%s", host, port)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        # a message being taken gets its answer (250, or 451 to try later) before the loop
        # ends: Python 3.11's wait_closed does not wait for the sessions
        until = loop.time() + STOP_WAIT
        while handler.taking and loop.time() < until:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the last answers are written
        executor.shutdown(wait=True)


def main() -> int:
    from services.infra.logs import configure

    configure("mailin")  # HOSTLEDGER_LOG_FORMAT, as the nameko processes
    cfg = settings()
    if cfg.clock_file:
        clock.use_clock(clock.FileClock(cfg.clock_file))
    mailin = MailIn(cfg)
    mailin.setup()
    # its own metrics port: the mailgateway service beside it has HOSTLEDGER_METRICS_PORT
    from services.infra.probes import serve as serve_metrics

    serve_metrics(cfg.metrics_host, cfg.mailin_metrics_port)

    from services.mailgateway.imap import start_pollers

    stop_threads = threading.Event()
    pollers = start_pollers(mailin, cfg, stop_threads)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(mailin, cfg.smtp_in_host, cfg.smtp_in_port, stop)

    try:
        asyncio.run(run())
    finally:
        stop_threads.set()
        for thread in pollers:
            thread.join(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
