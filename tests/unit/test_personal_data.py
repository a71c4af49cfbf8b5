"""The personal-data envelope: sealed when stored, opened when read, a placeholder once
the customer's key is destroyed, and refused when a sealed value was altered or moved."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import event
from eventsourcing.persistence import StoredEvent

from services.infra.domain import Aggregate
from services.infra.personal_data import (
    PLACEHOLDER,
    SEALED,
    SUBJECT,
    PersonalDataTampered,
    PersonalFields,
    PersonalMapper,
    new_key,
)


class Keys:
    """The KeyStore's interface over a dict (no database in a unit test)."""

    def __init__(self):
        self.keys: dict[str, bytes | None] = {}

    def key(self, customer_id, create=False):
        customer_id = str(customer_id)
        if customer_id not in self.keys and create:
            self.keys[customer_id] = new_key()
        return self.keys.get(customer_id)

    def destroy(self, customer_id):
        self.keys[str(customer_id)] = None


class Contact(Aggregate):
    @event("Registered")
    def __init__(self, customer_id, name, email, buyer, phone=None):
        self.customer_id = customer_id
        self.name = name
        self.email = email
        self.buyer = buyer
        self.phone = phone

    @event("Noted")
    def note(self, text):
        self.text = text


PERSONAL = PersonalFields(
    {
        "Contact.Registered": PersonalFields.fields(
            "name", "email", "phone", "buyer.email", buyer__address=None
        ),
        "Contact.Noted": PersonalFields.fields("text"),
    }
)


def mapper(keys):
    app = Application()
    return PersonalMapper(app.mapper.transcoder, personal=PERSONAL, keys=keys)


def registered(customer_id=None):
    return Contact(
        customer_id=customer_id or uuid4(),
        name="Jane Roe",
        email="jane@example.com",
        buyer={"email": "jane@example.com", "legal_name": "Roe Ltd", "address": "1 Main St"},
    )


def test_personal_fields_are_sealed_and_open_again():
    keys = Keys()
    m = mapper(keys)
    contact = registered()
    stored = m.to_stored_event(contact.collect_events()[0])
    text = stored.state.decode()
    for secret in ("Jane Roe", "jane@example.com", "1 Main St"):
        assert secret not in text
    assert "Roe Ltd" in text  # not personal here: kept as it is
    state = json.loads(text)
    assert state["phone"] is None  # nothing to seal
    assert state["name"][SEALED][0] == str(contact.customer_id)
    back = m.to_domain_event(stored)
    assert back.name == "Jane Roe"
    assert back.buyer == {
        "email": "jane@example.com",
        "legal_name": "Roe Ltd",
        "address": "1 Main St",
    }
    # each value has a nonce of its own: the same e-mail seals differently
    assert state["email"][SEALED][1] != state["buyer"]["email"][SEALED][1]


def test_the_event_itself_is_not_changed_by_storing_it():
    m = mapper(Keys())
    contact = registered()
    pending = contact.collect_events()[0]
    m.to_stored_event(pending)
    assert pending.buyer["email"] == "jane@example.com"
    assert pending.name == "Jane Roe"


def test_a_destroyed_key_gives_the_placeholders():
    keys = Keys()
    m = mapper(keys)
    contact = registered()
    stored = m.to_stored_event(contact.collect_events()[0])
    keys.destroy(contact.customer_id)
    back = m.to_domain_event(stored)
    assert back.name == PLACEHOLDER
    assert back.email == PLACEHOLDER
    assert back.buyer == {"email": PLACEHOLDER, "legal_name": "Roe Ltd", "address": None}
    assert back.phone is None
    # and the same again (deterministic)
    assert vars(m.to_domain_event(stored)) == vars(back)


def test_a_value_recorded_after_the_erasure_is_not_kept():
    keys = Keys()
    m = mapper(keys)
    contact = registered()
    m.to_stored_event(contact.collect_events()[0])
    keys.destroy(contact.customer_id)
    contact.note(text="call me on 555-0100")
    pending = contact.collect_events()[0]
    object.__setattr__(pending, SUBJECT, contact.customer_id)
    stored = m.to_stored_event(pending)
    assert b"555-0100" not in stored.state
    assert m.to_domain_event(stored).text == PLACEHOLDER


def test_an_altered_value_is_refused():
    keys = Keys()
    m = mapper(keys)
    stored = m.to_stored_event(registered().collect_events()[0])
    state = json.loads(stored.state)
    sealed = state["name"][SEALED][1]
    state["name"][SEALED][1] = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    tampered = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode()
    )
    with pytest.raises(PersonalDataTampered):
        m.to_domain_event(tampered)


