"""The client's settings in a browser, in Russian, as a client goes through them: its
contact details, its password (then logs in with the new one), a user with permissions
added and removed, a payer, the notifications, a page pinned to the favourites menu, a
new e-mail confirmed through the mailed link, and finally the language switched to
French and the style to dark (the page answers in French and dark at once). Every page
is checked (console, failed requests, axe-core) and kept as a screenshot."""

import re
import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE, Watched
from tests.e2e.test_mail_out import sent_to, wait_mail

PASSWORD = "первый пароль 1"
NEW_PASSWORD = "второй пароль 2"
RU = {"login": "Имя пользователя или e-mail", "password": "Пароль", "button": "Войти"}


def _log_in(page: Watched, login: str, password: str) -> None:
    p = page.page
    p.get_by_label(RU["login"]).fill(login)
    p.get_by_label(RU["password"], exact=True).fill(password)
    p.get_by_role("button", name=RU["button"]).click()
    p.wait_for_url("**/dashboard")


def _reload_until(page: Watched, locator, visible: bool = True, tries: int = 50) -> None:
    """Lists are read models: reload until the row is there (or gone)."""
    for _ in range(tries):
        if locator.count() > 0 if visible else locator.count() == 0:
            return
        page.page.wait_for_timeout(200)
        page.page.reload(wait_until="networkidle")
    raise AssertionError(f"{locator} still {'missing' if visible else 'there'}")


