"""What the staff panel's browser tests share: a staff member of a role logged in to
the panel in a language, in a fresh browser context."""

from __future__ import annotations

from tests.browser.chromium import Watched

PASSWORD = "staff-password-1"  # tests.stack.Stack.staff_member's
LOGIN_LABELS = {
    "en": {"login": "Username or e-mail", "password": "Password", "button": "Log in"},
    "ru": {"login": "Имя пользователя или e-mail", "password": "Пароль", "button": "Войти"},
    "fr": {"login": "Identifiant ou e-mail", "password": "Mot de passe", "button": "Se connecter"},
}
LOCALES = {"en": "en-GB", "ru": "ru-RU", "fr": "fr-FR"}


def log_in(page: Watched, username: str, password: str, language: str) -> None:
    labels = LOGIN_LABELS[language]
    page.page.get_by_label(labels["login"]).fill(username)
    page.page.get_by_label(labels["password"], exact=True).fill(password)
    page.page.get_by_role("button", name=labels["button"]).click()


def staff_page(stack, browser, role: str, language: str, name: str, **options):
    """(the staff member, its API token, a Watched tab logged in to /staff/ as it)."""
    member, token = stack.staff_member(role)
    return member, token, logged_in_page(stack, browser, member, language, name, **options)


def logged_in_page(
    stack, browser, member: dict, language: str, name: str, lands: str = "**/staff/", **options
) -> Watched:
    """A Watched tab where `member` (with PASSWORD) has logged in to the staff panel and
    landed on the page `lands` matches."""
    page = Watched.open(browser, stack.base_url, name, locale=LOCALES[language], **options)
    page.goto("/staff/login")
    log_in(page, member["username"], PASSWORD, language)
    page.page.wait_for_url(lands)
    return page
