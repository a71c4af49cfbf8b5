"""Every answer matches the OpenAPI document: the stories of a client and of staff, with
real data (tickets with messages, paid and refunded invoices, orders and services), each
answer checked against the schema its operation documents. The fuzz reaches lists and
creations; it rarely reaches an object that exists, so the detail answers are checked here.
"""

from __future__ import annotations

import re
import uuid

import pytest
from openapi_schema_validator import OAS30Validator

from tests.e2e.test_billing import _customer_with_account, _pay_in
from tests.e2e.test_helpdesk import _department, _open


@pytest.fixture(scope="module")
def check(stack):
    document = stack.http("GET", "/api/v1/openapi.json").json()
    templates = [
        (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"), path)
        for path in document["paths"]
    ]
    seen: set = set()

    def check(r, method: str = "GET") -> dict:
        assert r.status_code < 300, r.text
        path = r.request.path_url.split("?")[0]
        matches = [t for rx, t in templates if rx.match(path)]
        # the most specific template: the one with the fewest parameters
        template = min(matches, key=lambda t: t.count("{"))
        operation = document["paths"][template][method.lower()]
        response = operation["responses"][str(r.status_code)]
        schema = response["content"]["application/json"]["schema"]
        body = r.json()
        validator = OAS30Validator(
            {**schema, "components": document["components"]},
            format_checker=OAS30Validator.FORMAT_CHECKER,
        )
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, f"{method} {template} {r.status_code}:\n" + "\n".join(errors[:10])
        seen.add((method, template))
        return body

    check.seen = seen
    return check


def test_a_client_and_its_account(stack, check):
    customer, token = _customer_with_account(stack)
    admin = stack.admin_token
    check(stack.http("GET", "/api/v1/me", token))
    check(stack.http("GET", "/api/v1/me", admin))
    check(stack.http("GET", "/api/v1/client/profile", token))
    phone = {"phone": "+4930123456"}
    check(stack.http("PATCH", "/api/v1/client/profile", token, json=phone), "PATCH")
    check(stack.http("GET", "/api/v1/client/notification-settings", token))
    check(
        stack.http("PUT", "/api/v1/client/notification-settings", token, json={"news": False}),
        "PUT",
    )
    name = f"u{uuid.uuid4().hex[:8]}"
    user = {"username": name, "email": f"{name}@example.com", "name": "Una"}
    user["permissions"] = ["support"]
    added = check(stack.http("POST", "/api/v1/client/users", token, json=user), "POST")
    check(stack.http("GET", "/api/v1/client/users", token))
    payer = {"kind": "company", "name": "Acme", "address": "1 Road", "country": "DE"}
    check(stack.http("POST", "/api/v1/client/payers", token, json=payer), "POST")
    check(stack.http("GET", "/api/v1/client/payers", token))
    check(stack.http("DELETE", f"/api/v1/client/users/{added['id']}", token), "DELETE")

    check(stack.http("GET", f"/api/v1/staff/customers/{customer['id']}", admin))
    edited = {"note": "calls often", "attitude": "good", "referral_source": "a friend"}
    check(
        stack.http("PATCH", f"/api/v1/staff/customers/{customer['id']}", admin, json=edited),
        "PATCH",
    )
    check(stack.http("GET", "/api/v1/staff/customers", admin))
    acting = check(
        stack.http("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", admin), "POST"
    )
    check(stack.http("GET", "/api/v1/me", acting["token"]))
    check(stack.http("GET", f"/api/v1/staff/customers/{customer['id']}/impersonations", admin))
    check(stack.http("GET", "/api/v1/staff/staff", admin))


def test_directories_and_billing_settings(stack, check):
    admin = stack.admin_token
    group = check(
        stack.http("POST", "/api/v1/staff/customer-groups", admin, json={"name": "Resellers"}),
        "POST",
    )
    project = {
        "name": f"Brand {uuid.uuid4().hex[:6]}",
        "sender_email": "billing@brand.example",
        "seller": {"legal_name": "Brand GmbH", "country": "DE"},
    }
    project = check(stack.http("POST", "/api/v1/staff/projects", admin, json=project), "POST")
    check(
        stack.http(
            "PATCH",
            f"/api/v1/staff/projects/{project['id']}",
            admin,
            json={"renew_days_before": 5},
        ),
        "PATCH",
    )
    discount = {"name": "Ten", "kind": "percentage", "percent": "10", "group_id": group["id"]}
    check(stack.http("POST", "/api/v1/staff/discounts", admin, json=discount), "POST")
    for name in ("customer-groups", "projects", "discounts"):
        check(stack.http("GET", f"/api/v1/staff/{name}", admin))
    program = {"name": "Partners", "percent": "12.5", "maturity_days": 30}
    check(stack.http("POST", "/api/v1/staff/affiliate-programs", admin, json=program), "POST")
    check(stack.http("GET", "/api/v1/staff/affiliate-programs", admin))
    # a country no other test bills in: the session stack's other invoices stay untaxed
    rule = {"name": "MT VAT", "country": "MT", "rate": "18", "inclusive": False}
    check(stack.http("POST", "/api/v1/staff/tax-rules", admin, json=rule), "POST")
    check(stack.http("GET", "/api/v1/staff/tax-rules", admin))


def test_invoices_payments_and_a_refund(stack, check):
    customer, token = _customer_with_account(stack)
    admin = stack.admin_token
    check(_pay_in(stack, customer["id"], 5000), "POST")
    line = {"description": "Hosting", "unit_price": {"amount": 1999, "currency": "EUR"}}
    body = {"customer_id": customer["id"], "lines": [line]}
    invoice = check(stack.http("POST", "/api/v1/staff/invoices", admin, json=body), "POST")
    check(stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token))
    check(stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token), "POST")
    refund = check(
        stack.http(
            "POST",
            f"/api/v1/staff/invoices/{invoice['id']}/refund",
            admin,
            json={"reason": "not used", "amount": {"amount": 500, "currency": "EUR"}},
        ),
        "POST",
    )
    check(stack.http("GET", f"/api/v1/staff/refunds/{refund['id']}", admin))
    note_id = refund["credit_note_id"]
    check(stack.http("GET", f"/api/v1/staff/credit-notes/{note_id}", admin))
    check(stack.http("GET", f"/api/v1/client/credit-notes/{note_id}", token))
    correction = {"amount": {"amount": -100, "currency": "EUR"}, "reason": "a fee"}
    check(
        stack.http(
            "POST",
            f"/api/v1/staff/customers/{customer['id']}/account/corrections",
            admin,
            json=correction,
        ),
        "POST",
    )
    query = {"customer_id": customer["id"]}

    def listed(path, who):
        return stack.http("GET", path, who, params=query if who == admin else None).json()

    for name in ("invoices", "payments", "expenses"):
        stack.wait_until(lambda n=name: listed(f"/api/v1/client/{n}", token)["items"], what=name)
        check(stack.http("GET", f"/api/v1/client/{name}", token))
        check(stack.http("GET", f"/api/v1/staff/{name}", admin, params=query))
    stack.wait_until(lambda: listed("/api/v1/staff/refunds", admin)["items"], what="refunds")
    check(stack.http("GET", "/api/v1/staff/refunds", admin, params=query))
    stack.wait_until(lambda: listed("/api/v1/client/credit-notes", token)["items"], what="notes")
    check(stack.http("GET", "/api/v1/client/credit-notes", token))
    check(stack.http("GET", "/api/v1/staff/credit-notes", admin, params=query))
    check(stack.http("GET", f"/api/v1/staff/customers/{customer['id']}/account", admin))
    check(stack.http("GET", "/api/v1/client/account", token))
    funds = stack.http(
        "POST",
        "/api/v1/client/account/funds",
        token,
        json={"amount": {"amount": 1000, "currency": "EUR"}},
    )
    check(funds, "POST")


