"""The log's lines (services/infra/logs.py) and the pure pieces that carry a request id
from the gateway to the events and handlers downstream, without a process or a broker."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.infra import clock, context, logs
from services.infra.audit import extract
from services.infra.context import Actor
from services.infra.inbox import PoisonEvent, load_event
from services.infra.settings import Settings

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _record(message="paid %s", args=("INV-1",), level=logging.INFO, exc_info=None, **extra):
    record = logging.LogRecord(
        "services.billing.ledger", level, __file__, 10, message, args, exc_info
    )
    record.__dict__.update(extra)
    return record


@pytest.fixture
def in_request():
    """The green thread's context as a worker of a request sees it."""
    saved = (context.current.actor, context.current.cause, context.current.request_id)
    context.current.actor = Actor("staff", "s-1")
    context.current.cause = "customers:812"
    context.current.request_id = "req-42"
    yield
    context.current.actor, context.current.cause, context.current.request_id = saved


def test_a_json_line_has_every_field_in_utc_with_the_requests_context(in_request):
    logs.set_process_name("billing")
    line = logs.JsonFormatter().format(_record())
    data = json.loads(line)
    assert "\n" not in line
    assert data["message"] == "paid INV-1"
    assert data["level"] == "INFO"
    assert data["logger"] == "services.billing.ledger"
    assert data["service"] == "billing"
    assert data["instance"] == f"{socket.gethostname()}:{os.getpid()}"
    assert data["request_id"] == "req-42"
    assert data["actor"] == "staff:s-1"
    assert data["cause"] == "customers:812"
    assert ISO_UTC.match(data["time"]), data["time"]
    assert "exception" not in data and "exc_info" not in data
    # the first fields in a fixed order, for a person reading the raw line
    assert list(data)[:6] == ["time", "level", "logger", "message", "service", "instance"]


def test_the_time_is_utc_whatever_the_local_zone():
    created = datetime(2026, 12, 4, 16, 50, 8, 123000, tzinfo=UTC).timestamp()
    assert logs.utc_iso(created) == "2026-12-04T16:50:08.123Z"


def test_a_line_outside_any_request_has_no_request_fields():
    data = json.loads(logs.JsonFormatter().format(_record()))
    for name in ("request_id", "actor", "on_behalf_of", "cause"):
        assert name not in data


def test_an_exception_is_a_field_of_its_line():
    try:
        raise ValueError("no such invoice")
    except ValueError:
        record = _record("failed", (), logging.ERROR, exc_info=sys.exc_info())
    line = logs.JsonFormatter().format(record)
    data = json.loads(line)
    assert line.count("\n") == 0
    assert data["level"] == "ERROR"
    assert data["exception"].startswith("Traceback")
    assert "ValueError: no such invoice" in data["exception"]


def test_extra_fields_are_fields_and_win_over_the_context(in_request):
    record = _record(request_id="from-the-access-log", status=201, principal=None)
    data = json.loads(logs.JsonFormatter().format(record))
    assert data["request_id"] == "from-the-access-log"
    assert data["status"] == 201 and data["principal"] is None


def test_a_value_json_cannot_take_is_written_as_text():
    class Odd:
        def __repr__(self):
            return "<odd>"

    data = json.loads(logs.JsonFormatter().format(_record(thing=Odd(), when=datetime(2026, 1, 1))))
    assert "odd" in data["thing"]
    assert data["when"].startswith("2026-01-01")


def test_text_lines_name_the_request_when_there_is_one(in_request):
    text = logs.TextFormatter().format(_record())
    assert text.endswith("services.billing.ledger: paid INV-1 [request req-42]")
    context.current.request_id = None
    assert "[request" not in logs.TextFormatter().format(_record())


def test_the_format_is_chosen_by_configuration():
    assert isinstance(logs.formatter("json"), logs.JsonFormatter)
    assert isinstance(logs.formatter("text"), logs.TextFormatter)
    with pytest.raises(ValueError, match="HOSTLEDGER_LOG_FORMAT"):
        logs.formatter("xml")
    assert Settings.from_env({}).log_format == "json"
    assert Settings.from_env({"HOSTLEDGER_LOG_FORMAT": "Text"}).log_format == "text"
    with pytest.raises(ValueError, match="HOSTLEDGER_LOG_FORMAT must be json or text"):
        Settings.from_env({"HOSTLEDGER_LOG_FORMAT": "yaml"})


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (
            [
                "nameko",
                "run",
                "--config",
                "deploy/nameko.yaml",
                "services.billing.service:BillingService",
            ],
            "billing",
        ),
        (["nameko", "run", "--config", "x.yaml", "gateway.service:GatewayService"], "gateway"),
        (["python", "-m", "services.mailgateway.mailin"], "mailin"),
        (["/usr/bin/hostledger", "audit"], "hostledger"),
    ],
)
def test_a_process_is_named_from_its_command_line_until_its_service_names_it(argv, name):
    assert logs._guess_service(argv) == name


@pytest.mark.parametrize(
    "chosen", ["7f3c2a9e", "req-42", "trace:abc/1+2=3@x", "a" * 128, str(uuid4())]
)
def test_a_callers_request_id_is_kept(chosen):
    assert logs.request_id_for(chosen) == chosen


@pytest.mark.parametrize(
    "bad", [None, "", "a" * 129, "two\nlines", "tab\there", "naïve", "-leading", " space"]
)
def test_a_bad_request_id_is_replaced_by_a_new_one(bad):
    made = logs.request_id_for(bad)
    assert made != bad and re.fullmatch(r"[0-9a-f]{32}", made)
    assert logs.request_id_for(bad) != made  # each request its own


