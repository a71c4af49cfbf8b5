"""One bad event never stops a read model or a consumer (DESIGN.md, event flow, rule 5).

Bad events go straight into each service's event store, past every validation: copies
of real events with a NUL in every text (PostgreSQL text and jsonb refuse it), with every
integer at 2**63 (past bigint), and one whose stored state cannot be decoded at all. The
read model's follower parks each one that fails, says it skipped it, and projects the
events after it; staff retry projects it again once the projection is fixed.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from services.infra import clock
from services.infra.context import Actor, acting
from services.infra.inbox import Inbox
from services.infra.money import Money
from services.infra.parking import get_parked, list_parked, original_envelope
from services.infra.readmodels import Follower

HUGE = 2**63

# -- each service's application and a few real events for its read models ---------------------


def _customers_events(app, tag: str) -> list:
    customer = app.register_customer(
        {
            "kind": "company",
            "email": f"{tag}@example.com",
            "country": "DE",
            "contact_person": f"Person {tag}",
            "company_name": f"Company {tag}",
            "language": "en",
            "password": "p" * 12,
        }
    )
    customer_id = UUID(customer["id"])
    staff, _ = app.register_staff(
        f"staff{tag}", f"Staff {tag}", "admin", "s" * 12, f"s{tag}@example.com"
    )
    group = app.create_group({"name": f"Group {tag}", "description": "d"})
    with acting(Actor("staff", None)):
        user, _ = app.add_user(
            customer_id,
            {
                "username": f"user{tag}",
                "email": f"user{tag}@example.com",
                "name": f"User {tag}",
                "permissions": ["full"],
                "password": "u" * 12,
            },
        )
    return [tag, customer_id, staff.id, group.id, user.id]


def _billing_events(app, tag: str) -> list:
    customer_id = uuid4()
    app.open_account(customer_id, "EUR", {})
    app.record_payment(customer_id, Money(500, "EUR"), "bank", f"ref {tag}", None, None, {})
    account = app.account(customer_id, "EUR")
    account.debit("invoice_payment", Money(120, "EUR"), f"INV-{tag}", None, clock.now())
    app.save(account)
    return [tag, customer_id]


def _orders_events(app, tag: str) -> list:
    project_id = uuid4()
    app.record_project_terms(
        project_id, {"renew_days_before": 7, "suspend_after_days": 3, "terminate_after_days": 20}
    )
    app.record_project_terms(
        project_id, {"renew_days_before": 8, "suspend_after_days": 4, "terminate_after_days": 21}
    )
    code = f"PROMO-{tag}".upper()
    app.create_promo({"code": code, "kind": "percentage", "percent": "10"})
    return [project_id, code]


def _helpdesk_events(app, tag: str) -> list:
    department = app.create_department(
        {
            "name": f"Support {tag}",
            "client_visible": True,
            "fields": [],
            "staff_ids": [],
            "addresses": [],
            "accept_guests": False,
        }
    )
    customer_id = uuid4()
    app.open_ticket(
        department,
        f"Subject {tag}",
        "Body",
        {"kind": "client", "id": str(customer_id), "name": "Client"},
        customer={"id": str(customer_id), "language": "en"},
        # a file named, for the model of which tickets name which file
        attachments=[
            {
                "id": hashlib.sha256(tag.encode()).hexdigest(),
                "filename": f"{tag}.txt",
                "content_type": "text/plain",
                "size": len(tag),
            }
        ],
    )
    return [tag, customer_id]


def _mailgateway_events(app, tag: str) -> list:
    from services.mailgateway.domain import MailTemplate

    with acting(Actor("staff", str(uuid4()))):
        app.save(MailTemplate(kind=f"kind {tag}", language="en", subject=f"About {tag}", body="B"))
    return [tag]


SERVICES = {
    "customers": _customers_events,
    "billing": _billing_events,
    "orders": _orders_events,
    "helpdesk": _helpdesk_events,
    "mailgateway": _mailgateway_events,
}


def _read_models():
    cases = []
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        for model_cls in module.READ_MODELS:
            cases.append(pytest.param(service, model_cls, id=f"{service}.{model_cls.name}"))
    return cases


def test_every_service_with_read_models_is_covered():
    covered = {case.values[0] for case in _read_models()}
    assert covered == set(SERVICES), "a service's read models are missing here"


@pytest.fixture
def make_app(cfg):
    apps = []

    def make(service: str):
        module = importlib.import_module(f"services.{service}.service")
        app = module.APPLICATION(cfg=cfg)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


# -- bad events, straight into the store ---------------------------------------------------------

_KEEP = ("originator_id", "originator_version", "timestamp")


def _handles(model, event) -> bool:
    handles = getattr(model, "handles", None)  # a model of every event (the audit index)
    if handles is not None:
        return handles(event)
    return hasattr(model, "on_" + type(event).__qualname__.replace(".", "_"))


def _spoiled(event, kind: str):
    """A copy of `event` with every text (kind "nul") or integer (kind "huge") made bad."""
    bad, changed = copy.copy(event), False
    for name, value in vars(event).items():
        if name in _KEEP:
            continue
        if kind == "nul" and isinstance(value, str):
            object.__setattr__(bad, name, value + "\x00end")
            changed = True
        elif kind == "huge" and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(bad, name, HUGE)
            changed = True
    return bad if changed else None


def _put_bad_events(app, model) -> dict[int, str]:
    """Record, after the log's events, bad copies of the events `model` projects and one
    undecodable event; their positions and kinds."""
    bad: dict[int, str] = {}
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10_000)]
    version = 10**6
    for kind in ("nul", "huge"):
        for event in events:
            if not _handles(model, event):
                continue
            spoiled = _spoiled(event, kind)
            if spoiled is None:
                continue
            version += 1
            object.__setattr__(spoiled, "originator_version", version)
            app.recorder.insert_events([app.mapper.to_stored_event(spoiled)])
            bad[app.recorder.max_notification_id()] = kind
    handled = next(e for e in events if _handles(model, e))
    topic = app.mapper.to_stored_event(handled).topic
    app.recorder.insert_events([StoredEvent(uuid4(), 1, topic, b"\xff\x00 not an event \x00")])
    bad[app.recorder.max_notification_id()] = "garbage"
    return bad


def _record_copy(app, event, originator_id=None, version=None, **fields) -> int:
    """Record a copy of `event` with `fields` changed, past every check; its position."""
    bad = copy.copy(event)
    object.__setattr__(bad, "originator_id", originator_id or event.originator_id)
    object.__setattr__(bad, "originator_version", version or event.originator_version)
    for name, value in fields.items():
        object.__setattr__(bad, name, value)
    app.recorder.insert_events([app.mapper.to_stored_event(bad)])
    return app.recorder.max_notification_id()


def _last_event(app, type_name: str):
    for n in reversed(app.recorder.select_notifications(1, 10_000)):
        if n.topic.endswith(":" + type_name):
            return app.mapper.to_domain_event(n)
    raise LookupError(type_name)


def _mentions(app, model, *values) -> int:
    """Rows of the model's tables that mention one of `values` anywhere."""
    found = 0
    with app.datastore.transaction() as curs:
        for table in model.table_names:
            curs.execute(
                f'SELECT count(*) AS n FROM "{table}" t WHERE t::text LIKE ANY(%s)',
                ([f"%{v}%" for v in values],),
            )
            found += curs.fetchone()["n"]
    return found


