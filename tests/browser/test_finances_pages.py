"""The client's finances in a browser, in Russian: an unpaid invoice paid online (to the
payment service's page and back; the invoice says "being confirmed" until the signed
webhook arrives, then paid), the payment listed, funds added and paid online, another
invoice paid from the balance, the account's entries and its balance at a past date;
every page checked (no console error, failed request or serious axe-core violation) and
kept as a screenshot. The payment service is the Stripe-format test server
(tests/fake_stripe.py), in a process of its own: Playwright holds this process while
the browser waits."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
import requests
from playwright.sync_api import expect

from gateway.web import i18n
from tests.browser.chromium import PHONE, Watched
from tests.fake_stripe import RemoteFakeStripe
from tests.stack import STRIPE_API_KEY, STRIPE_SECRET

RU = {"login": "Имя пользователя или e-mail", "password": "Пароль", "button": "Войти"}


@pytest.fixture(scope="module")
def stripe(stack):
    fake = RemoteFakeStripe(
        stack.stripe_api_port,
        STRIPE_API_KEY,
        STRIPE_SECRET,
        stack.base_url + "/api/v1/payments/webhooks/stripe",
    ).start()
    yield fake
    fake.stop()


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _client(stack, language="ru"):
    # a country no other test of the shared stack taxes
    customer = stack.register_customer(
        language=language, country="BE", contact_person="Анна Смирнова"
    )
    token = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    return customer, token


def _invoice(stack, customer_id, amount, description):
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [{"description": description, "quantity": 1, "unit_price": _eur(amount)}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _listed(stack, token, path, count, **params):
    """Wait until a list (a read model) shows `count` rows."""
    return stack.wait_until(
        lambda: (
            items
            if len(items := stack.http("GET", path, token, params=params).json()["items"]) == count
            else None
        ),
        what=f"{count} rows at {path}",
    )


def _log_in(page: Watched, customer) -> None:
    creds = customer["credentials"]
    page.goto("/login")
    page.page.get_by_label(RU["login"]).fill(creds["username"])
    page.page.get_by_label(RU["password"], exact=True).fill(creds["password"])
    page.page.get_by_role("button", name=RU["button"]).click()
    page.page.wait_for_url("**/dashboard")


def _pay_online(page: Watched, stripe: RemoteFakeStripe, invoice_id: str, what: str) -> None:
    """On the invoice page: pay online, pay on the payment service's page, come back to
    "being confirmed"; the webhook (delivered twice) then makes it paid."""
    p = page.page
    p.get_by_role("button", name="Оплатить онлайн").click()
    p.wait_for_url(stripe.base_url + "/c/pay/*")
    p.get_by_role("button", name="Pay").click()
    p.wait_for_url(f"**/invoices/{invoice_id}?checkout=success")
    status = p.get_by_role("status")
    expect(status).to_contain_text("Платёжный сервис подтверждает ваш платёж")
    expect(p.get_by_role("heading", level=1)).to_contain_text("Не оплачен")
    page.check(f"{what}-being-confirmed")
    deliveries = stripe.deliver(times=2)
    assert [d["status"] for d in deliveries] == [200] * 4, deliveries
    assert [d["answer"]["outcome"] for d in deliveries].count("paid") == 2  # one event, twice
    p.get_by_role("link", name="Проверить ещё раз").click()
    expect(p.get_by_role("status")).to_have_text("Ваш платёж получен: счёт оплачен. Спасибо!")
    expect(p.get_by_role("heading", level=1)).to_contain_text("Оплачен")
    expect(p.get_by_role("button", name="Оплатить онлайн")).to_have_count(0)
    page.check(f"{what}-paid")


def test_a_client_pays_online_adds_funds_and_pays_from_the_balance_in_russian(
    stack, browser, stripe
):
    customer, token = _client(stack)
    hosting = _invoice(stack, customer["id"], 2500, "Хостинг, декабрь")
    backup = _invoice(stack, customer["id"], 1500, "Резервные копии")
    _listed(stack, token, "/api/v1/client/invoices", 2, status="unpaid")
    page = Watched.open(browser, stack.base_url, "finances-ru", locale="ru-RU")
    p = page.page
    _log_in(page, customer)

    # the dashboard's unpaid invoice opens its page
    p.get_by_role("link", name=f"Счёт {hosting['number']}", exact=True).click()
    p.wait_for_url(f"**/invoices/{hosting['id']}")
    page.goto("/invoices")
    expect(p.get_by_role("heading", name="Счета", exact=True)).to_be_visible()
    rows = p.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(i18n.money(backup["total"], "ru"))
    page.check("invoices-unpaid")
    p.get_by_role("link", name=f"Счёт {hosting['number']}", exact=True).click()
    p.wait_for_url(f"**/invoices/{hosting['id']}")
    expect(p.get_by_role("heading", level=1)).to_contain_text(f"Счёт {hosting['number']}")
    lines = p.locator("table.invoice-lines")
    expect(lines).to_contain_text("Хостинг, декабрь")
    expect(lines.locator("tr.grand")).to_contain_text(i18n.money(hosting["total"], "ru"))
    expect(p.get_by_text("Баланса не хватает для оплаты этого счёта.")).to_be_visible()
    pdf = p.context.request.get(
        stack.base_url + p.get_by_role("link", name="Скачать PDF").get_attribute("href")
    )
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    page.check("invoice-unpaid")

    _pay_online(page, stripe, hosting["id"], "invoice")
    sessions = list(stripe.state()["sessions"].values())
    [session] = [s for s in sessions if s["client_reference_id"] == hosting["id"]]
    assert session["amount_total"] == 2500 and session["currency"] == "eur"

    # the payment is listed (a read model: it may take a moment)
    _listed(stack, token, "/api/v1/client/payments", 1)
    page.goto("/payments")
    payments = p.locator("table.list tbody tr")
    expect(payments).to_have_count(1)
    expect(payments.first).to_contain_text("Карта, онлайн")
    expect(payments.first).to_contain_text(i18n.money(_eur(2500), "ru"))
    expect(payments.first).to_contain_text(session["payment_intent"])
    page.check("payments")

    # adding funds: an amount that is not one, then 30,00 €
    p.get_by_role("navigation", name="Финансы").get_by_role("link", name="Пополнить счёт").click()
    p.wait_for_url("**/add-funds")
    page.check("add-funds")
    p.get_by_label("Сумма (EUR)").fill("тридцать")
    p.get_by_role("button", name="Перейти к оплате").click()
    expect(p.locator("#error-amount")).to_have_text("Введите сумму, например 25,00.")
    page.check("add-funds-error", allow=(400,))
    p.get_by_label("Сумма (EUR)").fill("30,00")
    p.get_by_role("button", name="Перейти к оплате").click()
    p.wait_for_url(re.compile(r".*/invoices/[0-9a-f-]+\?added=1$"))
    funds_id = re.search(r"/invoices/([0-9a-f-]+)", p.url).group(1)
    expect(p.get_by_role("status")).to_contain_text("Счёт на пополнение готов")
    expect(p.locator("table.invoice-lines")).to_contain_text("Пополнение вашего лицевого счёта")
    expect(p.locator("table.invoice-lines tr.grand")).to_contain_text(i18n.money(_eur(3000), "ru"))
    page.check("add-funds-invoice")
    _pay_online(page, stripe, funds_id, "add-funds")

    # the other invoice, from the balance (30,00 € now)
    page.goto(f"/invoices/{backup['id']}")
    expect(p.get_by_text(f"Ваш баланс: {i18n.money(_eur(3000), 'ru')}.")).to_be_visible()
    page.check("invoice-covered")
    p.get_by_role("button", name="Оплатить с баланса").click()
    p.wait_for_url(f"**/invoices/{backup['id']}?paid=balance")
    expect(p.get_by_role("status")).to_have_text("Оплачено с баланса. Спасибо!")
    expect(p.get_by_role("heading", level=1)).to_contain_text("Оплачен")
    page.check("invoice-paid-from-balance")

    # the personal account: its entries, and its balance at a past date
    p.get_by_role("navigation", name="Финансы").get_by_role("link", name="Лицевой счёт").click()
    p.wait_for_url("**/finances")
    expect(p.locator("#balance-title + .balance")).to_have_text(i18n.money(_eur(1500), "ru"))
    entries = p.locator("table.list tbody tr")
    expect(entries).to_have_count(4)
    expect(entries.nth(0)).to_contain_text("Поступление платежа")
    expect(entries.nth(1)).to_contain_text("Оплата счёта")
    expect(entries.nth(1)).to_contain_text(hosting["number"])
    expect(entries.nth(3)).to_contain_text(backup["number"])
    expect(entries.nth(3)).to_contain_text(i18n.money(_eur(1500), "ru"))
    page.check("finances")
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    p.get_by_label("Дата").fill(yesterday)
    p.get_by_role("button", name="Показать баланс").click()
    p.wait_for_url(f"**/finances?at={yesterday}")
    then = p.locator(".then")
    expect(then).to_contain_text(f"Баланс на конец дня {i18n.date(yesterday, 'ru')}")
    expect(then.locator(".then-amount")).to_have_text(i18n.money(_eur(0), "ru"))
    page.check("finances-balance-yesterday")
    today = date.today().isoformat()
    p.get_by_label("Дата").fill(today)
    p.get_by_role("button", name="Показать баланс").click()
    p.wait_for_url(f"**/finances?at={today}")
    expect(p.locator(".then-amount")).to_have_text(i18n.money(_eur(1500), "ru"))

    # what was taken from the account, and the lists' filters
    _listed(stack, token, "/api/v1/client/expenses", 2)
    page.goto("/expenses")
    expect(p.locator("table.list tbody tr")).to_have_count(2)
    page.check("expenses")
    page.goto("/credit-notes")
    expect(p.get_by_text("Кредит-нот нет.")).to_be_visible()
    page.check("credit-notes")
    _listed(stack, token, "/api/v1/client/invoices", 3, status="paid")
    page.goto("/invoices")
    expect(p.get_by_text("Неоплаченных счетов нет.")).to_be_visible()
    p.get_by_role("link", name="Оплаченные", exact=True).click()
    p.wait_for_url("**/invoices?status=paid")
    expect(p.locator("table.list tbody tr")).to_have_count(3)
    page.check("invoices-paid")
    page.close()


def test_a_cancelled_payment_leaves_the_invoice_unpaid_on_a_phone_in_the_dark(
    stack, browser, stripe
):
    customer, token = _client(stack)
    invoice = _invoice(stack, customer["id"], 1200, "Домен")
    page = Watched.open(
        browser,
        stack.base_url,
        "finances-ru",
        locale="ru-RU",
        viewport=PHONE,
        color_scheme="dark",
    )
    p = page.page
    _log_in(page, customer)
    page.goto(f"/invoices/{invoice['id']}")
    page.check("invoice-unpaid")
    p.get_by_role("button", name="Оплатить онлайн").click()
    p.wait_for_url(stripe.base_url + "/c/pay/*")
    p.get_by_role("link", name="Cancel and go back").click()
    p.wait_for_url(f"**/invoices/{invoice['id']}?checkout=cancel")
    expect(p.get_by_role("status")).to_have_text(
        "Оплата отменена: деньги не списаны. Вы можете оплатить счёт в любое время."
    )
    expect(p.get_by_role("heading", level=1)).to_contain_text("Не оплачен")
    page.check("invoice-cancelled")
    for path in ("/finances", "/invoices", "/payments", "/expenses", "/credit-notes", "/add-funds"):
        page.goto(path)
        page.check(path.strip("/"))
    page.close()
    status = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", token).json()
    assert status["status"] == "unpaid"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_clients_user_needs_the_billing_permission(stack):
    customer, owner = _client(stack, "en")
    invoice = _invoice(stack, customer["id"], 800, "Domain")
    for permissions, allowed in ((["support"], False), (["billing"], True)):
        r = stack.http(
            "POST",
            "/api/v1/client/users",
            owner,
            json={
                "username": f"user-{uuid.uuid4().hex[:6]}",
                "email": "someone@example.com",
                "name": "Someone",
                "permissions": permissions,
            },
        )
        assert r.status_code == 201, r.text
        user = r.json()["credentials"]
        browser = requests.Session()
        token = _csrf(browser.get(stack.base_url + "/login", timeout=30).text)
        r = browser.post(
            stack.base_url + "/login",
            data={"username": user["username"], "password": user["password"], "csrf_token": token},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        for path in ("/finances", "/invoices", f"/invoices/{invoice['id']}", "/add-funds"):
            r = browser.get(stack.base_url + path, timeout=30)
            assert r.status_code == (200 if allowed else 403), (permissions, path)
        r = browser.post(
            f"{stack.base_url}/invoices/{invoice['id']}/pay",
            data={"csrf_token": _csrf(browser.get(stack.base_url + "/dashboard").text)},
            allow_redirects=False,
            timeout=30,
        )
        # the balance is empty: the page says so (409), and nothing is paid
        assert r.status_code == (409 if allowed else 403), r.text
    r = stack.http("GET", f"/api/v1/client/invoices/{invoice['id']}", owner)
    assert r.json()["status"] == "unpaid"
