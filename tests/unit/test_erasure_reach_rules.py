"""What an erasure reaches beyond names and addresses: the first answers kept with an
Idempotency-Key, merged tickets' messages, the reasons staff typed about a customer; and
that an erased e-mail still passes the contract of the integration event that carries it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from marshmallow import ValidationError

from contracts.customers import CustomerRegistered, RegisterCustomer
from contracts.fields import ERASED, RecordedEmail
from services.billing.application import PERSONAL as BILLING
from services.billing.domain import PersonalAccount
from services.customers.domain import Customer, CustomerUser
from services.customers.erasure import PERSONAL as CUSTOMERS
from services.helpdesk.application import PERSONAL as HELPDESK
from services.helpdesk.domain import Ticket
from services.infra.application import IDEMPOTENCY_PERSONAL, HostledgerApplication
from services.infra.money import Money
from services.infra.personal_data import PLACEHOLDER, SUBJECT, PersonalFields, PersonalMapper
from services.orders.application import PERSONAL as ORDERS
from services.orders.domain import Service
from tests.unit.test_personal_data import Keys

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _mapper(personal: PersonalFields, keys: Keys) -> PersonalMapper:
    return PersonalMapper(Application().mapper.transcoder, personal=personal, keys=keys)


def _stamped(aggregate, customer_id=None) -> list:
    """The pending events, stamped with the aggregate's customer as save() does."""
    events = aggregate.collect_events()
    for e in events:
        if "customer_id" not in vars(e):
            object.__setattr__(e, SUBJECT, customer_id or aggregate.customer_id)
    return events


def _round_trip(personal, events, keys, secrets: list[str]):
    m = _mapper(personal, keys)
    stored = [m.to_stored_event(e) for e in events]
    for s in stored:
        text = s.state.decode()
        assert not [x for x in secrets if x in text], text
    return m, stored


# -- first answers kept with an Idempotency-Key ------------------------------------------------


def test_a_kept_answer_is_sealed_with_its_customers_key_and_erased_with_it():
    keys = Keys()
    personal = PersonalFields(IDEMPOTENCY_PERSONAL)
    customer = uuid4()
    answer = {"id": str(uuid4()), "buyer": {"email": "zelda@example.com"}}
    record = HostledgerApplication.idempotency_record(
        "invoice", "staff:1|k1", {"lines": 1}, answer, customer_id=customer
    )
    m, [stored] = _round_trip(personal, record.collect_events(), keys, ["zelda@example.com"])
    assert m.to_domain_event(stored).answer == answer
    keys.destroy(customer)
    back = m.to_domain_event(stored)
    assert back.answer == PLACEHOLDER
    assert back.request_hash == record.request_hash  # a repeat is still recognised


def test_a_kept_answer_with_no_customer_stays_as_it_is():
    keys = Keys()
    record = HostledgerApplication.idempotency_record(
        "webhook:stripe", "evt_1", {"event": "evt_1"}, {"received": True}
    )
    m = _mapper(PersonalFields(IDEMPOTENCY_PERSONAL), keys)
    stored = m.to_stored_event(record.collect_events()[0])
    assert b"received" in stored.state
    assert m.to_domain_event(stored).answer == {"received": True}
    assert HostledgerApplication.idempotency_record("x", None, {}, {}) is None


def test_a_repeat_after_the_erasure_is_told_so(monkeypatch):
    from contracts.errors import Conflict
    from services.infra.application import ERASED_ANSWER, request_hash

    used = SimpleNamespace(request_hash=request_hash({"a": 1}), answer=PLACEHOLDER)
    app = SimpleNamespace(repository=SimpleNamespace(get=lambda _id: used))
    with pytest.raises(Conflict) as caught:
        HostledgerApplication.idempotent_answer(app, "invoice", "k", {"a": 1})
    assert str(caught.value.args[0]) == ERASED_ANSWER
    used.answer = {"id": "1"}
    assert HostledgerApplication.idempotent_answer(app, "invoice", "k", {"a": 1}) == {"id": "1"}


