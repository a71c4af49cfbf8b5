"""Every command runs once per request, even when its RPC is delivered twice.

nameko acknowledges an RPC request only after its worker finished, so a broker restart
in the middle delivers the request again, and a caller that gave up (the gateway's 503)
may still see its request run later. So:

- The gateway gives every request that changes something a request id (the caller's
  Idempotency-Key, bound to the caller, or one it makes for the HTTP request) and a
  deadline (when it stops waiting), carried to every service as RPC context data
  (`context.REQUEST_HEADER`, `context.DEADLINE_HEADER`), and on to the services they call.
- A command's first save records `(request id, service.method, its arguments)` in
  `handled_requests` in the same transaction as the command's events; its answer (or
  its typed error) is kept there when it returns.
- The same command with the same request id and arguments then answers that first
  answer instead of running again: delivered twice, retried by the gateway with the same
  Idempotency-Key, or run twice at once (the second save conflicts on the key, and the
  first answer is waited for).
- A command whose request is past its deadline saves nothing (503): a request that
  waited in a queue while its service was down is not carried out later, and the
  gateway's 503 means "not done". (Clocks of the hosts must agree: NTP.)

Commands that record no events (a login's session, a logout) are idempotent as they are.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

import eventlet

from contracts import errors
from services.infra import clock
from services.infra.context import current

log = logging.getLogger(__name__)

HANDLED_REQUESTS_TABLE = """
CREATE TABLE IF NOT EXISTS handled_requests (
    key text PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    answer jsonb
)
"""
HANDLED_REQUESTS_INDEX = (
    "CREATE INDEX IF NOT EXISTS handled_requests_recorded ON handled_requests (recorded_at)"
)
# what an answer shows once and no repeat shows again (it is never stored): a generated
# password, a session's token, two-factor authentication's secret (also in its address
# and QR code) and recovery codes
SECRET_KEYS = frozenset(
    {"credentials", "password", "token", "secret", "otpauth_uri", "qr_code", "recovery_codes"}
)
SESSION_KEYS = frozenset({"token"})
# how long a repeated request waits for the first one's answer before it gives up
ANSWER_WAIT = 5.0
_ERRORS = {cls.__name__: cls for cls in errors.ALL_ERRORS}


def command_key(request: str, command: str, args: tuple, kwargs: dict) -> str:
    """What identifies one command of one request: the request id, the command, and a
    digest of its arguments (a request may run several commands, or one twice with other
    arguments)."""
    text = json.dumps([args, kwargs], sort_keys=True, default=_plain)
    return f"{request}|{command}|{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def record_statement(key: str, answer: str | None = None) -> tuple[str, tuple]:
    """The row a command's first save writes with its events (a second one conflicts),
    with the answer as `stored_answer` made it when the command gave it already."""
    return (
        "INSERT INTO handled_requests (key, recorded_at, answer) VALUES (%s, %s, %s::jsonb)",
        (key, clock.now(), answer),
    )


def answer_with_save(answer):
    """For a command that knows its answer before its (first) save: the answer is kept in
    that save's transaction instead of one more transaction after it returns. Answers
    `answer`; if the command returns another object, that one is kept as before."""
    if current.command_key is not None and not current.command_recorded:
        current.command_answer = (answer, stored_answer(answer=answer))
    return answer


def forget_old_requests(app, days: int) -> int:
    """Drop the records of requests older than `days` (and the gateway's Idempotency-Key
    answers kept in this database): a key is honoured that long. How many were dropped."""
    before = clock.now() - timedelta(days=days)
    with app.datastore.transaction(commit=True) as curs:
        curs.execute("DELETE FROM handled_requests WHERE recorded_at < %s", (before,))
        dropped = curs.rowcount
        curs.execute("DELETE FROM request_keys WHERE claimed_at < %s", (before,))
        return dropped + curs.rowcount


def record_command(curs) -> None:
    """For a command that writes with SQL of its own rather than events (a password reset
    link, an outbox row): record its request in that transaction, as a save would, so
    that a repeat answers the first answer instead of writing again."""
    if current.deadline is not None:
        check_deadline()
    key = current.command_key
    if key is None or current.command_recorded:
        return
    curs.execute(*record_statement(key))
    current.command_recorded = True


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")


class AlreadyHandled(Exception):
    """The request's command was recorded by another delivery: its answer counts."""


class RequestRecorded:
    """What `handled_requests` holds for a key: `found`, and `answer`/`error` once known."""

    def __init__(self, row: dict | None):
        self.found = row is not None
        stored = (row or {}).get("answer")
        self.known = stored is not None
        self.answer = stored.get("answer") if stored else None
        self.error = stored.get("error") if stored else None

    def replay(self):
        if self.error is not None:
            cls = _ERRORS.get(self.error.get("type"), errors.HostledgerError)
            raise cls(*self.error.get("args", ["The request failed."]))
        return self.answer


def lookup(app, key: str) -> RequestRecorded:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT answer FROM handled_requests WHERE key = %s", (key,))
        return RequestRecorded(curs.fetchone())