def test_a_client_goes_through_its_settings_in_russian(stack, browser):
    email = f"settings-{uuid.uuid4().hex[:8]}@example.com"
    customer = stack.register_customer(
        email=email,
        country="BE",
        language="ru",
        contact_person="Анна Смирнова",
        password=PASSWORD,
    )
    token = stack.login(email, PASSWORD)
    page = Watched.open(browser, stack.base_url, "settings-ru", locale="ru-RU")
    p = page.page
    page.goto("/login")
    _log_in(page, email, PASSWORD)

    # the index leads to every settings page
    p.get_by_role("navigation", name="Разделы").get_by_role("link", name="Настройки").click()
    p.wait_for_url("**/settings")
    expect(p.get_by_role("heading", name="Настройки", exact=True)).to_be_visible()
    for name in ("Пароль", "Двухфакторная аутентификация", "Пользователи", "Плательщики"):
        expect(p.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert (
        p.get_by_role("link", name="Двухфакторная аутентификация").get_attribute("href")
        == "/settings/security"
    )
    page.check("index")

    # contact details: a wrong phone is named next to the field, a right one is saved
    p.get_by_role("link", name="Контактные данные и e-mail").click()
    p.wait_for_url("**/settings/profile")
    page.check("profile")
    p.get_by_label("Телефон").fill("звоните мне")
    p.get_by_role("button", name="Сохранить контактные данные").click()
    expect(p.locator("#error-phone")).to_contain_text("Номер телефона")
    page.check("profile-bad-phone", allow=(400,))
    p.get_by_label("Телефон").fill("+32 2 555 01 02")
    p.get_by_label("Почтовый адрес").fill("Rue de la Loi 16\n1000 Bruxelles")
    p.get_by_role("button", name="Сохранить контактные данные").click()
    p.wait_for_url("**/settings/profile?done=saved")
    expect(p.get_by_role("status")).to_have_text("Контактные данные сохранены.")
    expect(p.get_by_label("Телефон")).to_have_value("+32 2 555 01 02")
    page.check("profile-saved")
    profile = stack.http("GET", "/api/v1/client/profile", token).json()
    assert profile["phone"] == "+32 2 555 01 02"
    assert profile["address"] == "Rue de la Loi 16\n1000 Bruxelles"

    # the password: then log in again with the new one
    page.goto("/settings/password")
    page.check("password")
    p.get_by_label("Текущий пароль").fill("не тот пароль")
    p.get_by_label("Новый пароль", exact=True).fill(NEW_PASSWORD)
    p.get_by_label("Новый пароль ещё раз").fill(NEW_PASSWORD)
    p.get_by_role("button", name="Сменить пароль").click()
    expect(p.locator("#error-current_password")).to_have_text("Текущий пароль неверен.")
    page.check("password-wrong", allow=(400,))
    p.get_by_label("Текущий пароль").fill(PASSWORD)
    p.get_by_label("Новый пароль", exact=True).fill(NEW_PASSWORD)
    p.get_by_label("Новый пароль ещё раз").fill(NEW_PASSWORD)
    p.get_by_role("button", name="Сменить пароль").click()
    p.wait_for_url("**/settings/password?done=changed")
    expect(p.get_by_role("status")).to_contain_text("Новый пароль сохранён")
    page.check("password-changed")
    p.get_by_role("button", name="Выйти").click()
    p.wait_for_url("**/login?done=logged_out")
    p.get_by_label(RU["login"]).fill(email)
    p.get_by_label(RU["password"], exact=True).fill(PASSWORD)
    p.get_by_role("button", name=RU["button"]).click()
    expect(p.locator("#error-password")).to_be_visible()  # the old one no longer works
    page.check("old-password-refused", allow=(400,))
    _log_in(page, email, NEW_PASSWORD)
    # the change ended every other session of the account (the API's one too)
    assert stack.http("GET", "/api/v1/me", token).status_code == 401
    token = stack.login(email, NEW_PASSWORD)

    # a user with permissions: added, then removed after a confirmation
    page.goto("/settings/users")
    page.check("users")
    username = f"buh-{uuid.uuid4().hex[:6]}"
    p.get_by_label("Имя", exact=True).fill("Бухгалтер Петров")
    p.get_by_label("Имя пользователя").fill(username)
    p.get_by_label("E-mail", exact=True).fill(f"{username}@example.com")
    p.get_by_label("Пароль", exact=True).fill("пароль бухгалтера")
    p.get_by_label("Пароль ещё раз").fill("пароль бухгалтера")
    p.get_by_role("button", name="Добавить пользователя").click()
    expect(p.locator("#error-permissions")).to_have_text("Выберите хотя бы одно право.")
    page.check("users-no-permission", allow=(400,))
    p.get_by_label("Пароль", exact=True).fill("пароль бухгалтера")
    p.get_by_label("Пароль ещё раз").fill("пароль бухгалтера")
    p.get_by_label("Финансы (счета, платежи, плательщики)").check()
    p.get_by_label("Поддержка (обращения)").check()
    p.get_by_role("button", name="Добавить пользователя").click()
    p.wait_for_url("**/settings/users?done=added")
    row = p.get_by_role("row", name=re.compile(username))
    _reload_until(page, row)
    expect(row).to_contain_text("Финансы (счета, платежи, плательщики)")
    expect(row).to_contain_text("Поддержка (обращения)")
    page.check("users-added")
    user_token = stack.login(username, "пароль бухгалтера")
    me = stack.http("GET", "/api/v1/me", user_token).json()
    assert sorted(me["permissions"]) == ["billing", "support"], me

    row.get_by_role("link", name="Убрать").click()
    p.wait_for_url("**/remove")
    expect(p.get_by_role("heading", name="Удалить Бухгалтер Петров?")).to_be_visible()
    page.check("user-remove")
    p.get_by_role("button", name="Удалить пользователя").click()
    p.wait_for_url("**/settings/users?done=removed")
    _reload_until(page, p.get_by_role("row", name=re.compile(username)), visible=False)
    page.check("user-removed")
    assert stack.http("GET", "/api/v1/me", user_token).status_code == 401

    # a payer
    page.goto("/settings/payers")
    page.check("payers")
    p.get_by_label("Вид").select_option("company")
    p.get_by_label("Имя", exact=True).fill("ООО «Ромашка»")
    p.get_by_label("Адрес", exact=True).fill("Avenue Louise 1\n1050 Ixelles")
    p.get_by_label("Страна").select_option("BE")
    p.get_by_label("ИНН (номер плательщика НДС)").fill("BE0123456789")
    p.get_by_role("button", name="Добавить плательщика").click()
    p.wait_for_url("**/settings/payers?done=added")
    _reload_until(page, p.get_by_text("ООО «Ромашка»"))
    expect(p.get_by_text("ИНН BE0123456789")).to_be_visible()
    page.check("payer-added")

    # pinned to the favourites menu, and found there from another page
    p.get_by_role("button", name="Закрепить в избранном").click()
    p.wait_for_url("**/settings/payers")
    menu = p.get_by_role("navigation", name="Избранные страницы")
    expect(menu.get_by_role("link", name="Плательщики")).to_be_visible()
    expect(p.get_by_role("button", name="Открепить из избранного")).to_be_visible()
    page.check("payers-pinned")
    page.goto("/dashboard")
    p.get_by_role("navigation", name="Избранные страницы").get_by_role(
        "link", name="Плательщики"
    ).click()
    p.wait_for_url("**/settings/payers")
    page.check("favourite-followed")
    page.goto("/settings/favourites")
    expect(p.get_by_role("link", name="Плательщики").last).to_be_visible()
    page.check("favourites")

    # notifications: news on, support replies off
    page.goto("/settings/notifications")
    page.check("notifications")
    p.get_by_label("Новости", exact=True).check()
    p.get_by_label("Ответы поддержки").uncheck()
    p.get_by_role("button", name="Сохранить настройки уведомлений").click()
    p.wait_for_url("**/settings/notifications?done=saved")
    expect(p.get_by_label("Новости", exact=True)).to_be_checked()
    expect(p.get_by_label("Ответы поддержки")).not_to_be_checked()
    page.check("notifications-saved")
    chosen = stack.http("GET", "/api/v1/client/notification-settings", token).json()
    assert chosen["news"] is True and chosen["ticket_reply"] is False
    assert chosen["invoice_issued"] is True

    # a new e-mail: only once the mailed link is opened
    new_email = f"settings-new-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/settings/profile")
    p.get_by_label("Новый адрес e-mail").fill(new_email)
    p.get_by_label("Текущий пароль").fill(NEW_PASSWORD)
    p.get_by_role("button", name="Отправить ссылку для подтверждения").click()
    p.wait_for_url("**/settings/profile?done=email_sent")
    expect(p.get_by_role("status").first).to_contain_text("Мы отправили ссылку")
    expect(p.get_by_text(f"Письма об учётной записи приходят на {email}.")).to_be_visible()
    page.check("email-sent")
    assert stack.http("GET", "/api/v1/client/profile", token).json()["email"] == email
    text = wait_mail(stack, new_email)[-1].get_content()
    link = re.search(r"(http\S+/settings/email/confirm\?token=[A-Za-z0-9_\-]+)", text).group(1)
    page.goto(link.removeprefix(stack.base_url))
    expect(p.get_by_role("heading", name="Подтвердите новый адрес e-mail")).to_be_visible()
    expect(p.get_by_text(new_email)).to_be_visible()
    page.check("email-confirm")
    p.get_by_role("button", name="Подтвердить новый адрес").click()
    p.wait_for_url("**/settings/profile?done=email_changed")
    expect(p.get_by_role("status").first).to_have_text("Адрес e-mail изменён.")
    expect(p.get_by_text(f"Письма об учётной записи приходят на {new_email}.")).to_be_visible()
    page.check("email-changed")
    page.goto(link.removeprefix(stack.base_url))  # the link works once
    p.get_by_role("button", name="Подтвердить новый адрес").click()
    expect(p.get_by_role("alert")).to_contain_text("Ссылка больше не действует")
    page.check("email-link-used", allow=(400,))
    # the old address is told (beside the notice of the password's change)
    stack.wait_until(
        lambda: [m for m in sent_to(stack, email) if m["Subject"] == "Адрес e-mail изменён"],
        what="the notice to the old address",
    )

    # language and style: the page answers in French and dark at once
    page.goto("/settings/preferences")
    page.check("preferences")
    p.get_by_label("Язык").select_option("fr")
    p.get_by_label("Тёмное").check()
    p.get_by_role("button", name="Сохранить").click()
    p.wait_for_url("**/settings/preferences?done=saved")
    expect(p.get_by_role("heading", name="Langue et style")).to_be_visible()
    expect(p.locator("html")).to_have_attribute("lang", "fr")
    expect(p.locator("html")).to_have_attribute("data-theme", "dark")
    background = p.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(15, 20, 25)", background  # the dark background
    page.check("preferences-fr-dark")
    page.goto("/dashboard")
    expect(p.locator("html")).to_have_attribute("data-theme", "dark")
    expect(p.get_by_role("button", name="Se déconnecter")).to_be_visible()
    page.check("dashboard-fr-dark")
    assert stack.http("GET", "/api/v1/client/preferences", token).json() == {"theme": "dark"}
    assert customer["id"] == stack.http("GET", "/api/v1/me", token).json()["customer_id"]
    page.close()


