"""Password hashes are not in the customers service's events (services/customers/
credentials.py keeps them): the events that set a password are of class version 2 and
carry no hash; those stored at version 1, with `password_hash`, still load (upcast
without it), and the hash they recorded is found for the credentials table. In memory:
the library's own mapper and a POPO event store, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from services.customers.audit import MAPPING
from services.customers.credentials import SETTING_TOPICS, kind_of, recorded_hashes, set_statement
from services.customers.domain import PASSWORD_EVENTS, Customer, CustomerUser, StaffMember
from services.infra import clock
from services.infra.audit import extract, state_of

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
OLD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$b2xkLWhhc2gtb2YtYW5u"


@pytest.fixture(autouse=True)
def fixed_clock():
    previous = clock.use_clock(clock.FixedClock(NOW))
    yield
    clock.use_clock(previous)


@pytest.fixture
def store():
    """An in-memory application: the same mapper (JSON transcoder) as the services'."""
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def _customer() -> Customer:
    return Customer(
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
        registered_at=NOW,
        registration_ip=None,
    )


def _user(customer_id) -> CustomerUser:
    return CustomerUser(
        customer_id=customer_id,
        username="bob",
        email="bob@example.com",
        name="Bob",
        permissions=["billing"],
    )


def _staff() -> StaffMember:
    return StaffMember(
        username="sam", name="Sam", email=None, role="admin", language="en", notify={}
    )


def _as_version_1(stored: StoredEvent, **extra) -> StoredEvent:
    """`stored` as a release before version 2 wrote it: no class_version, plus `extra`."""
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    state.update(extra)
    return StoredEvent(
        stored.originator_id,
        stored.originator_version,
        stored.topic,
        json.dumps(state, separators=(",", ":")).encode(),
    )


def test_the_events_that_set_a_password_carry_no_hash(store):
    customer = _customer()
    customer.change_password()
    user = _user(customer.id)
    user.change_password()
    staff = _staff()
    staff.change_password()
    events = [*customer.collect_events(), *user.collect_events(), *staff.collect_events()]
    assert [type(e) for e in events] == list(PASSWORD_EVENTS)
    for event in events:
        stored = store.mapper.to_stored_event(event)
        state = json.loads(stored.state)
        assert state["class_version"] == 2
        assert b"password" not in stored.state and b"argon2" not in stored.state
    for aggregate in (customer, user, staff):
        assert not any("password" in name for name in vars(aggregate))
    assert set(SETTING_TOPICS) == {get_topic(cls) for cls in PASSWORD_EVENTS}


def test_a_customer_recorded_with_hashes_in_its_events_loads_without_them(store):
    customer = _customer()
    customer.change_password()
    customer.edit({"phone": "+49 30 1234567"})
    events = customer.collect_events()
    stored = [store.mapper.to_stored_event(e) for e in events]
    old = [
        _as_version_1(stored[0], password_hash=OLD_HASH),
        _as_version_1(stored[1], password_hash=OLD_HASH + "2"),
        stored[2],  # an edit: no version of its own
    ]
    store.recorder.insert_events(old)

    loaded = store.repository.get(customer.id)
    assert loaded.version == 3 and loaded.username == "c1001"
    assert loaded.phone == "+49 30 1234567"
    assert not hasattr(loaded, "password_hash")
    assert "argon2" not in json.dumps(state_of(loaded))
    # read as version 2: what a reader of the log (read models, relay, audit) gets
    for record in old[:2]:
        event = store.mapper.to_domain_event(record)
        assert "password_hash" not in vars(event)
        assert type(event).class_version == 2


@pytest.mark.parametrize("make", [_staff, lambda: _user(uuid4())])
def test_staff_and_users_recorded_with_hashes_load_too(store, make):
    account = make()
    account.change_password()
    account.enable_two_factor(recovery_codes=10)
    stored = [store.mapper.to_stored_event(e) for e in account.collect_events()]
    store.recorder.insert_events(
        [
            _as_version_1(stored[0], password_hash=OLD_HASH),
            _as_version_1(stored[1], password_hash=OLD_HASH + "2"),
            stored[2],
        ]
    )
    loaded = store.repository.get(account.id)
    assert type(loaded) is type(account) and loaded.version == 3 and loaded.two_factor
    assert not any("password" in name for name in vars(loaded))


def test_the_last_hash_each_account_recorded_is_found():
    ann, bob, new = uuid4(), uuid4(), uuid4()
    at = [NOW + timedelta(minutes=i) for i in range(5)]
    customer_topic = get_topic(Customer.Registered)
    changed = get_topic(Customer.PasswordChanged)
    user_topic = get_topic(CustomerUser.Added)
    found = recorded_hashes(
        [
            (ann, 1, customer_topic, {"password_hash": "h-ann-1", "timestamp": at[0]}),
            (ann, 3, changed, {"password_hash": "h-ann-3", "timestamp": at[2]}),
            (bob, 1, user_topic, {"password_hash": "h-bob", "timestamp": at[1]}),
            # read out of order: the higher version still wins
            (ann, 2, changed, {"password_hash": "h-ann-2", "timestamp": at[1]}),
            # version 2: no hash; another topic: not a password's
            (new, 1, customer_topic, {"timestamp": at[3]}),
            (new, 2, get_topic(Customer.Edited), {"password_hash": "x", "timestamp": at[4]}),
        ]
    )
    assert found == {
        ann: ("client", "h-ann-3", at[2], 3),
        bob: ("user", "h-bob", at[1], 1),
    }


def test_the_table_row_is_written_with_the_kind_and_version_of_the_account():
    staff = _staff()
    staff.change_password()
    sql, params = set_statement(staff, "h")
    assert "INSERT INTO credentials" in sql
    assert params == (staff.id, "staff", "h", staff.modified_on, 2)
    assert [kind_of(_customer()), kind_of(_user(uuid4()))] == ["client", "user"]
    with pytest.raises(TypeError):
        kind_of(object())


def test_an_old_password_change_reads_as_a_change_with_no_value_in_the_audit_index(store):
    customer = _customer()
    customer.change_password()
    stored = [store.mapper.to_stored_event(e) for e in customer.collect_events()]
    memory, entries = None, []
    for position, record in enumerate(
        [_as_version_1(s, password_hash=OLD_HASH) for s in stored], 1
    ):
        event = store.mapper.to_domain_event(record)
        object.__setattr__(event, "actor", {"kind": "system", "id": None})
        object.__setattr__(event, "on_behalf_of", None)
        entry, memory = extract(MAPPING, event, position, memory)
        entries.append(entry)
    registered, changed = entries
    assert changed.summary == "Customer password changed" and changed.changes == {}
    assert registered.changes["username"] == [None, "c1001"]
    for entry in entries:
        assert "argon2" not in json.dumps(entry.changes) + entry.summary
        assert not any("password" in name for name in entry.changes)
    assert not any("password" in name for name in memory.fields)


def test_the_customers_service_takes_no_snapshots():
    """Were it to take some, snapshots of customers, users and staff would need their own
    upcasting (aggregate `class_version`): none taken so far ever held a hash."""
    from services.customers.application import Customers

    assert not Customers.snapshotting_intervals and not Customers.is_snapshotting_enabled
