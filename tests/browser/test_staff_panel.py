"""The staff panel's door, in Russian: a staff member logs in (a wrong password named
next to the field), sees what waits on the dashboard with only the sections its role
may read, and logs out; a client account is sent to the client area, and a client's
session gets no staff page. Each page is checked (console, requests, axe-core) and kept
as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE, Watched
from tests.browser.staff import PASSWORD, log_in, staff_page


def test_staff_log_in_see_what_waits_and_log_out_in_russian(stack, browser):
    member, _ = stack.staff_member("support")
    page = Watched.open(browser, stack.base_url, "staff-door-ru", locale="ru-RU")
    p = page.page
    page.goto("/staff/?customer=")
    assert page.path == "/staff/login?next=%2Fstaff%2F%3Fcustomer%3D"
    expect(p.get_by_role("heading", name="Вход в панель сотрудников")).to_be_visible()
    log_in(page, member["username"], "not the password", "ru")
    expect(p.locator("#error-password")).to_have_text("Неверное имя пользователя или пароль.")
    page.check("login-wrong-password", allow=(400,))

    log_in(page, member["username"], PASSWORD, "ru")
    p.wait_for_url("**/staff/?customer=")
    expect(p.get_by_role("heading", name="Что ждёт")).to_be_visible()
    nav = p.get_by_role("navigation", name="Разделы")
    expect(nav.get_by_role("link", name="Клиенты")).to_be_visible()
    expect(nav.get_by_role("link", name="Техподдержка")).to_be_visible()
    # support's role reads no staff accounts and no system pages: not in its menu
    expect(nav.get_by_role("link", name="Сотрудники")).to_have_count(0)
    expect(nav.get_by_role("link", name="Система")).to_have_count(0)
    expect(p.get_by_role("heading", name="Тикеты, ждущие ответа")).to_be_visible()
    expect(p.get_by_role("link", name="Отложенные события")).to_have_count(0)
    page.check("dashboard-support")

    p.get_by_role("button", name="Выйти").click()
    p.wait_for_url("**/staff/login?done=logged_out")
    page.goto("/staff/")
    assert page.path == "/staff/login?next=%2Fstaff%2F"
    page.close()


def test_the_dashboard_counts_what_waits_for_an_admin_on_a_phone(stack, browser):
    department = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Abuse {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    assert department.status_code == 201, department.text
    quiet = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Quiet {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    assert quiet.status_code == 201, quiet.text
    # two tickets wait in the first department, nothing in the second
    creds = stack.register_customer()["credentials"]
    client = stack.login(creds["username"], creds["password"])
    for subject in ("Spam from my server?", "Blocklisted"):
        r = stack.http(
            "POST",
            "/api/v1/client/tickets",
            client,
            json={"department_id": department.json()["id"], "subject": subject, "body": "Hi"},
        )
        assert r.status_code == 201, r.text
    stack.wait_projected("helpdesk")
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-dashboard-en", viewport=PHONE)
    p = page.page
    expect(p.get_by_role("heading", name="What is waiting")).to_be_visible()
    row = p.locator("li", has_text=department.json()["name"])
    expect(row.get_by_role("link", name="2 new")).to_have_attribute(
        "href", f"/staff/tickets?department_id={department.json()['id']}&status=open"
    )
    expect(
        p.locator("li", has_text=quiet.json()["name"]).get_by_role("link", name="0 new")
    ).to_have_attribute("href", f"/staff/tickets?department_id={quiet.json()['id']}&status=open")
    for label in ("Unpaid invoices", "Failed refunds", "Held incoming mail", "Parked events"):
        expect(p.get_by_role("link", name=label)).to_be_visible()
    page.check("dashboard-admin")
    page.close()


def test_a_client_account_is_not_let_into_the_staff_panel(stack, browser):
    client = stack.register_customer(
        username=f"client-{uuid.uuid4().hex[:6]}", password="client password 1", language="fr"
    )
    page = Watched.open(browser, stack.base_url, "staff-door-client", locale="fr-FR")
    p = page.page
    page.goto("/staff/login")
    log_in(page, client["username"], "client password 1", "fr")
    expect(p.locator("#error-username")).to_have_text(
        "C'est un compte client : connectez-vous à l'espace client."
    )
    page.check("client-refused", allow=(400,))
    # logged in to the client area, the staff panel is still closed
    page.goto("/login")
    log_in(page, client["username"], "client password 1", "fr")
    p.wait_for_url("**/dashboard")
    response = page.goto("/staff/")
    assert response.status == 403
    expect(p.get_by_text("Ceci est le panneau du personnel")).to_be_visible()
    page.check("client-session-forbidden", allow=(403,))
    page.close()
