"""A deleted customer in billing and orders, decided from the event store alone.

The applications run without their read-model followers (every list held back, as while
one lags or is rebuilt): billing still voids an invoice issued a moment before the
deletion and refuses the next one, and orders cancels the pending services of an order
whose invoice was voided.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from contracts.errors import Conflict
from services.infra.money import Money
from services.infra.readmodels import Follower

LINE = [{"description": "Hosting", "unit_price": 1000}]


def _customer(billing):
    customer_id = uuid4()
    billing.open_account(
        customer_id,
        "EUR",
        {"kind": "individual", "contact_person": "Dana Deleted", "country": "DE"},
    )
    return customer_id


def _paid(billing, customer_id, invoice: dict) -> None:
    billing.record_payment(
        customer_id, Money(1000, "EUR"), "cash", f"TX-{uuid4().hex[:6]}", invoice["id"], None, {}
    )


def test_an_invoice_issued_a_moment_before_the_deletion_is_voided_with_the_list_held_back(
    billing,
):
    customer_id = _customer(billing)
    paid = billing.issue_invoice(customer_id, "EUR", LINE, purpose="manual")
    _paid(billing, customer_id, paid)
    earlier = billing.issue_invoice(customer_id, "EUR", LINE, purpose="manual")
    just_now = billing.issue_invoice(customer_id, "EUR", LINE, purpose="order")
    other = billing.issue_invoice(_customer(billing), "EUR", LINE, purpose="manual")

    assert billing.customer_deleted(customer_id, "customer deleted") == 2

    def status(invoice):
        return billing.invoice(invoice["id"]).status

    assert [status(i) for i in (paid, earlier, just_now, other)] == [
        "paid",
        "void",
        "void",
        "unpaid",
    ]
    assert billing.invoice(just_now["id"]).void_reason == "customer deleted"
    assert billing.customer_deleted(customer_id, "customer deleted") == 0  # heard again


def test_no_invoice_is_issued_to_a_deleted_customer_and_no_number_is_taken(billing):
    from services.billing.domain import InvoiceSeries

    customer_id = _customer(billing)
    billing.issue_invoice(customer_id, "EUR", LINE, purpose="manual")
    billing.customer_deleted(customer_id, "customer deleted")
    last = billing.repository.get(InvoiceSeries.id_for("default")).last

    for purpose in ("manual", "order", "renewal", "add_funds"):
        with pytest.raises(Conflict) as refused:
            billing.issue_invoice(
                customer_id, "EUR", LINE, purpose=purpose, idempotency_key=purpose
            )
        assert "customer_id" in refused.value.fields

    assert billing.repository.get(InvoiceSeries.id_for("default")).last == last
    # another customer is issued the next number
    issued = billing.issue_invoice(_customer(billing), "EUR", LINE, purpose="manual")
    assert billing.repository.get(InvoiceSeries.id_for("default")).last == last + 1
    assert issued["number"].endswith(f"{last + 1:06d}")


def test_a_customer_without_invoices_is_recorded_deleted_too(billing):
    customer_id = _customer(billing)
    assert not billing.has_invoice_index(customer_id)

    assert billing.customer_deleted(customer_id, "customer deleted") == 0

    with pytest.raises(Conflict):
        billing.issue_invoice(customer_id, "EUR", LINE, purpose="manual")


def test_invoices_older_than_the_index_are_found_through_the_list(billing):
    """Invoices issued before the invoice index existed: the list (long projected) seeds
    the index the first time the customer is met."""
    from services.billing.domain import CustomerInvoices, Invoice, invoice_buyer
    from services.billing.readmodels import BillingLists
    from services.infra import clock

    customer_id = _customer(billing)
    older = Invoice(
        customer_id=customer_id,
        project_id=None,
        number="OLD-1",
        purpose="manual",
        lines=[],
        currency="EUR",
        total=1000,
        issued_at=clock.now(),
        due_date="2030-01-01",
        buyer=invoice_buyer({}),
        seller={},
        subtotal=1000,
        tax=None,
    )
    billing.save(older)
    follower = Follower(billing, BillingLists())
    while follower.run_once():
        pass
    newer = billing.issue_invoice(customer_id, "EUR", LINE, purpose="manual")
    index = billing.repository.get(CustomerInvoices.id_for(customer_id))
    assert [str(i) for i in index.invoice_ids] == [str(older.id), newer["id"]]

    assert billing.customer_deleted(customer_id, "customer deleted") == 2
    assert billing.invoice(older.id).status == "void"


@pytest.fixture
def orders(cfg):
    from services.orders.application import Orders

    app = Orders(cfg=cfg)
    yield app
    app.close()


def _order(orders, paid: bool):
    customer_id = uuid4()
    product = orders.create_product(
        {
            "name": {"en": "Hosting"},
            "prices": {"monthly": {"EUR": 500}},
            "provisioning": {"kind": "manual", "url": None},
        }
    )
    key = f"request:{uuid4()}"
    orders.begin_order(
        key,
        False,
        {},
        customer_id,
        "EUR",
        [{"product_id": str(product.id), "billing_cycle": "monthly"}] * 2,
        None,
        "run-1",
    )
    order = orders.place_order(
        key, {"id": str(uuid4()), "total": {"amount": 1000, "currency": "EUR"}}
    )
    if paid:
        orders.invoice_paid(order.invoice_id, "order")
    return order


def _services(orders, order) -> list:
    from services.orders.domain import InvoiceOrder

    link = orders.repository.get(InvoiceOrder.id_for(order.invoice_id))
    return [orders.get_service(i) for i in link.service_ids]


def test_an_orders_voided_invoice_cancels_its_pending_services(orders):
    from services.orders.application import INVOICE_VOIDED

    waiting, paid = _order(orders, paid=False), _order(orders, paid=True)

    assert orders.invoice_voided(waiting.invoice_id) == 2
    cancelled = _services(orders, waiting)
    assert [s.status for s in cancelled] == ["cancelled", "cancelled"]
    assert [h["reason"] for h in orders.service_history(cancelled[0])] == [INVOICE_VOIDED]

    assert orders.invoice_voided(waiting.invoice_id) == 0  # heard again: nothing more
    assert orders.invoice_voided(paid.invoice_id) == 0  # running services stay
    assert [s.status for s in _services(orders, paid)] == ["active", "active"]
    assert orders.invoice_voided(uuid4()) == 0  # no order's invoice (a renewal, funds ...)
