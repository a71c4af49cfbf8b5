"""Billing through the gateway: the personal account ledger, invoices, payments."""

import uuid

import eventlet

from tests.staff_api import client_with_account as _customer_with_account
from tests.staff_api import issue_invoice


def _pay_in(stack, customer_id, amount, key=None, invoice_id=None):
    body = {
        "customer_id": customer_id,
        "amount": {"amount": amount, "currency": "EUR"},
        "method": "bank_transfer",
        "reference": f"TX-{uuid.uuid4().hex[:8]}",
    }
    if invoice_id:
        body["invoice_id"] = invoice_id
    headers = {"Idempotency-Key": key} if key else {}
    return stack.http(
        "POST", "/api/v1/staff/payments", stack.admin_token, json=body, headers=headers
    )


def _eur(amount):
    return {"amount": amount, "currency": "EUR"}


def _invoice(stack, customer_id, amount, description="Hosting plan"):
    return issue_invoice(stack, customer_id, description, amount)


def _two_more_scheduler_runs(stack):
    """Until billing's scheduler finished two runs more than when this was called (a run
    under way then counts once): one whole run began after it was called."""
    labels = {"job": "run_schedule", "outcome": "ok"}
    since = stack.metric("billing", "hostledger_scheduler_runs_total", **labels)
    stack.wait_metric("billing", "hostledger_scheduler_runs_total", since + 2, **labels)


def _balance(stack, token, at=None):
    params = {"at": at} if at else None
    r = stack.http("GET", "/api/v1/client/account", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_client_story_pay_from_balance(stack):
    customer, token = _customer_with_account(stack)
    before_payment = _balance(stack, token)["opened_at"]
    r = _pay_in(stack, customer["id"], 5000)
    assert r.status_code == 201, r.text
    payment = r.json()
    assert _balance(stack, token)["balance"] == {"amount": 5000, "currency": "EUR"}

    invoice = _invoice(stack, customer["id"], 1999)
    assert invoice["status"] == "unpaid" and invoice["total"]["amount"] == 1999
    assert invoice["buyer"]["email"] == customer["email"]
    assert invoice["lines"][0]["unit_price"] == {"amount": 1999, "currency": "EUR"}
    detail = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert detail["number"] == invoice["number"] and detail["due_date"]
    stack.wait_until(
        lambda: (
            [i["id"] for i in stack.http("GET", "/api/v1/client/invoices", token).json()["items"]]
            == [invoice["id"]]
        ),
        what="invoice list",
    )

    after_payment = _balance(stack, token)["entries"][-1]["at"]
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 3001
    assert [e["kind"] for e in account["entries"]] == ["payment", "invoice_payment"]
    assert sum(e["amount"]["amount"] for e in account["entries"]) == 3001

    # as it stood then
    assert _balance(stack, token, at=before_payment)["balance"]["amount"] == 0
    then = _balance(stack, token, at=after_payment)
    assert then["balance"]["amount"] == 5000 and len(then["entries"]) == 1

    # paying again is refused, and changes nothing
    again = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token)
    assert again.status_code == 409
    assert _balance(stack, token)["balance"]["amount"] == 3001

    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/expenses", token).json()["total"] == 1,
        what="expenses",
    )
    [expense] = stack.http("GET", "/api/v1/client/expenses", token).json()["items"]
    assert expense["amount"] == {"amount": 1999, "currency": "EUR"}
    assert expense["reference"] == invoice["number"]
    [received] = stack.http("GET", "/api/v1/client/payments", token).json()["items"]
    assert received["id"] == payment["id"]
    staff_view = stack.http(
        "GET", "/api/v1/staff/invoices", stack.admin_token, params={"customer_id": customer["id"]}
    ).json()
    assert [i["status"] for i in staff_view["items"]] == ["paid"]


def test_not_enough_balance_is_409_and_changes_nothing(stack):
    customer, token = _customer_with_account(stack)
    _pay_in(stack, customer["id"], 500)
    invoice = _invoice(stack, customer["id"], 501)
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert _balance(stack, token)["balance"]["amount"] == 500
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()["status"]
        == "unpaid"
    )


