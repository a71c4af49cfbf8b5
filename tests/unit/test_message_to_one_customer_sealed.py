"""A message staff send to one customer (an abuse notice about its service) is that
customer's personal data: its text, its comment, its recipient's name are sealed with the
customer's key and go with an erasure; a message to several customers keeps its text. The
comment of penalty points and an abuse ticket's comment are sealed with their customer's
key. A recipient erased before its ticket is opened gets none (no ticket of `[erased]`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import uuid4

import pytest
from eventsourcing.application import Application

from services.helpdesk.application import PERSONAL
from services.helpdesk.broadcasts import BroadcastDesk, broadcast_ticket
from services.helpdesk.domain import (
    Broadcast,
    NotARecipient,
    Standing,
    message_text,
    sole_customer,
)
from services.infra.personal_data import PLACEHOLDER, SUBJECT, PersonalMapper
from tests.unit.test_personal_data import Keys

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SUBJECT_TEXT = "Abuse report about zelda-shop.example"
BODY_TEXT = "Dear %client_person%, your server 203.0.113.7 sends spam."
COMMENT = "Spam from zelda-shop.example, third time"
NAME = "Zelda Quixotemarsh"
TRANSLATED = "Plainte pour abus de zelda-shop.example"


def _mapper(keys: Keys) -> PersonalMapper:
    return PersonalMapper(Application().mapper.transcoder, personal=PERSONAL, keys=keys)


def _message(*recipients: str, chosen_by: str = "customer_ids") -> Broadcast:
    people = [{"id": c, "language": "en", "name": f"{NAME} {i}"} for i, c in enumerate(recipients)]
    return Broadcast(
        subject=SUBJECT_TEXT,
        body=BODY_TEXT,
        author={"kind": "staff", "id": "s1", "name": "Sam"},
        department_id=uuid4(),
        options={
            "forbid_replies": False,
            "assign_to_me": False,
            "recipients": chosen_by,
            "translations": {"fr": {"subject": TRANSLATED, "body": TRANSLATED}},
            "template": None,
        },
        abuse={
            "deadline": NOW + timedelta(days=2),
            "action": "move_to_active",
            "penalty_points": 5,
            "comment": COMMENT,
        },
        recipients=people,
        attachments=[],
        at=NOW,
        customer_id=sole_customer(people, chosen_by),
    )


def _stored(mapper: PersonalMapper, aggregate) -> list:
    """The pending events as save() stamps and the mapper stores them."""
    out = []
    for e in aggregate.collect_events():
        if "customer_id" not in vars(e) and getattr(aggregate, "customer_id", None):
            object.__setattr__(e, SUBJECT, aggregate.customer_id)
        out.append(mapper.to_stored_event(e))
    return out


def _loaded(mapper: PersonalMapper, stored: list):
    aggregate = None
    for s in stored:
        aggregate = mapper.to_domain_event(s).mutate(aggregate)
    return aggregate


def _secrets_in(stored: list) -> list[str]:
    text = " ".join(s.state.decode() for s in stored)
    return [x for x in (SUBJECT_TEXT, "spam", COMMENT, NAME, TRANSLATED) if x in text]


def test_only_a_message_naming_one_customer_is_about_that_customer():
    one = [{"id": str(uuid4())}]
    assert str(sole_customer(one, "customer_ids")) == one[0]["id"]
    assert sole_customer([*one, {"id": str(uuid4())}], "customer_ids") is None
    assert sole_customer([], "customer_ids") is None
    # a group, a project, a filter or everyone that happened to find one customer
    for chosen_by in ("all", "group_id", "project_id", "filter"):
        assert sole_customer(one, chosen_by) is None


def test_a_message_to_one_customer_is_sealed_with_its_key_and_erased_with_it():
    keys, customer = Keys(), str(uuid4())
    mapper = _mapper(keys)
    message = _message(customer)
    message.record([], NOW)  # nothing yet: the message stays as it is
    stored = _stored(mapper, message)
    assert _secrets_in(stored) == []
    assert customer in stored[0].state.decode()  # the recipient is still named

    # while the key exists, the sender reads the text as written
    loaded = _loaded(mapper, stored)
    assert (loaded.subject, loaded.body) == (SUBJECT_TEXT, BODY_TEXT)
    assert loaded.abuse["comment"] == COMMENT and loaded.abuse["penalty_points"] == 5
    assert loaded.recipients == [{"id": customer, "language": "en", "name": f"{NAME} 0"}]
    assert message_text(loaded, "fr") == (TRANSLATED, TRANSLATED)
    assert str(loaded.customer_id) == customer

    keys.destroy(customer)
    erased = _loaded(mapper, stored)
    assert (erased.subject, erased.body) == (PLACEHOLDER, PLACEHOLDER)
    assert erased.abuse["comment"] == PLACEHOLDER
    assert erased.abuse["penalty_points"] == 5 and erased.abuse["action"] == "move_to_active"
    assert erased.recipients == [{"id": customer, "language": "en", "name": PLACEHOLDER}]
    assert erased.options["translations"] == {}
    assert message_text(erased, "fr") == (PLACEHOLDER, PLACEHOLDER)
    assert [r["id"] for r in erased.pending(5)] == [customer]


def test_a_message_to_several_customers_keeps_its_text_whoever_is_erased():
    keys, first, second = Keys(), str(uuid4()), str(uuid4())
    mapper = _mapper(keys)
    message = _message(first, second)
    assert message.customer_id is None
    keys.key(first, create=True)
    stored = _stored(mapper, message)
    assert set(_secrets_in(stored)) == {SUBJECT_TEXT, "spam", COMMENT, NAME, TRANSLATED}
    keys.destroy(first)
    loaded = _loaded(mapper, stored)
    assert (loaded.subject, loaded.body) == (SUBJECT_TEXT, BODY_TEXT)
    assert loaded.abuse["comment"] == COMMENT
    # so does one to a group that found one customer
    alone = _message(first, chosen_by="group_id")
    assert set(_secrets_in(_stored(mapper, alone))) >= {SUBJECT_TEXT, COMMENT}


def test_a_message_recorded_before_it_named_its_customer_still_loads():
    keys, customer = Keys(), str(uuid4())
    mapper = _mapper(keys)
    message = _message(customer)
    [created] = message.collect_events()
    vars(created).pop("customer_id")  # as a Broadcast.Created of before
    stored = mapper.to_stored_event(created)
    assert SUBJECT_TEXT in stored.state.decode()  # before: in plain text
    loaded = _loaded(mapper, [stored])
    assert loaded.customer_id is None and loaded.subject == SUBJECT_TEXT


def test_penalty_points_and_an_abuse_tickets_comment_go_with_their_customer():
    keys, customer = Keys(), uuid4()
    mapper = _mapper(keys)
    standing = Standing(customer_id=customer)
    standing.give(uuid4(), 5, COMMENT)
    stored = _stored(mapper, standing)
    assert _secrets_in(stored) == []
    assert _loaded(mapper, stored).total == 5
    given = mapper.to_domain_event(stored[-1])
    assert given.comment == COMMENT and given.points == 5

    message = _message(str(customer))
    department = SimpleNamespace(id=uuid4(), name="Abuse", addresses=["abuse@provider.example"])
    customer_row = {"id": str(customer), "language": "en", "name": NAME}
    ticket = broadcast_ticket(message, department, customer_row, "ABC-123456", NOW)
    ticket_stored = _stored(mapper, ticket)
    assert _secrets_in(ticket_stored) == []
    assert _loaded(mapper, ticket_stored).abuse["comment"] == COMMENT

    keys.destroy(customer)
    assert mapper.to_domain_event(stored[-1]).comment == PLACEHOLDER
    assert _loaded(mapper, stored).total == 5
    abuse = _loaded(mapper, ticket_stored).abuse
    assert abuse["comment"] == PLACEHOLDER and abuse["penalty_points"] == 5
    assert abuse["deadline"] == NOW + timedelta(days=2)


def test_a_recipient_erased_before_its_ticket_gets_none_and_the_message_is_sent():
    message = _message("a", "b", "c", chosen_by="all")
    message.record([], NOW, erased=["b"])
    assert [r["id"] for r in message.pending(5)] == ["a", "c"]
    message.record([{"customer_id": "a", "ticket_id": "t", "tracking_number": "N"}], NOW)
    # erased after its ticket was opened: it stays recorded as opened
    message.record([], NOW, erased=["a", "b"])
    with pytest.raises(NotARecipient):
        message.record([], NOW, erased=["stranger"])
    assert message.status == "sending"
    message.record([], NOW, erased=["c"])
    assert message.status == "sent" and message.pending(5) == []
    assert message.erased_recipients == ["b", "c"]
    events = message.collect_events()
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Created", "RecipientsErased", "TicketsOpened", "RecipientsErased", "Sent"]
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert copy.erased_recipients == ["b", "c"] and copy.status == "sent"


class _Keys(Keys):
    """Keys as the sender asks for them (forget, prepare_many)."""

    def forget(self, customer_id):
        pass

    def prepare_many(self, customer_ids, create=True):
        for c in customer_ids:
            self.key(c, create=create)


class _Desk(BroadcastDesk):
    """The sender's use case with what it asks of the database answered in memory."""

    def __init__(self, keys):
        self.personal_keys = keys
        self.saved: list = []

    def _opened_before(self, broadcast_id, customers):
        return {}

    def free_tracking_numbers(self, count):
        return [f"N-{uuid4().hex[:6]}" for _ in range(count)]

    def settings_values(self):
        return {"penalty_threshold": 100}

    def penalize(self, ticket, points, comment, threshold=None):
        return [("points", ticket.customer_id, comment)]

    def save(self, *objs):
        self.saved.append(objs)


