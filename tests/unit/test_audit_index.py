"""What the audit index keeps of each event (services/infra/audit.py), without a database:
what an event concerns, what it changed (before and after), its words, and never a
secret; and the history cursor the API hands out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from contracts import audit as contract
from contracts.errors import ValidationFailed
from services.billing.audit import MAPPING as BILLING
from services.billing.domain import PersonalAccount
from services.customers.audit import MAPPING as CUSTOMERS
from services.customers.audit import AuditRead
from services.customers.domain import Customer, CustomerUser, LoginName
from services.helpdesk.audit import MAPPING as HELPDESK
from services.infra import clock
from services.infra.audit import (
    LIFECYCLE,
    AuditMapping,
    Memory,
    extract,
    plain,
    state_of,
    summarize,
)
from services.infra.money import Money
from tests.unit.test_erasure_reach_rules import _ticket

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock():
    previous = clock.use_clock(clock.FixedClock(NOW))
    yield
    clock.use_clock(previous)


def _stamped(events, actor=None, on_behalf_of=None, cause=None):
    """As HostledgerApplication.save stamps them."""
    for e in events:
        object.__setattr__(e, "actor", actor or {"kind": "system", "id": None})
        object.__setattr__(e, "on_behalf_of", on_behalf_of)
        if cause:
            object.__setattr__(e, "cause", cause)
    return events


def _index(mapping, events, start=1, memories=None):
    """The entries of `events` as the index makes them, one memory per aggregate."""
    memories = {} if memories is None else memories
    entries = []
    for position, e in enumerate(events, start):
        entry, memories[e.originator_id] = extract(
            mapping, e, position, memories.get(e.originator_id)
        )
        entries.append(entry)
    return entries


def _customer(email="ann@example.com"):
    return Customer(
        number=1001,
        kind="individual",
        email=email,
        username="c1001",
        country="DE",
        contact_person="Ann Smith",
        company_name=None,
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=NOW,
        registration_ip="203.0.113.5",
    )


STAFF = {"kind": "staff", "id": str(uuid4())}


def test_a_correction_says_what_changed_before_and_after_and_why():
    customer = _customer()
    created = _stamped(customer.collect_events(), STAFF)
    clock.use_clock(clock.FixedClock(NOW + timedelta(hours=1)))
    customer.correct(changes={"email": "ann@right.example"}, reason="typo in the address")
    customer.change_password()
    later = _stamped(customer.collect_events(), STAFF)
    registered, corrected, password = _index(CUSTOMERS, created + later)

    assert registered.event_type == "Customer.Registered"
    assert registered.summary == "Customer registered"
    assert registered.changes["email"] == [None, "ann@example.com"]
    assert registered.changes["registered_at"] == [None, "2026-11-21T10:00:00.000000Z"]
    assert ("customer", str(customer.id)) in registered.references
    assert ("staff", STAFF["id"]) in registered.references  # who did it

    assert corrected.summary == "Customer e-mail corrected"
    assert corrected.changes == {"email": ["ann@example.com", "ann@right.example"]}
    assert corrected.reason == "typo in the address"
    assert corrected.occurred_at == NOW + timedelta(hours=1)
    assert corrected.actor == STAFF and corrected.version == 2 and corrected.position == 2

    # the password hash is in no entry, no memory, not even the fact it changed
    assert password.summary == "Customer password changed" and password.changes == {}
    for entry in (registered, corrected, password):
        assert "argon2id" not in json.dumps(entry.changes)
        assert not any("password" in field for field in entry.changes)


def test_a_tickets_status_follows_who_wrote_its_messages():
    customer_id = uuid4()
    ticket = _ticket(customer_id, "Help", "Ann")
    ticket.add_message("Done", "staff", STAFF["id"], "Sam", NOW)
    ticket.add_message("Not yet", "client", str(customer_id), "Ann", NOW)
    ticket.add_message("Check the disk", "staff", STAFF["id"], "Sam", NOW, internal=True)
    ticket.close()
    opened, answered, replied, note, closed = _index(HELPDESK, _stamped(ticket.collect_events()))
    assert opened.changes["status"] == [None, "open"]
    assert opened.changes["archived"] == [None, False]
    assert answered.changes["status"] == ["open", "answered"]
    assert replied.changes["status"] == ["answered", "customer_reply"]
    assert "status" not in note.changes
    assert closed.changes == {"status": ["customer_reply", "closed"], "archived": [False, True]}
    assert ticket.status == "closed" and ticket.archived  # what the ticket itself says
    staff_opened = _index(
        HELPDESK, _stamped(_ticket(None, "Hello", "Sam", author_kind="staff").collect_events())
    )
    assert staff_opened[0].changes["status"] == [None, "answered"]


def test_what_an_event_sets_without_carrying_it_is_a_change_before_and_after():
    customer = _customer()
    events = _stamped(customer.collect_events(), STAFF)
    customer.enable_two_factor(recovery_codes=10)  # an event its base class defines
    customer.delete(forced=False, reason="asked to leave")
    events += _stamped(customer.collect_events(), STAFF)
    registered, two_factor, deleted = _index(CUSTOMERS, events)
    assert registered.changes["deleted"] == [None, False]
    assert two_factor.event_type == "Customer.TwoFactorEnabled"
    assert two_factor.changes["two_factor"] == [None, True]
    assert deleted.changes == {"deleted": [False, True], "forced": [None, False]}
    assert deleted.reason == "asked to leave"


def _event_bodies(cls):
    """("Class.Event", the statements applying it, the name of the aggregate in them, the
    event's own parameters) for each event an aggregate class defines: its `@event("Name")`
    methods and its nested event classes' `apply`."""
    import ast

    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                if (
                    isinstance(d, ast.Call)
                    and getattr(d.func, "id", None) == "event"
                    and d.args
                    and isinstance(d.args[0], ast.Constant)
                ):
                    params = {a.arg for a in node.args.args + node.args.kwonlyargs}
                    yield f"{cls.name}.{d.args[0].value}", node.body, "self", params
        elif isinstance(node, ast.ClassDef):
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "apply" and len(fn.args.args) > 1:
                    yield f"{cls.name}.{node.name}", fn.body, fn.args.args[1].arg, set()


def _lifecycle_assignments(service: str) -> dict[str, dict]:
    """Every event of the service's code that leaves a LIFECYCLE field of its aggregate at
    a constant, unconditionally and not from its own values (the last assignment of the
    field in the event's code is that constant): "Class.Event" -> {field: value}."""
    import ast
    from pathlib import Path

    found: dict[str, dict] = {}
    for path in sorted((Path(__file__).parents[2] / "services" / service).glob("*.py")):
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for name, body, aggregate, params in _event_bodies(cls):
                last = {}
                for statement in body:
                    if (
                        isinstance(statement, ast.Assign)
                        and len(statement.targets) == 1
                        and isinstance(target := statement.targets[0], ast.Attribute)
                        and getattr(target.value, "id", None) == aggregate
                        and target.attr in LIFECYCLE
                        and target.attr not in params
                    ):
                        value = statement.value
                        last[target.attr] = value.value if isinstance(value, ast.Constant) else ...
                constants = {k: v for k, v in last.items() if v is not ...}
                if constants:
                    found[name] = constants
    return found


@pytest.mark.parametrize("service", contract.SERVICES)
def test_every_lifecycle_field_an_event_sets_is_in_its_services_effects(service):
    import importlib

    mapping = importlib.import_module(f"services.{service}.audit").MAPPING
    wanted = {
        name: values
        for name, values in _lifecycle_assignments(service).items()
        if name.split(".")[0] not in mapping.internal
    }
    effects = dict(mapping.effects)
    for name, constants in wanted.items():
        given = effects.get(name)
        if callable(given):  # decided by the event's values: at least the constant part
            for author_kind in ("client", "staff"):
                values = given({"author_kind": author_kind, "internal": False})
                assert constants.items() <= dict(values).items(), name
        else:
            assert given == constants, name
    assert {name for name, given in effects.items() if not callable(given)} <= set(wanted)


def test_an_edit_of_several_fields_names_them_and_keeps_unchanged_ones_out():
    customer = _customer()
    events = _stamped(customer.collect_events(), STAFF)
    customer.edit(changes={"language": "fr", "attitude": "good"})
    customer.edit(changes={"language": "fr", "note": "VIP"})
    events += _stamped(customer.collect_events(), STAFF)
    _, first, second = _index(CUSTOMERS, events)
    assert first.summary == "Customer language and attitude changed"
    assert first.changes == {"language": ["en", "fr"], "attitude": [None, "good"]}
    assert second.changes == {"note": [None, "VIP"]}  # the language was fr already


def test_an_aggregate_made_for_a_customer_passes_the_customer_to_its_later_events():
    customer_id = uuid4()
    account = PersonalAccount(customer_id=customer_id, currency="EUR", opened_at=NOW, buyer={})
    account.credit("payment", Money(500, "EUR"), "TX-1", None, NOW)
    account.credit("payment", Money(300, "EUR"), "TX-2", None, NOW)
    account.debit("invoice_payment", Money(200, "EUR"), "INV-1", None, NOW)
    opened, first, second, debit = _index(BILLING, _stamped(account.collect_events()))
    assert opened.summary == "Personal account opened"
    for entry in (opened, first, second, debit):
        assert ("customer", str(customer_id)) in entry.references
        assert ("account", str(account.id)) in entry.references
    # an entry's amount is the event's own; the balance after it is the account's
    assert first.changes["amount"] == [None, 500]
    assert second.changes["amount"] == [None, 300]
    assert second.changes["balance_after"] == [500, 800]
    assert debit.changes["balance_after"] == [800, 600]
    assert debit.summary == "Personal account debited"


def test_an_impersonating_staff_member_is_in_the_history_as_on_behalf_of():
    customer = _customer()
    client = {"kind": "client", "id": str(customer.id)}
    customer.collect_events()
    customer.edit(changes={"language": "ru"})
    [edited] = _index(CUSTOMERS, _stamped(customer.collect_events(), client, STAFF), start=7)
    assert edited.actor == client and edited.on_behalf_of == STAFF
    assert ("staff", STAFF["id"]) in edited.references
    assert ("customer", str(customer.id)) in edited.references
    # no memory of the registration here: every value is new to the index
    assert edited.changes == {"language": [None, "ru"]}


def test_bookkeeping_aggregates_are_in_no_history():
    owner = uuid4()
    claim = LoginName(name="c1001", owner_kind="customer", owner_id=owner)
    [entry] = _index(CUSTOMERS, _stamped(claim.collect_events(), STAFF))
    assert entry.internal and entry.references == []
    assert entry.event_type == "LoginName.Claimed"
    assert entry.changes["owner_id"] == [None, str(owner)]


def test_a_kept_answer_never_reaches_the_index():
    from services.infra.domain import IdempotencyKey

    used = IdempotencyKey(
        scope="orders",
        key="k1",
        request_hash="abc123",
        answer={"credentials": {"username": "c1", "password": "shown-once"}},
    )
    [entry] = _index(CUSTOMERS, _stamped(used.collect_events()))
    assert entry.references == [] and "shown-once" not in json.dumps(entry.changes)
    assert set(entry.changes) == {"scope", "key"}


def test_a_user_added_with_a_password_keeps_no_hash_and_concerns_its_customer():
    customer_id = uuid4()
    user = CustomerUser(
        customer_id=customer_id,
        username="bob",
        email="bob@example.com",
        name="Bob",
        permissions=["billing"],
    )
    user.enable_two_factor(recovery_codes=10)
    added, enabled = _index(CUSTOMERS, _stamped(user.collect_events()))
    assert "password_hash" not in added.changes and "argon2id" not in json.dumps(added.changes)
    assert ("customer", str(customer_id)) in enabled.references
    assert enabled.summary == "Customer's user: two-factor authentication turned on"
    assert "argon2id" not in json.dumps(state_of(user))
    assert state_of(user)["username"] == "bob" and "password_hash" not in state_of(user)


def test_a_ticket_message_is_the_events_own_and_the_ticket_keeps_its_customer():
    customer_id = uuid4()
    ticket = _ticket(
        customer_id,
        "Help " * 400,
        "Ann",
        author_id=str(customer_id),
        attachments=[{"id": "f1", "filename": "a.png", "content": b"\x89PNG"}],
    )
    ticket.add_message("Thanks", "staff", STAFF["id"], "Sam", NOW)
    opened, reply = _index(HELPDESK, _stamped(ticket.collect_events()))
    assert opened.summary == "Ticket opened" and reply.summary == "Ticket message added"
    assert ("ticket", str(ticket.id)) in reply.references
    assert ("customer", str(customer_id)) in reply.references
    assert reply.changes["body"] == [None, "Thanks"]  # no "before": another message
    assert "subject" not in reply.changes  # the ticket's, unchanged
    assert len(opened.changes["body"][1]) == 1001  # long text cut, marked with …
    assert opened.changes["attachments"][1] == [{"id": "f1", "filename": "a.png"}]


def test_an_audit_read_is_in_the_readers_history():
    reader = uuid4()
    object_id = uuid4()
    read = AuditRead(
        staff_id=reader, view="state", object_kind="invoice", object_id=object_id, at=NOW
    )
    [entry] = _index(
        CUSTOMERS, _stamped(read.collect_events(), {"kind": "staff", "id": str(reader)})
    )
    assert entry.references == [("staff", str(reader))]
    assert entry.summary == "Audit: invoice as it stood at 2026-11-21T10:00:00.000000Z read"
    assert entry.changes["object_id"] == [None, str(object_id)]


def test_values_are_json_without_nul_surrogates_bytes_or_secrets():
    value = {
        "name": "a\x00b\ud800",
        "file": b"bytes",
        "token": "t",
        "totp_secret": "s",
        "nested": {"password": "p", "ok": 1, "when": NOW},
        "amount": float("nan"),
    }
    out = plain(value)
    assert out == {
        "name": "a\ufffdb?",
        "file": None,
        "nested": {"ok": 1, "when": "2026-11-21T10:00:00.000000Z"},
        "amount": "nan",
    }
    json.dumps(out)


def test_memory_is_not_shared_between_calls():
    customer = _customer()
    [registered] = _stamped(customer.collect_events())
    memory = Memory()
    extract(CUSTOMERS, registered, 1, memory)
    assert memory.fields == {}  # extract answers a new memory, never changes the one given


def test_summaries_follow_the_mapping_then_the_defaults():
    mapping = AuditMapping(subjects={"PersonalAccount": "Account"}, summaries={"X.Y": "Why"})
    assert summarize(mapping, "X", "Y", [], {}) == "Why"
    assert summarize(mapping, "PersonalAccount", "Credited", [], {}) == "Account credited"
    assert summarize(mapping, "Project", "Changed", ["name"], {}) == "Project name changed"
    assert summarize(mapping, "Project", "Changed", [], {}) == "Project changed"
    assert summarize(mapping, "StaffMember", "TwoFactorReset", [], {}).startswith(
        "Staff member: two-factor"
    )
    with pytest.raises(ValueError):
        AuditMapping(kinds={"Thing": "thing"})


# -- the cursor ---------------------------------------------------------------------------


def test_a_cursor_goes_there_and_back_and_a_bad_one_names_the_field():
    item = {"occurred_at": "2026-11-21T10:00:00Z", "service": "billing", "position": 42}
    cursor = contract.cursor_of(item)
    text = contract.encode_cursor(cursor)
    assert "=" not in text and "billing" not in text
    back = contract.decode_cursor(text)
    assert back == {
        "occurred_at": "2026-11-21T10:00:00+00:00",
        "service": "billing",
        "position": 42,
    }
    for bad in ("nope", contract.encode_cursor(dict(cursor, service="elsewhere")), "", "%%%"):
        with pytest.raises(ValidationFailed) as info:
            contract.decode_cursor(bad)
        assert "cursor" in info.value.fields


def test_histories_merge_by_time_then_service_then_position():
    items = [
        {"occurred_at": "2026-11-21T10:00:00.000001Z", "service": "billing", "position": 1},
        {"occurred_at": "2026-11-21T10:00:00Z", "service": "orders", "position": 9},
        {"occurred_at": "2026-11-21T10:00:00Z", "service": "customers", "position": 30},
        {"occurred_at": "2026-11-21T11:00:00+01:00", "service": "customers", "position": 3},
    ]
    ordered = sorted(items, key=contract.sort_key)
    assert [(i["service"], i["position"]) for i in ordered] == [
        ("customers", 3),
        ("customers", 30),
        ("orders", 9),
        ("billing", 1),
    ]
