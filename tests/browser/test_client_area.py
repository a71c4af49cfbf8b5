"""The client area in a browser (Debian's Chromium through Playwright), as a client uses
it: log in, the dashboard, log out, a forgotten password by mail; in French and Russian,
on a phone and a desktop, light and dark, and without JavaScript. Each page is checked
for console errors, failed requests and axe-core's serious or critical violations, and
kept as a screenshot under tests/output/screenshots/. Forms without their CSRF token or
from another site are refused."""

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from gateway.web import i18n
from tests.browser.chromium import DESKTOP, PHONE, Watched
from tests.e2e.test_mail_out import wait_mail

PASSWORD = "first password 1"


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def client_with_things(stack, language: str) -> dict:
    """A client with something in every dashboard panel: an active service, an unpaid
    invoice, money on the personal account and an open ticket. Its login and password,
    and what the panels show."""
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "VPS Start", "fr": "VPS Démarrage", "ru": "VPS Старт"},
            "prices": {"monthly": _eur(500)},
            "setup_fee": _eur(1000),
        },
    )
    assert product.status_code == 201, product.text
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": {
                "email": email,
                "password": PASSWORD,
                "kind": "individual",
                "contact_person": "Camille Martin",
                # a country no other test of the shared stack taxes (test_billing taxes FR)
                "country": "BE",
                "language": language,
            },
            "items": [{"product_id": product.json()["id"], "billing_cycle": "monthly"}],
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    customer_id = order["customer_id"]
    token = stack.login(email, PASSWORD)

    def pay(amount: int, invoice_id: str | None = None):
        body = {
            "customer_id": customer_id,
            "amount": _eur(amount),
            "method": "bank_transfer",
            "reference": f"WEB-{uuid.uuid4().hex[:8]}",
        }
        if invoice_id:
            body["invoice_id"] = invoice_id
        r = stack.http("POST", "/api/v1/staff/payments", stack.admin_token, json=body)
        assert r.status_code == 201, r.text

    # the order's invoice, paid in full (with any tax a rule of the shared stack adds):
    # the service becomes active
    first = stack.http("GET", f"/api/v1/client/invoices/{order['invoice_id']}", token).json()
    pay(first["total"]["amount"], order["invoice_id"])
    pay(1200)  # money on the personal account
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [{"description": "Backup", "quantity": 1, "unit_price": _eur(2500)}],
        },
    )
    assert r.status_code == 201, r.text
    invoice = r.json()
    department = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={
            "name": f"Support {uuid.uuid4().hex[:6]}",
            "client_visible": True,
            "addresses": [f"web-{uuid.uuid4().hex[:6]}@provider.example"],
        },
    )
    assert department.status_code == 201, department.text
    subject = "The site is down since this morning"
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={
            "department_id": department.json()["id"],
            "subject": subject,
            "body": "Since this morning.",
        },
    )
    assert r.status_code == 201, r.text

    # the lists are read models: wait until each shows what was done
    def listed(path, **params):
        return stack.http("GET", path, token, params=params).json()["items"]

    [service] = stack.wait_until(
        lambda: [s for s in listed("/api/v1/client/services", status="active")],
        what="the service active",
    )
    stack.wait_until(
        lambda: listed("/api/v1/client/invoices", status="unpaid"), what="the invoice listed"
    )
    stack.wait_until(lambda: listed("/api/v1/client/tickets", status="open"), what="ticket")

    def balance():
        answer = stack.http("GET", "/api/v1/client/account", token).json()["balance"]
        return answer if answer["amount"] == 1200 else None

    return {
        "id": customer_id,
        "email": email,
        "token": token,
        "invoice": invoice,
        "service": service,
        "subject": subject,
        "balance": stack.wait_until(balance, what="the balance"),
    }


def _log_in(page: Watched, login: str, password: str, labels: dict) -> None:
    page.page.get_by_label(labels["login"]).fill(login)
    page.page.get_by_label(labels["password"], exact=True).fill(password)
    page.page.get_by_role("button", name=labels["button"]).click()


FR = {"login": "Identifiant ou e-mail", "password": "Mot de passe", "button": "Se connecter"}
RU = {"login": "Имя пользователя или e-mail", "password": "Пароль", "button": "Войти"}
EN = {"login": "Username or e-mail", "password": "Password", "button": "Log in"}


