"""Two-factor authentication in a browser, as a client uses it: turning it on at
/settings/security (the code computed with pyotp from the key the page shows), the
recovery codes shown once, logging in again in two steps (the password, then the app's
code or a recovery code), and turning it off; in Russian, without JavaScript in French,
and the pages on a phone in the dark. Every page is checked for console errors, failed
requests and axe-core's serious or critical violations (tests/browser/chromium.py)."""

import re
import uuid
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect

from services.infra.clock import FileClock
from tests.browser.chromium import PHONE, Watched
from tests.e2e.test_two_factor import MovedClock

PASSWORD = "пароль для входа 1"
RU = {"login": "Имя пользователя или e-mail", "password": "Пароль", "button": "Войти"}
FR = {"login": "Identifiant ou e-mail", "password": "Mot de passe", "button": "Se connecter"}
EN = {"login": "Username or e-mail", "password": "Password", "button": "Log in"}


@pytest.fixture
def clock(stack):
    """The stack's clock, moved forward between codes; back to the wall clock after."""
    moved = MovedClock(stack)
    try:
        yield moved
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))


def _customer(stack, language: str, name: str) -> dict:
    # a country no other test of the shared stack taxes
    return stack.register_customer(
        password=PASSWORD, country="BE", language=language, contact_person=name
    )


def _log_in(page: Watched, login: str, labels: dict, password: str = PASSWORD) -> None:
    page.page.get_by_label(labels["login"]).fill(login)
    page.page.get_by_label(labels["password"], exact=True).fill(password)
    page.page.get_by_role("button", name=labels["button"]).click()


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _turn_on_by_api(stack, customer: dict, clock) -> tuple[str, list[str]]:
    token = stack.login(customer["username"], PASSWORD)
    secret = stack.http("POST", "/api/v1/auth/2fa/enrol", token).json()["secret"]
    r = stack.http("POST", "/api/v1/auth/2fa/confirm", token, json={"otp": clock.code(secret)})
    assert r.status_code == 200, r.text
    clock.forward()
    return secret, r.json()["recovery_codes"]