def test_a_value_moved_to_another_field_event_or_customer_is_refused():
    keys = Keys()
    m = mapper(keys)
    stored = m.to_stored_event(registered().collect_events()[0])
    state = json.loads(stored.state)
    # to another field of the same event
    moved = dict(state, name=state["email"])
    with pytest.raises(PersonalDataTampered):
        m.to_domain_event(
            StoredEvent(
                stored.originator_id,
                stored.originator_version,
                stored.topic,
                json.dumps(moved).encode(),
            )
        )
    # the same bytes as another aggregate's event
    with pytest.raises(PersonalDataTampered):
        m.to_domain_event(
            StoredEvent(uuid4(), stored.originator_version, stored.topic, stored.state)
        )
    # relabelled as another customer's (whose key does exist)
    other = registered()
    m.to_stored_event(other.collect_events()[0])
    state["name"][SEALED][0] = str(other.customer_id)
    with pytest.raises(PersonalDataTampered):
        m.to_domain_event(
            StoredEvent(
                stored.originator_id,
                stored.originator_version,
                stored.topic,
                json.dumps(state).encode(),
            )
        )


def test_the_aggregates_customer_seals_an_event_without_one():
    keys = Keys()
    m = mapper(keys)
    contact = registered()
    m.to_stored_event(contact.collect_events()[0])
    contact.note(text="private")
    pending = contact.collect_events()[0]
    object.__setattr__(pending, SUBJECT, contact.customer_id)
    stored = m.to_stored_event(pending)
    assert b"private" not in stored.state
    assert SUBJECT.encode() not in stored.state
    assert m.to_domain_event(stored).text == "private"


def test_without_a_customer_values_stay_as_they_are():
    m = mapper(Keys())
    contact = registered()
    m.to_stored_event(contact.collect_events()[0])
    contact.note(text="open text")
    stored = m.to_stored_event(contact.collect_events()[0])
    assert b"open text" in stored.state
    assert m.to_domain_event(stored).text == "open text"


def test_events_recorded_before_sealing_existed_still_load():
    plain = Application().mapper
    m = mapper(Keys())
    stored = plain.to_stored_event(registered().collect_events()[0])
    assert m.to_domain_event(stored).name == "Jane Roe"


class Thread(Aggregate):
    @event("Started")
    def __init__(self, customer_id, messages, tags):
        self.customer_id = customer_id
        self.messages = messages
        self.tags = tags


def _thread(customer_id=None):
    return Thread(
        customer_id=customer_id or uuid4(),
        messages=[
            {"id": 1, "body": "first secret", "files": [{"name": "scan.png"}]},
            {"id": 2, "body": "second secret", "files": []},
            {"id": 3, "body": None},
            "not a message",
        ],
        tags=["vip tag", "late payer"],
    )


def _thread_mapper(keys):
    rules = {
        "Thread.Started": {
            "messages.*.body": PLACEHOLDER,
            "messages.*.files": [],
            "tags.*": PLACEHOLDER,
        }
    }
    return PersonalMapper(
        Application().mapper.transcoder, personal=PersonalFields(rules), keys=keys
    )


def test_every_item_of_a_list_is_sealed_and_opens_again():
    keys = Keys()
    m = _thread_mapper(keys)
    thread = _thread()
    pending = thread.collect_events()[0]
    stored = m.to_stored_event(pending)
    text = stored.state.decode()
    for secret in ("first secret", "second secret", "scan.png", "vip tag", "late payer"):
        assert secret not in text
    state = json.loads(text)
    assert state["messages"][0]["id"] == 1 and state["messages"][2]["body"] is None
    assert state["messages"][3] == "not a message"
    assert all(SEALED in state["messages"][i]["body"] for i in (0, 1))
    # the event itself is untouched
    assert pending.messages[0]["body"] == "first secret" and pending.tags[0] == "vip tag"
    back = m.to_domain_event(stored)
    assert back.messages == pending.messages
    assert back.tags == ["vip tag", "late payer"]


def test_list_items_read_as_their_placeholder_once_erased():
    keys = Keys()
    m = _thread_mapper(keys)
    thread = _thread()
    stored = m.to_stored_event(thread.collect_events()[0])
    keys.destroy(thread.customer_id)
    back = m.to_domain_event(stored)
    assert [msg["body"] if isinstance(msg, dict) else msg for msg in back.messages] == [
        PLACEHOLDER,
        PLACEHOLDER,
        None,
        "not a message",
    ]
    assert back.messages[0]["files"] == [] and back.messages[0]["id"] == 1
    assert back.tags == [PLACEHOLDER, PLACEHOLDER]


def test_a_list_item_moved_to_another_place_is_refused():
    keys = Keys()
    m = _thread_mapper(keys)
    stored = m.to_stored_event(_thread().collect_events()[0])
    state = json.loads(stored.state)
    first, second = state["messages"][0]["body"], state["messages"][1]["body"]
    state["messages"][0]["body"], state["messages"][1]["body"] = second, first
    swapped = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode()
    )
    with pytest.raises(PersonalDataTampered):
        m.to_domain_event(swapped)


def test_list_items_recorded_after_the_erasure_are_not_kept():
    keys = Keys()
    m = _thread_mapper(keys)
    customer = uuid4()
    keys.key(customer, create=True)
    keys.destroy(customer)
    stored = m.to_stored_event(_thread(customer).collect_events()[0])
    assert b"first secret" not in stored.state and b"vip tag" not in stored.state
    back = m.to_domain_event(stored)
    assert back.messages[0]["body"] == PLACEHOLDER and back.tags == [PLACEHOLDER] * 2
