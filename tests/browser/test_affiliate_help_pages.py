"""The affiliate program page and the help pages in Russian, as a client sees them: the
referral link to copy, the code, the customers referred (number and date only), the
commissions; /help and each module's help, reached from the menu. Each page is checked
(console, requests, axe-core) and kept as a screenshot."""

import uuid

from playwright.sync_api import expect

from gateway.web import i18n
from tests.browser.chromium import PHONE, Watched
from tests.browser.test_client_area import RU, _log_in

PASSWORD = "partner password 1"
# each module's help: its title in Russian, and where its section is
HELP = {
    "dashboard": ("Обзор", "/dashboard"),
    "services": ("Услуги", "/services"),
    "finances": ("Финансы", "/finances"),
    "support": ("Поддержка", "/support"),
    "affiliate": ("Партнёрская программа", "/affiliate"),
    "settings": ("Настройки", "/settings"),
}


def _referrer_with_a_referral(stack) -> dict:
    referrer = stack.register_customer(
        language="ru",
        country="BE",
        contact_person="Анна Смирнова",
        username=f"anna-{uuid.uuid4().hex[:6]}",
        password=PASSWORD,
    )
    token = stack.login(referrer["username"], PASSWORD)
    code = stack.http("GET", "/api/v1/client/affiliate", token).json()["code"]
    referred = stack.register_customer(country="BE", referral_code=code)
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/affiliate", token).json()["referred"]["total"],
        what="the referred customer listed",
    )
    return {"referrer": referrer, "code": code, "referred": referred}


def test_the_affiliate_page_and_every_help_page_in_russian(stack, browser):
    known = _referrer_with_a_referral(stack)
    page = Watched.open(browser, stack.base_url, "affiliate-help-ru", locale="ru-RU")
    p = page.page
    page.goto("/affiliate")
    _log_in(page, known["referrer"]["username"], PASSWORD, RU)
    p.wait_for_url("**/affiliate")
    expect(p.get_by_role("heading", name="Партнёрская программа", level=1)).to_be_visible()
    link = p.get_by_label("Ссылка, которой можно поделиться")
    expect(link).to_have_value(f"{stack.base_url}/r/{known['code']}")
    assert link.get_attribute("readonly") is not None
    expect(p.locator("#referral-code")).to_have_text(known["code"])
    referred = p.locator("section", has=p.get_by_role("heading", name="Приведённые вами клиенты"))
    row = referred.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_have_text(
        f"{known['referred']['number']}{i18n.date(known['referred']['registered_at'], 'ru')}"
    )
    expect(referred).not_to_contain_text(known["referred"]["email"])
    expect(p.get_by_text("Комиссий пока нет.")).to_be_visible()
    page.check("affiliate")

    p.get_by_role("link", name="Справка").click()
    p.wait_for_url("**/help")
    expect(p.get_by_role("heading", name="Справка", level=1)).to_be_visible()
    page.check("help")
    for module, (title, section) in HELP.items():
        page.goto("/help")
        p.locator(".help-list").get_by_role("link", name=title, exact=True).click()
        p.wait_for_url(f"**/help/{module}")
        expect(p.get_by_role("heading", name=title, level=1)).to_be_visible()
        go = p.get_by_role("link", name=f"Перейти: {title}")
        assert go.get_attribute("href") == section
        # the text is Russian, from the catalogue
        assert p.locator(".help-text p").first.inner_text().strip()
        expect(p.locator(".help-text")).not_to_contain_text(" the ")
        page.check(f"help-{module}")
    page.goto("/help/no-such-module")
    expect(p.get_by_role("heading", name="Такой страницы нет")).to_be_visible()
    page.check("help-unknown", allow=(404,))
    page.close()


def test_the_affiliate_page_on_a_phone_in_dark(stack, browser):
    known = _referrer_with_a_referral(stack)
    page = Watched.open(
        browser,
        stack.base_url,
        "affiliate-phone-ru",
        viewport=PHONE,
        color_scheme="dark",
        locale="ru-RU",
    )
    p = page.page
    page.goto("/login")
    _log_in(page, known["referrer"]["username"], PASSWORD, RU)
    p.wait_for_url("**/dashboard")
    page.goto("/affiliate")
    expect(p.locator("#referral-code")).to_have_text(known["code"])
    page.check("affiliate")
    page.goto("/help/affiliate")
    page.check("help-affiliate")
    page.close()
