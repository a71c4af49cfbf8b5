"""Tickets as a story, on in-memory persistence: what staff and the client each see."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from eventsourcing.application import Application

from services.helpdesk.domain import (
    TRACKING_ALPHABET,
    Department,
    MailMessage,
    NotMergeable,
    ReplyTemplate,
    Standing,
    Ticket,
    TicketClosedForReplies,
    new_tracking_number,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def _ticket(customer_id=None, author_kind="client", **extra):
    fields = {
        "tracking_number": new_tracking_number(),
        "department_id": uuid4(),
        "department_name": "Support",
        "reply_address": "support@provider.example",
        "customer_id": customer_id or uuid4(),
        "guest_email": None,
        "subject": "Site down",
        "language": "en",
        "forbid_replies": False,
        "body": "Help",
        "author_kind": author_kind,
        "author_id": None,
        "author_name": "Ann",
        "internal": False,
        "attachments": [],
        "notify_staff_ids": [],
        "notify_client": False,
        "mail_message_id": None,
        "at": NOW,
        "priority": "normal",
        "via": "web",
        "fields": {},
        "assign_on_reply_to": None,
        "abuse": None,
    }
    fields.update(extra)
    return Ticket.open(**fields)


def test_tracking_numbers_are_random_and_readable():
    numbers = {new_tracking_number() for _ in range(300)}
    assert len(numbers) == 300
    for number in list(numbers)[:50]:
        letters, digits = number.split("-")
        assert set(letters) <= set(TRACKING_ALPHABET) and len(digits) == 6


def test_status_follows_who_wrote_last_and_notes_stay_internal():
    ticket = _ticket()
    assert ticket.status == "open"
    ticket.add_message("On the old cluster", "staff", "s1", "Sam", NOW, internal=True)
    assert ticket.status == "open"  # a note is no answer
    ticket.add_message("Restarted", "staff", "s1", "Sam", NOW)
    assert ticket.status == "answered"
    ticket.add_message("Thanks", "client", None, "Ann", NOW)
    assert ticket.status == "customer_reply"
    assert [m["body"] for m in ticket.visible_to_client()] == ["Help", "Restarted", "Thanks"]
    events = ticket.collect_events()
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Opened", "NoteAdded", "MessageAdded", "MessageAdded"]
    assert events[1].notify_client is False and events[2].notify_client is True


def test_closing_archives_and_a_client_reply_brings_it_back():
    ticket = _ticket()
    ticket.close()
    assert ticket.status == "closed" and ticket.archived
    ticket.add_message("Still broken", "client", None, "Ann", NOW)
    assert ticket.status == "customer_reply" and not ticket.archived


def test_forbidden_replies_and_assign_on_reply():
    ticket = _ticket(author_kind="staff", forbid_replies=True)
    with pytest.raises(TicketClosedForReplies):
        ticket.add_message("Why?", "client", None, "Ann", NOW)
    staff_id = uuid4()
    other = _ticket(author_kind="staff", assign_on_reply_to=str(staff_id))
    assert other.status == "answered" and other.assignee is None


def test_merge_only_two_tickets_of_one_customer():
    customer = uuid4()
    first, second, foreign = _ticket(customer), _ticket(customer), _ticket()
    with pytest.raises(NotMergeable):
        first.merge(foreign)
    with pytest.raises(NotMergeable):
        first.merge(first)
    second.add_message("More detail", "client", None, "Ann", NOW + timedelta(minutes=1))
    first.merge(second)
    assert [m["body"] for m in first.messages] == ["Help", "Help", "More detail"]
    assert second.merged_into == first.id and second.status == "closed"
    with pytest.raises(NotMergeable):
        _ticket(customer).merge(second)


def test_abuse_notice_is_due_until_the_client_answers():
    abuse = {"deadline": NOW + timedelta(hours=1), "action": "suspend_services"}
    ticket = _ticket(author_kind="staff", abuse=abuse)
    assert not ticket.abuse_due(NOW)
    assert ticket.abuse_due(NOW + timedelta(hours=2))
    ticket.add_message("Fixed it", "client", None, "Ann", NOW)
    assert not ticket.abuse_due(NOW + timedelta(hours=2))


def test_penalty_points_add_up():
    standing = Standing(customer_id=uuid4())
    standing.give(uuid4(), 6, "spam")
    standing.give(uuid4(), 5, "phishing")
    assert standing.total == 11


def test_department_names_missing_required_fields():
    department = Department(
        name="Hosting",
        client_visible=True,
        fields=[{"name": "domain", "required": True}, {"name": "server", "required": False}],
        staff_ids=[],
        addresses=[],
        business_hours=None,
        accept_guests=True,
    )
    assert department.missing_fields({"domain": " "}) == {"domain": ["This department needs it."]}
    assert department.missing_fields({"domain": "example.org"}) == {}


def test_templates_fill_macros_in_the_language_or_english():
    template = ReplyTemplate(
        name="hi",
        bodies={"en": "Hi %client_person%, %admin_name%", "fr": "Salut %client_person%"},
        department_id=None,
    )
    assert template.text_for("fr", "Luc", "Sam") == "Salut Luc"
    assert template.text_for("ru", "Ivan", "Sam") == "Hi Ivan, Sam"


def test_index_ids_ignore_case_and_brackets():
    assert MailMessage.id_for("<ABC@x>") == MailMessage.id_for("abc@x")


def test_a_ticket_round_trips_through_the_store():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    customer = uuid4()
    abuse = {"deadline": NOW + timedelta(hours=1), "action": "move_to_active"}
    first, second = _ticket(customer, author_kind="staff", abuse=abuse), _ticket(customer)
    first.merge(second)
    first.act_on_abuse([])
    app.save(first, second)
    again = app.repository.get(first.id)
    assert again.messages == first.messages and again.abuse["state"] == "acted"
    assert again.status == "customer_reply"


def test_every_published_event_satisfies_its_contract():
    """What the relay publishes (the event's attributes, dumped by the contract) loads
    back through the contract: the mail gateway can rely on every field."""
    from services.helpdesk.application import Helpdesk
    from services.infra.relay import _jsonable

    customer = uuid4()
    abuse = {"deadline": NOW + timedelta(hours=1), "action": "suspend_services"}
    first = _ticket(customer, author_kind="staff", abuse=abuse)
    second = _ticket(customer)
    first.add_message("note", "staff", "s1", "Sam", NOW, internal=True, notify_staff_ids=[uuid4()])
    first.add_message(
        "answer",
        "staff",
        "s1",
        "Sam",
        NOW,
        attachments=[
            {"id": "a" * 64, "filename": "a.txt", "content_type": "text/plain", "size": 1}
        ],
    )
    first.assign(uuid4())
    first.merge(second)
    first.act_on_abuse([uuid4()])
    first.request_suspension(customer, "abuse")
    first.close()
    standing = Standing(customer_id=customer)
    standing.give(first.id, 3, "spam")
    published = {}
    for event in [*first.collect_events(), *standing.collect_events()]:
        schema_cls = Helpdesk.publications.get(type(event))
        if schema_cls is None:
            continue
        state = dict(vars(event))
        state[schema_cls.id_field] = event.originator_id
        payload = _jsonable(schema_cls().dump(state))
        loaded = schema_cls().load(payload)
        published[schema_cls.event_type] = loaded
    assert set(published) == {
        "TicketOpened",
        "TicketNoteAdded",
        "TicketMessageAdded",
        "TicketAssigned",
        "TicketsMerged",
        "AbuseDeadlinePassed",
        "ServicesSuspensionRequested",
        "TicketClosed",
        "PenaltyPointsGiven",
    }
    assert published["TicketNoteAdded"]["internal"] is True
    assert published["TicketMessageAdded"]["attachments"][0]["filename"] == "a.txt"
    assert published["TicketOpened"]["tracking_number"] == first.tracking_number


def _broadcast(*customer_ids):
    from services.helpdesk.domain import Broadcast

    return Broadcast(
        subject="Maintenance",
        body="Tonight, %client_person%.",
        author={"kind": "staff", "id": "s1", "name": "Sam"},
        department_id=uuid4(),
        options={"forbid_replies": False, "assign_to_me": False},
        abuse=None,
        recipients=[{"id": c, "language": "en", "name": f"N{c}"} for c in customer_ids],
        attachments=[],
        at=NOW,
    )


def _opened(customer_id):
    return {"customer_id": customer_id, "ticket_id": str(uuid4()), "tracking_number": "ABC-2"}


def test_a_broadcast_records_each_recipients_ticket_once_and_is_sent_at_the_last():
    from services.helpdesk.domain import NotARecipient

    broadcast = _broadcast("a", "b", "c")
    assert broadcast.status == "sending"
    assert [r["id"] for r in broadcast.pending(2)] == ["a", "b"]
    first = _opened("a")
    broadcast.record([first], NOW)
    # a second sender reporting the same recipient changes nothing
    broadcast.record([_opened("a"), _opened("b")], NOW)
    assert [t["customer_id"] for t in broadcast.tickets] == ["a", "b"]
    assert broadcast.tickets[0] == first
    assert broadcast.status == "sending" and [r["id"] for r in broadcast.pending(5)] == ["c"]
    with pytest.raises(NotARecipient):
        broadcast.record([_opened("stranger")], NOW)
    broadcast.record([_opened("c")], NOW)
    assert broadcast.status == "sent" and broadcast.pending(5) == []
    broadcast.record([_opened("c")], NOW)
    kinds = [type(e).__name__ for e in broadcast.collect_events()]
    assert kinds == ["Created", "TicketsOpened", "TicketsOpened", "TicketsOpened", "Sent"]


def test_a_broadcast_replayed_from_its_events_resumes_where_it_was():
    broadcast = _broadcast("a", "b", "c")
    broadcast.record([_opened("a")], NOW)
    events = broadcast.collect_events()
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert copy.tickets == broadcast.tickets and copy.status == "sending"
    assert [r["id"] for r in copy.pending(10)] == ["b", "c"]
    assert _broadcast().status == "sent"  # nobody to write to: nothing left to send