def test_idempotency_key(stack):
    customer, token = _customer_with_account(stack)
    key = uuid.uuid4().hex
    body = {
        "customer_id": customer["id"],
        "amount": {"amount": 700, "currency": "EUR"},
        "method": "cash",
        "reference": "R-1",
    }
    first = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json=body,
        headers={"Idempotency-Key": key},
    )
    second = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json=body,
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == 201 and second.status_code == 201
    assert first.json() == second.json()
    other = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json=dict(body, reference="R-2"),
        headers={"Idempotency-Key": key},
    )
    assert other.status_code == 409
    assert _balance(stack, token)["balance"]["amount"] == 700


def test_payment_to_an_invoice_leaves_the_excess_on_the_account(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 1200)
    r = _pay_in(stack, customer["id"], 2000, invoice_id=invoice["id"])
    assert r.status_code == 201, r.text
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()["status"]
        == "paid"
    )
    assert _balance(stack, token)["balance"]["amount"] == 800
    # a paid invoice cannot be paid again by a staff payment either
    assert _pay_in(stack, customer["id"], 2000, invoice_id=invoice["id"]).status_code == 409
    assert _balance(stack, token)["balance"]["amount"] == 800
    # the money came onto the account (then paid the invoice): FundsAdded says so, once
    [added] = stack.wait_until(
        lambda: [
            e["payload"]
            for e in stack.published("billing")
            if e["type"] == "FundsAdded" and e["payload"]["customer_id"] == customer["id"]
        ],
        what="FundsAdded",
    )
    assert (added["amount"], added["balance_after"], added["kind"]) == (2000, 2000, "payment")
    assert added["currency"] == "EUR"


def test_twenty_concurrent_pays_with_balance_for_one(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 1000)
    _pay_in(stack, customer["id"], 1000)
    pool = eventlet.GreenPool(20)
    codes = list(
        pool.imap(
            lambda _: (
                stack.http(
                    "POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token
                ).status_code
            ),
            range(20),
        )
    )
    assert sorted(codes) == [200] + [409] * 19
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 0
    assert [e["kind"] for e in account["entries"]] == ["payment", "invoice_payment"]


def test_concurrent_pays_of_different_invoices_never_overspend(stack):
    customer, token = _customer_with_account(stack)
    invoices = [_invoice(stack, customer["id"], 300) for _ in range(10)]
    _pay_in(stack, customer["id"], 1000)  # enough for three
    pool = eventlet.GreenPool(10)
    codes = list(
        pool.imap(
            lambda inv: (
                stack.http("POST", f"/api/v1/client/invoices/{inv['id']}/pay", token).status_code
            ),
            invoices,
        )
    )
    assert codes.count(200) == 3 and codes.count(409) == 7
    assert _balance(stack, token)["balance"]["amount"] == 100


def test_concurrent_issuing_gives_gapless_unique_numbers(stack):
    customers = [_customer_with_account(stack)[0] for _ in range(3)]
    pool = eventlet.GreenPool(12)
    issued = list(pool.imap(lambda i: _invoice(stack, customers[i % 3]["id"], 100 + i), range(36)))
    numbers = sorted(int(i["number"]) for i in issued)
    assert len(set(numbers)) == 36
    assert numbers == list(range(numbers[0], numbers[0] + 36))


def test_tenant_isolation_on_billing_routes(stack):
    a, token_a = _customer_with_account(stack)
    b, _ = _customer_with_account(stack)
    invoice_b = _invoice(stack, b["id"], 100)
    _pay_in(stack, a["id"], 1000)
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{invoice_b['id']}", token_a).status_code == 404
    )
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice_b['id']}/pay", token_a)
    assert r.status_code == 404
    assert _balance(stack, token_a)["balance"]["amount"] == 1000
    for name in ("invoices", "payments", "expenses"):
        items = stack.http("GET", f"/api/v1/client/{name}", token_a).json()["items"]
        assert all(i["customer_id"] == a["id"] for i in items)
    # a client cannot use the staff lists to look at others
    assert stack.http("GET", "/api/v1/staff/invoices", token_a).status_code == 403


