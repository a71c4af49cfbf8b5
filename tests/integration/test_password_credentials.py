"""Password hashes are kept in the customers service's `credentials` table, never in its
event store (services/customers/credentials.py). On a real database: a customer, its
user and staff members (the first administrator too) get passwords and change them (by
the current one, by a reset link); no stored event holds a hash or the word
`password_hash`, the new passwords log in and the old ones no longer do. An account
recorded by an earlier release (events of version 1, with the hash) loads, its hash is
moved into the table by the step the service runs at its start, and its password still
logs in; the history replayed gives the live state (`hostledger audit verify-replay`)."""

from __future__ import annotations

import json
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from contracts.errors import InvalidCredentials
from services.customers.application import Customers
from services.customers.domain import Customer, LoginName, StaffMember
from services.infra import clock
from services.infra.context import Actor, acting
from services.infra.passwords import hash_password, verify_password
from tests.integration.test_verify_replay import differences, follow, verify


def _stored_states(app) -> list[bytes]:
    """Every stored event's state, as bytes, straight from the events table."""
    recorder = app.recorder
    with app.datastore.transaction() as curs:
        curs.execute(
            f'SELECT state FROM "{recorder.datastore.schema}"."{recorder.events_table_name}"'
        )
        return [bytes(r["state"]) for r in curs.fetchall()]


def _hashes(app) -> dict:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT owner_id, kind, password_hash, version FROM credentials")
        return {r["owner_id"]: dict(r) for r in curs.fetchall()}


def _logs_in(app, username: str, password: str) -> bool:
    try:
        app.login(username, password, "192.0.2.10")
    except InvalidCredentials:
        return False
    return True


def _reset_token(app) -> str:
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT secret FROM mail_requests WHERE kind = 'password_reset' ORDER BY id DESC"
            " LIMIT 1"
        )
        return curs.fetchone()["secret"]


def test_passwords_set_and_changed_leave_no_hash_in_the_event_store(customers):
    seen_hashes = []
    with acting(Actor("system", "first-admin")):
        admin = customers.ensure_first_admin("root", "root-password-1")
    admin_id = admin["staff_id"]
    with acting(Actor("staff", admin_id)):
        member, _ = customers.register_staff(
            username="sam",
            name="Sam",
            role="support",
            password="sam-password-1",
            email="sam@example.com",
        )
        ann = customers.register_customer(
            {
                "kind": "individual",
                "email": "ann@example.com",
                "country": "DE",
                "contact_person": "Ann",
                "password": "ann-password-1",
            }
        )
        generated = customers.register_customer(
            {
                "kind": "individual",
                "email": "gen@example.com",
                "country": "FR",
                "contact_person": "Gen",
            }
        )
    assert generated["credentials"]["password"]
    with acting(Actor("client", ann["id"])):
        user, _ = customers.add_user(
            ann["id"],
            {
                "username": "bob",
                "email": "bob@example.com",
                "name": "Bob",
                "permissions": ["billing"],
                "password": "bob-password-1",
            },
        )
    seen_hashes += [h["password_hash"] for h in _hashes(customers).values()]
    assert {h["kind"] for h in _hashes(customers).values()} == {"staff", "client", "user"}

    # changes: the customer and a staff member by their current password, the user by a
    # reset link
    with acting(Actor("client", ann["id"])):
        customers.change_password(ann["id"], "ann-password-1", "ann-password-2", None)
    with acting(Actor("staff", str(member.id))):
        customers.change_staff_password(member.id, "sam-password-1", "sam-password-2", None)
    with acting(Actor("system", "test")):
        assert customers.request_password_reset("bob", None, None)
        customers.confirm_password_reset(_reset_token(customers), "bob-password-2")
    seen_hashes += [h["password_hash"] for h in _hashes(customers).values()]
    assert len(set(seen_hashes)) == 8  # 5 accounts, 3 of them changed

    # each account's row holds its current hash alone, at the version of its last change
    rows = _hashes(customers)
    ann_id = UUID(ann["id"])
    assert len(rows) == 5
    assert verify_password(rows[ann_id]["password_hash"], "ann-password-2")
    assert not verify_password(rows[ann_id]["password_hash"], "ann-password-1")
    assert rows[ann_id]["version"] == 2 and rows[member.id]["version"] == 2
    assert rows[user.id]["version"] == 2 and rows[user.id]["kind"] == "user"

    states = _stored_states(customers)
    assert len(states) > 10
    for state in states:
        assert b"password_hash" not in state and b"argon2" not in state
        for seen in seen_hashes:
            assert seen.encode() not in state
    # the events still say what happened, and who did it
    events = list(customers.repository.event_store.get(member.id))
    assert [type(e).__name__ for e in events] == ["Registered", "PasswordChanged"]
    assert events[-1].actor == {"kind": "staff", "id": str(member.id)}

    for username, old, new in [
        ("ann@example.com", "ann-password-1", "ann-password-2"),
        ("sam", "sam-password-1", "sam-password-2"),
        ("bob", "bob-password-1", "bob-password-2"),
    ]:
        assert _logs_in(customers, username, new), username
        assert not _logs_in(customers, username, old), username
    assert _logs_in(customers, "root", "root-password-1")
    assert _logs_in(customers, generated["username"], generated["credentials"]["password"])
    assert not _logs_in(customers, "nobody", "root-password-1")


