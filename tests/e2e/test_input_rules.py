"""Input rules at the edge, through the gateway: text without control characters, bounded
money in ISO 4217 currencies, ISO 3166-1 countries, schemas for nested objects, ids that
exist; each a 400 naming the field, before anything is saved. Mail is cleaned, not
refused."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from contracts.errors import ValidationFailed
from tests.e2e.test_mail_in import deliver, department, mail, one_ticket, smtp_in  # noqa: F401

NUL = "\u0000"


def _fields(r) -> dict:
    assert r.status_code == 400, r.text
    return r.json()["error"]["fields"]


def _client(stack, **fields):
    customer = stack.register_customer(**fields)
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


def _order_customer(**changes) -> dict:
    person = {
        "email": f"rules-{uuid.uuid4().hex[:10]}@example.com",
        "kind": "individual",
        "contact_person": "Olga Buyer",
        "country": "DE",
    }
    person.update(changes)
    return person


def _customer_named(stack, email: str) -> list:
    r = stack.http("GET", "/api/v1/staff/customers", stack.admin_token, params={"name": email})
    assert r.status_code == 200, r.text
    return [c for c in r.json()["items"] if c.get("email") == email]


# -- text ---------------------------------------------------------------------------------


def test_nul_in_the_public_order_form_is_refused_naming_the_field(stack):
    person = _order_customer(contact_person=f"Ann{NUL}")
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": person,
            "items": [{"product_id": str(uuid.uuid4()), "billing_cycle": "monthly"}],
        },
    )
    assert "customer.contact_person" in _fields(r)
    assert r.json()["error"]["fields"]["customer.contact_person"] == [
        "Control characters are not allowed."
    ]


def test_nul_and_lone_surrogates_in_a_ticket_subject_are_refused(stack):
    dept, _address = department(stack)
    _customer, token = _client(stack)
    for subject in (f"Help{NUL}", "Help\ud800", "Two\nlines"):
        r = stack.http(
            "POST",
            "/api/v1/client/tickets",
            token,
            json={"department_id": dept["id"], "subject": subject, "body": "Body."},
        )
        assert "subject" in _fields(r), subject
    # a body keeps its newlines and tabs
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={"department_id": dept["id"], "subject": "Fine", "body": "One\n\tTwo\r\nThree"},
    )
    assert r.status_code == 201, r.text


def test_a_direct_rpc_with_a_nul_is_refused_naming_the_field(stack):
    with stack.rpc() as rpc, pytest.raises(ValidationFailed) as info:
        rpc.customers.register_customer(
            {
                "kind": "individual",
                "email": f"rpc-{uuid.uuid4().hex[:8]}@example.com",
                "country": "DE",
                "contact_person": f"Ann{NUL}",
            }
        )
    assert "contact_person" in info.value.fields


def test_a_query_parameter_with_a_nul_is_refused(stack):
    r = stack.http(
        "GET", "/api/v1/staff/customers", stack.admin_token, params={"name": f"Ann{NUL}"}
    )
    assert "name" in _fields(r)


# -- money, currencies, countries ---------------------------------------------------------


def test_amounts_beyond_the_maximum_are_refused(stack):
    customer, token = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": {"amount": 9223372036854775808, "currency": "EUR"},
            "method": "cash",
            "reference": "too much",
        },
    )
    assert any(name.startswith("amount") for name in _fields(r)), r.text
    for amount in (10000000000000000000, 10_000.5):
        r = stack.http(
            "POST",
            "/api/v1/client/account/funds",
            token,
            json={"amount": {"amount": amount, "currency": "EUR"}},
        )
        assert "amount.amount" in _fields(r), r.text


def test_made_up_currencies_and_countries_are_refused(stack):
    base = {
        "kind": "individual",
        "email": f"iso-{uuid.uuid4().hex[:8]}@example.com",
        "country": "DE",
        "contact_person": "Iso Person",
    }
    r = stack.http(
        "POST", "/api/v1/staff/customers", stack.admin_token, json=dict(base, currency="QQQ")
    )
    assert _fields(r)["currency"] == ["Not an ISO 4217 currency code."]
    for country in ("ZZ", "AA"):
        r = stack.http(
            "POST", "/api/v1/staff/customers", stack.admin_token, json=dict(base, country=country)
        )
        assert "country" in _fields(r), country
    assert _customer_named(stack, base["email"]) == []
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": _order_customer(country="ZZ"),
            "items": [{"product_id": str(uuid.uuid4()), "billing_cycle": "monthly"}],
        },
    )
    assert "customer.country" in _fields(r)


# -- free-form objects --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discount", "field"),
    [
        ({}, "extra_discounts.0.name"),
        (
            {"name": "Minus", "kind": "fixed", "amount": {"amount": -500, "currency": "EUR"}},
            "extra_discounts.0.amount.amount",
        ),
        ({"name": "Lots", "kind": "percentage", "percent": "lots"}, "extra_discounts.0.percent"),
    ],
)
def test_invoice_extra_discounts_have_a_schema(stack, discount, field):
    customer, _token = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "lines": [
                {"description": "Hosting", "unit_price": {"amount": 1000, "currency": "EUR"}}
            ],
            "extra_discounts": [discount],
        },
    )
    assert field in _fields(r), r.text


# -- references ---------------------------------------------------------------------------


def test_an_unknown_project_is_refused_on_registration_and_on_the_order_form(stack):
    nowhere = str(uuid.uuid4())
    email = f"project-{uuid.uuid4().hex[:8]}@example.com"
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "email": email,
            "country": "DE",
            "contact_person": "No Project",
            "project_id": nowhere,
        },
    )
    assert _fields(r)["project_id"] == ["No such project."]
    assert _customer_named(stack, email) == []
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Rules VPS", "prices": {"monthly": {"amount": 500, "currency": "EUR"}}},
    )
    assert product.status_code == 201, product.text
    person = _order_customer(project_id=nowhere)
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": person,
            "items": [{"product_id": product.json()["id"], "billing_cycle": "monthly"}],
        },
    )
    assert _fields(r) == {"customer.project_id": ["No such project."]}
    assert _customer_named(stack, person["email"]) == []


def test_ids_in_staff_bodies_must_exist(stack):
    nowhere = str(uuid.uuid4())
    customer, _token = _client(stack)
    cid = customer["id"]
    admin = stack.admin_token

    r = stack.http("PATCH", f"/api/v1/staff/customers/{cid}", admin, json={"referrer_id": nowhere})
    assert _fields(r) == {"referrer_id": ["No such customer."]}
    r = stack.http(
        "PATCH", f"/api/v1/staff/customers/{cid}", admin, json={"affiliate_program": nowhere}
    )
    assert _fields(r) == {"affiliate_program": ["No such affiliate program."]}
    r = stack.http("PATCH", f"/api/v1/staff/customers/{cid}", admin, json={"group_ids": [nowhere]})
    assert _fields(r) == {"group_ids.0": ["No such group."]}

    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        admin,
        json={"name": "Ghost", "kind": "percentage", "percent": "5", "group_id": nowhere},
    )
    assert "group_id" in _fields(r)

    r = stack.http(
        "POST",
        "/api/v1/staff/promo-codes",
        admin,
        json={
            "code": f"GHOST{uuid.uuid4().hex[:5]}",
            "kind": "percentage",
            "percent": "10",
            "product_ids": [nowhere],
        },
    )
    assert _fields(r) == {"product_ids.0": ["No such product."]}

    r = stack.http(
        "POST",
        "/api/v1/staff/tax-rules",
        admin,
        json={
            "name": "Ghost VAT",
            "country": "DE",
            "rate": "19",
            "inclusive": False,
            "project_id": nowhere,
        },
    )
    assert _fields(r) == {"project_id": ["No such project."]}

    stack.wait_until(
        lambda: (
            stack.http("GET", f"/api/v1/staff/customers/{cid}/account", admin).status_code == 200
        ),
        what="the personal account",
    )
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        admin,
        json={
            "customer_id": cid,
            "amount": {"amount": 500, "currency": "EUR"},
            "method": "cash",
            "reference": "ghost invoice",
            "invoice_id": nowhere,
        },
    )
    assert _fields(r) == {"invoice_id": ["No such invoice of this customer."]}
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        admin,
        json={
            "customer_id": nowhere,
            "amount": {"amount": 500, "currency": "EUR"},
            "method": "cash",
            "reference": "ghost customer",
        },
    )
    assert "customer_id" in _fields(r)

    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        admin,
        json={
            "name": "Ghost VPS",
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
            "project_id": nowhere,
        },
    )
    assert _fields(r) == {"project_id": ["No such project."]}
    # a project created a moment ago is known at once
    project = stack.http(
        "POST",
        "/api/v1/staff/projects",
        admin,
        json={"name": f"Rules {uuid.uuid4().hex[:6]}", "sender_email": "billing@rules.example"},
    )
    assert project.status_code == 201, project.text
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        admin,
        json={
            "name": "Project VPS",
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
            "project_id": project.json()["id"],
        },
    )
    assert r.status_code == 201, r.text

    r = stack.http(
        "POST",
        "/api/v1/staff/reply-templates",
        admin,
        json={"name": "Ghost", "bodies": {"en": "Hi"}, "department_id": nowhere},
    )
    assert _fields(r) == {"department_id": ["No such department."]}


def _catalog_product(stack) -> str:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Known VPS", "prices": {"monthly": {"amount": 500, "currency": "EUR"}}},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _discount(customer_id: str, *product_ids: str) -> dict:
    return {
        "name": f"Products {uuid.uuid4().hex[:6]}",
        "kind": "percentage",
        "percent": "5",
        "customer_id": customer_id,
        "product_ids": list(product_ids),
    }


def test_a_discount_for_an_unknown_product_is_refused_and_not_created(stack):
    """The catalog is the orders service's: customers asks it before saving a discount."""
    customer, _token = _client(stack)
    known, nowhere = _catalog_product(stack), str(uuid.uuid4())
    refused = _discount(customer["id"], known, nowhere)
    r = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=refused)
    assert _fields(r) == {"product_ids.1": ["No such product."]}
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json=_discount(customer["id"], nowhere),
    )
    assert _fields(r) == {"product_ids.0": ["No such product."]}
    accepted = _discount(customer["id"], known)
    r = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=accepted)
    assert r.status_code == 201, r.text
    assert r.json()["product_ids"] == [known]

    def listed() -> list:
        r = stack.http(
            "GET",
            "/api/v1/staff/discounts",
            stack.admin_token,
            params={"customer_id": customer["id"]},
        )
        assert r.status_code == 200, r.text
        return [d["name"] for d in r.json()["items"]]

    # the list follows the events in order: once the accepted one is there, a refused one
    # saved before it would be too
    stack.wait_until(lambda: accepted["name"] in listed(), what="the accepted discount")
    assert listed() == [accepted["name"]]