def test_add_funds_invoice_and_bad_input(stack):
    customer, token = _customer_with_account(stack)
    r = stack.http("POST", "/api/v1/client/account/funds", token, json={"amount": _eur(2500)})
    assert r.status_code == 201, r.text
    assert r.json()["purpose"] == "add_funds" and r.json()["total"]["amount"] == 2500
    r = stack.http(
        "POST",
        "/api/v1/client/account/funds",
        token,
        json={"amount": {"amount": 12.5, "currency": "EUR"}},
    )
    assert r.status_code == 400 and "amount.amount" in r.json()["error"]["fields"]
    r = stack.http("GET", "/api/v1/client/account", token, params={"at": "last tuesday"})
    assert r.status_code == 400 and "at" in r.json()["error"]["fields"]
    r = _pay_in(stack, customer["id"], -5)
    assert r.status_code == 400


def test_invoice_pdf_in_the_customers_language(stack):
    import io

    from pypdf import PdfReader

    customer = stack.register_customer(language="ru", contact_person="Иван Петров")
    creds = customer["credentials"]
    token = stack.login(creds["username"], creds["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="account",
    )
    invoice = _invoice(stack, customer["id"], 1999, description="Хостинг «Старт»")
    r = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}/pdf", token)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("attachment")
    text = PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    assert f"Счёт {invoice['number']}" in text
    assert "Хостинг «Старт»" in text and "Иван Петров" in text
    assert "19,99" in text
    r = stack.http(
        "GET",
        f"/api/v1/staff/invoices/{invoice['id']}/pdf",
        stack.admin_token,
        params={"language": "fr"},
    )
    assert "Facture" in PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    other = stack.register_customer()
    other_token = stack.login(other["credentials"]["username"], other["credentials"]["password"])
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}/pdf", other_token).status_code
        == 404
    )


def test_tax_rule_applies_by_buyer_country_and_date(stack):
    country = "FR"
    customer = stack.register_customer(country=country)
    creds = customer["credentials"]
    token = stack.login(creds["username"], creds["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="account",
    )
    # an expired rule and the current one
    for body in (
        {
            "name": "TVA old",
            "country": country,
            "rate": "19.6",
            "inclusive": False,
            "valid_from": "2000-01-01T00:00:00Z",
            "valid_to": "2014-01-01T00:00:00Z",
        },
        {
            "name": "TVA",
            "country": country,
            "rate": "20",
            "inclusive": False,
            "valid_from": "2014-01-01T00:00:00Z",
        },
    ):
        r = stack.http("POST", "/api/v1/staff/tax-rules", stack.admin_token, json=body)
        assert r.status_code == 201, r.text
    invoice = _invoice(stack, customer["id"], 1999)
    assert invoice["subtotal"]["amount"] == 1999
    assert invoice["tax"]["name"] == "TVA" and invoice["tax"]["amount"]["amount"] == 400
    assert invoice["total"]["amount"] == 2399
    other = stack.register_customer(country="US")
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", f"/api/v1/staff/customers/{other['id']}/account", stack.admin_token
            ).status_code
            == 200
        ),
        what="account",
    )
    untaxed = _invoice(stack, other["id"], 1999)
    assert untaxed["tax"] is None and untaxed["total"]["amount"] == 1999
    r = stack.http(
        "POST",
        "/api/v1/staff/tax-rules",
        stack.admin_token,
        json={"name": "x", "country": "France", "rate": 20.5, "inclusive": "maybe"},
    )
    assert r.status_code == 400
    assert {"country", "inclusive"} <= set(r.json()["error"]["fields"])


