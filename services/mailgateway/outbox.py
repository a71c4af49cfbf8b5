"""The outbox: notifications waiting to be sent, and the one sender that sends them.

A notification becomes an outbox row in the same transaction that records the
integration event it came from as consumed, so it exists exactly once.

Sending one row:
  1. claim it: `pending` -> `sending` (committed);
  2. one SMTP transaction with the relay (SMTP_HOST:SMTP_PORT);
  3. record the outcome: `sent` on 250 after the message data (committed).

What may go wrong, and the choice made for each:
- the relay cannot be reached, or refuses before the end of the message data, or
  answers 4xx: nothing was delivered; the row goes back to `pending` with a backoff
  that doubles per attempt (HOSTLEDGER_OUTBOX_BACKOFF, at most MAX_BACKOFF);
- the relay answers 5xx: `failed` for good (staff see it, and may resend);
- the connection breaks after the final "." was sent, before the relay's answer:
  the relay may have taken the message, so the row becomes `uncertain`;
- the sender dies between 1 and 3 (the crash window): the row stays `sending`.
  Only one sender runs per database (an advisory lock), so a row found `sending`
  by the next sender that takes the lock belongs to a dead one; it becomes
  `uncertain`.
`uncertain` rows are never sent again by themselves: a customer may miss a
notification in that narrow window (staff see it and can resend it with one call),
but never gets one twice. The window is one SMTP exchange long.
"""

from __future__ import annotations

import json
import logging
import smtplib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from psycopg.types.json import Jsonb

from services.infra import clock
from services.infra.inbox import is_transient
from services.infra.parking import storable, storable_text
from services.mailgateway import compose, templates

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0
CRLF = b"\r\n"

COLUMNS = (
    "id, key, kind, customer_id, recipient, language, context, message_id, in_reply_to,"
    " status, reason, subject, attempts, next_attempt_at, last_error, created_at, sent_at"
)


@dataclass
class Notification:
    """One notification to queue. `secret` (a generated password) is kept apart from the
    context, is used only while rendering, and is erased once the row is settled."""

    key: str
    kind: str
    recipient: str | None
    language: str
    context: dict
    message_id: str
    customer_id: str | None = None
    in_reply_to: str | None = None
    secret: str | None = None
    status: str = "pending"
    reason: str | None = None


INSERT = (
    "INSERT INTO mail_outbox (key, kind, customer_id, recipient, language, context, secret,"
    " message_id, in_reply_to, status, reason, next_attempt_at, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (key) DO NOTHING"
)


def insert_statement(n: Notification) -> tuple[str, tuple]:
    """The INSERT that queues `n`, for a save's `also` (atomic with the consumer's tracking).
    What PostgreSQL cannot store (a NUL in a ticket's subject, ...) is replaced, so that no
    text of an event can stop the notifications: the mail goes out without it."""
    now = clock.now()
    return (
        INSERT,
        (
            storable_text(n.key),
            storable_text(n.kind),
            uuid.UUID(str(n.customer_id)) if n.customer_id else None,
            _text_or_none(n.recipient),
            storable_text(n.language),
            Jsonb(storable(n.context)),
            _text_or_none(n.secret),
            storable_text(n.message_id),
            _text_or_none(n.in_reply_to),
            n.status,
            _text_or_none(n.reason),
            now,
            now,
        ),
    )


def queues_mail(statements) -> bool:
    """Does a transaction running `statements` (a save's `also`) queue a notification?"""
    return any(statement[0] == INSERT for statement in statements or ())


def storable_params(statement: tuple[str, tuple]) -> tuple[str, tuple]:
    """`statement` with its text parameters made storable (see insert_statement)."""
    sql, params = statement
    return sql, tuple(storable_text(p) if isinstance(p, str) else p for p in params)


def _text_or_none(value) -> str | None:
    return None if value is None else storable_text(value)


def row_view(row: dict) -> dict:
    """A row as staff see it (never the secret)."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "customer_id": str(row["customer_id"]) if row["customer_id"] else None,
        "recipient": row["recipient"],
        "language": row["language"],
        "message_id": row["message_id"],
        "in_reply_to": row["in_reply_to"],
        "status": row["status"],
        "reason": row["reason"],
        "subject": row["subject"],
        "attempts": row["attempts"],
        "next_attempt_at": clock.isoformat(row["next_attempt_at"]),
        "last_error": row["last_error"],
        "created_at": clock.isoformat(row["created_at"]),
        "sent_at": clock.isoformat(row["sent_at"]) if row["sent_at"] else None,
    }


# -- talking to the relay -----------------------------------------------------------------


class NotDelivered(Exception):
    """The relay has certainly not taken the message; `temporary`: try again later."""

    def __init__(self, message: str, temporary: bool = True, dropped: bool = False):
        super().__init__(message)
        self.temporary = temporary
        self.dropped = dropped  # the connection broke (before the message data ended)


class Uncertain(Exception):
    """The message data went out but the relay's answer did not come back."""