def test_the_gateway_keeps_the_customer_an_answer_concerns():
    from gateway.http import answer_customer

    customer = str(uuid4())
    client = SimpleNamespace(principal={"kind": "client", "customer_id": customer}, path={})
    assert answer_customer(client, {"id": "x"}) == customer
    staff = {"kind": "staff", "staff_id": str(uuid4())}
    on_path = SimpleNamespace(principal=staff, path={"customer_id": uuid4()})
    assert answer_customer(on_path, {}) == str(on_path.path["customer_id"])
    in_answer = SimpleNamespace(principal=staff, path={"ticket_id": uuid4()})
    assert answer_customer(in_answer, {"customer_id": customer}) == customer
    assert answer_customer(in_answer, {"id": "x"}) is None
    assert answer_customer(in_answer, [1, 2]) is None


# -- merged tickets' messages ------------------------------------------------------------------


def _ticket(customer_id, body: str, author: str, **changes) -> Ticket:
    """A ticket a client opened for `customer_id`; `changes` replace what it was opened with."""
    opened = dict(
        tracking_number=f"ABC-{uuid4().int % 1000000:06d}",
        department_id=uuid4(),
        department_name="Support",
        reply_address="support@provider.example",
        customer_id=customer_id,
        guest_email=None,
        subject="Site down",
        language="en",
        forbid_replies=False,
        body=body,
        author_kind="client",
        author_id=None,
        author_name=author,
        internal=False,
        attachments=[{"id": "f1", "name": "scan.png", "sha256": "0" * 64, "size": 3}],
        notify_staff_ids=[],
        notify_client=False,
        mail_message_id=None,
        at=NOW,
        priority="normal",
        via="web",
        fields={},
        assign_on_reply_to=None,
        abuse=None,
    )
    return Ticket.open(**{**opened, **changes})


def test_a_merged_tickets_messages_are_sealed_each_and_erased_with_the_customer():
    keys = Keys()
    customer = uuid4()
    first = _ticket(customer, "first words", "Zelda Roe")
    second = _ticket(customer, "Sprocket is on fire", "Zelda Roe")
    second.add_message("more about the sprocket", "client", None, "Zelda Roe", NOW)
    first.collect_events()
    second.collect_events()
    first.merge(second)
    [merged] = first.collect_events()
    secrets = ["Sprocket is on fire", "more about the sprocket", "Zelda Roe", "scan.png"]
    m, [stored] = _round_trip(HELPDESK, [merged], keys, secrets)
    back = m.to_domain_event(stored)
    assert [x["body"] for x in back.messages] == [x["body"] for x in merged.messages]
    assert back.messages[0]["attachments"] == merged.messages[0]["attachments"]
    keys.destroy(customer)
    back = m.to_domain_event(stored)
    assert {x["body"] for x in back.messages} == {PLACEHOLDER}
    assert {x["author_name"] for x in back.messages} == {PLACEHOLDER}
    assert all(x["attachments"] == [] for x in back.messages)
    # what is not personal stays: which messages, when, from whom
    assert [x["id"] for x in back.messages] == [x["id"] for x in merged.messages]
    assert back.merged_tracking_number == second.tracking_number


# -- what staff typed about a customer ---------------------------------------------------------


def _customer() -> Customer:
    return Customer(
        number=1001,
        kind="individual",
        email="zelda@example.com",
        username="c1001",
        country="BE",
        contact_person="Zelda Roe",
        company_name=None,
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=NOW,
        registration_ip=None,
    )