def _has_key(answer, names: frozenset) -> bool:
    if isinstance(answer, dict):
        return any(k in names or _has_key(v, names) for k, v in answer.items())
    if isinstance(answer, list | tuple):
        return any(_has_key(v, names) for v in answer)
    return False


def without_secrets(answer):
    """The answer with everything shown once left out (what may be kept and shown again)."""
    if isinstance(answer, dict):
        return {k: without_secrets(v) for k, v in answer.items() if k not in SECRET_KEYS}
    if isinstance(answer, list):
        return [without_secrets(v) for v in answer]
    return answer


def stored_answer(answer=None, error: errors.HostledgerError | None = None) -> str:
    """What `handled_requests` keeps of a command's answer or typed error (JSON)."""
    if error is not None:
        stored = {"error": {"type": type(error).__name__, "args": list(error.args)}}
    elif _has_key(answer, SESSION_KEYS):
        # a session is handed out once: a repeat is told so, and opens none
        stored = {
            "error": {
                "type": "Conflict",
                "args": [
                    "This request was carried out already and its session was handed out "
                    "then; it is not handed out again."
                ],
            }
        }
    else:
        # a repeat answers the same object, without what is shown once (a password)
        stored = {"answer": without_secrets(answer)}
    try:
        return json.dumps(stored, default=_plain)
    except (TypeError, ValueError):
        log.warning("an answer cannot be kept (not JSON)")
        return json.dumps({"answer": None})


def keep_answer(app, key: str, answer=None, error: errors.HostledgerError | None = None) -> None:
    text = stored_answer(answer, error)
    try:
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE handled_requests SET answer = %s::jsonb WHERE key = %s", (text, key)
            )
    except Exception:  # the command is done; a repeat runs it again for its answer
        log.warning("the answer to %s was not kept", key, exc_info=True)


_NO_ANSWER = object()


def wait_for_answer(app, key: str):
    """The first delivery's answer (it recorded the command and is still answering, or
    answered already); `_NO_ANSWER` when none comes in time (it died in between)."""
    waited = 0.0
    while True:
        recorded = lookup(app, key)
        if recorded.known:
            return recorded.replay()
        if waited >= ANSWER_WAIT:
            return _NO_ANSWER
        eventlet.sleep(0.1)
        waited += 0.1


def check_deadline() -> None:
    """Before a command's save: once the caller stopped waiting (the gateway answered 503),
    the request changes nothing. A request that waited in a queue while its service was
    down is not carried out later; one still running when the caller gave up is undone."""
    deadline = current.deadline
    if deadline is not None and time.time() > deadline:
        raise errors.Unavailable(
            "The caller stopped waiting for this request before it was carried out; "
            "nothing was changed. Send it again."
        )


def once_per_request(fn):
    """Wrap a service's RPC method (see the module's docstring). Without a request id
    (queries, a service's own calls, tests) it runs as it is."""

    @functools.wraps(fn)
    def command(self, *args, **kwargs):
        request = current.request
        app = getattr(self, "app", None)
        if not request or not hasattr(app, "datastore"):
            return fn(self, *args, **kwargs)
        key = command_key(request, f"{self.name}.{fn.__name__}", args, kwargs)
        recorded = lookup(app, key)
        if recorded.found:
            log.info("request %s was handled already: answering its first answer", key)
            if recorded.known:
                return recorded.replay()
            answer = wait_for_answer(app, key)
            if answer is not _NO_ANSWER:
                return answer
            # the first delivery saved, then died before its answer was kept: run it again
            # for its answer. A command that keeps its own Idempotency-Key answers from it;
            # any other cannot save twice (its save conflicts on the request's record).
        outer = (
            current.command_key,
            current.command_recorded,
            current.command_answer,
            current.command_answer_kept,
        )
        current.command_key, current.command_recorded = key, False
        current.command_answer, current.command_answer_kept = None, False
        try:
            result = fn(self, *args, **kwargs)
        except errors.HostledgerError as exc:
            if current.command_recorded:
                keep_answer(app, key, error=exc)
            elif lookup(app, key).found:
                # another delivery of this request recorded it first (this one's save kept
                # conflicting with it until the command gave up): its answer counts
                log.info("request %s ran twice at once: answering the first (%r)", key, exc)
                answer = wait_for_answer(app, key)
                if answer is not _NO_ANSWER:
                    return answer
            raise
        except Exception as exc:
            if not current.command_recorded and lookup(app, key).found:
                # another delivery of this request recorded it first: its answer counts
                log.info("request %s ran twice at once: answering the first (%r)", key, exc)
                answer = wait_for_answer(app, key)
                if answer is _NO_ANSWER:
                    raise errors.Conflict(
                        "This request was carried out already, but its answer is not "
                        "available: look up what it changed instead of sending it again."
                    ) from None
                return answer
            raise
        else:
            answered = current.command_answer
            kept = current.command_answer_kept and answered is not None and answered[0] is result
            if current.command_recorded and not kept:
                keep_answer(app, key, answer=result)
            return result
        finally:
            (
                current.command_key,
                current.command_recorded,
                current.command_answer,
                current.command_answer_kept,
            ) = outer

    # nameko checks a call's arguments against this (inspect.getcallargs)
    command.__signature__ = inspect.signature(fn)
    return command