def test_a_client_logs_in_sees_the_dashboard_and_logs_out_in_french(stack, browser):
    client = client_with_things(stack, "fr")
    page = Watched.open(browser, stack.base_url, "login-dashboard-logout-fr", locale="fr-FR")
    p = page.page

    page.goto("/")  # the address `make run` prints
    assert page.path == "/login"
    expect(p.get_by_role("heading", name="Connexion à votre espace client")).to_be_visible()
    page.check("login")

    _log_in(page, client["email"], "not the password", FR)
    error = p.locator("#error-password")
    expect(error).to_have_text("L'identifiant ou le mot de passe est incorrect.")
    password = p.get_by_label("Mot de passe", exact=True)
    assert password.get_attribute("aria-describedby") == "error-password"
    expect(p.get_by_label("Identifiant ou e-mail")).to_have_value(client["email"])
    page.check("login-wrong-password", allow=(400,))

    _log_in(page, client["email"], PASSWORD, FR)
    p.wait_for_url("**/dashboard")
    expect(p.get_by_role("heading", name="Bonjour, Camille Martin")).to_be_visible()
    balance = p.locator("#balance-title + .balance")
    expect(balance).to_have_text(i18n.money(client["balance"], "fr"))
    invoices = p.locator("section", has=p.get_by_role("heading", name="Factures impayées"))
    invoice = client["invoice"]
    expect(invoices).to_contain_text(f"Facture {invoice['number']}")
    expect(invoices).to_contain_text(i18n.money(invoice["total"], "fr"))
    expect(invoices).to_contain_text(f"échéance le {i18n.date(invoice['due_date'], 'fr')}")
    link = invoices.get_by_role("link", name=f"Facture {invoice['number']}")
    assert link.get_attribute("href") == f"/invoices/{invoice['id']}"
    services = p.locator("section", has=p.get_by_role("heading", name="Services"))
    service = client["service"]
    expect(services).to_contain_text("Actif")
    expect(services).to_contain_text(
        f"prochaine échéance le {i18n.date(service['next_due_date'], 'fr')}"
    )
    assert services.get_by_role("link", name=service["name"]).get_attribute("href") == (
        f"/services/{service['id']}"
    )
    tickets = p.locator("section", has=p.get_by_role("heading", name="Tickets ouverts"))
    expect(tickets).to_contain_text(client["subject"])
    ticket_link = tickets.get_by_role("link", name=re.compile(re.escape(client["subject"])))
    assert re.fullmatch(r"/tickets/[0-9a-f-]{36}", ticket_link.get_attribute("href"))
    page.check("dashboard")

    p.get_by_role("button", name="Se déconnecter").click()
    p.wait_for_url("**/login?done=logged_out")
    expect(p.get_by_role("status")).to_have_text("Vous êtes déconnecté.")
    page.check("logged-out")

    # the session ended in the customers service too: the dashboard asks to log in again
    page.goto("/dashboard")
    assert page.path == "/login?next=%2Fdashboard"
    expect(p.get_by_role("heading", name="Connexion à votre espace client")).to_be_visible()
    page.check("login-again")
    page.close()


def _reset_link(stack, email: str, count: int = 1) -> str:
    text = wait_mail(stack, email, count)[-1].get_content()
    return re.search(r"(http\S+/reset-password\?token=[A-Za-z0-9_\-]+)", text).group(1)