def test_every_settings_page_on_a_phone_in_dark(stack, browser):
    """Each settings page, with a form's errors, on a phone with the browser in dark."""
    email = f"settings-phone-{uuid.uuid4().hex[:8]}@example.com"
    stack.register_customer(email=email, country="BE", language="ru", password=PASSWORD)
    page = Watched.open(
        browser,
        stack.base_url,
        "settings-phone",
        viewport=PHONE,
        color_scheme="dark",
        locale="ru-RU",
    )
    p = page.page
    page.goto("/login")
    _log_in(page, email, PASSWORD)
    for path in (
        "/settings",
        "/settings/profile",
        "/settings/password",
        "/settings/users",
        "/settings/payers",
        "/settings/notifications",
        "/settings/preferences",
        "/settings/favourites",
    ):
        page.goto(path)
        page.check(path.strip("/").replace("/", "-"))
    page.goto("/settings/payers")
    p.get_by_label("Имя", exact=True).fill("  ")  # only spaces: the page says what is missing
    p.get_by_label("Адрес", exact=True).fill("  ")
    p.get_by_role("button", name="Добавить плательщика").click()
    expect(p.locator("#error-name")).to_have_text("Введите наименование плательщика.")
    expect(p.locator("#error-address")).to_have_text("Введите адрес плательщика.")
    page.check("payers-errors", allow=(400,))
    page.goto("/settings/email/confirm?token=" + "x" * 43)
    p.get_by_role("button", name="Подтвердить новый адрес").click()
    expect(p.get_by_role("alert")).to_contain_text("Ссылка больше не действует")
    page.check("email-confirm-invalid", allow=(400,))
    page.close()


