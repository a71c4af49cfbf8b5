"""Two-factor authentication mandatory for staff shuts no one out from the staff panel: in
Russian, an administrator without it who tries to make it mandatory is told, on the
staff list, to set up their own first (with the way there), and nothing changes; in
French, a member's form to turn theirs off, opened while it was optional and sent once
it is mandatory, is refused on the page with the reason, which then offers no such
form. Every page is checked (console, requests, axe-core) and kept as a screenshot."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services.infra.clock import FileClock
from tests.browser.staff import PASSWORD, staff_page
from tests.e2e.test_staff_two_factor_policy import POLICY, StaffPolicy, turn_on_two_factor
from tests.e2e.test_two_factor import MovedClock


@pytest.fixture
def policy(stack):
    """Two-factor authentication back to each member's choice after the test (by an
    administrator who has it on), and the stack's clock back to the wall clock."""
    clock = MovedClock(stack)
    kept = None
    try:
        kept = StaffPolicy(stack, clock)
        yield kept
    finally:
        if kept is not None:
            kept.require(False)
        FileClock.set_offset(stack.clock_file, timedelta(0))


def test_an_administrator_without_it_is_told_to_set_up_their_own_first_in_russian(
    stack, browser, policy
):
    _, token, admin = staff_page(stack, browser, "admin", "ru", "lockout-admin-ru")
    a = admin.page
    admin.goto("/staff/staff")
    a.get_by_label("Двухфакторная аутентификация обязательна для всех сотрудников").check()
    a.get_by_role("button", name="Сохранить").click()
    alert = a.get_by_role("alert")
    expect(alert).to_contain_text("Сначала настройте двухфакторную аутентификацию")
    assert admin.path == "/staff/staff/policy"
    # nothing changed: the switch is off, and the panel still answers
    box = a.get_by_label("Двухфакторная аутентификация обязательна для всех сотрудников")
    expect(box).not_to_be_checked()
    admin.check("policy-refused", allow=(409,))
    assert stack.http("GET", POLICY, token).json() == {"two_factor_required": False}
    # the way to set it up
    alert.get_by_role("link", name="Настроить двухфакторную аутентификацию").click()
    a.wait_for_url("**/staff/account#two-factor")
    expect(a.get_by_role("heading", name="Мой профиль")).to_be_visible()
    expect(a.get_by_role("button", name="Настроить двухфакторную аутентификацию")).to_be_visible()
    admin.check("account")
    admin.close()


def test_a_form_to_turn_it_off_sent_once_it_is_mandatory_is_refused_in_french(
    stack, browser, policy
):
    clock = policy.clock
    _, token, member = staff_page(stack, browser, "billing", "fr", "lockout-member-fr")
    secret = turn_on_two_factor(stack, token, clock)
    m = member.page
    member.goto("/staff/account")
    off = m.get_by_role("button", name="Désactiver l'authentification à deux facteurs")
    expect(off).to_be_visible()
    m.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    m.get_by_label("Code de l'application, ou code de secours").fill(clock.code(secret))

    policy.require(True)
    off.click()
    m.wait_for_url("**/staff/account/two-factor/disable")
    expect(m.get_by_role("alert")).to_contain_text("elle ne peut donc pas être désactivée")
    expect(off).to_have_count(0)
    expect(m.locator("#two-factor .badge")).to_have_text("Activée")
    member.check("refused", allow=(409,))
    assert stack.http("GET", "/api/v1/auth/2fa", token).json()["enabled"] is True

    # the page itself says why, and how to move it to another phone
    member.goto("/staff/account")
    two_factor = m.locator("#two-factor")
    expect(two_factor).to_contain_text("elle ne peut donc pas être désactivée")
    expect(two_factor).to_contain_text("Pour la transférer sur un autre téléphone")
    expect(off).to_have_count(0)
    member.check("account-mandatory")
    member.close()
