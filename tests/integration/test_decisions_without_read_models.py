"""Handlers and commands decide from the event store, never from a read model (issue 12).

The applications here run without their read-model followers: every read model is held
back (empty), as during a rebuild or behind a stuck follower. Each handler and command
that changes state still finds everything it changes.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.infra.readmodels import Follower


def _follow(app, model_cls) -> None:
    """Bring one read model up to date (for the cases that check the two agree)."""
    follower = Follower(app, model_cls())
    while follower.run_once():
        pass


# -- billing ------------------------------------------------------------------------------------


def test_customer_updates_reach_every_account_while_the_account_list_lags(billing):
    customer_id = uuid4()
    billing.open_account(customer_id, "EUR", {"name": "Old"})
    billing.open_account(customer_id, "USD", {"name": "Old"})

    billing.update_buyer(customer_id, {"name": "New", "referrer_id": str(uuid4())})

    accounts = billing.accounts_of(customer_id)
    assert [a.currency for a in accounts] == ["EUR", "USD"]
    assert all(a.buyer["name"] == "New" for a in accounts)
    assert all(a.buyer["referrer_id"] for a in accounts)


def test_changes_before_the_account_is_opened_wait_for_it(billing):
    """A CustomerUpdated applied before the account of its CustomerRegistered was opened
    (that event parked, then retried) is kept and given to the account."""
    customer_id = uuid4()
    billing.update_buyer(customer_id, {"name": "Changed", "affiliate_program": "partners"})
    assert billing.accounts_of(customer_id) == []

    account = billing.open_account(customer_id, "EUR", {"name": "Registered", "country": "DE"})

    assert account.buyer == {"name": "Changed", "affiliate_program": "partners", "country": "DE"}
    billing.update_buyer(customer_id, {"name": "Later"})
    assert billing.account(customer_id, "EUR").buyer["name"] == "Later"


def test_accounts_older_than_the_index_are_found_through_the_list(billing):
    """Accounts opened before the account index existed: the list (long projected) seeds
    the index the first time the customer is met."""
    from services.billing.domain import CustomerAccounts, PersonalAccount
    from services.billing.readmodels import AccountList
    from services.infra import clock

    customer_id = uuid4()
    billing.save(
        PersonalAccount(customer_id=customer_id, currency="EUR", opened_at=clock.now(), buyer={})
    )
    _follow(billing, AccountList)

    billing.update_buyer(customer_id, {"name": "Found"})

    assert billing.account(customer_id, "EUR").buyer["name"] == "Found"
    index = billing.repository.get(CustomerAccounts.id_for(customer_id))
    assert index.currencies == ["EUR"]
    billing.open_account(customer_id, "USD", {})
    assert [a.currency for a in billing.accounts_of(customer_id)] == ["EUR", "USD"]


@pytest.fixture
def orders(cfg):
    from services.orders.application import Orders

    app = Orders(cfg=cfg)
    yield app
    app.close()


@pytest.fixture
def helpdesk(cfg):
    from services.helpdesk.application import Helpdesk

    app = Helpdesk(cfg=cfg)
    yield app
    app.close()


# -- orders -------------------------------------------------------------------------------------


def _product(orders) -> str:
    product = orders.create_product(
        {
            "name": {"en": "Hosting"},
            "prices": {"monthly": {"EUR": 500}},
            "setup_fee": {"EUR": 100},
            "provisioning": {"kind": "manual", "url": None},
        }
    )
    return str(product.id)


def _order(orders, customer_id, product_id: str, items: int = 1, paid: bool = True):
    """An order placed as the orders service places it, with billing's invoice stood in
    for by its id and total; paid when `paid`."""
    key = f"request:{uuid4()}"
    orders.begin_order(
        key,
        False,
        {},
        customer_id,
        "EUR",
        [{"product_id": product_id, "billing_cycle": "monthly"}] * items,
        None,
        "run-1",
    )
    invoice = {"id": str(uuid4()), "total": {"amount": 600 * items, "currency": "EUR"}}
    order = orders.place_order(key, invoice)
    if paid:
        assert orders.invoice_paid(order.invoice_id, "order") == items
    return order


def test_an_abuse_suspension_reaches_every_active_service_while_the_service_list_lags(orders):
    customer_id = uuid4()
    product_id = _product(orders)
    first = _order(orders, customer_id, product_id, items=2)
    second = _order(orders, customer_id, product_id)
    pending = _order(orders, customer_id, product_id, paid=False)
    _order(orders, uuid4(), product_id)  # another customer's

    assert orders.suspend_customer(customer_id, "spam", why="abuse") == 3

    statuses = {
        s.id: s.status
        for o in (first, second, pending)
        for s in (orders.repository.get(i) for i in _services_of(orders, o))
    }
    assert sorted(statuses.values()) == ["pending", "suspended", "suspended", "suspended"]
    assert orders.suspend_customer(customer_id, "spam", why="abuse") == 0  # once


def _services_of(orders, order) -> list:
    from services.orders.domain import InvoiceOrder

    return orders.repository.get(InvoiceOrder.id_for(order.invoice_id)).service_ids


def test_dunning_and_renewals_use_the_projects_days_as_recorded_not_as_listed(orders):
    """The project's days changed a moment ago: the terms list still shows the old ones
    (it only finds candidates); the scheduler decides with the new ones."""
    from datetime import date, timedelta

    from services.orders.readmodels import OrderLists

    project_id = uuid4()
    terms = {"renew_days_before": 3, "suspend_after_days": 2, "terminate_after_days": 60}
    orders.record_project_terms(project_id, terms)
    product = orders.create_product(
        {
            "name": {"en": "Plan"},
            "prices": {"monthly": {"EUR": 500}},
            "project_id": project_id,
            "provisioning": {"kind": "manual", "url": None},
        }
    )
    order = _order(orders, uuid4(), str(product.id))
    [service_id] = _services_of(orders, order)
    service = orders.get_service(service_id)
    due = date.fromisoformat(service.next_due_date)
    invoice = {"id": str(uuid4()), "total": {"amount": 500, "currency": "EUR"}}
    orders.record_renewal_invoices([(service, invoice)])
    _follow(orders, OrderLists)
    orders.record_project_terms(
        project_id, dict(terms, renew_days_before=40, suspend_after_days=30)
    )

    # listed: suspended after 2 days; recorded: after 30
    assert orders.dunning(due + timedelta(days=10), 14, 60) == 0
    assert orders.get_service(service_id).status == "active"
    assert orders.dunning(due + timedelta(days=31), 14, 60) == 1
    assert orders.get_service(service_id).status == "suspended"

    # renewal windows: recorded 40 days before the due date, the list says 3
    other = _order(orders, uuid4(), str(product.id))
    [other_id] = _services_of(orders, other)
    other_due = date.fromisoformat(orders.get_service(other_id).next_due_date)
    assert [s.id for s in orders.to_renew([other_id], other_due - timedelta(days=20), 7)] == [
        other_id
    ]
    assert orders.to_renew([other_id], other_due - timedelta(days=41), 7) == []


def test_a_payment_heard_before_its_order_is_saved_pays_the_order(orders):
    """InvoicePaid consumed while the order's save had failed (its invoice issued and paid
    all the same): kept, and the order is paid the moment it is saved."""
    customer_id, product_id = uuid4(), _product(orders)
    key = f"request:{uuid4()}"
    orders.begin_order(
        key,
        False,
        {},
        customer_id,
        "EUR",
        [{"product_id": product_id, "billing_cycle": "monthly"}],
        None,
        "run-1",
    )
    invoice = {"id": str(uuid4()), "total": {"amount": 600, "currency": "EUR"}}

    assert orders.invoice_paid(invoice["id"], "order") == 0  # no order yet: it waits
    order = orders.place_order(key, invoice)

    assert order.status == "paid"
    [service_id] = _services_of(orders, order)
    service = orders.get_service(service_id)
    assert service.status == "active"
    assert service.provisioning["state"] == "requested"
    assert orders.invoice_paid(invoice["id"], "order") == 0  # heard again: nothing more


def test_a_renewal_paid_before_it_is_recorded_renews_the_service(orders):
    order = _order(orders, uuid4(), _product(orders))
    [service_id] = _services_of(orders, order)
    service = orders.get_service(service_id)
    period = service.next_due_date
    invoice = {"id": str(uuid4()), "total": {"amount": 500, "currency": "EUR"}}

    assert orders.invoice_paid(invoice["id"], "renewal") == 0
    assert orders.record_renewal_invoices([(service, invoice)]) == 1

    renewed = orders.get_service(service_id)
    assert renewed.renewal_invoice_id is None
    assert renewed.next_due_date > period


# -- customers ----------------------------------------------------------------------------------


def _register(customers, tag: str) -> dict:
    return customers.register_customer(
        {
            "kind": "individual",
            "email": f"{tag}@example.com",
            "country": "DE",
            "contact_person": f"Person {tag}",
            "language": "en",
            "password": "p" * 12,
        }
    )


def test_an_invoice_is_priced_with_a_discount_given_a_moment_ago(customers):
    from decimal import Decimal
    from uuid import UUID

    customer = _register(customers, f"d{uuid4().hex[:8]}")
    customer_id = UUID(customer["id"])
    group = customers.create_group({"name": "Resellers", "description": ""})
    customers.edit_customer(customer_id, {"group_ids": [group.id]})
    own = customers.create_discount(
        {"name": "Own", "kind": "percentage", "percent": Decimal("5"), "customer_id": customer_id}
    )
    of_group = customers.create_discount(
        {"name": "Group", "kind": "percentage", "percent": Decimal("7"), "group_id": group.id}
    )
    other = customers.create_group({"name": "Others", "description": ""})
    customers.create_discount(  # another group's
        {"name": "Other", "kind": "percentage", "percent": Decimal("9"), "group_id": other.id}
    )

    found = customers.discounts_for(customer_id)

    assert sorted(d.id for d in found) == sorted([own.id, of_group.id])


def test_mail_senders_and_reset_requests_find_staff_and_users_added_a_moment_ago(customers):
    from services.customers.application import people_with_email
    from services.infra.context import Actor, acting

    tag = uuid4().hex[:8]
    member, _ = customers.register_staff(
        f"staff{tag}", "Staff", "support", "s" * 12, f"Staff.{tag}@Example.com"
    )
    customer = _register(customers, f"owner{tag}")
    with acting(Actor("staff", None)):
        user, _ = customers.add_user(
            customer["id"],
            {
                "username": f"user{tag}",
                "email": f"user.{tag}@example.com",
                "name": "A User",
                "permissions": ["full"],
                "password": "u" * 12,
            },
        )

    staff = people_with_email(customers, f"staff.{tag}@example.com")
    assert staff["staff"] == {"staff_id": str(member.id), "name": "Staff"}
    users = people_with_email(customers, f"USER.{tag}@example.com")
    assert users["customer"]["user_id"] == str(user.id)
    assert users["customer"]["customer_id"] == customer["id"]
    mails = customers.request_password_reset(f"staff{tag}", f"user.{tag}@example.com", None)
    assert sorted(m["recipient"]["kind"] for m in mails) == ["staff", "user"]


def test_an_administrator_added_a_moment_ago_counts_as_another_administrator(customers):
    tag = uuid4().hex[:8]
    first, _ = customers.register_staff(f"admin{tag}", "First", "admin", "a" * 12)
    customers.register_staff(f"other{tag}", "Second", "admin", "a" * 12)

    assert customers.edit_staff(first.id, {"role": "support"}).role == "support"


# -- helpdesk -----------------------------------------------------------------------------------


def test_a_reply_to_our_mail_finds_its_ticket_while_the_ticket_lists_lag(helpdesk):
    from contracts.helpdesk import outgoing_message_id

    department = helpdesk.create_department(
        {
            "name": "Support",
            "client_visible": True,
            "fields": [],
            "staff_ids": [],
            "addresses": [],
            "accept_guests": False,
        }
    )
    customer_id = uuid4()
    ticket = helpdesk.open_ticket(
        department,
        "Subject",
        "Body",
        {"kind": "client", "id": str(customer_id), "name": "Client"},
        customer={"id": str(customer_id), "language": "en"},
    )
    _, answer = helpdesk.add_message(
        ticket.id, "An answer", {"kind": "staff", "id": str(uuid4()), "name": "Staff"}
    )

    for message in (ticket.messages[0], answer):
        reference = outgoing_message_id(message["id"], "client", "example.com")
        assert helpdesk.ticket_of_message(reference) == ticket.id
    assert helpdesk.ticket_of_message(outgoing_message_id(str(uuid4()), "c", "x.org")) is None


def test_a_message_to_all_customers_reaches_those_registered_a_moment_ago(customers):
    """What the helpdesk sends a message to all customers to (customers.every_customer)."""
    from uuid import UUID

    from services.customers.application import every_customer

    ids = [_register(customers, f"all{uuid4().hex[:8]}")["id"] for _ in range(3)]
    customers.edit_customer(UUID(ids[1]), {"language": "fr"})
    customers.delete_customer(UUID(ids[2]), forced=True, reason=None)

    everyone, after = [], 0
    while after is not None:
        page = every_customer(customers, None, after, 2)
        everyone += page["items"]
        after = page["next"]
    french = every_customer(customers, "fr", 0, 100)["items"]

    assert [c["id"] for c in everyone] == ids[:2]
    assert [(c["id"], c["language"]) for c in french] == [(ids[1], "fr")]


def test_a_service_ended_before_its_start_was_applied_never_counts_as_active(customers):
    """ServiceActivated parked (then retried by staff) after ServiceTerminated was applied:
    the end is recorded all the same, and the late start changes nothing."""
    from uuid import UUID

    customer_id = UUID(_register(customers, f"svc{uuid4().hex[:8]}")["id"])
    service_id, product_id = uuid4(), uuid4()

    customers.service_ended(customer_id, service_id, product_id)
    customers.service_started(customer_id, service_id, product_id)

    assert customers.get_customer(customer_id).active_services == {}
    customers.delete_customer(customer_id, forced=False, reason=None)  # nothing active