def test_the_sender_opens_no_ticket_for_an_erased_recipient():
    keys = _Keys()
    kept, erased = str(uuid4()), str(uuid4())
    keys.key(kept, create=True)
    keys.destroy(erased)
    desk = _Desk(keys)
    message = _message(kept, erased, chosen_by="customer_ids")
    message.collect_events()
    department = SimpleNamespace(id=uuid4(), name="Abuse", addresses=[])
    done = desk.open_broadcast_tickets(message, department, message.pending(10))
    [objs] = desk.saved
    tickets = [o for o in objs if type(o).__name__ == "Ticket"]
    assert [str(t.customer_id) for t in tickets] == [kept]
    assert tickets[0].subject == SUBJECT_TEXT
    points = [o for o in objs if isinstance(o, tuple)]
    assert [str(p[1]) for p in points] == [kept]  # no penalty points for the erased one
    assert done.status == "sent" and done.erased_recipients == [erased]
    assert [t["customer_id"] for t in done.tickets] == [kept]
    # a message whose one recipient was erased meanwhile: sent, with no ticket at all
    alone = _message(erased)
    alone.collect_events()
    desk.saved.clear()
    done = desk.open_broadcast_tickets(alone, department, alone.pending(10))
    [objs] = desk.saved
    assert [type(o).__name__ for o in objs] == ["Broadcast"]
    assert done.status == "sent" and done.tickets == []
