"""Money is {"amount", "currency"} in every request and answer.

Each route that takes money takes that shape, refuses a bare integer (400 naming the
field) and money in another currency than the thing it applies to (400 naming
`<field>.currency`), and changes nothing when it refuses; the answers carry money
objects: an order and its items, an invoice and its lines, a correction, a refund,
a promo code, a discount, and the lists.
"""

from __future__ import annotations

import uuid

from tests.e2e.test_billing import _balance, _customer_with_account, _pay_in
from tests.e2e.test_orders import _order, _product


def eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def usd(amount: int) -> dict:
    return {"amount": amount, "currency": "USD"}


def _fields(r) -> dict:
    assert r.status_code == 400, r.text
    return r.json()["error"]["fields"]


def _is_money(value) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"amount", "currency"}
        and isinstance(value["amount"], int)
        and isinstance(value["currency"], str)
        and len(value["currency"]) == 3
    )


def _invoice_body(customer_id, *prices, **extra) -> dict:
    lines = [{"description": f"Line {n}", "unit_price": p} for n, p in enumerate(prices)]
    return {"customer_id": customer_id, "lines": lines, **extra}


def test_invoice_lines_take_money_in_the_accounts_currency(stack):
    customer, token = _customer_with_account(stack)
    admin = stack.admin_token

    def issue(body):
        return stack.http("POST", "/api/v1/staff/invoices", admin, json=body)

    # the old shape: a bare unit price and a currency beside the lines
    r = issue(dict(_invoice_body(customer["id"], 1000), currency="EUR"))
    assert {"lines.0.unit_price", "currency"} <= set(_fields(r)), r.text
    # lines in two currencies; a currency the account is not in; a fixed extra discount
    # in another currency than the invoice's
    r = issue(_invoice_body(customer["id"], eur(1000), usd(500)))
    assert set(_fields(r)) == {"lines.1.unit_price.currency"}
    r = issue(_invoice_body(customer["id"], usd(1000)))
    assert set(_fields(r)) == {"lines.0.unit_price.currency"}
    discount = {"name": "Off", "kind": "fixed", "amount": usd(100)}
    r = issue(_invoice_body(customer["id"], eur(1000), extra_discounts=[discount]))
    assert set(_fields(r)) == {"extra_discounts.0.amount.currency"}
    assert stack.http("GET", "/api/v1/client/invoices", token).json()["total"] == 0

    r = issue(
        _invoice_body(
            customer["id"],
            eur(1000),
            eur(0),
            extra_discounts=[{"name": "Off", "kind": "fixed", "amount": eur(100)}],
        )
    )
    assert r.status_code == 201, r.text
    invoice = r.json()
    # (a tax rule of the buyer's country may add tax to the total: money too)
    assert invoice["subtotal"] == eur(900) and _is_money(invoice["total"])
    assert invoice["tax"] is None or _is_money(invoice["tax"]["amount"])
    first, free = invoice["lines"]
    assert first["unit_price"] == eur(1000) and first["total"] == eur(900)
    assert first["discount"] == {"name": "Off", "amount": eur(100)}
    assert free["unit_price"] == eur(0) and free["total"] == eur(0)
    detail = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert detail["lines"] == invoice["lines"] and _is_money(detail["total"])

    [row] = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/invoices", token).json()["items"],
        what="the invoice listed",
    )
    assert row["total"] == invoice["total"] and "currency" not in row


def test_add_funds_takes_money_in_the_accounts_currency(stack):
    _customer, token = _customer_with_account(stack)

    def add(amount):
        return stack.http("POST", "/api/v1/client/account/funds", token, json={"amount": amount})

    assert set(_fields(add(2500))) == {"amount"}
    assert set(_fields(add(usd(2500)))) == {"amount.currency"}
    assert set(_fields(add(eur(99)))) == {"amount.amount"}
    assert set(_fields(add({"amount": 2500}))) == {"amount.currency"}
    assert stack.http("GET", "/api/v1/client/invoices", token).json()["total"] == 0
    r = add(eur(2500))
    assert r.status_code == 201, r.text
    assert r.json()["purpose"] == "add_funds" and _is_money(r.json()["total"])
    assert r.json()["lines"][0]["unit_price"] == eur(2500)