def test_products_orders_and_services(stack, check):
    admin = stack.admin_token
    body = {"name": "VPS", "prices": {"monthly": {"amount": 500, "currency": "EUR"}}}
    product = check(stack.http("POST", "/api/v1/staff/products", admin, json=body), "POST")
    person = {"email": f"o-{uuid.uuid4().hex[:8]}@example.com", "kind": "individual"}
    person.update(contact_person="Olga Buyer", country="DE")
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    order = stack.http("POST", "/api/v1/orders", json={"customer": person, "items": [item]})
    order = check(order, "POST")
    query = {"customer_id": order["customer_id"]}
    [invoice] = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/staff/invoices", admin, params=query).json()["items"],
        what="the order's invoice",
    )
    paid = {"customer_id": order["customer_id"], "method": "cash", "reference": "first"}
    paid.update(amount=invoice["total"], invoice_id=order["invoice_id"])
    check(stack.http("POST", "/api/v1/staff/payments", admin, json=paid), "POST")
    check(stack.http("GET", f"/api/v1/staff/products/{product['id']}", admin))
    check(
        stack.http(
            "PATCH", f"/api/v1/staff/products/{product['id']}", admin, json={"on_sale": True}
        ),
        "PATCH",
    )
    check(stack.http("GET", "/api/v1/staff/products", admin))
    check(stack.http("GET", "/api/v1/catalog", params={"language": "fr"}))
    promo = {"code": f"P{uuid.uuid4().hex[:8]}", "kind": "percentage", "percent": "5"}
    check(stack.http("POST", "/api/v1/staff/promo-codes", admin, json=promo), "POST")
    for name in ("orders", "services"):
        stack.wait_until(
            lambda n=name: stack.http("GET", f"/api/v1/staff/{n}", admin, params=query).json()[
                "items"
            ],
            what=name,
        )
        check(stack.http("GET", f"/api/v1/staff/{name}", admin, params=query))
    service = stack.http("GET", "/api/v1/staff/services", admin, params=query).json()["items"][0]
    check(stack.http("GET", "/api/v1/staff/provisioning", admin))
    check(
        stack.http(
            "POST",
            f"/api/v1/staff/services/{service['id']}/suspend",
            admin,
            json={"reason": "a check"},
        ),
        "POST",
    )