def test_pinning_and_the_style_work_without_javascript(stack, browser):
    email = f"settings-plain-{uuid.uuid4().hex[:8]}@example.com"
    stack.register_customer(email=email, country="BE", language="fr", password=PASSWORD)
    page = Watched.open(
        browser, stack.base_url, "settings-no-javascript", locale="fr-FR", java_script_enabled=False
    )
    p = page.page
    page.goto("/login")
    p.get_by_label("Identifiant ou e-mail").fill(email)
    p.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    p.get_by_role("button", name="Se connecter").click()
    p.wait_for_url("**/dashboard")
    page.goto("/settings/notifications")
    p.get_by_role("button", name="Épingler aux favoris").click()
    p.wait_for_url("**/settings/notifications")
    menu = p.get_by_role("navigation", name="Pages favorites")
    expect(menu.get_by_role("link", name="Notifications")).to_be_visible()
    page.screenshot("pinned")
    p.get_by_role("button", name="Désépingler des favoris").click()
    p.wait_for_url("**/settings/notifications")
    expect(p.get_by_role("navigation", name="Pages favorites")).to_have_count(0)
    page.goto("/settings/preferences")
    p.get_by_label("Sombre").check()
    p.get_by_role("button", name="Enregistrer").click()
    p.wait_for_url("**/settings/preferences?done=saved")
    expect(p.locator("html")).to_have_attribute("data-theme", "dark")
    page.screenshot("dark")
    page.close()