def test_corrections_take_signed_money_in_the_accounts_currency(stack):
    customer, token = _customer_with_account(stack)
    path = f"/api/v1/staff/customers/{customer['id']}/account/corrections"

    def correct(amount, reason="goodwill"):
        body = {"amount": amount, "reason": reason}
        return stack.http("POST", path, stack.admin_token, json=body)

    assert set(_fields(correct(500))) == {"amount"}
    assert set(_fields(correct(usd(500)))) == {"amount.currency"}
    assert set(_fields(correct(eur(0)))) == {"amount.amount"}
    assert _balance(stack, token)["balance"] == eur(0)
    r = correct(eur(500))
    assert r.status_code == 201, r.text
    assert r.json()["balance"] == eur(500)
    r = correct(eur(-200), "a fee")
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["balance"] == eur(300)
    entries = account["entries"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("correction", eur(500), eur(500)),
        ("correction", eur(-200), eur(300)),
    ]


def test_a_refund_takes_money_and_answers_the_refund(stack):
    customer, token = _customer_with_account(stack)
    admin = stack.admin_token
    r = stack.http(
        "POST", "/api/v1/staff/invoices", admin, json=_invoice_body(customer["id"], eur(1000))
    )
    invoice = r.json()
    paid = _pay_in(stack, customer["id"], invoice["total"]["amount"], invoice_id=invoice["id"])
    assert paid.status_code == 201, paid.text
    path = f"/api/v1/staff/invoices/{invoice['id']}/refund"

    def refund(amount):
        return stack.http("POST", path, admin, json={"reason": "asked", "amount": amount})

    assert set(_fields(refund(300))) == {"amount"}
    assert set(_fields(refund(usd(300)))) == {"amount.currency"}
    assert _balance(stack, token)["balance"] == eur(0)
    r = refund(eur(300))
    assert r.status_code == 201, r.text
    answer = r.json()
    # the refund itself, as GET /staff/refunds/{id} shows it
    assert answer == stack.http("GET", f"/api/v1/staff/refunds/{answer['id']}", admin).json()
    assert answer["amount"] == eur(300) and answer["status"] == "completed"
    assert answer["invoice_id"] == invoice["id"] and answer["to"] == "account"
    note = stack.http("GET", f"/api/v1/staff/credit-notes/{answer['credit_note_id']}", admin)
    assert note.json()["number"] == answer["credit_note_number"]
    assert note.json()["total"] == eur(300) and note.json()["refund_id"] == answer["id"]
    assert _balance(stack, token)["balance"] == eur(300)

    [row] = stack.wait_until(
        lambda: stack.http(
            "GET", "/api/v1/staff/refunds", admin, params={"customer_id": customer["id"]}
        ).json()["items"],
        what="the refund listed",
    )
    assert row["amount"] == eur(300) and "currency" not in row


def test_discounts_take_money_in_the_customers_currency(stack):
    customer = stack.register_customer()
    admin = stack.admin_token

    def create(**body):
        body = {"name": "Loyal", "kind": "fixed", "customer_id": customer["id"], **body}
        return stack.http("POST", "/api/v1/staff/discounts", admin, json=body)

    assert set(_fields(create(amount=300, currency="EUR"))) == {"amount", "currency"}
    assert set(_fields(create(amount=usd(300)))) == {"amount.currency"}
    assert "amount" in _fields(create(kind="percentage", percent="5", amount=eur(300)))
    r = create(amount=eur(300))
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == eur(300) and "currency" not in r.json()
    r = create(kind="percentage", percent="12.5")
    assert r.status_code == 201, r.text
    assert r.json()["percent"] == "12.5" and r.json()["amount"] is None  # a number, not money