def test_tracing_sets_the_request_and_gives_back_the_one_before():
    context.current.request_id = "outer"
    try:
        with context.tracing("inner"):
            assert context.current.request_id == "inner"
            with context.tracing(None):
                assert context.current.request_id is None
            assert context.current.request_id == "inner"
        assert context.current.request_id == "outer"
        with pytest.raises(RuntimeError), context.tracing("failing"):
            raise RuntimeError
        assert context.current.request_id == "outer"
    finally:
        context.current.request_id = None


# -- the envelope ----------------------------------------------------------------------


def _envelope(**changes):
    customer_id = str(uuid4())
    envelope = {
        "source": "customers",
        "position": 3,
        "previous_position": 1,
        "type": "CustomerRegistered",
        "aggregate_id": customer_id,
        "version": 1,
        "occurred_at": "2026-11-21T10:00:00Z",
        "actor": {"kind": "staff", "id": "x"},
        "payload": {
            "customer_id": customer_id,
            "number": 1001,
            "kind": "individual",
            "email": "a@example.com",
            "username": "c1001",
            "country": "DE",
            "contact_person": "A",
            "language": "en",
            "currency": "EUR",
            "registered_at": "2026-11-21T10:00:00+00:00",
        },
    }
    envelope.update(changes)
    return envelope


def test_an_envelope_carries_its_request_id_to_the_consumer():
    assert load_event(_envelope(request_id="req-42")).request_id == "req-42"


def test_an_envelope_of_an_event_stored_before_request_ids_loads_without_one():
    assert load_event(_envelope()).request_id is None
    assert load_event(_envelope(request_id=None)).request_id is None


def test_an_envelope_field_of_a_later_version_is_ignored_not_poison():
    event = load_event(_envelope(request_id="req-42", trace_flags="01"))
    assert event.request_id == "req-42" and not hasattr(event, "trace_flags")


@pytest.mark.parametrize("bad", ["a\x00b", "x" * 129, 42])
def test_an_envelope_with_a_bad_request_id_breaks_the_contract(bad):
    with pytest.raises(PoisonEvent, match="request_id"):
        load_event(_envelope(request_id=bad))


# -- the audit index -------------------------------------------------------------------


def test_the_request_id_of_an_event_is_no_change_of_its_object():
    from services.customers.audit import MAPPING
    from services.customers.domain import Customer

    previous = clock.use_clock(clock.FixedClock(datetime(2026, 11, 21, tzinfo=UTC)))
    try:
        customer = Customer(
            number=1001,
            kind="individual",
            email="ann@example.com",
            username="c1001",
            country="DE",
            contact_person="Ann Smith",
            company_name=None,
            language="en",
            project_id=None,
            currency="EUR",
            registered_at=datetime(2026, 11, 21, tzinfo=UTC),
            registration_ip="203.0.113.5",
        )
        stamped = []
        for event in customer.collect_events():
            object.__setattr__(event, "actor", {"kind": "system", "id": None})
            object.__setattr__(event, "on_behalf_of", None)
            object.__setattr__(event, "request_id", "req-42")
            stamped.append(event)
        entry, _ = extract(MAPPING, stamped[0], 1, None)
    finally:
        clock.use_clock(previous)
    assert "request_id" not in entry.changes
    assert "req-42" not in json.dumps(entry.changes, default=str)


# -- each worker's line ----------------------------------------------------------------


def _worker(entrypoint, name, *args):
    from types import SimpleNamespace

    entrypoint.method_name = name
    return SimpleNamespace(entrypoint=entrypoint, args=args)


def test_the_work_of_a_request_has_an_info_line_and_the_rest_only_debug(caplog):
    from nameko.rpc import Rpc
    from nameko.timer import Timer

    from services.infra.consumer import Handles

    event = load_event(_envelope(request_id="req-42"))
    caplog.set_level(logging.DEBUG, logger="hostledger.work")
    with context.tracing("req-42"):
        logs.log_worker("customers", _worker(Rpc(), "register_customer"), 0.0123, None)
        logs.log_worker(
            "billing", _worker(Handles("customers", "x"), "open_account", event), 0.002, None
        )
        logs.log_worker("customers", _worker(Rpc(), "ping"), 0.001, None)
        failed = (ValueError, ValueError("x"), None)
        logs.log_worker("customers", _worker(Rpc(), "edit_customer"), 0.5, failed)
    logs.log_worker("orders", _worker(Timer(interval=60), "renew"), 0.1, None)

    rpc, handler, ping, failure, timer = caplog.records
    assert (rpc.levelno, rpc.getMessage()) == (
        logging.INFO,
        "rpc customers.register_customer ok in 12.30 ms",
    )
    assert rpc.entrypoint == "rpc:register_customer" and rpc.duration_ms == 12.3
    assert handler.levelno == logging.INFO
    assert handler.getMessage().startswith(
        "event customers.CustomerRegistered by billing.open_account ok"
    )
    assert handler.entrypoint == "event:open_account"
    assert ping.levelno == logging.DEBUG  # probes and peers' polls
    assert failure.levelno == logging.INFO and failure.outcome == "error"
    assert failure.error == "ValueError" and "failed (ValueError)" in failure.getMessage()
    assert timer.levelno == logging.DEBUG and timer.entrypoint == "timer:renew"  # no request
