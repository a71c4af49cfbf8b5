"""Staff accounts in the staff panel: in Russian, an administrator adds a support member
(who sets a password from the mailed link on the staff panel's page), changes the role
to billing, sends a password reset link, and disables the member, whose open session
is logged out at its next page; support staff get no staff accounts page. In French, a
member turns two-factor authentication on from "My account" (on a phone) and logs in
with a code, and an administrator makes it mandatory. In English, a member's own password
and notifications, a client's reset link, and the system page with a parked event tried
again. Every page is checked (console, requests, axe-core) and kept as a screenshot."""

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services.infra.clock import FileClock
from services.infra.parking import resolve_statement
from tests.browser.chromium import PHONE, Watched
from tests.browser.staff import PASSWORD, log_in, logged_in_page, staff_page
from tests.e2e.test_mail_out import wait_mail
from tests.e2e.test_poison_readmodels import _record_copy
from tests.e2e.test_staff_two_factor_policy import StaffPolicy, turn_on_two_factor
from tests.e2e.test_two_factor import MovedClock
from tests.stack import Stack

LINK = re.compile(r"http\S+(/staff/reset-password\?token=[A-Za-z0-9_\-]+)")


def _reset_path(stack, email: str, count: int) -> str:
    """The path of the staff panel's reset page in the newest of `count` mails."""
    return LINK.search(wait_mail(stack, email, count)[-1].get_content()).group(1)