def test_promo_codes_take_money_and_apply_in_their_currency(stack):
    product = _product(stack)
    admin = stack.admin_token
    code = f"FIX{uuid.uuid4().hex[:6].upper()}"

    def create(**body):
        body = {"code": code, "kind": "fixed", **body}
        return stack.http("POST", "/api/v1/staff/promo-codes", admin, json=body)

    assert set(_fields(create(amount=200, currency="EUR"))) == {"amount", "currency"}
    assert set(_fields(create(amount={"amount": 200}))) == {"amount.currency"}
    r = create(amount=usd(200))
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == usd(200) and "currency" not in r.json()
    # a USD promo on an order in EUR: refused naming the code, nothing created
    email = f"promo-usd-{uuid.uuid4().hex[:8]}@example.com"
    order = {
        "customer": {"email": email, "kind": "individual", "contact_person": "P", "country": "DE"},
        "items": [{"product_id": product["id"], "billing_cycle": "monthly"}],
        "promo_code": code,
    }
    r = stack.http("POST", "/api/v1/orders", json=order)
    assert set(_fields(r)) == {"promo_code"} and "USD" in r.json()["error"]["message"]
    r = stack.http("POST", "/api/v1/orders", json=dict(order, promo_code=None))
    assert r.status_code == 201 and "credentials" in r.json()  # the e-mail was still new

    percent = stack.http(
        "POST",
        "/api/v1/staff/promo-codes",
        admin,
        json={"code": f"PCT{uuid.uuid4().hex[:6]}", "kind": "percentage", "percent": "10"},
    )
    assert percent.status_code == 201, percent.text
    assert percent.json()["percent"] == "10.00" and percent.json()["amount"] is None


def test_an_order_and_its_items_answer_money(stack):
    product = _product(
        stack,
        addons=[{"name": "Backup", "prices": {"monthly": eur(200)}, "setup_fee": eur(50)}],
    )
    [addon] = product["addons"]
    email = f"money-{uuid.uuid4().hex[:8]}@example.com"
    items = [{"product_id": product["id"], "billing_cycle": "monthly", "addons": [addon["id"]]}]
    r = _order(stack, email, items)
    assert r.status_code == 201, r.text
    placed = r.json()
    token = stack.login(placed["credentials"]["username"], placed["credentials"]["password"])
    invoice = stack.http("GET", f"/api/v1/client/invoices/{placed['invoice_id']}", token).json()
    assert all(_is_money(line["unit_price"]) for line in invoice["lines"])
    assert invoice["subtotal"] == eur(500 + 200 + 1000 + 50) and _is_money(invoice["total"])

    [order] = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/orders", token).json()["items"],
        what="the order listed",
    )
    assert order["total"] == invoice["total"]
    [item] = order["items"]
    assert item["product_id"] == product["id"] and item["billing_cycle"] == "monthly"
    assert item["price"] == eur(500) and item["setup_fee"] == eur(1000)
    assert item["addons"] == [
        {"id": addon["id"], "name": "Backup", "price": eur(200), "setup_fee": eur(50)}
    ]
    assert "provisioning" not in item  # how a product is set up is not the client's


def test_payments_take_money_in_the_accounts_currency(stack):
    customer, token = _customer_with_account(stack)
    body = {"customer_id": customer["id"], "method": "cash", "reference": "r"}
    admin = stack.admin_token
    r = stack.http("POST", "/api/v1/staff/payments", admin, json=dict(body, amount=500))
    assert set(_fields(r)) == {"amount"}
    r = stack.http("POST", "/api/v1/staff/payments", admin, json=dict(body, amount=usd(500)))
    assert set(_fields(r)) == {"amount.currency"}
    assert _balance(stack, token)["balance"] == eur(0)
    r = stack.http("POST", "/api/v1/staff/payments", admin, json=dict(body, amount=eur(500)))
    assert r.status_code == 201 and r.json()["amount"] == eur(500)
