"""The staff panel's history pages, as an auditor would use them: an administrator
corrects a customer's e-mail with a reason and reads, on the customer's history page in
English and in Russian, the e-mail before → after with the reason and the member's name;
the page opens with the newest change, pages back in time ("Older") and forward again
("Newer"), and switches to oldest first and back (kept in the address); looks at the customer as
it stood between two corrections (and is told next to the field when the moment is no
date or is before the customer existed); reads the member's own history, which links the
customer it corrected. Billing staff open an invoice's history, support a ticket's;
support sees no link to an invoice's history and is refused its address (403). Each page
is checked (console, requests, axe-core) and kept as a screenshot, on a desktop and on a
phone."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from playwright.sync_api import expect

from services.infra.clock import FileClock
from tests.browser.chromium import PHONE
from tests.browser.staff import logged_in_page, staff_page
from tests.e2e.test_orders import _paid_order
from tests.staff_api import client_with_account, department, history, issue_invoice

WAIT = 15_000  # ms: histories are read models, a moment behind a write
NOTES = 21  # edits enough for a history longer than one page (20 events)


def _local(moment: datetime) -> str:
    """A moment as a datetime-local field takes it (the panel's times are UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_a_customers_history_explains_a_correction_in_english_and_russian(stack, browser):
    tag = uuid.uuid4().hex[:8]
    wrong, right, later = (f"{w}-{tag}@example.com" for w in ("wrong", "right", "later"))
    customer = stack.register_customer(email=wrong, contact_person=f"Hanna History {tag}")
    cid = customer["id"]
    member, token, page = staff_page(stack, browser, "admin", "en", "staff-history")
    p = page.page

    # the e-mail corrected on the edit page, saying why
    page.goto(f"/staff/customers/{cid}/edit")
    p.get_by_label("E-mail").fill(right)
    p.get_by_label("Reason for the correction").fill("the client spelled it out on the phone")
    p.get_by_role("button", name="Save").click()
    p.wait_for_url(f"**/staff/customers/{cid}?done=saved")

    # more changes than one page of the history holds, then a second correction later on
    for n in range(NOTES):
        r = stack.http("PATCH", f"/api/v1/staff/customers/{cid}", token, json={"note": f"call {n}"})
        assert r.status_code == 200, r.text
    FileClock.set_offset(stack.clock_file, timedelta(minutes=10))
    try:
        r = stack.http(
            "PATCH",
            f"/api/v1/staff/customers/{cid}",
            token,
            json={"email": later, "reason": "a new mailbox"},
        )
        assert r.status_code == 200, r.text
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    items = stack.wait_until(
        lambda: (
            (found := history(stack, f"customers/{cid}"))
            and sum(i["type"] == "Customer.Corrected" for i in found) == 2
            and sum(i["type"] == "Customer.Edited" for i in found) == NOTES
            and found
        ),
        what="the corrections and notes in the customer's history",
    )
    first, second = (i for i in items if i["type"] == "Customer.Corrected")

    # the card links the history, which opens with the newest change
    page.goto(f"/staff/customers/{cid}")
    p.get_by_role("link", name="History", exact=True).click()
    p.wait_for_url(f"**/staff/customers/{cid}/history")
    expect(
        p.get_by_role("heading", name=f"History of customer {customer['number']}")
    ).to_be_visible()
    rows = p.locator("table.history tbody tr")
    expect(rows).to_have_count(20)
    # the last correction (or the account's buyer following it, at about the same moment)
    expect(rows.first).to_contain_text(f"E-mail: {right} → {later}")
    row = rows.filter(has_text="Registration details corrected")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"E-mail: {right} → {later}")
    expect(row).to_contain_text("Reason: a new mailbox")
    expect(row).to_contain_text(member["name"])
    expect(rows.filter(has_text="call 0")).to_have_count(0)  # the first notes: older
    expect(p.get_by_text("Customer.Corrected")).to_have_count(0)
    expect(p.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(p.get_by_role("link", name="Newer")).to_have_count(0)
    expect(p.get_by_role("link", name="Newest first")).to_have_attribute("aria-current", "true")
    expect(p.get_by_text("Newest first; times are in UTC.")).to_be_visible()
    page.check("customer-history")

    # back in time, and forward again
    p.get_by_role("link", name="Older").click()
    p.wait_for_url("**/history?cursor=*")
    expect(p.get_by_text("Page 2", exact=True)).to_be_visible()
    row = p.get_by_role("row").filter(has_text="Registration details corrected")
    expect(row).to_contain_text(f"E-mail: {wrong} → {right}")
    expect(row).to_contain_text("Reason: the client spelled it out on the phone")
    expect(row).to_contain_text(member["name"])
    expect(rows.last).to_contain_text("Customer registered")
    expect(rows.last).to_contain_text("Administrator")
    expect(p.get_by_role("link", name="Older")).to_have_count(0)
    page.check("customer-history-page-2")
    p.get_by_role("link", name="Newer").click()
    expect(p.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(rows.first).to_contain_text(f"E-mail: {right} → {later}")
    expect(p.get_by_role("link", name="Newer")).to_have_count(0)

    # oldest first, kept in the address while paging; and newest first again
    p.get_by_role("link", name="Oldest first").click()
    p.wait_for_url(f"**/staff/customers/{cid}/history?order=oldest")
    expect(p.get_by_role("link", name="Oldest first")).to_have_attribute("aria-current", "true")
    expect(rows.first).to_contain_text("Customer registered")
    expect(p.get_by_text("Oldest first; times are in UTC.")).to_be_visible()
    expect(p.get_by_role("link", name="Older")).to_have_count(0)
    p.get_by_role("link", name="Newer").click()
    p.wait_for_url("**/history?order=oldest&cursor=*")
    expect(p.get_by_text("Page 2", exact=True)).to_be_visible()
    expect(rows.last).to_contain_text(f"E-mail: {right} → {later}")
    page.check("customer-history-oldest-first-page-2")
    p.get_by_role("link", name="Older").click()
    expect(p.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(rows.first).to_contain_text("Customer registered")
    p.get_by_role("link", name="Newest first").click()
    p.wait_for_url(f"**/staff/customers/{cid}/history")
    expect(rows.first).to_contain_text(f"E-mail: {right} → {later}")

    # as it stood between the two corrections
    t1, t2 = (datetime.fromisoformat(i["occurred_at"]) for i in (first, second))
    between = t1 + (t2 - t1) / 2
    p.get_by_label("Date and time (UTC)").fill(_local(between))
    p.get_by_role("button", name="Show it as it stood").click()
    state = p.locator(".history-state")
    expect(state).to_contain_text(right)
    expect(state).not_to_contain_text(later)
    expect(state).to_contain_text("Staff note")
    expect(p.get_by_role("heading", level=3)).to_contain_text("As it stood at")
    page.check("customer-as-it-stood")

    # a moment that is none, or before the customer existed, is said next to the field
    page.goto(f"/staff/customers/{cid}/history?at=yesterday")
    expect(p.locator("#error-at")).to_have_text("Enter a date and time, such as 2026-03-05 14:30.")
    expect(p.get_by_label("Date and time (UTC)")).to_have_attribute("aria-invalid", "true")
    page.check("customer-as-it-stood-not-a-date", allow=(400,))
    p.get_by_label("Date and time (UTC)").fill("2001-01-01T00:00")
    p.get_by_role("button", name="Show it as it stood").click()
    expect(p.locator("#error-at")).to_have_text("It did not exist yet at that moment.")
    page.check("customer-as-it-stood-too-early", allow=(400,))

    # the member's own history from the first: its account, and what it did to the customer
    page.goto(f"/staff/staff/{member['id']}")
    p.get_by_role("link", name="History", exact=True).click()
    p.wait_for_url(f"**/staff/staff/{member['id']}/history")
    expect(
        p.get_by_role("heading", name=f"History of staff member {member['name']}")
    ).to_be_visible()
    p.get_by_role("link", name="Oldest first").click()
    p.wait_for_url(f"**/staff/staff/{member['id']}/history?order=oldest")
    expect(p.get_by_role("row").filter(has_text="Staff member added")).to_contain_text(
        "Role: admin"
    )
    corrected = p.get_by_role("row").filter(has_text="Registration details corrected").first
    expect(corrected.get_by_role("link", name="Customer")).to_have_attribute(
        "href", f"/staff/customers/{cid}"
    )
    page.check("member-history")
    page.close()

    # the same history in Russian
    page = logged_in_page(stack, browser, member, "ru", "staff-history-ru")
    p = page.page
    page.goto(f"/staff/customers/{cid}/history")
    expect(p.get_by_role("heading", name=f"История клиента {customer['number']}")).to_be_visible()
    expect(p.locator("table.history tbody tr").first).to_contain_text(f"{right} → {later}")
    row = p.get_by_role("row").filter(has_text="Регистрационные данные исправлены")
    expect(row).to_contain_text(f"E-mail: {right} → {later}")
    expect(row).to_contain_text("Причина: a new mailbox")
    expect(row).to_contain_text(member["name"])
    expect(p.get_by_role("link", name="Старее")).to_be_visible()
    expect(p.get_by_role("link", name="Сначала новые")).to_have_attribute("aria-current", "true")
    page.check("customer-history-ru")
    p.get_by_role("link", name="Сначала старые").click()
    p.wait_for_url(f"**/staff/customers/{cid}/history?order=oldest")
    row = p.get_by_role("row").filter(has_text="Регистрационные данные исправлены").first
    expect(row).to_contain_text(f"E-mail: {wrong} → {right}")
    expect(row).to_contain_text("Причина: the client spelled it out on the phone")
    expect(p.get_by_role("row").filter(has_text="Лицевой счёт открыт")).to_be_visible()
    expect(p.get_by_role("link", name="Новее")).to_be_visible()
    page.check("customer-history-ru-oldest-first")
    page.close()

    # on a phone: each event a card, newest first, the form above
    page = logged_in_page(stack, browser, member, "en", "staff-history-phone", viewport=PHONE)
    p = page.page
    page.goto(f"/staff/customers/{cid}/history?at={_local(between)}")
    expect(p.locator(".history-state")).to_contain_text(right)
    expect(p.locator("table.history tbody tr").first).to_contain_text(f"{right} → {later}")
    expect(p.get_by_role("link", name="Oldest first")).to_be_visible()
    page.check("customer-history")
    page.close()


def test_invoice_and_ticket_histories_for_whom_may_read_them(stack, browser):
    tag = uuid.uuid4().hex[:6]
    customer, client = client_with_account(stack, contact_person=f"Ivo Invoice {tag}")
    cid = customer["id"]
    invoice = issue_invoice(stack, cid, "Hosting", 1999)
    desk = department(stack, f"History desk {tag}")
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        client,
        json={"department_id": desk["id"], "subject": f"Question {tag}", "body": "Hello?"},
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    [issued] = stack.wait_until(
        lambda: [
            i for i in history(stack, f"invoice/{invoice['id']}") if i["type"] == "Invoice.Issued"
        ],
        what="the invoice in its history",
    )
    stack.wait_until(
        lambda: history(stack, f"ticket/{ticket['id']}"), what="the ticket in its history"
    )

    # billing staff: the invoice's history, from the invoice, and the invoice as it stood
    _, _, page = staff_page(stack, browser, "billing", "en", "staff-history-invoice")
    p = page.page
    page.goto(f"/staff/invoices/{invoice['id']}")
    p.get_by_role("link", name="History", exact=True).click()
    p.wait_for_url(f"**/staff/invoices/{invoice['id']}/history")
    expect(p.get_by_role("heading", name=f"History of invoice {invoice['number']}")).to_be_visible()
    row = p.get_by_role("row").filter(has_text="Invoice issued")
    expect(row).to_contain_text("Total: €19.99")
    expect(row).to_contain_text("Administrator")
    at = datetime.fromisoformat(issued["occurred_at"]) + timedelta(seconds=1)
    p.get_by_label("Date and time (UTC)").fill(_local(at))
    p.get_by_role("button", name="Show it as it stood").click()
    state = p.locator(".history-state")
    expect(state).to_contain_text("Invoice number")
    expect(state).to_contain_text(invoice["number"])
    expect(state).to_contain_text("Unpaid")
    page.check("invoice-history")
    page.close()
    _, _, page = staff_page(
        stack, browser, "billing", "fr", "staff-history-invoice-phone", viewport=PHONE
    )
    page.goto(f"/staff/invoices/{invoice['id']}/history")
    expect(page.page.get_by_role("row").filter(has_text="Facture émise")).to_contain_text(
        "19,99\u00a0€"
    )
    page.check("invoice-history-fr")
    page.close()

    # support: the ticket's history; no invoice history, not even by its address
    _, _, page = staff_page(stack, browser, "support", "en", "staff-history-support")
    p = page.page
    page.goto(f"/staff/tickets/{ticket['id']}")
    p.get_by_role("link", name="History", exact=True).click()
    p.wait_for_url(f"**/staff/tickets/{ticket['id']}/history")
    expect(
        p.get_by_role("heading", name=f"History of ticket #{ticket['tracking_number']}")
    ).to_be_visible()
    row = p.get_by_role("row").filter(has_text="Ticket opened")
    expect(row).to_contain_text("The client")
    expect(row).to_contain_text(f"Subject: Question {tag}")
    page.check("ticket-history")
    page.goto(f"/staff/invoices/{invoice['id']}")
    expect(p.get_by_role("heading", name=f"Invoice {invoice['number']}")).to_be_visible()
    expect(p.get_by_role("link", name="History", exact=True)).to_have_count(0)
    page.check("invoice-without-history-link")
    response = page.goto(f"/staff/invoices/{invoice['id']}/history")
    assert response.status == 403
    expect(p.get_by_role("heading", name="You may not see this page")).to_be_visible()
    page.check("invoice-history-refused", allow=(403,))
    page.close()


def test_a_services_history_from_its_page_as_an_auditor_reads_it(stack, browser):
    _, order = _paid_order(stack, "history-service")
    service = stack.wait_until(
        lambda: next(
            (
                s
                for s in stack.http(
                    "GET",
                    "/api/v1/staff/services",
                    stack.admin_token,
                    params={"customer_id": order["customer_id"]},
                ).json()["items"]
                if s["status"] == "active"
            ),
            None,
        ),
        what="the active service",
    )
    r = stack.http(
        "POST",
        f"/api/v1/staff/services/{service['id']}/suspend",
        stack.admin_token,
        json={"reason": "spam from the server"},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: (
            "Service.Suspended" in {i["type"] for i in history(stack, f"service/{service['id']}")}
        ),
        what="the suspension in the service's history",
    )

    _, _, page = staff_page(stack, browser, "auditor", "en", "staff-history-service")
    p = page.page
    page.goto(f"/staff/services/{service['id']}")
    p.get_by_role("link", name="Full history: every change and who made it").click()
    p.wait_for_url(f"**/staff/services/{service['id']}/history")
    expect(p.get_by_role("heading", name="History of the service")).to_be_visible()
    row = p.get_by_role("row").filter(has_text="Service suspended")
    expect(row).to_contain_text("Active → Suspended")
    expect(row).to_contain_text("spam from the server")
    expect(row).to_contain_text("Administrator")
    page.check("service-history")
    page.close()