def test_staffs_reasons_about_a_customer_are_sealed_and_erased_with_it():
    keys = Keys()
    customer = _customer()
    customer.collect_events()
    customer.correct({"country": "DE"}, "typo Zelda reported on the phone")
    customer.reset_two_factor("Zelda lost her phone")
    customer.delete(forced=False, reason="Zelda asked us to close it")
    user = CustomerUser(
        customer_id=customer.id,
        username="u1",
        email="u@example.com",
        name="Ulrich",
        permissions=["support"],
    )
    user.collect_events()
    user.reset_two_factor("Ulrich's phone was stolen")
    events = [*_stamped(customer), *_stamped(user)]
    m, stored = _round_trip(CUSTOMERS, events, keys, ["Zelda", "Ulrich"])
    assert [m.to_domain_event(s).reason for s in stored] == [e.reason for e in events]
    keys.destroy(customer.id)
    back = [m.to_domain_event(s) for s in stored]
    assert {e.reason for e in back} == {PLACEHOLDER}
    assert back[0].changes == {"country": "DE"}  # the correction itself stays


def test_billings_reasons_are_sealed_and_erased_with_the_customer():
    from services.billing.domain import Invoice

    keys = Keys()
    customer = uuid4()
    account = PersonalAccount(customer_id=customer, currency="EUR", opened_at=NOW, buyer={})
    account.collect_events()
    account.credit("correction", Money(500, "EUR"), None, "goodwill for Zelda", NOW)
    account.debit("correction", Money(100, "EUR"), None, "Zelda's double credit", NOW)
    invoice = Invoice(
        customer_id=customer,
        project_id=None,
        number="2026-0001",
        purpose="manual",
        lines=[],
        currency="EUR",
        total=100,
        issued_at=NOW,
        due_date="2026-12-15",
        buyer={},
        seller={},
        subtotal=100,
        tax=None,
    )
    invoice.collect_events()
    invoice.void("Zelda disputed it", NOW)
    events = [*_stamped(account), *_stamped(invoice)]
    m, stored = _round_trip(BILLING, events, keys, ["Zelda"])
    keys.destroy(customer)
    back = [m.to_domain_event(s) for s in stored]
    assert {e.reason for e in back} == {PLACEHOLDER}
    assert [e.amount for e in back[:2]] == [500, -100]  # every amount stays


def test_a_services_reasons_are_sealed_and_erased_with_the_customer():
    keys = Keys()
    customer = uuid4()
    service = Service(
        customer_id=customer,
        order_id=uuid4(),
        product_id=uuid4(),
        name="VPS",
        billing_cycle="monthly",
        price=100,
        currency="EUR",
        provisioning={},
    )
    service.collect_events()
    service.activate("2027-01-01", "paid")
    service.collect_events()
    service.suspend("Zelda's site sends spam", "abuse")
    service.unsuspend("Zelda cleaned it up")
    service.terminate("Zelda moved away")
    m, stored = _round_trip(ORDERS, _stamped(service), keys, ["Zelda"])
    keys.destroy(customer)
    back = [m.to_domain_event(s) for s in stored]
    assert {e.reason for e in back} == {PLACEHOLDER}
    assert back[0].why == "abuse"


def test_the_erasures_own_reason_is_never_sealed():
    for personal in (CUSTOMERS, BILLING, HELPDESK, ORDERS):
        assert not personal.rules.get("PersonalData.Erased")


# -- the contract of an erased e-mail ----------------------------------------------------------


def test_an_erased_email_passes_the_contract_of_the_events_that_carry_it():
    assert PLACEHOLDER == ERASED
    field = RecordedEmail(required=True)
    assert field.deserialize(ERASED) == ERASED
    assert field.deserialize("a@example.com") == "a@example.com"
    with pytest.raises(ValidationError):
        field.deserialize("not an address")
    payload = {
        "customer_id": str(uuid4()),
        "number": 1001,
        "kind": "individual",
        "email": ERASED,
        "username": "c1001",
        "country": "BE",
        "contact_person": ERASED,
        "company_name": None,
        "language": "en",
        "currency": "EUR",
        "registered_at": "2026-12-01T10:00:00+00:00",
    }
    assert CustomerRegistered().load(payload)["email"] == ERASED


def test_no_one_may_give_the_placeholder_as_an_address():
    errors = RegisterCustomer().validate(
        {"kind": "individual", "email": ERASED, "country": "BE", "contact_person": "Z"}
    )
    assert "email" in errors
