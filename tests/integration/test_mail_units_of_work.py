"""What the mail gateway keeps while it applies events belongs to the unit of work that
keeps it, on the real database: the customers service's answers to the batch of events
being applied (services.infra.inbox_batches), the sender's wake-up to the transaction
that queued mail.

nameko runs the consumer's handlers and the RPC commands in concurrent green threads of
one process, all on one application: here they are run in turn, interleaved as they
may be, the batch applied as InboxConsumer.apply_batch does. The customers service is a
real customers application, asked as its RPC answers.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking

from services.infra.context import Actor, acting
from services.infra.inbox_batches import Batch

MAILGATEWAY = Actor("service", "mailgateway")


@pytest.fixture
def mailgateway(cfg):
    from services.mailgateway.application import MailGateway

    app = MailGateway(cfg=cfg)
    yield app
    app.close()


def _register(customers) -> str:
    return customers.register_customer(
        {
            "kind": "individual",
            "email": f"{uuid4().hex[:10]}@example.com",
            "country": "DE",
            "contact_person": "Ann Example",
            "password": "z" * 12,
        }
    )["id"]


class _Asking:
    """The customers service as the mail gateway asks it, counting the questions."""

    def __init__(self, customers):
        self.customers = customers
        self.asked: list[str] = []

    def __call__(self, customer_id: str) -> tuple[dict, dict]:
        self.asked.append(customer_id)
        answer = self.customers.customer_and_notification_settings(UUID(customer_id))
        return answer["customer"], answer["notification_settings"]


def _handler_of(upstream: str, position: int):
    """The context of the handler of `upstream`'s event at `position`."""
    return acting(
        MAILGATEWAY, cause=f"{upstream}:{position}", tracking=Tracking(upstream, position)
    )


def _notification(key: str):
    from services.mailgateway.outbox import Notification

    return Notification(
        key=key,
        kind="invoice_issued",
        recipient="client@example.com",
        language="en",
        context={"number": key},
        message_id=f"<{uuid4()}@example.com>",
    )


def _queued(app) -> set[str]:
    with app.datastore.transaction() as curs:
        curs.execute("SELECT key FROM mail_outbox")
        return {r["key"] for r in curs.fetchall()}


def test_a_batch_asks_once_per_customer_and_shares_its_answers_with_no_other_worker(
    customers, mailgateway
):
    x, y = _register(customers), _register(customers)
    ask = _Asking(customers)
    batch = Batch(mailgateway, "billing", [1, 2, 3])
    with mailgateway.batches.applying(batch):
        with _handler_of("billing", 1):
            customer, settings = mailgateway.asked_about(x, ask)
        assert customer["id"] == x and settings["invoice_issued"] is True
        # the customer turns invoice notices off (after the batch's events were recorded)
        customers.set_notification_settings(UUID(x), {"invoice_issued": False})
        with _handler_of("billing", 2):
            assert mailgateway.asked_about(y, ask)[0]["id"] == y
        with _handler_of("billing", 3):
            # the batch's answer, asked after every event of the batch was recorded
            assert mailgateway.asked_about(x, ask)[1]["invoice_issued"] is True
        assert ask.asked == [x, y]

        # meanwhile, a worker of no batch (a command, an event applied alone) asks afresh
        # and is told of the change
        with acting(MAILGATEWAY):
            assert mailgateway.asked_about(x, ask)[1]["invoice_issued"] is False
        with _handler_of("orders", 5):  # an orders event applied alone
            assert mailgateway.asked_about(x, ask)[1]["invoice_issued"] is False
        # and so does the handler of another upstream's batch open at the same time
        other = Batch(mailgateway, "orders", [7])
        with mailgateway.batches.applying(other), _handler_of("orders", 7):
            assert mailgateway.asked_about(x, ask)[1]["invoice_issued"] is False
        assert ask.asked == [x, y, x, x, x]

    # the next batch asks again, however soon after this one, and nothing was committed
    following = Batch(mailgateway, "billing", [4])
    with mailgateway.batches.applying(following), _handler_of("billing", 4):
        assert mailgateway.asked_about(x, ask)[1]["invoice_issued"] is False
    assert ask.asked == [x, y, x, x, x, x]


def test_each_transaction_that_queues_mail_wakes_the_sender_once_committed(mailgateway):
    wakes: list[str] = []
    mailgateway.on_queued = lambda: wakes.append("wake")

    batch = Batch(mailgateway, "billing", [1, 2])
    with mailgateway.batches.applying(batch):
        with _handler_of("billing", 1):
            mailgateway.queue(_notification("invoice:1"))
        assert wakes == []  # saved into the batch: nothing committed yet
        # meanwhile a command queues a mail of its own: committed, the sender is woken
        with acting(Actor("staff", str(uuid4()))):
            mailgateway.queue(_notification("reset:1"))
        assert wakes == ["wake"] and _queued(mailgateway) == {"reset:1"}
        # a commit that queues no mail wakes nobody
        with acting(MAILGATEWAY):
            mailgateway.learn_address(uuid4(), "someone@example.com")
        assert wakes == ["wake"]
        with _handler_of("billing", 2):
            mailgateway.learn_address(uuid4(), "other@example.com")
    batch.commit(Tracking("billing", 2))
    # the batch's notice is committed now, and the sender woken for it
    assert _queued(mailgateway) == {"reset:1", "invoice:1"}
    assert wakes == ["wake", "wake"]

    # a batch that queues no mail wakes nobody at its commit
    quiet = Batch(mailgateway, "billing", [3])
    with mailgateway.batches.applying(quiet), _handler_of("billing", 3):
        mailgateway.learn_address(uuid4(), "third@example.com")
    quiet.commit(Tracking("billing", 3))
    assert wakes == ["wake", "wake"]
    assert mailgateway.recorder.max_tracking_id("billing") == 3