def test_refund_returns_the_money_to_the_account(stack):
    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 800)
    _pay_in(stack, customer["id"], 800, invoice_id=invoice["id"])
    assert _balance(stack, token)["balance"]["amount"] == 0
    r = stack.http(
        "POST",
        f"/api/v1/staff/invoices/{invoice['id']}/refund",
        stack.admin_token,
        json={"reason": "service not delivered"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "completed" and r.json()["amount"] == _eur(800)
    assert (
        stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()["status"]
        == "refunded"
    )
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 800
    assert account["entries"][-1]["kind"] == "refund"
    again = stack.http(
        "POST",
        f"/api/v1/staff/invoices/{invoice['id']}/refund",
        stack.admin_token,
        json={"reason": "twice"},
    )
    assert again.status_code == 409


def test_corrections_need_a_reason_and_keep_the_balance_explainable(stack):
    customer, token = _customer_with_account(stack)
    path = f"/api/v1/staff/customers/{customer['id']}/account/corrections"
    r = stack.http("POST", path, stack.admin_token, json={"amount": _eur(500)})
    assert r.status_code == 400 and "reason" in r.json()["error"]["fields"]
    r = stack.http(
        "POST", path, stack.admin_token, json={"amount": _eur(500), "reason": "goodwill"}
    )
    assert r.status_code == 201, r.text
    r = stack.http(
        "POST", path, stack.admin_token, json={"amount": _eur(-700), "reason": "too much"}
    )
    assert r.status_code == 409
    r = stack.http("POST", path, stack.admin_token, json={"amount": _eur(-200), "reason": "fee"})
    assert r.status_code == 201
    account = _balance(stack, token)
    assert account["balance"]["amount"] == 300
    assert [(e["kind"], e["amount"]["amount"], e["reason"]) for e in account["entries"]] == [
        ("correction", 500, "goodwill"),
        ("correction", -200, "fee"),
    ]
    _, support = stack.staff_member("support")
    assert (
        stack.http("POST", path, support, json={"amount": _eur(1), "reason": "nope"}).status_code
        == 403
    )


def test_affiliate_commission_matures_on_the_clock(stack):
    from datetime import timedelta

    from services.infra.clock import FileClock

    program = f"partners-{uuid.uuid4().hex[:6]}"
    r = stack.http(
        "POST",
        "/api/v1/staff/affiliate-programs",
        stack.admin_token,
        json={"name": program, "percent": "10", "maturity_days": 30},
    )
    assert r.status_code == 201, r.text
    program_id = r.json()["id"]
    referrer, referrer_token = _customer_with_account(stack)
    customer, token = _customer_with_account(stack)
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"referrer_id": referrer["id"], "affiliate_program": program_id},
    )
    assert r.status_code == 200, r.text
    with stack.rpc() as rpc:
        events = stack.published("customers")
        [update] = [
            e
            for e in events
            if e["type"] == "CustomerUpdated" and e["aggregate_id"] == customer["id"]
        ]
        stack.wait_until(
            lambda: rpc.billing.consumer_stats()["customers"]["position"] >= update["position"],
            what="billing to hear of the referral",
        )
    _pay_in(stack, customer["id"], 2000)
    invoice = _invoice(stack, customer["id"], 1500)
    assert (
        stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token).status_code == 200
    )

    def commissions():
        return stack.http("GET", "/api/v1/client/commissions", referrer_token).json()["items"]

    [pending] = stack.wait_until(commissions, what="the commission")
    assert pending["status"] == "pending" and pending["amount"]["amount"] == 150
    assert pending["referred_id"] == customer["id"]
    _two_more_scheduler_runs(stack)  # a whole run after the commission: nothing matures yet
    assert _balance(stack, referrer_token)["balance"]["amount"] == 0

    FileClock.set_offset(stack.clock_file, timedelta(days=31))
    try:
        with stack.rpc() as rpc:
            stack.wait_until(
                lambda: rpc.billing.get_account(referrer["id"], "EUR")["balance"]["amount"] == 150,
                what="the commission credited",
            )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    account = _balance(stack, referrer_token)
    assert account["entries"][-1]["kind"] == "commission"
    stack.wait_until(lambda: commissions()[0]["status"] == "credited", what="credited status")
    _two_more_scheduler_runs(stack)
    assert _balance(stack, referrer_token)["balance"]["amount"] == 150  # credited once


