"""Add-ons: priced from the catalog per cycle and currency, invoiced as their own lines with
the service, shown on it and renewed with it."""

import uuid
from datetime import date, timedelta

from services.infra.clock import FileClock
from tests.e2e.test_orders import _move_clock_to, _order, _product, _renewals, _service

ADDONS = [
    {
        "name": {"en": "Daily backup", "fr": "Sauvegarde quotidienne"},
        "prices": {
            "monthly": {"amount": 200, "currency": "EUR"},
            "annually": {"amount": 2000, "currency": "EUR"},
        },
        "setup_fee": {"amount": 300, "currency": "EUR"},
    },
    {"name": "Extra IPv4", "prices": {"monthly": {"amount": 150, "currency": "EUR"}}},
]


def _invoice(stack, invoice_id):
    with stack.rpc() as rpc:
        return rpc.billing.get_invoice(invoice_id)


def test_addons_are_priced_from_the_catalog_and_checked_per_product(stack):
    product = _product(stack, addons=ADDONS)
    backup, ip = product["addons"]
    assert backup["name"] == {"en": "Daily backup", "fr": "Sauvegarde quotidienne"}
    assert backup["prices"]["monthly"] == {"amount": 200, "currency": "EUR"}
    assert backup["setup_fee"] == {"amount": 300, "currency": "EUR"}
    assert ip["setup_fee"] == {"amount": 0, "currency": "EUR"}
    other = _product(stack, addons=ADDONS[:1])
    email = f"addons-{uuid.uuid4().hex[:8]}@example.com"

    def refused(item, field):
        r = _order(stack, email, [item])
        assert r.status_code == 400, r.text
        assert field in r.json()["error"]["fields"], r.json()
        return r

    monthly = {"product_id": product["id"], "billing_cycle": "monthly"}
    refused(dict(monthly, addons=[str(uuid.uuid4())]), "items.0.addons.0")
    refused(dict(monthly, addons=[backup["id"], other["addons"][0]["id"]]), "items.0.addons.1")
    refused(dict(monthly, addons=[ip["id"], ip["id"]]), "items.0.addons.1")
    # the IP has no annual price
    refused(dict(monthly, billing_cycle="annually", addons=[ip["id"]]), "items.0.addons.0")
    r = _order(stack, email, [dict(monthly, addons=["not-an-id"])])
    assert r.status_code == 400
    assert r.json()["error"]["fields"]["items.0.addons.0"] == ["Not a valid UUID."]

    # a price sent with the item changes nothing
    r = _order(stack, email, [dict(monthly, addons=[backup["id"], ip["id"]], price=1)])
    assert r.status_code == 201 and "credentials" in r.json(), r.text  # nothing made before
    order = r.json()
    invoice = _invoice(stack, order["invoice_id"])
    amounts = sorted(line["unit_price"]["amount"] for line in invoice["lines"])
    assert amounts == [150, 200, 300, 500, 1000]
    assert invoice["total"]["amount"] == 2150
    assert any("Daily backup" in line["description"] for line in invoice["lines"])


def test_addons_are_shown_on_the_service_and_renewed_with_it(stack):
    product = _product(stack, addons=ADDONS)
    backup, ip = product["addons"]
    order = _order(
        stack,
        f"renew-addons-{uuid.uuid4().hex[:8]}@example.com",
        [{"product_id": product["id"], "billing_cycle": "monthly", "addons": [ip["id"]]}],
    ).json()
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": order["customer_id"],
            "amount": {"amount": 1650, "currency": "EUR"},
            "method": "cash",
            "reference": "addons",
            "invoice_id": order["invoice_id"],
        },
    )
    assert r.status_code == 201, r.text
    service = stack.wait_until(
        lambda: (s := _service(stack, order["customer_id"])) and s["status"] == "active" and s,
        what="active",
    )
    assert service["addons"] == [
        {"id": ip["id"], "name": "Extra IPv4", "price": {"amount": 150, "currency": "EUR"}}
    ]
    token = stack.login(order["credentials"]["username"], order["credentials"]["password"])
    [listed] = stack.http("GET", "/api/v1/client/services", token).json()["items"]
    assert [a["id"] for a in listed["addons"]] == [ip["id"]]

    # the catalog changes later: the service keeps what was ordered
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/products/{product['id']}",
        stack.admin_token,
        json={
            "addons": [
                {
                    "id": ip["id"],
                    "name": "IPv4",
                    "prices": {"monthly": {"amount": 999, "currency": "EUR"}},
                },
                {"name": "Monitoring", "prices": {"monthly": {"amount": 50, "currency": "EUR"}}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    kept, added = r.json()["addons"]
    assert kept["id"] == ip["id"] and kept["name"] == {"en": "IPv4"}
    assert added["id"] not in (ip["id"], backup["id"])
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/products/{product['id']}",
        stack.admin_token,
        json={"addons": [{"prices": {"monthly": {"amount": 1, "currency": "EUR"}}}]},
    )
    assert r.status_code == 400 and "addons.0.name" in r.json()["error"]["fields"], r.text

    due = date.fromisoformat(service["next_due_date"])
    try:
        _move_clock_to(stack, due - timedelta(days=6))
        [renewal] = stack.wait_until(
            lambda: _renewals(stack, order["customer_id"]), what="the renewal"
        )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    assert renewal["total"]["amount"] == 650  # 500 and the IP at the price ordered
    lines = _invoice(stack, renewal["id"])["lines"]
    assert sorted(line["unit_price"]["amount"] for line in lines) == [150, 500]
