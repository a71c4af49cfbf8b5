"""Two-factor authentication made mandatory for staff, in the staff panel (in English): an
administrator turns the policy on; a support member's form sent from a page opened
before is refused with the way to set it up; the member's next login lands on their
account page, which says the administrator requires it, and every other page leads back
there; once it is set up, the dashboard and the rest of the panel open at once, in that
session and in the one opened before. Until then the menu lists only the account page,
and afterwards that page offers no way to turn it off while it is mandatory. Every page
is checked (console, requests, axe-core) and kept as a screenshot."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services.infra.clock import FileClock
from tests.browser.staff import logged_in_page, staff_page
from tests.e2e.test_staff_two_factor_policy import StaffPolicy, turn_on_two_factor
from tests.e2e.test_two_factor import MovedClock

NOTICE = "Your administrator requires two-factor authentication for every staff member"


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


def test_a_member_without_two_factor_authentication_sets_it_up_first(stack, browser, policy):
    clock = policy.clock
    customer = stack.register_customer()
    # a support member, already at a customer's card in a session opened before
    member, _, earlier = staff_page(stack, browser, "support", "en", "policy-earlier-en")
    earlier.goto(f"/staff/customers/{customer['id']}")

    # an administrator (with two-factor authentication on) makes it mandatory
    _, admin_token, admin = staff_page(stack, browser, "admin", "en", "policy-admin-en")
    turn_on_two_factor(stack, admin_token, clock)
    admin.goto("/staff/staff")
    admin.page.get_by_label("Two-factor authentication mandatory for every staff member").check()
    admin.page.get_by_role("button", name="Save").click()
    admin.page.wait_for_url("**/staff/staff?done=policy_on")
    expect(admin.page.get_by_role("status")).to_contain_text("now mandatory for staff")
    admin.check("policy-on")
    admin.close()

    # the page opened before: its form is refused, with the way to set it up
    e = earlier.page
    e.get_by_role("button", name="Switch to the customer panel").click()
    expect(e.get_by_role("heading", level=1)).to_have_text("You may not see this page")
    expect(e.get_by_text("Set it up on your account page first.")).to_be_visible()
    earlier.check("form-refused", allow=(403,))
    e.get_by_role("link", name="Set up two-factor authentication").click()
    e.wait_for_url("**/staff/account")
    expect(e.get_by_role("alert")).to_contain_text(NOTICE)

    # a new login lands on the account page, which says why
    page = logged_in_page(
        stack, browser, member, "en", "policy-member-en", lands="**/staff/account"
    )
    p = page.page
    expect(p.get_by_role("heading", name="My account")).to_be_visible()
    expect(p.get_by_role("alert")).to_contain_text(NOTICE)
    page.check("account-required")
    # the menu offers only this page (and logging out); every other page leads back here
    sections = p.get_by_role("navigation", name="Sections")
    expect(sections.get_by_role("link")).to_have_count(1)
    expect(sections.get_by_role("link", name="My account")).to_have_attribute(
        "aria-current", "page"
    )
    expect(p.get_by_role("button", name="Log out")).to_be_visible()
    page.goto("/staff/customers")
    assert page.path == "/staff/account"
    expect(p.get_by_role("alert")).to_contain_text(NOTICE)
    page.goto("/staff/")
    assert page.path == "/staff/account"

    # set it up
    p.get_by_role("button", name="Set up two-factor authentication").click()
    p.wait_for_url("**/staff/account")
    secret = p.locator(".tf-secret code").inner_text().replace(" ", "")
    page.check("account-enrol")
    p.get_by_label("Code from the app").fill(clock.code(secret))
    p.get_by_role("button", name="Turn two-factor authentication on").click()
    expect(p.locator(".tf-codes li")).to_have_count(10)
    expect(p.get_by_role("alert")).to_have_count(0)
    page.check("account-recovery-codes")
    p.get_by_role("link", name="I have saved them").click()
    expect(p.locator("#two-factor .badge")).to_have_text("On")
    expect(p.get_by_role("alert")).to_have_count(0)
    # every section again; and it stays on while it is mandatory: the page says so
    expect(sections.get_by_role("link", name="Customers", exact=True)).to_be_visible()
    expect(p.get_by_role("button", name="Turn two-factor authentication off")).to_have_count(0)
    expect(p.locator("#two-factor")).to_contain_text("so it cannot be turned off")

    # at once: the dashboard and the rest of the panel, in this session and the other
    sections.get_by_role("link", name="Dashboard", exact=True).click()
    p.wait_for_url("**/staff/")
    expect(p.get_by_role("heading", level=1)).to_have_text("What is waiting")
    page.check("dashboard")
    sections.get_by_role("link", name="Customers", exact=True).click()
    p.wait_for_url("**/staff/customers")
    page.check("customers")
    page.close()

    earlier.goto(f"/staff/customers/{customer['id']}")
    assert earlier.path == f"/staff/customers/{customer['id']}"
    e.get_by_role("button", name="Switch to the customer panel").click()
    e.wait_for_url("**/dashboard")
    expect(e.get_by_role("button", name="Return to the staff panel")).to_be_visible()
    earlier.check("client-area")
    earlier.close()
