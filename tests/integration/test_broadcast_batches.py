"""A message to customers opens its tickets in batches: each batch's tickets and the
message's record of them in one save, so no recipient gets two tickets and a sender that
stops leaves nothing half done."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from services.helpdesk import broadcasts
from services.helpdesk.domain import Broadcast, Ticket, TrackingNumber
from services.infra import clock

AUTHOR = {"kind": "staff", "id": str(uuid4()), "name": "Sam Support"}


@pytest.fixture
def helpdesk(cfg):
    from services.helpdesk.application import Helpdesk

    app = Helpdesk(cfg=cfg)
    yield app
    app.close()


def _message(app, recipients: int, abuse: dict | None = None):
    department = app.create_department(
        {
            "name": "Notices",
            "client_visible": True,
            "fields": [],
            "staff_ids": [],
            "addresses": [],
            "business_hours": None,
            "accept_guests": False,
        }
    )
    customers = [
        {"id": str(uuid4()), "language": "en", "name": f"Person {i}"} for i in range(recipients)
    ]
    broadcast = Broadcast(
        subject="Maintenance",
        body="Dear %client_person%, from %admin_name%.",
        author=AUTHOR,
        department_id=department.id,
        options={
            "forbid_replies": False,
            "assign_to_me": True,
            "strict_language": False,
            "language": None,
            "all": False,
            "recipients": "customer_ids",
            "translations": {},
            "template": None,
        },
        abuse=abuse,
        recipients=customers,
        attachments=[],
        at=clock.now(),
    )
    app.save(broadcast)
    return department, customers, broadcast


def _tickets(app, broadcast_id) -> list[Ticket]:
    return [app.ticket(UUID(t["ticket_id"])) for t in app.broadcast(broadcast_id).tickets]


def test_each_batch_opens_and_records_its_tickets_in_one_save(helpdesk):
    department, customers, broadcast = _message(helpdesk, 7)
    broadcast = helpdesk.open_broadcast_tickets(broadcast, department, customers[:4])
    assert broadcast.status == "sending" and len(broadcast.tickets) == 4
    broadcast = helpdesk.open_broadcast_tickets(broadcast, department, customers[4:])
    again = helpdesk.broadcast(broadcast.id)
    assert again.status == "sent" and again.version == broadcast.version
    assert [t["customer_id"] for t in again.tickets] == [c["id"] for c in customers]
    tickets = _tickets(helpdesk, broadcast.id)
    assert [str(t.customer_id) for t in tickets] == [c["id"] for c in customers]
    assert tickets[3].messages[0]["body"] == "Dear Person 3, from Sam Support."
    assert tickets[3].assign_on_reply_to == AUTHOR["id"]
    # each tracking number claimed by its ticket, each message indexed
    for t in tickets:
        assert helpdesk.ticket_of_tracking_number(t.tracking_number).id == t.id
    assert len({t.tracking_number for t in tickets}) == 7


def test_a_sender_behind_another_opens_only_what_is_left(helpdesk):
    department, customers, broadcast = _message(helpdesk, 5)
    stale = helpdesk.broadcast(broadcast.id)
    helpdesk.open_broadcast_tickets(broadcast, department, customers[:3])
    # the stale copy's save fails on the version; loaded again, the first three are skipped
    done = helpdesk.open_broadcast_tickets(stale, department, customers)
    assert done.status == "sent"
    assert [t["customer_id"] for t in done.tickets] == [c["id"] for c in customers]
    with helpdesk.datastore.transaction() as curs:
        curs.execute(
            "SELECT count(*) AS n FROM helpdesk_events WHERE topic = %s",
            ("services.helpdesk.domain:Ticket.Opened",),
        )
        assert curs.fetchone()["n"] == 5


def test_a_tracking_number_already_held_is_drawn_again(helpdesk, monkeypatch):
    department, customers, broadcast = _message(helpdesk, 2)
    helpdesk.save(TrackingNumber(number="AAA-222222", ticket_id=uuid4()))
    drawn = iter(["AAA-222222", "AAA-222222", "BBB-333333", "CCC-444444"])
    monkeypatch.setattr(broadcasts, "new_tracking_number", lambda: next(drawn))
    broadcast = helpdesk.open_broadcast_tickets(broadcast, department, customers)
    assert sorted(t["tracking_number"] for t in broadcast.tickets) == ["BBB-333333", "CCC-444444"]


def test_tickets_opened_one_by_one_before_batches_are_recorded_not_opened_again(helpdesk):
    """A message that an older helpdesk was sending: it opened a ticket (with its own
    idempotency record) and stopped before recording it."""
    department, customers, broadcast = _message(helpdesk, 3)
    customer = customers[1]
    key = f"{broadcast.id}:{customer['id']}"
    request = {"broadcast_id": str(broadcast.id), "customer_id": customer["id"]}
    earlier = helpdesk.open_ticket(
        department,
        "Maintenance",
        "Dear Person 1",
        AUTHOR,
        customer=customer,
        via="staff",
        idempotency=(
            broadcasts.TICKET_SCOPE,
            key,
            request,
            lambda t: {
                "customer_id": customer["id"],
                "ticket_id": str(t.id),
                "tracking_number": t.tracking_number,
            },
        ),
    )
    broadcast = helpdesk.open_broadcast_tickets(broadcast, department, customers)
    assert broadcast.status == "sent"
    assert broadcast.tickets[1] == {
        "customer_id": customer["id"],
        "ticket_id": str(earlier.id),
        "tracking_number": earlier.tracking_number,
    }
    with helpdesk.datastore.transaction() as curs:
        curs.execute(
            "SELECT count(*) AS n FROM helpdesk_events WHERE topic = %s",
            ("services.helpdesk.domain:Ticket.Opened",),
        )
        assert curs.fetchone()["n"] == 3


def test_an_abuse_notice_gives_each_customer_its_points_in_the_same_save(helpdesk):
    deadline = clock.now().replace(year=clock.now().year + 1)
    abuse = {
        "deadline": deadline,
        "action": "move_to_active",
        "penalty_points": 30,
        "comment": "spam",
    }
    department, customers, broadcast = _message(helpdesk, 3, abuse=abuse)
    helpdesk.open_broadcast_tickets(broadcast, department, customers)
    for c in customers:
        assert helpdesk.standing(UUID(c["id"]))["penalty_points"] == 30
    assert all(t.abuse["state"] == "pending" for t in _tickets(helpdesk, broadcast.id))


def test_the_keys_of_many_customers_are_made_and_read_at_once(helpdesk):
    keys = helpdesk.personal_keys
    made, erased, unknown = str(uuid4()), str(uuid4()), str(uuid4())
    first = keys.key(made, create=True)
    with helpdesk.datastore.transaction(commit=True) as curs:
        curs.execute(
            "INSERT INTO personal_keys (customer_id, data_key, created_at, erased_at)"
            " VALUES (%s, NULL, now(), now())",
            (erased,),
        )
    keys.forget(made)
    keys.prepare_many([made, erased], create=False)
    assert keys._cached(made) == (True, first)
    assert keys._cached(erased) == (True, None)
    keys.prepare_many([unknown], create=False)
    assert keys._cached(unknown) == (False, None)
    keys.prepare_many([unknown, made])
    assert keys._cached(unknown)[1] is not None
    assert keys.key(unknown) == keys._cached(unknown)[1]