def _staff_invoice(stack, customer_id: str, product_id: str | None = None):
    line = {"description": "Hosting", "unit_price": {"amount": 1000, "currency": "EUR"}}
    if product_id is not None:
        line["product_id"] = product_id
    return stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={"customer_id": customer_id, "lines": [line]},
    )


def test_an_invoice_line_of_an_unknown_product_is_refused_and_takes_no_number(stack):
    """The catalog is the orders service's: billing asks it before issuing; a refused
    invoice uses no number of the project's gapless series."""
    project = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": f"Series {uuid.uuid4().hex[:6]}", "sender_email": "billing@series.example"},
    )
    assert project.status_code == 201, project.text
    customer, _token = _client(stack, project_id=project.json()["id"])
    known, nowhere = _catalog_product(stack), str(uuid.uuid4())

    first = _staff_invoice(stack, customer["id"], known)
    assert first.status_code == 201, first.text
    r = _staff_invoice(stack, customer["id"], nowhere)
    assert _fields(r) == {"lines.0.product_id": ["No such product."]}
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "lines": [
                {"description": "Plain", "unit_price": {"amount": 100, "currency": "EUR"}},
                {
                    "description": "Ghost",
                    "product_id": nowhere,
                    "unit_price": {"amount": 100, "currency": "EUR"},
                },
            ],
            "extra_discounts": [
                {"name": "Ghost", "kind": "percentage", "percent": "5", "product_ids": [nowhere]}
            ],
        },
    )
    assert _fields(r) == {
        "lines.1.product_id": ["No such product."],
        "extra_discounts.0.product_ids.0": ["No such product."],
    }
    second = _staff_invoice(stack, customer["id"])  # a line without a product is fine
    assert second.status_code == 201, second.text

    def serial(invoice: dict) -> int:
        return int(invoice["number"][-6:])

    assert serial(second.json()) == serial(first.json()) + 1

    def listed() -> list:
        r = stack.http(
            "GET",
            "/api/v1/staff/invoices",
            stack.admin_token,
            params={"customer_id": customer["id"]},
        )
        assert r.status_code == 200, r.text
        return sorted(i["id"] for i in r.json()["items"])

    issued = sorted([first.json()["id"], second.json()["id"]])
    stack.wait_until(lambda: second.json()["id"] in listed(), what="the second invoice")
    assert listed() == issued