class _Fixed:
    """The model with its projection fixed: text without NUL, integers that fit."""

    def __init__(self, model):
        self.model = model
        self.name = model.name
        self.tables = model.tables
        self.table_names = model.table_names

    def project_stored(self, curs, position, event):
        clean = copy.copy(event)
        for name, value in vars(event).items():
            if name in _KEEP:
                continue
            if isinstance(value, str):
                object.__setattr__(clean, name, value.replace("\x00", ""))
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 2**62:
                object.__setattr__(clean, name, 0)
        self.model.project_stored(curs, position, clean)


# -- every read model ----------------------------------------------------------------------------


@pytest.mark.parametrize("service, model_cls", _read_models())
def test_a_bad_event_is_parked_and_the_read_model_goes_on(make_app, service, model_cls):
    app = make_app(service)
    model = model_cls()
    follower = Follower(app, model, backoff=(0.0,))
    SERVICES[service](app, "before")
    follower.catch_up()
    assert follower.status()["skipped"] == 0

    bad = _put_bad_events(app, model)
    after = SERVICES[service](app, "after7q")  # good events behind the bad ones
    head = app.recorder.max_notification_id()
    follower.catch_up()

    # the events after the bad ones are projected
    assert follower.position() == head
    assert _mentions(app, model, *after) >= 1
    # the bad ones that failed are parked, listed for staff, and counted as skipped
    parked = list_parked(app, upstream=follower.upstream)
    positions = {p["position"] for p in parked}
    assert positions <= set(bad)
    kinds = {bad[p] for p in positions}
    assert "garbage" in kinds
    expected = {"garbage"} | EXPECTED_FAILURES.get(model.name, set())
    assert kinds == expected
    for p in parked:
        assert p["service"] == service
        assert p["upstream"] == f"readmodel:{model.name}"
        assert p["type"] and p["error"] and p["attempts"] == follower.attempts
        assert p["envelope"]["position"] == p["position"]
    status = follower.status()
    assert status["skipped"] == len(parked) and status["behind"] == 0
    assert {s["position"] for s in status["skipped_events"]} == positions

    # retried with the projection unchanged: it fails again and stays parked, counted
    first = min(positions)
    with pytest.raises(Exception):  # noqa: B017 - whatever the projection raises
        follower.retry(next(p["id"] for p in parked if p["position"] == first))
    assert follower.status()["skipped"] == len(parked)

    # a rebuild parks them again (the same rows, not new ones) and goes on
    follower.rebuild()
    assert follower.position() == head
    again = list_parked(app, upstream=follower.upstream)
    assert sorted(p["id"] for p in again) == sorted(p["id"] for p in parked)
    assert _mentions(app, model, *after) >= 1

    # once the projection is fixed, staff retry projects them; undecodable ones stay parked
    fixed = Follower(app, _Fixed(model), backoff=(0.0,))
    for p in again:
        if bad[p["position"]] == "garbage":
            with pytest.raises(Exception):  # noqa: B017 - whatever decoding raises
                fixed.retry(p["id"])
        else:
            fixed.retry(p["id"])
    left = list_parked(app, upstream=follower.upstream)
    assert {bad[p["position"]] for p in left} == {"garbage"}
    assert fixed.status()["skipped"] == len(left) == 1
    resolved = list_parked(app, include_resolved=True, upstream=follower.upstream)
    assert {p["resolution"] for p in resolved if p["resolved_at"]} <= {"projected again"}


