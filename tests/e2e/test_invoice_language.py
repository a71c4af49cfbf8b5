"""An invoice is written in its customer's language when it is issued: a French-speaking
client's order gives French lines (the product's and the add-on's French names, the
billing cycle in words, the setup fee, the period as a French date range), and a change
of language reaches the next invoice only, here the service's renewal."""

from __future__ import annotations

import io
import uuid
from datetime import date, timedelta

import pytest
from babel.dates import format_date

from services.orders.domain import CustomerLanguage, add_months
from tests.stack import Stack

PASSWORD = "client password 1"
NBSP = "\u00a0"


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _range(start: date, months: int, language: str) -> str:
    """The period of `months` from `start` as Babel writes it in `language`, days whole."""
    end = add_months(start, months) - timedelta(days=1)
    day = lambda d: format_date(d, "medium", locale=language).replace(" ", NBSP)  # noqa: E731
    return f"{day(start)} – {day(end)}"


def _language_heard(stack, customer_id: str, language: str) -> bool:
    """Has the orders service recorded this customer's language as `language`?"""
    with stack.db("orders") as conn:
        rows = conn.execute(
            "SELECT topic FROM orders_events WHERE originator_id = %s ORDER BY originator_version",
            (CustomerLanguage.id_for(uuid.UUID(customer_id)),),
        ).fetchall()
    topics = [r["topic"] if isinstance(r, dict) else r[0] for r in rows]
    if language == "fr":
        return topics == ["services.orders.domain:CustomerLanguage.Recorded"]
    return topics[-1:] == ["services.orders.domain:CustomerLanguage.Changed"]


def _paid(stack, token, customer_id: str, invoice: dict) -> dict:
    """Staff record the payment of the order's invoice: its service, once active."""
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "amount": invoice["total"],
            "method": "bank_transfer",
            "reference": f"IL-{uuid.uuid4().hex[:8]}",
            "invoice_id": invoice["id"],
        },
    )
    assert r.status_code == 201, r.text

    def active():
        items = stack.http("GET", "/api/v1/client/services", token).json()["items"]
        return [s for s in items if s["status"] == "active"]

    [service] = stack.wait_until(active, what="the service active")
    return service


def test_a_french_clients_invoice_is_french_and_a_new_language_reaches_the_next_one(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "Web Hosting", "fr": "Hébergement web", "ru": "Веб-хостинг"},
            "prices": {"monthly": _eur(800)},
            "setup_fee": _eur(500),
            "addons": [
                {
                    "name": {"en": "Daily backup", "fr": "Sauvegarde quotidienne"},
                    "prices": {"monthly": _eur(200)},
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    product = r.json()
    # a country no other test of the shared stack taxes; ordering at once after the
    # registration (the orders service may not have heard of the customer yet)
    customer = stack.register_customer(country="BE", language="fr", password=PASSWORD)
    token = stack.login(customer["username"], PASSWORD)
    item = {
        "product_id": product["id"],
        "billing_cycle": "monthly",
        "addons": [product["addons"][0]["id"]],
    }
    r = stack.http("POST", "/api/v1/client/orders", token, json={"items": [item]})
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    ordered_on = date.fromisoformat(invoice["issued_at"][:10])
    period = _range(ordered_on, 1, "fr")
    assert [(line["description"], line["period"]) for line in invoice["lines"]] == [
        ("Hébergement web (mensuel)", period),
        (f"Hébergement web{NBSP}: Sauvegarde quotidienne (mensuel)", period),
        (f"Hébergement web{NBSP}: frais d'installation", None),
    ]
    assert invoice["total"] == _eur(1500)

    # the PDF says each period once, labelled in French
    from pypdf import PdfReader

    pdf = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}/pdf", token)
    assert pdf.status_code == 200
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text().replace(NBSP, " ")
    assert text.count(f"Période : {period.replace(NBSP, ' ')}") == 2
    assert "monthly" not in text and "(Période" not in text

    # the client now reads Russian: the invoice issued stays French
    stack.wait_until(lambda: _language_heard(stack, customer["id"], "fr"), what="French heard")
    r = stack.http("PATCH", "/api/v1/client/profile", token, json={"language": "ru"})
    assert r.status_code == 200, r.text
    stack.wait_until(lambda: _language_heard(stack, customer["id"], "ru"), what="Russian heard")
    again = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert again["lines"] == invoice["lines"]

    # ... and the next one, the service's renewal, is Russian, for the period after
    service = _paid(stack, token, customer["id"], invoice)
    due = date.fromisoformat(service["next_due_date"])
    r = stack.http("POST", f"/api/v1/client/services/{service['id']}/renew", token)
    assert r.status_code == 200, r.text
    renewal = r.json()["invoice"]
    next_period = _range(due, 1, "ru")
    assert [(line["description"], line["period"]) for line in renewal["lines"]] == [
        ("Веб-хостинг (ежемесячно)", next_period),
        # no Russian name for the add-on: its English one
        ("Веб-хостинг: Daily backup (ежемесячно)", next_period),
    ]


@pytest.fixture(scope="module")
def own_stack():
    """A stack of this test's own: it takes back what the orders service heard of a
    customer's language (as for a customer registered before it kept languages), which no
    command does and the session stack's last check (replay equals live) would report."""
    s = Stack(name="il" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def test_a_customer_registered_before_languages_were_kept_gets_its_language(own_stack):
    stack = own_stack
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "Web Hosting", "fr": "Hébergement web"},
            "prices": {"monthly": _eur(800)},
        },
    )
    assert r.status_code == 201, r.text
    product = r.json()
    customer = stack.register_customer(country="BE", language="fr", password=PASSWORD)
    token = stack.login(customer["username"], PASSWORD)
    stack.wait_until(lambda: _language_heard(stack, customer["id"], "fr"), what="French heard")
    with stack.db("orders") as conn:
        conn.execute(
            "DELETE FROM orders_events WHERE originator_id = %s",
            (CustomerLanguage.id_for(uuid.UUID(customer["id"])),),
        )
    assert not _language_heard(stack, customer["id"], "fr")

    # an order: the customers service is asked
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    r = stack.http("POST", "/api/v1/client/orders", token, json={"items": [item]})
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    assert [line["description"] for line in invoice["lines"]] == ["Hébergement web (mensuel)"]

    # a renewal too
    service = _paid(stack, token, customer["id"], invoice)
    r = stack.http("POST", f"/api/v1/client/services/{service['id']}/renew", token)
    assert r.status_code == 200, r.text
    [line] = r.json()["invoice"]["lines"]
    assert line["description"] == "Hébergement web (mensuel)"
    assert line["period"] == _range(date.fromisoformat(service["next_due_date"]), 1, "fr")