def _as_version_1(stored: StoredEvent, **extra) -> StoredEvent:
    """`stored` as a release before hashes moved out wrote it (no class_version)."""
    state = json.loads(stored.state)
    state.pop("class_version", None)
    state.update(extra)
    return StoredEvent(
        stored.originator_id,
        stored.originator_version,
        stored.topic,
        json.dumps(state, separators=(",", ":")).encode(),
    )


def _record_version_1(app, *aggregates, hashes: dict) -> None:
    """Record the aggregates' pending events straight through the recorder, the ones
    that set a password with `password_hash` in them, as an earlier release did."""
    events = [e for a in aggregates for e in a.collect_events()]
    stored = []
    for event in events:
        object.__setattr__(event, "actor", {"kind": "system", "id": None})
        object.__setattr__(event, "on_behalf_of", None)
        record = app.mapper.to_stored_event(event)
        key = (event.originator_id, event.originator_version)
        if key in hashes:
            record = _as_version_1(record, password_hash=hashes[key])
        stored.append(record)
    app.recorder.insert_events(stored)


def test_an_account_recorded_with_its_hash_in_its_events_still_logs_in(cfg, customers):
    old = Customer(
        number=900,
        kind="company",
        email="old@example.com",
        username="oldco",
        country="BE",
        contact_person="Olga",
        company_name="Old Co",
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=clock.now(),
        registration_ip=None,
    )
    old_login = LoginName(name="oldco", owner_kind="client", owner_id=old.id)
    staff = StaffMember(
        username="veteran", name="Vera", email=None, role="admin", language="en", notify={}
    )
    staff_login = LoginName(name="veteran", owner_kind="staff", owner_id=staff.id)
    first, vera = hash_password("old-password-1"), hash_password("vera-password-1")
    _record_version_1(
        customers,
        old,
        old_login,
        staff,
        staff_login,
        hashes={(old.id, 1): first, (staff.id, 1): vera},
    )
    assert any(b"password_hash" in s for s in _stored_states(customers))  # as recorded

    # the running application has no row for them yet; the service's next start moves
    # the hashes (services/customers/service.py: CustomersStore.setup)
    assert customers.password_hash_of(old.id) is None
    restarted = Customers(cfg=cfg)
    try:
        assert restarted.move_recorded_hashes() == 2
        rows = _hashes(restarted)
        assert rows[old.id] == {
            "owner_id": old.id,
            "kind": "client",
            "password_hash": first,
            "version": 1,
        }
        assert rows[staff.id]["password_hash"] == vera and rows[staff.id]["kind"] == "staff"
        assert restarted.move_recorded_hashes() == 0  # once only
        assert customers.password_hash_of(old.id) == first  # for every instance

        loaded = restarted.get_customer(old.id)
        assert loaded.username == "oldco" and not hasattr(loaded, "password_hash")
        assert _logs_in(restarted, "oldco", "old-password-1")
        assert _logs_in(restarted, "veteran", "vera-password-1")
        assert not _logs_in(restarted, "oldco", "vera-password-1")

        # an instance of the earlier release, still running, changes the password after
        # the start that moved the hashes: the next start takes the newer one
        loaded.change_password()
        second = hash_password("old-password-2")
        _record_version_1(restarted, loaded, hashes={(old.id, 2): second})
        assert restarted.move_recorded_hashes() == 1
        assert _logs_in(restarted, "oldco", "old-password-2")
        assert not _logs_in(restarted, "oldco", "old-password-1")

        # then this release changes it: a hash recorded earlier never overrides it,
        # even when the whole log is read again
        with acting(Actor("client", str(old.id))):
            restarted.change_password(old.id, "old-password-2", "old-password-3", None)
        with restarted.datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM credentials_moved")
        assert restarted.move_recorded_hashes() == 0
        assert _logs_in(restarted, "oldco", "old-password-3")
        assert not _logs_in(restarted, "oldco", "old-password-2")
        assert restarted.password_hash_of(old.id) not in (first, second)

        # the read models and aggregates replayed from the log give the live state
        follow(restarted, "customers")
        done = verify(cfg, "customers")
        assert done.returncode == 0, done.stdout + done.stderr
        assert differences(done) == []
        (aggregates,) = [line for line in done.stdout.splitlines() if "aggregates:" in line]
        assert aggregates.startswith("customers aggregates: ") and aggregates.endswith("equal")
        with restarted.datastore.transaction() as curs:
            curs.execute("SELECT summary, changes::text AS changes FROM audit_events")
            indexed = curs.fetchall()
        assert "Customer password changed" in [r["summary"] for r in indexed]
        for row in indexed:
            assert "argon2" not in row["changes"] and "password" not in row["changes"]
    finally:
        restarted.close()