# which kinds of bad event each model cannot project (garbage: all of them). The directory
# keeps only ids and times: no text or number of an event reaches its table.
EXPECTED_FAILURES = {
    "customer_list": {"nul", "huge"},
    "staff_list": {"nul"},
    "directory": set(),
    "user_emails": {"nul"},
    "referral_list": {"huge"},
    "account_list": {"nul", "huge"},
    "ledger": {"nul", "huge"},
    "billing_lists": {"nul", "huge"},
    "order_lists": {"huge"},
    "promo_lists": {"nul"},
    "helpdesk_lists": {"nul"},
    # the audit index keeps text without NUL and numbers as JSON: only garbage fails
    "audit_index": set(),
}


def test_a_database_that_is_away_is_waited_for_not_parked(customers):
    from eventsourcing.persistence import OperationalError

    from services.customers.readmodels import CustomerList

    _customers_events(customers, "x")

    class Away(CustomerList):
        def project(self, curs, event):
            raise OperationalError("the server closed the connection")

    away = Follower(customers, Away(), backoff=(0.0,))
    with pytest.raises(OperationalError, match="closed the connection"):
        away.run_once()
    assert away.position() == 0
    assert list_parked(customers) == []
    follower = Follower(customers, CustomerList(), backoff=(0.0,))
    follower.catch_up()
    assert follower.position() == customers.recorder.max_notification_id()


