"""How every hostledger process writes its log: one JSON object a line, or plain text.

HOSTLEDGER_LOG_FORMAT picks it (`json`, the default, or `text`); deploy/nameko.yaml
builds its one formatter with `formatter()`. A JSON line has

    time        when, UTC, ISO 8601 with milliseconds ("2026-12-04T16:50:08.123Z")
    level       INFO, WARNING, ERROR ...
    logger      the logger's name (hostledger.access, services.infra.inbox ...)
    message     the message
    service     the process: customers, billing, ..., gateway, mailin
    instance    host:pid, which of the process's instances wrote it
    request_id  the request the line belongs to, when there is one (below)
    actor       who is acting ("staff:<id>", "client:<customer id>", "service:billing" ...)
    on_behalf_of, cause   when known (cause: the event being applied, "customers:812")
    exception   the traceback, when the line reports one

and whatever a call passed in `extra=` (the access log's method, path, status ...).

The request id is the gateway's X-Request-Id (the caller's or a new one). It travels in
the RPC context data (`context.REQUEST_ID_HEADER`) to every service a request calls,
is kept in the events that request stores (`request_id`, beside `actor` and `cause`),
goes out with them in the integration event envelope, and is set again while a
downstream handler applies that event: so `grep <id>` over every process's log follows
one request's effects across the services. The formatter reads it, and the actor, from
`context.current`, kept per green thread.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import uuid
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from services.infra import context

FORMATS = ("json", "text")

# what a request id may be: a caller's X-Request-Id outside this is replaced by a new one
# (it is written into every log line and every event of the request)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")


def valid_request_id(value: str | None) -> bool:
    """A request id a caller may choose: 1 to 128 printable ASCII characters of
    `A-Z a-z 0-9 . _ : @ / + = -`, starting with a letter or digit."""
    return isinstance(value, str) and _REQUEST_ID.match(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_for(header: str | None) -> str:
    """The request id of an HTTP request: its X-Request-Id when valid, else a new one."""
    return header if valid_request_id(header) else new_request_id()


# -- the process --------------------------------------------------------------------------

_process = {"service": None, "instance": None}


def _guess_service(argv: list[str]) -> str:
    """The process's name from its command line, before its container names it:
    `nameko run ... services.billing.service:BillingService` -> billing,
    `gateway.service:GatewayService` -> gateway, `-m services.mailgateway.mailin` -> mailin."""
    for arg in reversed(argv[1:]):
        module = arg.partition(":")[0]
        parts = module.split(".")
        if len(parts) >= 3 and parts[0] == "services" and parts[2] == "service":
            return parts[1]
        if module == "gateway.service":
            return "gateway"
        if len(parts) >= 2 and parts[0] == "services":
            return parts[-1]
    return os.path.basename(argv[0]) if argv and argv[0] else "hostledger"


def process_name() -> str:
    if _process["service"] is None:
        _process["service"] = _guess_service(list(sys.argv))
    return _process["service"]


def set_process_name(name: str) -> None:
    """Name this process in its log lines (the nameko service's name, once known)."""
    if name:
        _process["service"] = name


def instance() -> str:
    pid = os.getpid()
    cached = _process["instance"]
    if cached is None or cached[0] != pid:
        cached = _process["instance"] = (pid, f"{socket.gethostname()}:{pid}")
    return cached[1]


def context_fields() -> dict:
    """What the code running now is doing: request_id, actor, on_behalf_of, cause (only
    those known)."""
    current = context.current
    fields = {}
    if current.request_id:
        fields["request_id"] = current.request_id
    if current.actor is not None:
        fields["actor"] = current.actor.header()
    if current.on_behalf_of is not None:
        fields["on_behalf_of"] = current.on_behalf_of.header()
    if current.cause:
        fields["cause"] = current.cause
    return fields


# -- the formatters -----------------------------------------------------------------------


def utc_iso(created: float) -> str:
    """`2026-12-04T16:50:08.123Z` (the wall clock's time, as the line was written)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object a line, with the fields of the module's docstring, in that order.
    A field given in `extra=` wins over the context's (the access log names its request
    itself)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(**kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["time"] = utc_iso(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["service"] = process_name()
        log_data["instance"] = instance()
        log_data.update(context_fields())
        super().add_fields(log_data, record, message_dict)
        exception = log_data.pop("exc_info", None)
        if exception:
            log_data["exception"] = exception
        stack = log_data.pop("stack_info", None)
        if stack:
            log_data["stack"] = stack
        # what the library would add again under its own names
        log_data.pop("taskName", None)

    def jsonify_log_record(self, log_data: dict) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except (TypeError, ValueError):  # an `extra` value JSON cannot take: said as text
            return super().jsonify_log_record({k: _plain(v) for k, v in log_data.items()})


def _plain(value):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


class TextFormatter(logging.Formatter):
    """`2026-12-04 16:50:08,123 INFO    services.infra.inbox: message [request <id>]`."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None) or context.current.request_id
        if request_id:
            head, newline, tail = text.partition("\n")
            text = f"{head} [request {request_id}]{newline}{tail}"
        return text


def formatter(log_format: str | None = None) -> logging.Formatter:
    """The formatter HOSTLEDGER_LOG_FORMAT asks for (deploy/nameko.yaml's `()`)."""
    if log_format is None:
        from services.infra.settings import settings

        log_format = settings().log_format
    if log_format == "text":
        return TextFormatter()
    if log_format == "json":
        return JsonFormatter()
    raise ValueError(
        f"HOSTLEDGER_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}"
    )


def configure(service: str, level: int | str = logging.INFO) -> None:
    """For a process that is not a nameko service (the mail-in server): its root logger
    on stderr with the chosen formatter, lines named `service`."""
    set_process_name(service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- what each worker did ---------------------------------------------------------------

work_log = logging.getLogger("hostledger.work")
# entrypoints polled by probes and peers: their lines only at DEBUG
QUIET = frozenset({"ping", "integration_events", "chain_checkpoints"})


def describe_worker(service: str, worker_ctx) -> tuple[str, dict]:
    """What a worker served, for its line: ("rpc billing.open_account", fields)."""
    from nameko.rpc import Rpc
    from nameko.timer import Timer

    from services.infra.consumer import Handles

    entrypoint = worker_ctx.entrypoint
    name = entrypoint.method_name
    if isinstance(entrypoint, Handles):
        event = worker_ctx.args[0] if worker_ctx.args else None
        kind = f"{getattr(event, 'source', entrypoint.upstream)}.{getattr(event, 'type', '?')}"
        return f"event {kind} by {service}.{name}", {"entrypoint": f"event:{name}"}
    if isinstance(entrypoint, Rpc):
        return f"rpc {service}.{name}", {"entrypoint": f"rpc:{name}"}
    if isinstance(entrypoint, Timer):
        return f"timer {service}.{name}", {"entrypoint": f"timer:{name}"}
    return f"{type(entrypoint).__name__} {service}.{name}", {"entrypoint": name}


def log_worker(service: str, worker_ctx, elapsed: float, exc_info) -> None:
    """One line per worker: what it served, how it ended, how long it took. INFO for the
    work of a request (an RPC it made, an event it stored being applied), DEBUG else (timers,
    catch-up reads, probes), so a request's effects show in every process it reached."""
    quiet = not context.current.request_id or worker_ctx.entrypoint.method_name in QUIET
    level = logging.DEBUG if quiet else logging.INFO
    if not work_log.isEnabledFor(level):
        return
    what, fields = describe_worker(service, worker_ctx)
    outcome = "ok" if exc_info is None else f"failed ({exc_info[0].__name__})"
    fields.update(
        outcome="ok" if exc_info is None else "error", duration_ms=round(elapsed * 1000, 2)
    )
    if exc_info is not None:
        fields["error"] = exc_info[0].__name__
    work_log.log(level, "%s %s in %.2f ms", what, outcome, elapsed * 1000, extra=fields)