def _dot_stuffed(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = CRLF.join(b"." + line if line.startswith(b".") else line for line in lines)
    return stuffed + CRLF + b"." + CRLF


class Relay:
    """One SMTP connection to the relay, kept open across messages."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, local_hostname: str = ""):
        self.host, self.port, self.timeout = host, port, timeout
        self.local_hostname = local_hostname or None
        self._conn: smtplib.SMTP | None = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                self._conn.close()
            self._conn = None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            conn = smtplib.SMTP(timeout=self.timeout, local_hostname=self.local_hostname)
            conn.connect(self.host, self.port)
            conn.ehlo_or_helo_if_needed()
            self._conn = conn
        return self._conn

    def send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        """Hand one message to the relay; its final answer on success."""
        if self._conn is not None:
            # a kept connection the relay may have closed meanwhile: one fresh try
            try:
                return self._send(envelope_from, recipient, data)
            except NotDelivered as exc:
                if not exc.dropped:
                    raise
        return self._send(envelope_from, recipient, data)

    def _send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        try:
            conn = self._connection()
            code, reply = conn.mail(envelope_from)
            if code == 250:
                code, reply = conn.rcpt(recipient)
            if code in (250, 251):
                code, reply = conn.docmd("DATA")
            if code != 354:
                self._reset()
                raise NotDelivered(f"{code} {_text(reply)}", temporary=code < 500)
            # an error while writing means the final "." never left: nothing delivered
            conn.send(_dot_stuffed(data))
        except NotDelivered:
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise NotDelivered(f"{type(exc).__name__}: {exc}", dropped=True) from exc
        try:
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise Uncertain(f"no answer after the message data: {exc}") from exc
        if code != 250:
            raise NotDelivered(f"{code} {_text(reply)}", temporary=code < 500)
        return f"{code} {_text(reply)}"

    def _reset(self) -> None:
        try:
            self._conn.rset()
        except (OSError, smtplib.SMTPException, AttributeError):
            self._drop()


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


# -- the sender -----------------------------------------------------------------------------


class Sender:
    """Sends due outbox rows, one at a time, through one relay connection."""

    def __init__(self, app, relay: Relay, *, sender: str, domain: str, backoff: float):
        self.app = app
        self.relay = relay
        self.sender = sender
        self.domain = domain
        self.backoff = backoff
        # set when the process stops: `run_once` returns after the row being sent
        self.stopping = False

    def settle_crashed(self) -> int:
        """Rows a dead sender left `sending`: they may have gone out; never resend them."""
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE mail_outbox SET status = 'uncertain', secret = NULL,"
                " last_error = 'the sender stopped during the SMTP exchange'"
                " WHERE status = 'sending'"
            )
            return curs.rowcount

    _CLAIM = (
        f"UPDATE mail_outbox SET status = 'sending', attempts = attempts + 1"
        f" WHERE id = (SELECT id FROM mail_outbox WHERE status = 'pending'"
        f" AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT 1"
        f" FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}, secret"
    )

    def claim(self, outcome: tuple[str, tuple] | None = None) -> dict | None:
        """The next due row, now `sending`; `outcome` (the previous row's) is recorded in
        the same transaction: one commit per message, not two."""
        try:
            with self.app.datastore.transaction(commit=True) as curs:
                if outcome is not None:
                    curs.execute(*outcome)
                curs.execute(self._CLAIM, (clock.now(),))
                return curs.fetchone()
        except Exception:
            if outcome is not None:
                self._write(*outcome)  # the outcome must not be lost with the claim
            raise

    def run_once(self, limit: int = 100) -> int:
        """Send up to `limit` due rows; how many were settled (sent, failed, ...)."""
        done = 0
        outcome = None
        self._templates = {}
        try:
            while done < limit and not self.stopping:
                row, outcome = self.claim(outcome), None
                if row is None:
                    break
                outcome, delivered = self._send(row)
                if not delivered:
                    break  # the relay is unreachable: the others wait too
                done += 1
        finally:
            if outcome is not None:
                self._write(*outcome)
            if done == 0:
                self.relay.close()
        return done

    def _send(self, row: dict) -> tuple[tuple[str, tuple], bool]:
        """(the statement recording the outcome, whether the relay could be reached).
        Whatever one row makes go wrong settles that row (`failed`, staff see it and may
        resend it): the rows after it are sent."""
        try:
            message = self.compose(row)
            data = message.as_bytes()
        except Exception as exc:  # noqa: BLE001 - the row is failed, the others go on
            if is_transient(exc):  # the database (its templates) is away: not the row's fault
                return self._retry_later(row, self.backoff, _describe(exc)), False
            return self._settle(row, "failed", error=f"cannot render: {_describe(exc)}"), True
        subject = message["Subject"]
        try:
            self.relay.send(compose.envelope_address(self.sender), row["recipient"], data)
        except NotDelivered as exc:
            if exc.temporary:
                delay = min(self.backoff * 2 ** max(row["attempts"] - 1, 0), MAX_BACKOFF)
                log.info("notification %s not sent (%s); again in %.1fs", row["id"], exc, delay)
                return self._retry_later(row, delay, str(exc)), False
            return self._settle(row, "failed", error=str(exc), subject=subject), True
        except Uncertain as exc:
            return self._settle(row, "uncertain", str(exc), subject=subject), True
        except Exception as exc:  # noqa: BLE001 - refused before the message data went out
            self.relay._drop()
            error = f"cannot be sent: {_describe(exc)}"
            return self._settle(row, "failed", error=error, subject=subject), True
        return self._settle(row, "sent", error=None, subject=subject), True

    def template(self, kind: str, language: str):
        # looked up once per batch: an edit applies from the next batch on
        key = (kind, language)
        cache = getattr(self, "_templates", None)
        if cache is None:
            cache = self._templates = {}
        if key not in cache:
            cache[key] = self.app.template(kind, language)
        return cache[key]

    def compose(self, row: dict):
        template = self.template(row["kind"], row["language"])
        context = row["context"] or {}
        if isinstance(context, str):
            context = json.loads(context)
        context = dict(context)
        if row.get("secret") is not None:
            # a generated password, or (`secret_as`) another one-time value: a reset token
            context[context.pop("secret_as", None) or "password"] = row["secret"]
        subject, body = templates.render(template, context)
        files = [
            (a["filename"], a["content_type"], self.attachment(a["id"]))
            for a in context.get("attachments") or ()
        ]
        return compose.build(
            sender=context.get("from") or self.sender,
            recipient=row["recipient"],
            subject=subject,
            body=body,
            message_id=row["message_id"],
            in_reply_to=row["in_reply_to"],
            references=context.get("references") or None,
            attachments=files,
        )

    def attachment(self, file_id: str) -> bytes:
        """A file a ticket mail carries (kept when the mail was queued); a missing one
        fails the row (staff see it)."""
        with self.app.datastore.transaction() as curs:
            curs.execute("SELECT content FROM mail_attachments WHERE id = %s", (file_id,))
            row = curs.fetchone()
        if row is None:
            raise LookupError(f"the attachment {file_id} is not kept")
        return bytes(row["content"])

    @staticmethod
    def _retry_later(row: dict, delay: float, error: str) -> tuple[str, tuple]:
        return (
            "UPDATE mail_outbox SET status = 'pending', next_attempt_at = %s, last_error = %s"
            " WHERE id = %s AND status = 'sending'",
            (clock.now() + timedelta(seconds=delay), storable_text(error, 1000), row["id"]),
        )

    @staticmethod
    def _settle(
        row: dict, status: str, error: str | None, subject: str | None = None
    ) -> tuple[str, tuple]:
        return (
            "UPDATE mail_outbox SET status = %s, secret = NULL, last_error = %s, subject = %s,"
            " sent_at = %s WHERE id = %s AND status = 'sending'",
            (
                status,
                storable_text(error or "", 1000) or None,
                _text_or_none(subject),
                clock.now() if status in ("sent", "uncertain") else None,
                row["id"],
            ),
        )

    def _write(self, statement: str, params: tuple) -> None:
        # After the relay took a message its row must say so, or the next sender would
        # call it uncertain: keep trying while the database is away.
        delay = 0.5
        while True:
            try:
                with self.app.datastore.transaction(commit=True) as curs:
                    curs.execute(statement, params)
                return
            except Exception as exc:  # noqa: BLE001 - retried until the database answers
                if not is_transient(exc):
                    # not the database being away: trying again cannot help; the row
                    # stays `sending` and the next sender settles it as uncertain
                    log.error("cannot record an outbox outcome (%s): %s", params[-1], exc)
                    return
                log.warning("cannot record an outbox outcome yet (%s); retrying", exc)
                _sleep(delay)
                delay = min(delay * 2, 10.0)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)  # green under nameko (monkey-patched)


def resend_statement(row_id: int) -> tuple[str, tuple]:
    """Staff: send a failed or uncertain notification again (a secret, once erased, is gone:
    credentials mail cannot be resent, a new password must be made instead)."""
    return (
        "UPDATE mail_outbox SET status = 'pending', next_attempt_at = %s, last_error = NULL"
        " WHERE id = %s AND status IN ('failed', 'uncertain', 'bounced')"
        " AND kind <> 'account_credentials' RETURNING id",
        (clock.now(), row_id),
    )