def test_a_client_turns_it_on_and_logs_in_with_the_code_in_russian(stack, browser, clock):
    customer = _customer(stack, "ru", "Анна Смирнова")
    page = Watched.open(browser, stack.base_url, "two-factor-ru", locale="ru-RU")
    p = page.page
    page.goto("/login")
    _log_in(page, customer["username"], RU)
    p.wait_for_url("**/dashboard")

    page.goto("/settings/security")
    expect(p.get_by_role("heading", name="Двухфакторная аутентификация", level=1)).to_be_visible()
    expect(p.get_by_role("link", name="Все настройки")).to_have_attribute("href", "/settings")
    expect(p.get_by_text("При входе запрашивается только пароль")).to_be_visible()
    page.check("security-off")

    p.get_by_role("button", name="Настроить двухфакторную аутентификацию").click()
    p.wait_for_url("**/settings/security")
    qr = p.get_by_role("img", name=re.compile("QR-код для приложения-аутентификатора"))
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml,")
    assert qr.evaluate("img => img.naturalWidth") > 100  # the SVG is drawn
    key = p.locator(".tf-secret code").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", key), key
    secret = key.replace(" ", "")
    page.check("security-enrol")

    field = p.get_by_label("Код из приложения")
    assert field.get_attribute("autocomplete") == "one-time-code"
    assert field.get_attribute("inputmode") == "numeric"
    field.fill(_wrong(clock.code(secret)))
    p.get_by_role("button", name="Включить двухфакторную аутентификацию").click()
    expect(p.locator("#error-otp")).to_contain_text("Это не тот код")
    assert field.get_attribute("aria-describedby") == "hint-otp error-otp"
    page.check("security-wrong-code", allow=(400,))

    p.get_by_label("Код из приложения").fill(clock.code(secret))
    p.get_by_role("button", name="Включить двухфакторную аутентификацию").click()
    expect(
        p.get_by_role("heading", name="Она включена. Сохраните резервные коды сейчас")
    ).to_be_visible()
    codes = p.locator(".tf-codes code").all_inner_texts()
    assert len(codes) == 10 == len(set(codes))
    page.check("security-recovery-codes")
    p.get_by_role("link", name="Я их сохранил(а)").click()
    p.wait_for_url("**/settings/security")
    expect(p.get_by_text("При входе запрашивается код из приложения")).to_be_visible()
    expect(p.locator(".facts dd").nth(1)).to_have_text("10")
    # the codes were shown once: the page never shows them again
    assert codes[0] not in p.content()
    page.check("security-on")

    # logging in now takes two steps
    p.get_by_role("button", name="Выйти").click()
    p.wait_for_url("**/login?done=logged_out")
    _log_in(page, customer["username"], RU)
    p.wait_for_url("**/login/code")
    expect(p.get_by_role("heading", name="Введите код для входа")).to_be_visible()
    code_field = p.get_by_label("Код из приложения")
    assert code_field.get_attribute("autocomplete") == "one-time-code"
    page.check("login-code")
    clock.forward()
    code_field.fill(_wrong(clock.code(secret)))
    p.get_by_role("button", name="Войти").click()
    expect(p.locator("#error-otp")).to_contain_text("Этот код неверен или уже использован")
    page.check("login-code-wrong", allow=(400,))
    code = clock.code(secret)
    p.get_by_label("Код из приложения").fill(f"{code[:3]} {code[3:]}")
    p.get_by_role("button", name="Войти").click()
    p.wait_for_url("**/dashboard")
    expect(p.get_by_role("heading", name="Здравствуйте, Анна Смирнова")).to_be_visible()
    page.check("dashboard")

    # a recovery code instead of the app's, once
    p.get_by_role("button", name="Выйти").click()
    p.wait_for_url("**/login?done=logged_out")
    _log_in(page, customer["username"], RU)
    p.wait_for_url("**/login/code")
    p.get_by_role("link", name="Использовать резервный код").click()
    p.wait_for_url("**/login/code?method=recovery")
    page.check("login-recovery")
    p.get_by_label("Резервный код").fill(codes[0])
    p.get_by_role("button", name="Войти").click()
    p.wait_for_url("**/dashboard")

    # turning it off: the password and a code
    page.goto("/settings/security")
    expect(p.locator(".facts dd").nth(1)).to_have_text("9")
    p.get_by_label("Пароль", exact=True).fill("не тот пароль")
    p.get_by_label("Код из приложения или резервный код").fill(codes[1])
    p.get_by_role("button", name="Выключить двухфакторную аутентификацию").click()
    expect(p.locator("#error-password")).to_have_text("Неверный пароль.")
    page.check("security-off-wrong-password", allow=(400,))
    p.get_by_label("Пароль", exact=True).fill(PASSWORD)
    p.get_by_label("Код из приложения или резервный код").fill(codes[1])
    p.get_by_role("button", name="Выключить двухфакторную аутентификацию").click()
    p.wait_for_url("**/settings/security?done=disabled")
    expect(p.get_by_role("status")).to_have_text("Двухфакторная аутентификация выключена.")
    page.check("security-turned-off")
    p.get_by_role("button", name="Выйти").click()
    p.wait_for_url("**/login?done=logged_out")
    _log_in(page, customer["username"], RU)
    p.wait_for_url("**/dashboard")  # the password alone again
    page.close()