@pytest.fixture(scope="module")
def stack():
    """A stack of this module's own: a test here records a staff edit no command could
    make (to see it parked on the system page), which the session stack's last check
    (replay equals live) would rightly report."""
    s = Stack(name="sa" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def test_an_admin_adds_changes_resets_and_disables_a_member_in_russian(stack, browser):
    _, _, admin = staff_page(stack, browser, "admin", "ru", "staff-accounts-admin-ru")
    a = admin.page
    a.get_by_role("navigation", name="Разделы").get_by_role("link", name="Сотрудники").click()
    a.wait_for_url("**/staff/staff")
    expect(a.get_by_role("heading", name="Сотрудники", exact=True)).to_be_visible()
    admin.check("staff-list")

    a.get_by_role("link", name="Добавить сотрудника").click()
    a.wait_for_url("**/staff/staff/new")
    admin.check("staff-new")
    username = f"olga-{uuid.uuid4().hex[:6]}"
    email = f"{username}@example.com"
    a.get_by_label("Имя", exact=True).fill("Ольга Смирнова")
    a.get_by_label("Имя пользователя").fill("о")
    a.get_by_label("E-mail").fill(email)
    a.get_by_label("Роль").select_option(label="Поддержка")
    a.get_by_label("Язык писем и страниц").select_option(label="Русский")
    a.get_by_role("button", name="Добавить и отправить ссылку").click()
    expect(a.locator("#error-username")).to_have_text(
        "От 3 до 64 символов: буквы, цифры и . _ @ + -"
    )
    admin.check("staff-new-errors", allow=(400,))
    a.get_by_label("Имя пользователя").fill(username)
    a.get_by_role("button", name="Добавить и отправить ссылку").click()
    a.wait_for_url("**/staff/staff/*?done=invited")
    expect(a.get_by_role("status")).to_contain_text("Сотрудник добавлен")
    expect(a.get_by_role("heading", name="Ольга Смирнова")).to_be_visible()
    member_url = admin.path.split("?")[0]
    admin.check("staff-member-invited")

    # the member sets a password from the mail, on the staff panel's page, then logs in
    member = Watched.open(browser, stack.base_url, "staff-accounts-member-ru", locale="ru-RU")
    m = member.page
    member.goto(_reset_path(stack, email, 1))
    m.get_by_label("Новый пароль", exact=True).fill("пароль Ольги 1")
    m.get_by_label("Новый пароль ещё раз").fill("пароль Ольги 1")
    m.get_by_role("button", name="Сохранить новый пароль").click()
    m.wait_for_url("**/staff/login?done=password_set")
    expect(m.get_by_role("status")).to_have_text("Новый пароль сохранён: войдите с ним.")
    member.check("member-password-set")
    log_in(member, username, "пароль Ольги 1", "ru")
    m.wait_for_url("**/staff/")
    expect(m.get_by_role("link", name="Ольга Смирнова")).to_be_visible()

    # the role changes to billing
    a.get_by_label("Новая роль").select_option(label="Биллинг")
    a.get_by_role("button", name="Изменить роль").click()
    a.wait_for_url("**?done=role")
    expect(a.get_by_role("status")).to_have_text("Роль изменена.")
    expect(a.locator(".facts")).to_contain_text("Биллинг")
    admin.check("staff-member-role")
    # the member's session goes on in the new role
    member.goto("/staff/")
    assert member.path == "/staff/"

    # a reset link: the second mail, to the staff panel's page again
    a.get_by_role("button", name="Отправить ссылку для сброса пароля").click()
    a.wait_for_url("**?done=reset_sent")
    expect(a.get_by_role("status")).to_have_text(
        "Письмо со ссылкой для выбора нового пароля отправлено."
    )
    assert _reset_path(stack, email, 2).startswith("/staff/reset-password?token=")

    # disabled: the member's open session ends at its next page
    a.get_by_role("button", name="Отключить: Ольга Смирнова").click()
    a.wait_for_url("**?done=disabled")
    expect(a.get_by_role("status")).to_contain_text("Сотрудник отключён")
    expect(a.get_by_role("button", name="Отключить: Ольга Смирнова")).to_have_count(0)
    admin.check("staff-member-disabled")
    member.goto("/staff/")
    assert member.path == "/staff/login?next=%2Fstaff%2F"
    member.check("member-logged-out")
    assert admin.path.startswith(member_url)
    member.close()
    admin.close()


def test_support_staff_get_no_staff_accounts(stack, browser):
    _, _, page = staff_page(stack, browser, "support", "fr", "staff-accounts-support-fr")
    response = page.goto("/staff/staff")
    assert response.status == 403
    heading = page.page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Vous n'avez pas accès à cette page")
    page.check("staff-forbidden", allow=(403,))
    page.close()


@pytest.fixture
def clock(stack):
    """The stack's clock, moved forward between codes; two-factor authentication back to
    each member's choice (by an administrator who has it on), and the wall clock, after."""
    moved = MovedClock(stack)
    policy = None
    try:
        policy = StaffPolicy(stack, moved)
        yield moved
    finally:
        if policy is not None:
            policy.require(False)
        FileClock.set_offset(stack.clock_file, timedelta(0))


def test_a_member_turns_two_factor_authentication_on_and_logs_in_with_a_code_in_french(
    stack, browser, clock
):
    # an administrator (with two-factor authentication on) makes it mandatory from the
    # staff accounts page; the member is added before (an administrator without it is
    # refused once it is mandatory)
    member, _ = stack.staff_member("billing")
    _, admin_token, admin = staff_page(stack, browser, "admin", "fr", "staff-policy-fr")
    turn_on_two_factor(stack, admin_token, clock)
    admin.goto("/staff/staff")
    admin.page.get_by_label(
        "Authentification à deux facteurs obligatoire pour tout le personnel"
    ).check()
    admin.page.get_by_role("button", name="Enregistrer").click()
    admin.page.wait_for_url("**/staff/staff?done=policy_on")
    expect(admin.page.get_by_role("status")).to_contain_text("désormais obligatoire")
    admin.check("staff-policy-on")
    admin.close()

    # the member's login leads to their account page
    page = logged_in_page(
        stack,
        browser,
        member,
        "fr",
        "staff-two-factor-fr",
        lands="**/staff/account",
        viewport=PHONE,
    )
    p = page.page
    expect(p.get_by_role("heading", name="Mon compte")).to_be_visible()
    expect(p.get_by_role("alert")).to_contain_text("exige l'authentification à deux facteurs")
    page.check("account")

    p.get_by_role("button", name="Configurer l'authentification à deux facteurs").click()
    p.wait_for_url("**/staff/account")
    secret = p.locator(".tf-secret code").inner_text().replace(" ", "")
    page.check("account-enrol")
    p.get_by_label("Code de l'application").fill(clock.code(secret))
    p.get_by_role("button", name="Activer l'authentification à deux facteurs").click()
    expect(p.locator(".tf-codes li")).to_have_count(10)
    expect(p.get_by_role("alert")).to_have_count(0)
    page.check("account-recovery-codes")
    p.get_by_role("link", name="Je les ai conservés").click()
    expect(p.locator("#two-factor .badge")).to_have_text("Activée")

    p.get_by_role("button", name="Se déconnecter").click()
    p.wait_for_url("**/staff/login?done=logged_out")
    log_in(page, member["username"], PASSWORD, "fr")
    p.wait_for_url("**/staff/login/code")
    clock.forward()
    p.get_by_label("Code de l'application").fill(clock.code(secret))
    p.get_by_role("button", name="Se connecter").click()
    p.wait_for_url("**/staff/")
    page.check("dashboard-after-code")
    page.close()


def test_a_member_changes_their_password_and_preferences_and_sees_the_system_in_english(
    stack, browser
):
    _, other_session, page = staff_page(stack, browser, "admin", "en", "staff-account-en")
    p = page.page
    page.goto("/staff/account")
    p.get_by_label("Current password").fill("not it")
    p.get_by_label("New password", exact=True).fill("a new password 1")
    p.get_by_label("New password again").fill("a new password 1")
    p.get_by_role("button", name="Change the password").click()
    expect(p.locator("#error-current_password")).to_have_text("The current password is wrong.")
    page.check("account-wrong-password", allow=(400,))
    p.get_by_label("Current password").fill(PASSWORD)
    p.get_by_label("New password", exact=True).fill("a new password 1")
    p.get_by_label("New password again").fill("a new password 1")
    p.get_by_role("button", name="Change the password").click()
    p.wait_for_url("**/staff/account?done=password")
    assert stack.http("GET", "/api/v1/me", other_session).status_code == 401

    p.get_by_label("A client's reply to a ticket").uncheck()
    p.get_by_label("Language of the mail and pages").select_option(label="English")
    p.get_by_role("button", name="Save").click()
    p.wait_for_url("**/staff/account?done=preferences")
    expect(p.get_by_label("A client's reply to a ticket")).not_to_be_checked()
    page.check("account-preferences")

    # a client's reset link, as the customer card's button sends it
    customer = stack.register_customer(language="fr")
    csrf = p.locator("input[name=csrf_token]").first.get_attribute("value")
    sent = p.request.post(
        f"{stack.base_url}/staff/customers/{customer['id']}/password-reset",
        form={"csrf_token": csrf},
        max_redirects=0,
    )
    assert sent.status == 303
    assert sent.headers["location"] == f"/staff/customers/{customer['id']}?done=reset_sent"
    text = wait_mail(stack, customer["email"])[-1].get_content()
    assert f"{stack.base_url}/reset-password?token=" in text

    # an event the staff list cannot take is parked, shown, and tried again
    parked = _parked_staff_edit(stack)
    try:
        page.goto("/staff/system")
        expect(p.get_by_role("heading", name="System", exact=True)).to_be_visible()
        for service in ("customers", "billing", "orders", "helpdesk", "mailgateway"):
            row = p.locator("#health-title + ul li", has_text=service)
            expect(row).to_contain_text("Answers")
        expect(p.get_by_role("heading", name="Read models")).to_be_visible()
        where = re.compile(rf"readmodel:staff_list, position {parked['position']}\b")
        row = p.locator(".system-parked li", has_text=where)
        expect(row).to_contain_text("StaffMember.Edited")
        attempts = parked["attempts"]
        expect(row).to_contain_text(re.compile(rf"; {attempts} attempts?\b"))
        page.check("system")
        row.get_by_role("button", name="Apply again").click()
        p.wait_for_url("**/staff/system?done=still_failing")
        expect(p.get_by_role("status")).to_have_text(
            "The event could not be applied this time either; it stays parked."
        )
        expect(row).to_contain_text(f"; {attempts + 1} attempts")
        page.check("system-retried")
    finally:
        _resolve(stack, parked["id"])
    page.close()


def _parked_staff_edit(stack) -> dict:
    """A staff member's edit the staff list cannot take (a NUL in a name), recorded past
    every check; once parked, its parked event."""
    from services.customers.application import Customers

    app = Customers(cfg=stack.settings)
    try:
        # an edit no other service hears of: only the staff list parks it
        position = _record_copy(app, "StaffMember.Edited", changes={"name": "Bad\x00"})
    finally:
        app.close()

    def parked():
        r = stack.http(
            "GET", "/api/v1/staff/parked-events", stack.admin_token, params={"page_size": 200}
        )
        found = [
            p
            for p in r.json()["items"]
            if (p["service"], p["upstream"], p["position"])
            == ("customers", "readmodel:staff_list", position)
        ]
        return found[0] if found else None

    return stack.wait_until(parked, what="the parked edit")


def _resolve(stack, parked_id: int) -> None:
    """Mark it resolved, as if staff fixed it: other tests see no parked event of ours."""
    from services.customers.application import Customers

    app = Customers(cfg=stack.settings)
    try:
        with app.datastore.transaction(commit=True) as curs:
            curs.execute(*resolve_statement(parked_id, "resolved by the test"))
    finally:
        app.close()