def test_the_customer_list_goes_on_past_a_nul_in_a_name(customers):
    from services.customers.readmodels import CustomerList

    follower = Follower(customers, CustomerList(), backoff=(0.0,))
    _customers_events(customers, "first")
    bad_id = uuid4()
    _record_copy(
        customers,
        _last_event(customers, "Customer.Registered"),
        originator_id=bad_id,
        version=1,
        number=10**6,
        contact_person="Ann\x00",
        company_name=None,
    )
    good = _customers_events(customers, "good")[1]
    follower.catch_up()
    assert follower.position() == customers.recorder.max_notification_id()
    assert _mentions(customers, CustomerList, good) == 1
    assert _mentions(customers, CustomerList, bad_id) == 0
    [parked] = list_parked(customers, upstream="readmodel:customer_list")
    assert parked["type"] == "Customer.Registered"
    assert "NUL" in parked["error"] or "0x00" in parked["error"]
    assert follower.status()["skipped"] == 1


def test_the_account_list_and_ledger_go_on_past_an_amount_beyond_bigint(billing):
    from services.billing.readmodels import AccountList, BillingLists, Ledger

    models = (AccountList, Ledger, BillingLists)
    followers = [Follower(billing, m(), backoff=(0.0,)) for m in models]
    rich = _billing_events(billing, "rich")[1]
    credited = _last_event(billing, "PersonalAccount.Credited")
    _record_copy(billing, credited, version=10**6, amount=HUGE, balance_after=HUGE)
    good = _billing_events(billing, "good")[1]
    for follower in followers:
        follower.catch_up()
        assert follower.position() == billing.recorder.max_notification_id()
    with billing.datastore.transaction() as curs:
        curs.execute(
            "SELECT customer_id, balance FROM account_list WHERE customer_id IN (%s, %s)",
            (good, rich),
        )
        balances = {r["customer_id"]: r["balance"] for r in curs.fetchall()}
    assert balances == {good: 500 - 120, rich: 500 - 120}
    skipped = {f.model.name: f.status()["skipped"] for f in followers}
    assert skipped == {"account_list": 1, "ledger": 1, "billing_lists": 0}


# -- consumers and the mail gateway ---------------------------------------------------------------


def _envelope(position: int, **payload) -> dict:
    return {
        "source": "customers",
        "position": position,
        "previous_position": None,
        "type": "CustomerRegistered",
        "aggregate_id": str(uuid4()),
        "version": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "actor": {"kind": "system", "id": None},
        "on_behalf_of": None,
        "cause": None,
        "payload": payload,
    }


def _upstream_log(*envelopes):
    """`fetch` of an upstream whose log holds `envelopes`."""

    def fetch(after, until):
        events = [
            e
            for e in envelopes
            if e["position"] > after and (until is None or e["position"] <= until)
        ]
        return {"events": events, "scanned": events[-1]["position"] if events else after}

    return fetch


def _failing(event, tracking):
    raise RuntimeError("cannot apply \x00 this")


@pytest.mark.parametrize("handler_fails", [True, False], ids=["handler-fails", "contract"])
def test_the_consumer_parks_an_envelope_with_nul_without_failing(billing, handler_fails):
    env = _envelope(
        1,
        customer_id=str(uuid4()),
        contact_person="Ann\x00",
        extra="\x00\ud800",
        ratio=float("nan"),
    )
    inbox = Inbox(
        billing,
        "customers",
        apply=_failing if handler_fails else (lambda event, tracking: None),
        fetch=_upstream_log(env),
        attempts=2,
        backoff=(0.0,),
    )
    assert inbox.receive(env) == "parked"
    assert inbox.last_position() == 1  # the stream goes on after it
    [parked] = list_parked(billing)
    assert parked["position"] == 1 and parked["type"] == "CustomerRegistered"
    assert "\x00" not in parked["error"]
    assert "\x00" not in str(parked["envelope"])
    assert parked["envelope"]["payload"]["contact_person"] == "Ann\ufffd"
    # the original is kept as it came, NUL and all
    original = original_envelope(get_parked(billing, parked["id"]))
    assert original["payload"]["extra"] == "\x00\ud800"
    assert original["payload"]["contact_person"] == "Ann\x00"