def test_unpaid_invoice_is_reminded_then_overdue_once_each_on_the_clock(stack):
    from datetime import timedelta

    from services.infra.clock import FileClock

    customer, token = _customer_with_account(stack)
    invoice = _invoice(stack, customer["id"], 400)  # due in 14 days
    paid = _invoice(stack, customer["id"], 100)
    _pay_in(stack, customer["id"], 100, invoice_id=paid["id"])

    def events(kind):
        return [
            e
            for e in stack.published("billing")
            if e["type"] == kind and e["payload"]["customer_id"] == customer["id"]
        ]

    try:
        FileClock.set_offset(stack.clock_file, timedelta(days=12))
        [reminder] = stack.wait_until(lambda: events("InvoiceDueSoon"), what="the reminder")
        assert events("InvoiceOverdue") == []
        FileClock.set_offset(stack.clock_file, timedelta(days=20))
        [overdue] = stack.wait_until(lambda: events("InvoiceOverdue"), what="InvoiceOverdue")
        _two_more_scheduler_runs(stack)  # a whole run after the overdue one changes nothing
        assert len(events("InvoiceOverdue")) == 1 and len(events("InvoiceDueSoon")) == 1
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    for event in (reminder, overdue):
        assert event["payload"]["invoice_id"] == invoice["id"]
        assert event["payload"]["number"] == invoice["number"]
    assert stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()["overdue"]


def test_discounts_of_the_customer_and_its_groups_apply_per_line(stack):
    customer, _ = _customer_with_account(stack)
    group = stack.http(
        "POST",
        "/api/v1/staff/customer-groups",
        stack.admin_token,
        json={"name": f"resellers-{uuid.uuid4().hex[:6]}"},
    ).json()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": [group["id"]]},
    )
    assert r.status_code == 200, r.text
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Discounted VPS", "prices": {"monthly": _eur(2000)}},
    )
    assert r.status_code == 201, r.text
    product = r.json()["id"]  # ids in bodies must exist
    for body in (
        {"name": "Resellers 10%", "kind": "percentage", "percent": "10", "group_id": group["id"]},
        {
            "name": "Loyalty 3 EUR",
            "kind": "fixed",
            "amount": _eur(300),
            "customer_id": customer["id"],
            "product_ids": [product],
        },
        {
            "name": "Expired 50%",
            "kind": "percentage",
            "percent": "50",
            "customer_id": customer["id"],
            "valid_to": "2020-01-01T00:00:00Z",
        },
    ):
        r = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=body)
        assert r.status_code == 201, r.text

    def issue():
        r = stack.http(
            "POST",
            "/api/v1/staff/invoices",
            stack.admin_token,
            json={
                "customer_id": customer["id"],
                "lines": [
                    {"description": "VPS", "product_id": product, "unit_price": _eur(2000)},
                    {"description": "Backup", "unit_price": _eur(1000)},
                ],
            },
        )
        assert r.status_code == 201, r.text
        return r.json()

    # the discount list is a read model: wait until these three are listed
    def listed():
        items = stack.http(
            "GET", "/api/v1/staff/discounts", stack.admin_token, params={"page_size": 200}
        ).json()["items"]
        return (
            len(
                [
                    d
                    for d in items
                    if d["customer_id"] == customer["id"] or d["group_id"] == group["id"]
                ]
            )
            == 3
        )

    stack.wait_until(listed, what="discounts listed")
    invoice = issue()
    vps, backup = invoice["lines"]
    assert vps["discount"] == {
        "name": "Loyalty 3 EUR",
        "amount": {"amount": 300, "currency": "EUR"},
    }
    assert vps["total"]["amount"] == 1700
    assert backup["discount"]["name"] == "Resellers 10%"
    assert backup["total"]["amount"] == 900
    assert invoice["subtotal"]["amount"] == 2600