def test_a_client_sets_a_new_password_from_the_mailed_link_in_russian(stack, browser):
    customer = stack.register_customer(language="ru", contact_person="Иван Петров")
    username, email = customer["credentials"]["username"], customer["email"]
    old_session = stack.login(username, customer["credentials"]["password"])
    page = Watched.open(browser, stack.base_url, "forgot-password-ru", locale="ru-RU")
    p = page.page

    page.goto("/login")
    p.get_by_role("link", name="Забыли пароль?").click()
    p.wait_for_url("**/forgot-password")
    page.check("forgot-password")
    p.get_by_label("Имя пользователя или e-mail").fill(email)
    p.get_by_role("button", name="Отправить ссылку").click()
    p.wait_for_url("**/forgot-password?sent=1")
    expect(p.get_by_role("status")).to_contain_text("ссылка для выбора нового пароля")
    page.check("forgot-password-sent")

    link = _reset_link(stack, email)
    assert link.startswith(stack.base_url + "/reset-password?token=")
    page.goto(link.removeprefix(stack.base_url))
    expect(p.get_by_role("heading", name="Задайте новый пароль")).to_be_visible()
    page.check("reset-password")

    p.get_by_label("Новый пароль", exact=True).fill("новый пароль 123")
    p.get_by_label("Новый пароль ещё раз").fill("другой пароль 123")
    p.get_by_role("button", name="Сохранить новый пароль").click()
    expect(p.locator("#error-confirm_password")).to_have_text("Пароли не совпадают.")
    page.check("reset-password-mismatch", allow=(400,))

    p.get_by_label("Новый пароль", exact=True).fill("новый пароль 123")
    p.get_by_label("Новый пароль ещё раз").fill("новый пароль 123")
    p.get_by_role("button", name="Сохранить новый пароль").click()
    p.wait_for_url("**/login?done=password_set")
    expect(p.get_by_role("status")).to_have_text("Новый пароль сохранён: войдите с ним.")
    page.check("password-set")
    # every session of the account ended; the old password no longer works
    assert stack.http("GET", "/api/v1/me", old_session).status_code == 401
    old = {"username": username, "password": customer["credentials"]["password"]}
    assert stack.http("POST", "/api/v1/auth/login", json=old).status_code == 401

    _log_in(page, username, "новый пароль 123", RU)
    p.wait_for_url("**/dashboard")
    expect(p.get_by_role("heading", name="Здравствуйте, Иван Петров")).to_be_visible()
    page.check("dashboard")

    # the link works once
    page.goto(link.removeprefix(stack.base_url))
    p.get_by_label("Новый пароль", exact=True).fill("третий пароль 123")
    p.get_by_label("Новый пароль ещё раз").fill("третий пароль 123")
    p.get_by_role("button", name="Сохранить новый пароль").click()
    expect(p.get_by_role("alert")).to_contain_text("Ссылка больше не действует")
    page.check("reset-link-used", allow=(400,))
    page.close()


def test_the_client_area_works_without_javascript(stack, browser):
    customer = stack.register_customer(contact_person="Nora Plain")
    creds = customer["credentials"]
    page = Watched.open(
        browser, stack.base_url, "no-javascript", locale="en-GB", java_script_enabled=False
    )
    p = page.page
    page.goto("/")
    assert page.path == "/login"
    _log_in(page, creds["username"], "wrong password", EN)
    expect(p.locator("#error-password")).to_have_text("The username or password is wrong.")
    _log_in(page, creds["username"], creds["password"], EN)
    p.wait_for_url("**/dashboard")
    expect(p.get_by_role("heading", name="Hello, Nora Plain")).to_be_visible()
    expect(p.get_by_text("No unpaid invoices.")).to_be_visible()
    p.get_by_role("button", name="Log out").click()
    p.wait_for_url("**/login?done=logged_out")
    page.screenshot("logged-out")
    page.close()


@pytest.fixture(scope="module")
def english_client(stack):
    return client_with_things(stack, "en")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_on_a_phone_and_a_desktop_in_light_and_dark(
    stack, browser, english_client, viewport, scheme
):
    """Each page as it is, and with a form's errors: no console error, no failed request,
    no serious or critical axe-core violation (contrast too, in each scheme); a screenshot
    of each under tests/output/screenshots/every-page/."""
    client = english_client
    page = Watched.open(
        browser, stack.base_url, "every-page", viewport=viewport, color_scheme=scheme
    )
    p = page.page
    page.goto("/login")
    page.check("login")
    _log_in(page, client["email"], "not the password", EN)
    expect(p.locator("#error-password")).to_be_visible()
    page.check("login-error", allow=(400,))
    page.goto("/forgot-password")
    page.check("forgot-password")
    page.goto("/forgot-password?sent=1")
    page.check("forgot-password-sent")
    page.goto("/reset-password?token=" + "x" * 43)
    page.check("reset-password")
    page.goto("/reset-password")
    page.check("reset-password-without-token")
    page.goto("/no-such-page")
    expect(p.get_by_role("heading", name="There is no such page")).to_be_visible()
    page.check("not-found", allow=(404,))
    page.goto("/login")
    _log_in(page, client["email"], PASSWORD, EN)
    p.wait_for_url("**/dashboard")
    expect(p.get_by_role("heading", name="Hello, Camille Martin")).to_be_visible()
    page.check("dashboard")
    page.close()