def test_a_position_beyond_bigint_is_parked_not_retried_for_ever(billing):
    stray = _envelope(HUGE, customer_id=str(uuid4()))
    inbox = Inbox(
        billing,
        "customers",
        apply=lambda event, tracking: None,
        fetch=_upstream_log(),
        backoff=(0.0,),
    )
    assert inbox.receive(stray) == "parked"
    [parked] = list_parked(billing)
    assert parked["position"] is None and "out of range" in parked["error"]
    assert inbox.last_position() == 0


# -- the mail gateway: notifications built from events, and the sender ---------------------------


@pytest.fixture
def mailgateway(cfg):
    from services.mailgateway.application import MailGateway

    app = MailGateway(cfg=cfg)
    yield app
    app.close()


def _notification(key: str, kind: str, context: dict, recipient="client@example.com"):
    from services.mailgateway.outbox import Notification

    return Notification(
        key=key,
        kind=kind,
        recipient=recipient,
        language="en",
        context=context,
        message_id=f"<{uuid4()}@example.com>",
    )


def _outbox(app) -> dict[str, dict]:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT key, status, context, subject, last_error FROM mail_outbox")
        return {r["key"]: r for r in curs.fetchall()}


def test_ticket_mail_with_nul_is_queued_and_the_next_events_too(mailgateway):
    """The mail gateway builds notifications in its consumer, in the transaction that
    records the event as consumed: a NUL in a ticket's subject (PostgreSQL's jsonb and
    text refuse it) must not make that transaction fail, for this event or the next."""
    from eventsourcing.persistence import Tracking

    from services.mailgateway.ticket_mail import thread_statement

    for position, subject in ((1, "mail\x00subject"), (2, "next one")):
        tracking = Tracking("helpdesk", position)
        with acting(Actor("service", "mailgateway"), tracking=tracking):
            mailgateway.queue_with(
                [_notification(f"ticket:{position}", "ticket_reply", {"subject": subject})],
                [thread_statement(f"t{position}\x00", "client@example.com", "<m@x>")],
            )
    assert mailgateway.recorder.max_tracking_id("helpdesk") == 2
    rows = _outbox(mailgateway)
    assert rows["ticket:1"]["context"]["subject"] == "mail\ufffdsubject"
    assert rows["ticket:2"]["context"]["subject"] == "next one"


@pytest.fixture
def sink(tmp_path):
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mail_dir = str(tmp_path / "mail")
    command = [sys.executable, "-m", "services.mailgateway.sink", "--port", str(port)]
    proc = subprocess.Popen([*command, "--dir", mail_dir])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_sender_settles_a_bad_row_and_sends_the_ones_after_it(mailgateway, sink):
    from services.mailgateway.domain import MailTemplate
    from services.mailgateway.outbox import Relay, Sender

    # a staff template with a NUL, saved past the template check: the subject of the mail
    # (kept on the row) cannot be stored as it renders
    mailgateway.save(MailTemplate("password_changed", "en", "Changed\x00 {{ who }}", "Hello"))
    mailgateway.queue(
        _notification("a-nul-subject", "password_changed", {"who": "staff"}),
        _notification("b-cannot-render", "password_changed", {}),
        _notification("c-after", "password_changed", {"who": "you"}),
    )
    sender = Sender(
        mailgateway,
        Relay("127.0.0.1", sink, timeout=10.0, local_hostname="example.com"),
        sender="hostledger <noreply@example.com>",
        domain="example.com",
        backoff=0.1,
    )
    try:
        assert sender.run_once() == 3
    finally:
        sender.relay.close()
    rows = _outbox(mailgateway)
    assert rows["a-nul-subject"]["status"] == "sent"
    assert rows["a-nul-subject"]["subject"] == "Changed\ufffd staff"
    assert rows["b-cannot-render"]["status"] == "failed"
    assert "cannot render" in rows["b-cannot-render"]["last_error"]
    assert rows["c-after"]["status"] == "sent"


def _mailin(cfg, helpdesk):
    from services.mailgateway.mailin import MailIn

    class WithHelpdesk(MailIn):
        def _helpdesk(self):
            return helpdesk

    mailin = WithHelpdesk(cfg)
    mailin.setup()
    return mailin


RAW = (
    b"From: Client <client@example.com>\r\nTo: support@example.com\r\n"
    b"Subject: =?utf-8?q?mail=00subject?=\r\nMessage-ID: <one@example.com>\r\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n"
)