def test_the_second_step_works_without_javascript(stack, browser, clock):
    customer = _customer(stack, "fr", "Louise Garnier")
    secret, _ = _turn_on_by_api(stack, customer, clock)
    page = Watched.open(
        browser,
        stack.base_url,
        "two-factor-no-javascript",
        locale="fr-FR",
        java_script_enabled=False,
    )
    p = page.page
    page.goto("/settings/security")  # a page that needs a login: back there afterwards
    assert page.path == "/login?next=%2Fsettings%2Fsecurity"
    _log_in(page, customer["email"], FR)
    p.wait_for_url("**/login/code?next=%2Fsettings%2Fsecurity")
    expect(p.get_by_role("heading", name="Saisissez votre code de connexion")).to_be_visible()
    # without JavaScript axe-core cannot run: these pages are checked in the other tests
    page.screenshot("login-code")
    p.get_by_role("link", name="Utiliser un code de secours").click()
    p.wait_for_url("**/login/code?method=recovery&next=%2Fsettings%2Fsecurity")
    p.get_by_label("Code de secours").fill("aaaa-bbbb-cccc")
    p.get_by_role("button", name="Se connecter").click()
    expect(p.locator("#error-recovery_code")).to_have_text(
        "Ce code de secours est erroné ou a déjà servi."
    )
    page.screenshot("login-recovery-wrong")
    p.get_by_role("link", name="Utiliser le code de l'application").click()
    p.get_by_label("Code de l'application").fill(clock.code(secret))
    p.get_by_role("button", name="Se connecter").click()
    p.wait_for_url("**/settings/security")
    expect(p.get_by_text("La connexion demande un code de votre application")).to_be_visible()
    page.close()
    # a browser with no password step behind it is sent to the first step
    other = requests.Session()
    r = other.get(stack.base_url + "/login/code", allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/login"


@pytest.mark.parametrize("viewport", [PHONE], ids=["phone"])
def test_the_pages_on_a_phone_in_the_dark(stack, browser, clock, viewport):
    customer = _customer(stack, "en", "Dana Night")
    page = Watched.open(
        browser, stack.base_url, "two-factor-phone-dark", viewport=viewport, color_scheme="dark"
    )
    p = page.page
    page.goto("/login")
    _log_in(page, customer["username"], EN)
    p.wait_for_url("**/dashboard")
    page.goto("/settings/security")
    page.check("security-off")
    p.get_by_role("button", name="Set up two-factor authentication").click()
    secret = p.locator(".tf-secret code").inner_text().replace(" ", "")
    page.check("security-enrol")
    p.get_by_label("Code from the app").fill(clock.code(secret))
    p.get_by_role("button", name="Turn two-factor authentication on").click()
    expect(p.locator(".tf-codes code")).to_have_count(10)
    page.check("security-recovery-codes")
    page.goto("/settings/security")
    page.check("security-on")
    p.get_by_role("button", name="Log out").click()
    p.wait_for_url("**/login?done=logged_out")
    _log_in(page, customer["username"], EN)
    p.wait_for_url("**/login/code")
    page.check("login-code")
    p.get_by_role("link", name="Use a recovery code").click()
    page.check("login-recovery")
    page.close()


def test_the_code_page_keeps_no_password_and_a_challenge_works_once(stack, clock):
    """Without a browser: the second step's form carries no password, its cookie is
    HttpOnly, and once used (or without its CSRF token) it logs nobody in."""
    customer = _customer(stack, "en", "Cole Plain")
    secret, _ = _turn_on_by_api(stack, customer, clock)
    browser = requests.Session()
    base = stack.base_url
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(base + "/login").text)[1]
    form = {"username": customer["username"], "password": PASSWORD, "csrf_token": token}
    r = browser.post(base + "/login", data=form, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/login/code", r.text
    cookie = next(
        h for h in r.raw.headers.getlist("Set-Cookie") if h.startswith("hostledger_login=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "hostledger_session" not in r.headers.get("Set-Cookie", "")
    page = browser.get(base + "/login/code", timeout=30)
    assert PASSWORD not in page.text and 'name="password"' not in page.text
    challenge = browser.cookies["hostledger_login"]
    code = {"otp": clock.code(secret), "csrf_token": token}
    refused = browser.post(base + "/login/code", data=dict(code, csrf_token=""), timeout=30)
    assert refused.status_code == 403
    r = browser.post(base + "/login/code", data=code, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard", r.text
    assert browser.get(base + "/api/v1/me", timeout=30).json()["customer_id"] == customer["id"]
    # the same challenge again (another browser that stole it) opens no session
    thief = requests.Session()
    thief_token = re.search(r'name="csrf_token" value="([^"]+)"', thief.get(base + "/login").text)[
        1
    ]
    thief.cookies.set("hostledger_login", challenge)
    clock.forward()
    r = thief.post(
        base + "/login/code",
        data={"otp": clock.code(secret), "csrf_token": thief_token},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 400 and "hostledger_session" not in r.headers.get("Set-Cookie", "")
    assert "log in again" in r.text
    # and uuid-like garbage is no challenge either
    thief.cookies.set("hostledger_login", uuid.uuid4().hex)
    r = thief.post(
        base + "/login/code",
        data={"otp": clock.code(secret), "csrf_token": thief_token},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 400 and "log in again" in r.text