# -- without a browser: what the pages refuse, and what stays as it was ------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _set_cookie(response, name: str) -> str:
    return next(h for h in response.raw.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def test_forms_without_their_token_or_from_another_site_are_refused(stack):
    customer = stack.register_customer()
    creds = customer["credentials"]
    base = stack.base_url
    browser = requests.Session()
    r = browser.get(base + "/login", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "same-origin"
    pre_session = _set_cookie(r, "hostledger_csrf")
    assert "HttpOnly" in pre_session and "SameSite=Lax" in pre_session
    assert "Secure" not in pre_session  # this site is served over plain HTTP
    token = _csrf(r.text)
    form = {"username": creds["username"], "password": creds["password"]}

    def log_in(data, **headers):
        return browser.post(
            base + "/login", data=data, headers=headers, allow_redirects=False, timeout=30
        )

    for refused in (
        log_in(form),
        log_in(dict(form, csrf_token="0" * 64)),
        log_in(dict(form, csrf_token=token), Origin="https://evil.example"),
        log_in(dict(form, csrf_token=token), Origin="null"),
    ):
        assert refused.status_code == 403, refused.text
        assert "text/html" in refused.headers["Content-Type"]
        assert "hostledger_session" not in refused.headers.get("Set-Cookie", "")
    r = log_in(dict(form, csrf_token=token), Origin=base)
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard", r.text
    session = _set_cookie(r, "hostledger_session")
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session

    # the cookie carries the API's own session
    me = browser.get(base + "/api/v1/me", timeout=30)
    assert me.status_code == 200 and me.json()["customer_id"] == customer["id"]
    dashboard = browser.get(base + "/dashboard", timeout=30)
    assert dashboard.status_code == 200
    logout = _csrf(dashboard.text)
    assert logout != token  # bound to the new session, not to the one before logging in
    # logging out needs the session's token too: without it nothing ends
    r = browser.post(base + "/logout", allow_redirects=False, timeout=30)
    assert r.status_code == 403
    r = browser.post(
        base + "/logout", data={"csrf_token": token}, allow_redirects=False, timeout=30
    )
    assert r.status_code == 403
    assert browser.get(base + "/api/v1/me", timeout=30).status_code == 200
    r = browser.post(
        base + "/logout", data={"csrf_token": logout}, allow_redirects=False, timeout=30
    )
    assert r.status_code == 303 and r.headers["Location"] == "/login?done=logged_out"
    assert browser.get(base + "/api/v1/me", timeout=30).status_code == 401


def test_the_json_api_answers_as_before_beside_the_pages(stack):
    customer = stack.register_customer()
    token = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    assert stack.http("GET", "/api/v1/me", token).json()["customer_id"] == customer["id"]
    r = stack.http("GET", "/api/v1/no-such-route", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = stack.http("GET", "/no-such-page")  # no browser: JSON, as any unknown route
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = stack.http("GET", "/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert r.status_code == 404 and "text/html" in r.headers["Content-Type"]
    r = stack.http("GET", "/", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    r = stack.http("GET", "/static/style.css", allow_redirects=False)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
    assert stack.http("GET", "/static/../service.py").status_code == 404


def test_a_clients_user_sees_only_the_panels_it_may(stack):
    customer = stack.register_customer(language="en")
    owner = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        owner,
        json={
            "username": f"helper-{uuid.uuid4().hex[:6]}",
            "email": "helper@example.com",
            "name": "Helper",
            "permissions": ["support"],
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
    assert r.status_code == 200 and r.url.endswith("/dashboard"), r.text
    assert 'id="tickets-title"' in r.text
    for hidden in ("balance", "invoices", "services"):
        assert f'id="{hidden}-title"' not in r.text