def test_tickets_and_messages(stack, check):
    admin = stack.admin_token
    customer, token = _customer_with_account(stack)
    department = _department(stack)
    check(stack.http("GET", f"/api/v1/staff/departments/{department['id']}", admin))
    check(
        stack.http(
            "PATCH",
            f"/api/v1/staff/departments/{department['id']}",
            admin,
            json={"business_hours": {"days": [0, 1], "opens": "08:00"}},
        ),
        "PATCH",
    )
    check(stack.http("GET", "/api/v1/staff/departments", admin))
    check(stack.http("GET", "/api/v1/client/departments", token))
    ticket = _open(stack, token, department)
    check(stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", token))
    reply = {"body": "Looking into it.", "internal": False}
    check(
        stack.http("POST", f"/api/v1/staff/tickets/{ticket['id']}/replies", admin, json=reply),
        "POST",
    )
    note = {"body": "The disk is full.", "internal": True}
    check(
        stack.http("POST", f"/api/v1/staff/tickets/{ticket['id']}/replies", admin, json=note),
        "POST",
    )
    check(
        stack.http(
            "POST", f"/api/v1/client/tickets/{ticket['id']}/replies", token, json={"body": "Ok"}
        ),
        "POST",
    )
    me = stack.http("GET", "/api/v1/me", admin).json()
    check(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{ticket['id']}/assign",
            admin,
            json={"staff_id": me["staff_id"]},
        ),
        "POST",
    )
    check(
        stack.http(
            "PATCH", f"/api/v1/staff/tickets/{ticket['id']}", admin, json={"priority": "high"}
        ),
        "PATCH",
    )
    check(stack.http("GET", f"/api/v1/staff/tickets/{ticket['id']}", admin))
    check(stack.http("POST", f"/api/v1/client/tickets/{ticket['id']}/archive", token), "POST")
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/tickets", token).json()["items"], what="list"
    )
    check(stack.http("GET", "/api/v1/client/tickets", token))
    check(stack.http("GET", "/api/v1/staff/tickets", admin, params={"customer_id": customer["id"]}))
    check(stack.http("GET", f"/api/v1/staff/customers/{customer['id']}/penalty-points", admin))
    template = {"name": "Hello", "bodies": {"en": "Hello %client_person%"}}
    check(stack.http("POST", "/api/v1/staff/reply-templates", admin, json=template), "POST")
    check(stack.http("GET", "/api/v1/staff/reply-templates", admin))
    message = {
        "customer_ids": [customer["id"]],
        "department_id": department["id"],
        "subject": "Maintenance",
        "body": "Tonight.",
    }
    sent = check(stack.http("POST", "/api/v1/staff/messages", admin, json=message), "POST")
    check(stack.http("GET", f"/api/v1/staff/messages/{sent['id']}", admin))
    check(stack.http("GET", "/api/v1/staff/messages", admin))
    check(stack.http("GET", "/api/v1/staff/helpdesk-settings", admin))