def test_product_ids_are_a_503_while_the_catalog_cannot_answer(stack):
    """Not a silent accept: without the orders service no product id can be checked."""
    customer, _token = _client(stack)
    product = _catalog_product(stack)
    stack.stop("orders")
    try:
        # side by side: each waits out the gateway's RPC timeout
        with ThreadPoolExecutor(2) as pool:
            refused_discount = pool.submit(
                stack.http,
                "POST",
                "/api/v1/staff/discounts",
                stack.admin_token,
                json=_discount(customer["id"], product),
            )
            refused_invoice = pool.submit(_staff_invoice, stack, customer["id"], product)
            for r in (refused_discount.result(), refused_invoice.result()):
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "unavailable"
    finally:
        stack.start("orders")
    stack.wait_for_service("orders")
    # orders answers the questions left waiting for it; nothing refused is made after all
    invoice = _staff_invoice(stack, customer["id"], product)
    assert invoice.status_code == 201, invoice.text
    accepted = _discount(customer["id"], product)
    discount = stack.http("POST", "/api/v1/staff/discounts", stack.admin_token, json=accepted)
    assert discount.status_code == 201, discount.text

    def listed(kind: str) -> list:
        r = stack.http(
            "GET",
            f"/api/v1/staff/{kind}",
            stack.admin_token,
            params={"customer_id": customer["id"]},
        )
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    stack.wait_until(lambda: discount.json()["id"] in listed("discounts"), what="the discount")
    stack.wait_until(lambda: invoice.json()["id"] in listed("invoices"), what="the invoice")
    assert listed("discounts") == [discount.json()["id"]]
    assert listed("invoices") == [invoice.json()["id"]]


