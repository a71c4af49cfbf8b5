"""Password hashes are in no event of the customers service's store, through the whole
system (services/customers/credentials.py): a customer, its user and a staff member get
and change passwords through the API; the stored events hold no hash and not the word
`password_hash`, the new passwords log in and the old ones no longer do, and the history
says "password changed" with no value. An account that an earlier release recorded with
its hash in its events logs in once the customers service has restarted (its start moves
the hash into the credentials table)."""

from __future__ import annotations

import json
import uuid

from eventsourcing.persistence import StoredEvent

from services.customers.application import Customers
from services.customers.domain import Customer, LoginName
from services.infra import clock
from services.infra.passwords import hash_password

LOGIN = "/api/v1/auth/login"
AUDIT = "/api/v1/staff/audit"
# accounts this file records as an earlier release did, their hash in their events
LEGACY_IDS: set[uuid.UUID] = set()


def _states(stack) -> list[tuple[uuid.UUID, bytes]]:
    with stack.db("customers") as db:
        rows = db.execute("SELECT originator_id, state FROM customers_events").fetchall()
    return [(r[0], bytes(r[1])) for r in rows]


def _hash_of(stack, owner_id: str) -> str | None:
    with stack.db("customers") as db:
        row = db.execute(
            "SELECT password_hash FROM credentials WHERE owner_id = %s", (uuid.UUID(owner_id),)
        ).fetchone()
    return row[0] if row else None


def _login(stack, username: str, password: str) -> int:
    r = stack.http("POST", LOGIN, json={"username": username, "password": password})
    return r.status_code


def _history(stack, path: str) -> list[dict]:
    r = stack.http("GET", f"{AUDIT}/{path}/history", stack.admin_token, params={"limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_passwords_set_and_changed_through_the_api_leave_no_hash_in_the_event_store(stack):
    customer = stack.register_customer(password="client-password-1")
    client = stack.login(customer["username"], "client-password-1")
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        client,
        json={
            "username": f"u{uuid.uuid4().hex[:8]}",
            "email": f"{uuid.uuid4().hex[:8]}@example.com",
            "name": "Helper",
            "permissions": ["billing"],
            "password": "user-password-1",
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    member, staff = stack.staff_member("support")
    seen = [_hash_of(stack, i) for i in (customer["id"], user["id"], member["id"])]

    r = stack.http(
        "POST",
        "/api/v1/client/password",
        client,
        json={"current_password": "client-password-1", "new_password": "client-password-2"},
    )
    assert r.status_code == 200, r.text
    r = stack.http(
        "POST",
        "/api/v1/staff/account/password",
        staff,
        json={"current_password": "staff-password-1", "new_password": "staff-password-2"},
    )
    assert r.status_code == 200, r.text
    seen += [_hash_of(stack, i) for i in (customer["id"], member["id"])]
    assert all(seen) and len(set(seen)) == 5

    states = [state for owner, state in _states(stack) if owner not in LEGACY_IDS]
    assert len(states) > 5
    for state in states:
        assert b"password_hash" not in state and b"argon2" not in state
        assert not any(h.encode() in state for h in seen)

    assert _login(stack, customer["username"], "client-password-2") == 200
    assert _login(stack, customer["username"], "client-password-1") == 401
    assert _login(stack, member["username"], "staff-password-2") == 200
    assert _login(stack, member["username"], "staff-password-1") == 401
    assert _login(stack, user["username"], "user-password-1") == 200

    # the history says it changed, and who changed it, never what to
    def changed():
        items = _history(stack, f"customers/{customer['id']}")
        return [i for i in items if i["type"] == "Customer.PasswordChanged"]

    (item,) = stack.wait_until(changed, what="the password change in the history")
    assert item["summary"] == "Customer password changed" and item["changes"] == []
    assert item["actor"]["kind"] == "client"
    for path in (f"customers/{customer['id']}", f"staff/{member['id']}"):
        text = json.dumps(_history(stack, path))
        assert "argon2" not in text and "password_hash" not in text


def _record_as_an_earlier_release(stack, password: str) -> tuple[Customer, str]:
    """A customer and its login name recorded through the recorder, straight into the
    customers store, the way releases that kept the hash in events wrote them."""
    name = f"legacy{uuid.uuid4().hex[:8]}"
    customer = Customer(
        number=900_000 + uuid.uuid4().int % 100_000,
        kind="individual",
        email=f"{name}@example.com",
        username=name,
        country="BE",
        contact_person="Lea Gacy",
        company_name=None,
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=clock.now(),
        registration_ip=None,
    )
    login = LoginName(name=name, owner_kind="client", owner_id=customer.id)
    app = Customers(cfg=stack.settings)
    try:
        stored = []
        for event in [*customer.collect_events(), *login.collect_events()]:
            object.__setattr__(event, "actor", {"kind": "system", "id": None})
            object.__setattr__(event, "on_behalf_of", None)
            record = app.mapper.to_stored_event(event)
            if event.originator_id == customer.id:
                state = json.loads(record.state)
                state.pop("class_version")
                state["password_hash"] = hash_password(password)
                record = StoredEvent(
                    record.originator_id,
                    record.originator_version,
                    record.topic,
                    json.dumps(state, separators=(",", ":")).encode(),
                )
            stored.append(record)
        app.recorder.insert_events(stored)
    finally:
        app.close()
    LEGACY_IDS.add(customer.id)
    return customer, name


def test_an_account_an_earlier_release_recorded_logs_in_after_a_restart(stack):
    customer, name = _record_as_an_earlier_release(stack, "legacy-password-1")
    assert any(b"password_hash" in state for owner, state in _states(stack) if owner == customer.id)
    assert _hash_of(stack, str(customer.id)) is None
    assert _login(stack, name, "legacy-password-1") == 401  # not moved yet

    stack.restart("customers")
    stack.wait_for_service("customers")
    assert _hash_of(stack, str(customer.id))
    assert _login(stack, name, "legacy-password-1") == 200
    assert _login(stack, name, "legacy-password-2") == 401
    r = stack.http("GET", f"/api/v1/staff/customers/{customer.id}", stack.admin_token)
    assert r.status_code == 200 and r.json()["username"] == name, r.text
    assert "password_hash" not in r.text and "argon2" not in r.text

    # its history and its state at an instant, from events that still hold the hash
    def registered():
        items = _history(stack, f"customers/{customer.id}")
        return [i for i in items if i["type"] == "Customer.Registered"]

    (item,) = stack.wait_until(registered, what="the old registration in the history")
    assert not any("password" in change["field"] for change in item["changes"])
    r = stack.http("GET", f"{AUDIT}/customer/{customer.id}", stack.admin_token)
    assert r.status_code == 200, r.text
    assert "password_hash" not in r.text and "argon2" not in r.text
