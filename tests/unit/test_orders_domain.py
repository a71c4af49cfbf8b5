"""The orders domain without I/O: add-on prices, renewal lines, dunning decisions."""

import uuid
from datetime import date

import pytest
from marshmallow import ValidationError

from contracts.customers import ChangeProject, CreateProject
from contracts.orders import OrderItem, ProductFields
from services.orders.application import Orders
from services.orders.domain import Product, Service, UnknownAddon, add_months

BACKUP = {
    "id": str(uuid.uuid4()),
    "name": {"en": "Backup"},
    "prices": {"monthly": {"EUR": 200}},
    "setup_fee": {"EUR": 300},
}


def _product(**extra):
    return Product(
        name={"en": "VPS"},
        description={},
        prices={"monthly": {"EUR": 500}},
        setup_fee={"EUR": 1000},
        project_id=None,
        on_sale=True,
        provisioning={"kind": "manual", "url": None},
        **extra,
    )


def _service(addons=(), status="active", due="2026-03-31"):
    s = Service(
        customer_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        product_id=uuid.uuid4(),
        name="VPS",
        billing_cycle="monthly",
        price=500,
        currency="EUR",
        provisioning={"kind": "manual", "url": None},
        addons=list(addons),
    )
    s.activate(next_due_date=due, reason="paid")
    if status == "suspended":
        s.suspend(reason="x", why="staff")
    return s


def test_addon_prices_come_from_the_product_only():
    product = _product(addons=[BACKUP])
    assert product.addon_price(BACKUP["id"], "monthly", "EUR") == 200
    with pytest.raises(UnknownAddon):
        product.addon_price(BACKUP["id"], "annually", "EUR")
    with pytest.raises(UnknownAddon):
        product.addon_price(BACKUP["id"], "monthly", "USD")
    with pytest.raises(UnknownAddon):
        product.addon(str(uuid.uuid4()))
    assert _product().addons == []  # products made before add-ons existed


def test_first_invoice_and_renewal_lines_carry_each_addon():
    priced = [
        {
            "product_id": str(uuid.uuid4()),
            "name": "VPS",
            "billing_cycle": "monthly",
            "price": 500,
            "setup_fee": 1000,
            "addons": [{"id": BACKUP["id"], "name": "Backup", "price": 200, "setup_fee": 300}],
        }
    ]
    lines = Orders.invoice_lines(priced, "EUR", "en", date(2026, 3, 1))
    assert [line["unit_price"] for line in lines] == [
        {"amount": a, "currency": "EUR"} for a in (500, 200, 1000, 300)
    ]
    assert [line["description"] for line in lines] == [
        "VPS (monthly)",
        "VPS: Backup (monthly)",
        "VPS: setup fee",
        "VPS: Backup: setup fee",
    ]
    first = "Mar\u00a01,\u00a02026 – Mar\u00a031,\u00a02026"
    assert [line.get("period") for line in lines] == [first, first, None, None]
    service = _service([{"id": BACKUP["id"], "name": "Backup", "price": 200}])
    renewal = Orders.renewal_lines(service)
    # from the due date to the day before the next one
    period = "Mar\u00a031,\u00a02026 – Apr\u00a029,\u00a02026"
    assert [(line["unit_price"], line["period"]) for line in renewal] == [
        ({"amount": 500, "currency": service.currency}, period),
        ({"amount": 200, "currency": service.currency}, period),
    ]


@pytest.mark.parametrize(
    ("late_days", "status", "outcome"),
    [
        (2, "active", "active"),  # not more than 2 days
        (3, "active", "suspended"),
        (3, "suspended", "suspended"),  # nothing more to do yet
        (5, "active", "terminated"),
        (5, "suspended", "terminated"),
    ],
)
def test_dunning_follows_the_days_it_is_given(late_days, status, outcome):
    due = date(2026, 3, 31)
    s = _service(status=status, due=due.isoformat())
    s.renewal_invoiced(invoice_id=uuid.uuid4(), period_from=due.isoformat())
    today = date.fromordinal(due.toordinal() + late_days)
    changed = Orders._dun(s, today, suspend_after=2, terminate_after=4)
    assert s.status == outcome
    assert changed == (outcome != status)


def test_dunning_leaves_a_service_without_a_renewal_invoice_alone():
    s = _service(due="2026-03-31")
    assert Orders._dun(s, date(2026, 6, 1), 2, 4) is False and s.status == "active"


def test_project_days_are_checked():
    assert (
        CreateProject().load({"name": "B", "sender_email": "b@x.example"})["renew_days_before"]
        is None
    )
    with pytest.raises(ValidationError) as err:
        ChangeProject().load({"suspend_after_days": 10, "terminate_after_days": 3})
    assert "terminate_after_days" in err.value.messages
    with pytest.raises(ValidationError):
        ChangeProject().load({"renew_days_before": -1})
    assert ChangeProject().load({"renew_days_before": None}, partial=True) == {
        "renew_days_before": None
    }


def test_order_items_take_addon_ids_and_products_distinct_addons():
    item = OrderItem().load(
        {"product_id": str(uuid.uuid4()), "billing_cycle": "monthly", "addons": [BACKUP["id"]]}
    )
    assert [str(a) for a in item["addons"]] == [BACKUP["id"]]
    with pytest.raises(ValidationError):
        OrderItem().load(
            {"product_id": str(uuid.uuid4()), "billing_cycle": "monthly", "addons": ["x"]}
        )
    twice = {"id": BACKUP["id"], "name": {"en": "B"}, "prices": {"monthly": {"EUR": 1}}}
    with pytest.raises(ValidationError):
        ProductFields().load(
            {"name": {"en": "P"}, "prices": {"monthly": {"EUR": 1}}, "addons": [twice, twice]}
        )


def test_add_months_keeps_the_day_or_takes_the_months_last():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)