def test_mail_the_helpdesk_keeps_failing_on_is_kept_for_staff_and_the_next_goes_on(
    cfg, mailgateway
):
    from services.mailgateway.mailin import HANDOFF_ATTEMPTS, TryLater

    class BrokenHelpdesk:
        def receive_mail(self, payload):
            if "mail" in (payload.get("subject") or ""):
                raise RuntimeError("the helpdesk has a bug")
            return {"outcome": "opened", "ticket_id": str(uuid4()), "tracking_number": "T-1"}

    mailin = _mailin(cfg, BrokenHelpdesk())
    other = RAW.replace(b"=?utf-8?q?mail=00subject?=", b"other").replace(b"<one@", b"<two@")
    recipients = ["support@example.com"]
    for _ in range(HANDOFF_ATTEMPTS - 1):
        with pytest.raises(TryLater):
            mailin.take(RAW, "client@example.com", recipients)
    assert mailin.take(RAW, "client@example.com", recipients).outcomes == ["held"]
    assert mailin.take(other, "client@example.com", recipients).outcomes == ["opened"]
    held = mailgateway.held_mail()["items"]
    assert [h["reason"] for h in held] == ["failed"]
    assert "the helpdesk has a bug" in held[0]["detail"]
    assert "\x00" not in held[0]["subject"]


# -- schedulers ----------------------------------------------------------------------------------


def test_an_invoice_the_scheduler_keeps_failing_on_is_parked_and_the_others_go_on(billing):
    """The overdue pass finds invoices in a read model; one it cannot load (a row whose
    invoice is not in the store) must not stop the invoices after it, run after run."""
    from datetime import UTC, datetime, timedelta

    from services.billing.readmodels import BillingLists
    from services.infra.parking import release_statement

    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    previous = clock.use_clock(clock.FixedClock(start))
    try:
        follower = Follower(billing, BillingLists())
        customer_id = uuid4()
        billing.open_account(customer_id, "EUR", {})
        lines = [{"description": "Hosting", "unit_price": 1000, "quantity": 1}]
        invoices = [billing.issue_invoice(customer_id, "EUR", lines, "manual", due_days=1)]
        follower.catch_up()
        with billing.datastore.transaction(commit=True) as curs:
            # listed first (the earliest due date), but there is no such invoice
            curs.execute(
                "INSERT INTO invoice_list (invoice_id, customer_id, number, status, purpose,"
                " total, currency, issued_at, due_date) VALUES (%s, %s, 'X-1', 'unpaid',"
                " 'manual', 1, 'EUR', %s, %s)",
                (uuid4(), customer_id, start, start.date() - timedelta(days=30)),
            )
        clock.use_clock(clock.FixedClock(start + timedelta(days=3)))
        assert billing.mark_overdue_invoices() == 1
        invoices.append(billing.issue_invoice(customer_id, "EUR", lines, "manual", due_days=0))
        follower.catch_up()
        clock.use_clock(clock.FixedClock(start + timedelta(days=5)))
        assert billing.mark_overdue_invoices() == 1  # the second run marks the new one
        for invoice in invoices:
            assert billing.repository.get(UUID(invoice["id"])).overdue
        [parked] = list_parked(billing, upstream="scheduler:overdue_invoices")
        assert parked["attempts"] == 2 and parked["type"] == "invoice"
        assert parked["error"].startswith("AggregateNotFoundError")
        billing.mark_overdue_invoices()
        [parked] = list_parked(billing, upstream="scheduler:overdue_invoices")
        assert parked["attempts"] == 3  # parked: no longer tried
        billing.mark_overdue_invoices()
        assert list_parked(billing, upstream="scheduler:overdue_invoices")[0]["attempts"] == 3
        # staff retry releases it to the next run, which tries it again
        with billing.datastore.transaction(commit=True) as curs:
            curs.execute(*release_statement(parked["id"]))
        assert list_parked(billing, upstream="scheduler:overdue_invoices") == []
        billing.mark_overdue_invoices()
        [again] = list_parked(billing, upstream="scheduler:overdue_invoices")
        assert again["id"] == parked["id"] and again["attempts"] == 1
    finally:
        clock.use_clock(previous)