def test_project_seller_on_invoices_and_credit_allowance(stack):
    tag = uuid.uuid4().hex[:6]
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={
            "name": f"Brand {tag}",
            "sender_email": "billing@brand.example",
            "allow_credit": True,
            "seller": {
                "legal_name": f"Brand {tag} SAS",
                "address": "1 rue de Paris",
                "country": "FR",
                "tax_id": "FR123",
            },
        },
    )
    assert r.status_code == 201, r.text
    project = r.json()
    created = next(
        e
        for e in stack.published("customers")
        if e["type"] == "ProjectCreated" and e["aggregate_id"] == project["id"]
    )
    with stack.rpc() as rpc:
        stack.wait_until(
            lambda: rpc.billing.consumer_stats()["customers"]["position"] >= created["position"],
            what="billing to hear of the project",
        )
    customer, token = _customer_with_account_in(stack, project["id"])
    invoice = _invoice(stack, customer["id"], 700)
    assert invoice["seller"]["legal_name"] == f"Brand {tag} SAS"
    assert invoice["seller"]["tax_id"] == "FR123"
    assert invoice["number"].startswith(project["id"][:4].upper())
    # this project lets its customers owe: paying with no balance is allowed
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token)
    assert r.status_code == 200, r.text
    assert _balance(stack, token)["balance"]["amount"] == -700


def _customer_with_account_in(stack, project_id):
    return _customer_with_account(stack, project_id=project_id)


def test_invoice_creation_takes_an_idempotency_key(stack):
    customer, token = _customer_with_account(stack)
    key = uuid.uuid4().hex
    body = {
        "customer_id": customer["id"],
        "lines": [{"description": "Domain", "unit_price": _eur(1200)}],
    }
    headers = {"Idempotency-Key": key}
    first = stack.http(
        "POST", "/api/v1/staff/invoices", stack.admin_token, json=body, headers=headers
    )
    again = stack.http(
        "POST", "/api/v1/staff/invoices", stack.admin_token, json=body, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json=dict(body, lines=[{"description": "x", "unit_price": _eur(1)}]),
        headers=headers,
    )
    assert other.status_code == 409
    funds = [
        stack.http(
            "POST",
            "/api/v1/client/account/funds",
            token,
            json={"amount": _eur(500)},
            headers={"Idempotency-Key": key},
        ).json()["id"]
        for _ in range(2)
    ]
    assert funds[0] == funds[1] != first.json()["id"]
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/invoices", token).json()["total"] == 2,
        what="invoice list",
    )


def test_account_entries_come_a_page_at_a_time_with_the_balance_after_each(stack):
    customer, token = _customer_with_account(stack)
    for amount in (100, 200, 300, 400, 500):
        assert _pay_in(stack, customer["id"], amount).status_code == 201
    first = stack.http(
        "GET", "/api/v1/client/account", token, params={"page": 1, "page_size": 2}
    ).json()
    assert first["balance"]["amount"] == 1500  # the balance of now, whatever the page
    assert (first["total"], first["page"], first["page_size"]) == (5, 1, 2)
    pages = [first["entries"]] + [
        stack.http(
            "GET", "/api/v1/client/account", token, params={"page": page, "page_size": 2}
        ).json()["entries"]
        for page in (2, 3, 4)
    ]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    entries = [e for p in pages for e in p]
    assert [e["amount"]["amount"] for e in entries] == [100, 200, 300, 400, 500]
    assert [e["balance_after"]["amount"] for e in entries] == [100, 300, 600, 1000, 1500]
    assert entries[0]["actor"]["kind"] == "staff"
    # as it stood after the third entry, paged too
    then = stack.http(
        "GET",
        "/api/v1/staff/customers/" + customer["id"] + "/account",
        stack.admin_token,
        params={"at": entries[2]["at"], "page": 2, "page_size": 2},
    ).json()
    assert then["balance"]["amount"] == 600 and then["total"] == 3
    assert [e["id"] for e in then["entries"]] == [entries[2]["id"]]
    r = stack.http("GET", "/api/v1/client/account", token, params={"page_size": 500})
    assert r.status_code == 400 and "page_size" in r.json()["error"]["fields"]
