"""An invoice's lines on its pages, in French: a French-speaking client's order invoice
reads in French (names, billing cycle in words, setup fee) and says each line's period
once, with the French label and its no-break space; an invoice whose lines were written
the old way (the cycle in the description and again as the period, a renewal's first
day) does not repeat the cycle and shows the day in French. The client's page and the
staff's, each checked and kept as a screenshot."""

from __future__ import annotations

from datetime import date, timedelta

from babel.dates import format_date
from playwright.sync_api import expect

from services.orders.domain import add_months
from tests.browser.chromium import Watched
from tests.browser.staff import LOGIN_LABELS, staff_page

NBSP = "\u00a0"
WAIT = 15_000  # ms


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _client(stack):
    # a country no other test of the shared stack taxes
    customer = stack.register_customer(language="fr", country="BE", contact_person="Léa Martin")
    creds = customer["credentials"]
    token = stack.login(creds["username"], creds["password"])
    return customer, token


def _ordered_invoice(stack, token) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "VPS Start", "fr": "VPS Démarrage", "ru": "VPS Старт"},
            "prices": {"quarterly": _eur(2400)},
            "setup_fee": _eur(500),
            "addons": [
                {
                    "name": {"en": "Backup", "fr": "Sauvegarde"},
                    "prices": {"quarterly": _eur(600)},
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    product = r.json()
    item = {
        "product_id": product["id"],
        "billing_cycle": "quarterly",
        "addons": [product["addons"][0]["id"]],
    }
    r = stack.http("POST", "/api/v1/client/orders", token, json={"items": [item]})
    assert r.status_code == 201, r.text
    return r.json()["invoice"]


def _old_style_invoice(stack, customer_id: str) -> dict:
    """Lines as orders wrote them before: the cycle in the description and as the period,
    a renewal's first day as its period."""
    lines = [
        ("VPS Start (monthly)", "monthly"),
        ("VPS Start: Backup (monthly)", "monthly"),
        ("VPS Start (monthly)", "2027-01-05"),
    ]
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [
                {"description": d, "quantity": 1, "unit_price": _eur(500), "period": p}
                for d, p in lines
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _french_range(start: date, months: int) -> str:
    end = add_months(start, months) - timedelta(days=1)
    day = lambda d: format_date(d, "medium", locale="fr").replace(" ", NBSP)  # noqa: E731
    return f"{day(start)} – {day(end)}"


def _expect_lines(page: Watched, period: str) -> None:
    lines = page.page.locator("table.invoice-lines tbody tr")
    expect(lines).to_have_count(3, timeout=WAIT)
    expect(lines.nth(0)).to_contain_text("VPS Démarrage (trimestriel)")
    expect(lines.nth(0)).to_contain_text(f"Période{NBSP}: {period}")
    expect(lines.nth(1)).to_contain_text(f"VPS Démarrage{NBSP}: Sauvegarde (trimestriel)")
    expect(lines.nth(1)).to_contain_text(f"Période{NBSP}: {period}")
    expect(lines.nth(2)).to_contain_text(f"VPS Démarrage{NBSP}: frais d'installation")
    expect(lines.nth(2)).not_to_contain_text("Période")
    expect(page.page.locator("table.invoice-lines")).not_to_contain_text("quarterly")


def _expect_old_lines(page: Watched) -> None:
    lines = page.page.locator("table.invoice-lines tbody tr")
    expect(lines).to_have_count(3, timeout=WAIT)
    # the cycle is said once, in the description
    for n in (0, 1):
        expect(lines.nth(n)).to_contain_text("(monthly)")
        expect(lines.nth(n)).not_to_contain_text("Période")
    expect(lines.nth(2)).to_contain_text(f"Période{NBSP}: 5{NBSP}janv.{NBSP}2027")


def test_french_invoice_lines_on_the_client_and_staff_pages(stack, browser):
    customer, token = _client(stack)
    invoice = _ordered_invoice(stack, token)
    period = _french_range(date.fromisoformat(invoice["issued_at"][:10]), 3)
    old = _old_style_invoice(stack, customer["id"])

    page = Watched.open(browser, stack.base_url, "invoice-lines-client-fr", locale="fr-FR")
    page.goto("/login")
    labels = LOGIN_LABELS["fr"]
    creds = customer["credentials"]
    page.page.get_by_label(labels["login"]).fill(creds["username"])
    page.page.get_by_label(labels["password"], exact=True).fill(creds["password"])
    page.page.get_by_role("button", name=labels["button"]).click()
    page.page.wait_for_url("**/dashboard")
    page.goto(f"/invoices/{invoice['id']}")
    _expect_lines(page, period)
    page.check("order-invoice")
    page.goto(f"/invoices/{old['id']}")
    _expect_old_lines(page)
    page.check("old-invoice")
    page.close()

    _, _, staff = staff_page(stack, browser, "billing", "fr", "invoice-lines-staff-fr")
    staff.goto(f"/staff/invoices/{invoice['id']}")
    _expect_lines(staff, period)
    staff.check("order-invoice")
    staff.goto(f"/staff/invoices/{old['id']}")
    _expect_old_lines(staff)
    staff.check("old-invoice")
    staff.close()