def test_ticket_references_must_exist(stack):
    nowhere = str(uuid.uuid4())
    dept, _address = department(stack)
    _customer, token = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={"department_id": dept["id"], "subject": "Refs", "body": "Body."},
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        stack.admin_token,
        json={"body": "", "template_id": nowhere},
    )
    assert _fields(r) == {"template_id": ["No such reply template."]}
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/merge",
        stack.admin_token,
        json={"ticket_id": nowhere},
    )
    assert _fields(r) == {"ticket_id": ["No such ticket."]}


# -- mail: cleaned, not refused -----------------------------------------------------------


def test_mail_with_a_nul_in_its_subject_opens_a_ticket_with_a_cleaned_subject(stack, smtp_in):  # noqa: F811
    dept, address = department(stack)
    c = stack.register_customer(contact_person="Nul Mail")
    msg = mail(c["email"], address, "placeholder", "Line one\nLine two")
    raw = msg.as_bytes().replace(b"Subject: placeholder", b"Subject: =?utf-8?q?mail=00subject?=")
    assert b"=?utf-8?q?mail=00subject?=" in raw
    deliver(stack, raw, mail_from=c["email"], to=address)
    t = one_ticket(stack, dept["id"])
    assert t["subject"] == "mailsubject"
    assert t["customer_id"] == c["id"]
    assert t["messages"][0]["body"] == "Line one\nLine two"
    # the ticket lists (read models) still show it, and later tickets too
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        stack.login(c["credentials"]["username"], c["credentials"]["password"]),
        json={"department_id": dept["id"], "subject": "After", "body": "Later."},
    )
    assert r.status_code == 201, r.text
