"""The customers service's personal fields: what its events store sealed with the
customer's key, and how they read once the key is destroyed (services/customers/erasure.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from eventsourcing.application import Application

from services.customers.domain import Customer, CustomerEmail, CustomerUser, PeopleEmail
from services.customers.erasure import PERSONAL
from services.infra.personal_data import PLACEHOLDER, SUBJECT, PersonalMapper, new_key

SECRETS = ("Zelda Roe", "zelda@example.com", "Roe Widgets", "+49 30 555", "Main St 1", "10.1.2.3")


class Keys:
    def __init__(self):
        self.keys: dict[str, bytes | None] = {}

    def key(self, customer_id, create=False):
        customer_id = str(customer_id)
        if customer_id not in self.keys and create:
            self.keys[customer_id] = new_key()
        return self.keys.get(customer_id)


def _customer() -> Customer:
    customer = Customer(
        number=1001,
        kind="company",
        email="zelda@example.com",
        username="c1001",
        country="BE",
        contact_person="Zelda Roe",
        company_name="Roe Widgets",
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=datetime(2026, 1, 1, tzinfo=UTC),
        registration_ip="10.1.2.3",
    )
    customer.edit({"phone": "+49 30 555", "address": "Main St 1", "name": "Zelda Roe"})
    return customer


def test_a_customers_personal_fields_are_stored_sealed_and_read_as_erased_without_the_key():
    keys = Keys()
    mapper = PersonalMapper(Application().mapper.transcoder, personal=PERSONAL, keys=keys)
    customer = _customer()
    user = CustomerUser(
        customer_id=customer.id,
        username="u1",
        email="zelda@example.com",
        name="Zelda Roe",
        permissions=["support"],
    )
    claim = CustomerEmail(email="zelda@example.com", customer_id=customer.id)
    people = PeopleEmail(email="zelda@example.com", staff_ids=[], user_ids=[user.id])
    [started] = people.collect_events()
    object.__setattr__(started, SUBJECT, customer.id)  # as Customers._save_claiming does
    own = customer.collect_events()
    for e in own:  # as HostledgerApplication.save does: the aggregate's customer_id
        object.__setattr__(e, SUBJECT, customer.customer_id)
    events = [*own, *user.collect_events(), *claim.collect_events(), started]
    stored = [mapper.to_stored_event(e) for e in events]
    for s in stored:
        text = s.state.decode()
        assert not [x for x in SECRETS if x in text], text
    opened = [mapper.to_domain_event(s) for s in stored]
    assert opened[0].email == "zelda@example.com" and opened[0].company_name == "Roe Widgets"
    assert opened[1].changes["address"] == "Main St 1"

    keys.keys[str(customer.id)] = None  # erased
    registered, edited, added, claimed, index = [mapper.to_domain_event(s) for s in stored]
    assert registered.email == registered.contact_person == registered.company_name == PLACEHOLDER
    assert registered.registration_ip == PLACEHOLDER
    assert registered.username == "c1001" and registered.number == 1001  # kept
    assert edited.changes == {"phone": PLACEHOLDER, "address": PLACEHOLDER, "name": PLACEHOLDER}
    assert added.email == added.name == PLACEHOLDER and added.username == "u1"
    assert claimed.email == PLACEHOLDER and claimed.customer_id == customer.id
    assert index.email == PLACEHOLDER and index.user_ids == [user.id]
    assert json.loads(stored[0].state)["number"] == 1001


def test_a_staff_members_address_in_the_index_stays_as_it_is():
    mapper = PersonalMapper(Application().mapper.transcoder, personal=PERSONAL, keys=Keys())
    people = PeopleEmail(email="staff@example.com", staff_ids=[uuid4()], user_ids=[])
    [started] = people.collect_events()
    assert "staff@example.com" in mapper.to_stored_event(started).state.decode()
