"""The staff panel's billing pages, clicked through as a person would: a billing member
in Russian voids an invoice with a reason (it shows as void, its number kept) and
records a payment against another (it becomes paid); a support member in French, on a
phone, sees the invoices but no void or record buttons, and the payment form is refused
(403). Each page is checked (console, requests, axe-core) and kept as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page

WAIT = 15_000  # ms: lists are read models, a moment behind a write


def _customer_with_invoices(stack, *amounts):
    customer = stack.register_customer()
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", f"/api/v1/staff/customers/{customer['id']}/account", stack.admin_token
            ).status_code
            == 200
        ),
        what="the personal account",
    )
    invoices = []
    for amount in amounts:
        r = stack.http(
            "POST",
            "/api/v1/staff/invoices",
            stack.admin_token,
            json={
                "customer_id": customer["id"],
                "lines": [
                    {
                        "description": "Виртуальный сервер",
                        "quantity": 1,
                        "unit_price": {"amount": amount, "currency": "EUR"},
                        "period": "2026-12",
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        invoices.append(r.json())
    return customer, invoices


def test_billing_voids_an_invoice_and_records_a_payment_in_russian(stack, browser):
    customer, (to_void, to_pay) = _customer_with_invoices(stack, 1500, 2490)
    _, _, page = staff_page(stack, browser, "billing", "ru", "staff-billing-ru")
    p = page.page

    # the customer's invoices, through the panel's customer filter
    page.goto(f"/staff/invoices?customer={customer['id']}")
    expect(p.get_by_role("heading", name="Счета", exact=True)).to_be_visible()
    expect(p.get_by_role("link", name=f"Счёт {to_void['number']}")).to_be_visible(timeout=WAIT)
    page.check("invoices")

    # void the first one, saying why
    p.get_by_role("link", name=f"Счёт {to_void['number']}").click()
    expect(p.get_by_role("heading", name=f"Счёт {to_void['number']}")).to_be_visible()
    expect(p.get_by_role("link", name="Скачать PDF")).to_have_attribute(
        "href", f"/api/v1/staff/invoices/{to_void['id']}/pdf?language=ru"
    )
    page.check("invoice-unpaid")
    p.get_by_label("Почему счёт аннулируется?").fill("Выставлен дважды по ошибке")
    p.get_by_role("button", name="Аннулировать счёт").click()
    p.wait_for_url(f"**/staff/invoices/{to_void['id']}?done=voided")
    expect(p.locator(".alert-ok")).to_have_text("Счёт аннулирован. Его номер остаётся занятым.")
    heading = p.get_by_role("heading", name=f"Счёт {to_void['number']}")
    expect(heading).to_contain_text("Аннулирован")
    expect(p.get_by_text("Выставлен дважды по ошибке")).to_be_visible()
    expect(p.get_by_role("button", name="Аннулировать счёт")).to_have_count(0)
    expect(p.get_by_role("button", name="Отметить платёж")).to_have_count(0)
    page.check("invoice-void")

    # in the list of void invoices, under the same number
    p.get_by_role("link", name="Все счета").click()
    p.get_by_role("navigation", name="Какие счета").get_by_role(
        "link", name="Аннулированные"
    ).click()
    row = p.get_by_role("row").filter(has_text=to_void["number"])
    expect(row).to_contain_text("Аннулирован", timeout=WAIT)
    page.check("invoices-void")

    # record a bank transfer against the second one: it is paid
    page.goto(f"/staff/invoices/{to_pay['id']}")
    expect(p.get_by_label("Полученная сумма")).to_have_value("24,90")
    p.get_by_label("Способ оплаты").select_option(label="Банковский перевод")
    p.get_by_label("Основание").fill("ПП-7731")
    p.get_by_role("button", name="Отметить платёж").click()
    p.wait_for_url(f"**/staff/invoices/{to_pay['id']}?done=paid")
    expect(p.locator(".alert-ok")).to_have_text("Платёж отмечен: счёт оплачен.")
    expect(p.get_by_role("heading", name=f"Счёт {to_pay['number']}")).to_contain_text("Оплачен")
    payments = p.get_by_role("region", name="Платежи")
    expect(payments).to_contain_text("Банковский перевод")
    expect(payments).to_contain_text("ПП-7731")
    page.check("invoice-paid")

    # the payment is in the payments list
    p.get_by_role("navigation", name="Биллинг").get_by_role(
        "link", name="Платежи", exact=True
    ).click()
    expect(p.get_by_role("row").filter(has_text="ПП-7731")).to_be_visible(timeout=WAIT)
    page.check("payments")
    page.close()


def test_support_sees_invoices_but_may_not_void_or_record_on_a_phone(stack, browser):
    customer, (invoice,) = _customer_with_invoices(stack, 990)
    _, _, page = staff_page(stack, browser, "support", "fr", "staff-billing-fr", viewport=PHONE)
    p = page.page
    page.goto(f"/staff/invoices?customer={customer['id']}")
    link = p.get_by_role("link", name=f"Facture {invoice['number']}")
    expect(link).to_be_visible(timeout=WAIT)
    expect(p.get_by_role("link", name="Émettre une facture")).to_have_count(0)
    page.check("invoices-support")

    link.click()
    expect(p.get_by_role("heading", name=f"Facture {invoice['number']}")).to_be_visible()
    expect(p.get_by_role("button", name="Annuler la facture")).to_have_count(0)
    expect(p.get_by_role("button", name="Enregistrer le paiement")).to_have_count(0)
    expect(p.get_by_role("heading", name="Enregistrer un paiement")).to_have_count(0)
    page.check("invoice-support")

    p.get_by_role("navigation", name="Facturation").get_by_role(
        "link", name="Paiements", exact=True
    ).click()
    expect(p.get_by_role("link", name="Enregistrer un paiement")).to_have_count(0)
    response = page.goto("/staff/payments/new")
    assert response.status == 403
    page.check("payment-new-refused", allow=(403,))
    page.close()


def test_admin_issues_an_invoice_refunds_it_and_reads_its_credit_note(stack, browser):
    customer, _ = _customer_with_invoices(stack)
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-billing-en")
    p = page.page

    # a payment to the personal account, for no invoice
    page.goto("/staff/payments/new")
    p.get_by_label("Customer number").fill(str(customer["number"]))
    p.get_by_label("Amount received").fill("40.00")
    p.get_by_label("How it came").select_option(label="Cash")
    p.get_by_label("Reference").fill("Receipt 18")
    page.check("payment-new")
    p.get_by_role("button", name="Record the payment").click()
    p.wait_for_url("**/staff/payments?done=recorded")
    expect(p.locator(".alert-ok")).to_have_text("The payment is recorded.")
    page.check("payment-recorded")

    # an invoice by hand: a wrong price is named next to its field
    page.goto(f"/staff/invoices/new?customer={customer['id']}")
    expect(p.get_by_label("Customer number")).to_have_value(str(customer["number"]))
    line = p.get_by_role("group", name="Line 1")
    line.get_by_label("Description").fill("Setting up a mail server")
    line.get_by_label("Quantity").fill("2")
    line.get_by_label("Unit price").fill("twelve")
    # the period's first day without its last: named next to the last day's field
    line.get_by_label("First day of the period").fill("2026-12-01")
    p.get_by_role("button", name="Issue the invoice").click()
    expect(p.locator("#error-price_0")).to_have_text("Enter an amount such as 25.00.")
    expect(p.locator("#error-period_end_0")).to_have_text(
        "Give both days of the period, or neither."
    )
    page.check("invoice-new-refused", allow=(400,))
    line = p.get_by_role("group", name="Line 1")
    line.get_by_label("Unit price").fill("12.50")
    line.get_by_label("Last day of the period").fill("2026-11-30")
    p.get_by_role("button", name="Issue the invoice").click()
    expect(p.locator("#error-period_end_0")).to_have_text(
        "The last day comes on or after the first."
    )
    page.check("invoice-new-refused-period", allow=(400,))
    p.get_by_role("group", name="Line 1").get_by_label("Last day of the period").fill("2026-12-31")
    p.get_by_role("button", name="Issue the invoice").click()
    p.wait_for_url("**?done=issued")
    expect(p.locator(".alert-ok")).to_have_text("The invoice is issued.")
    row = p.get_by_role("row").filter(has_text="Setting up a mail server")
    expect(row).to_contain_text("€25.00")
    expect(row).to_contain_text("Period: Dec 1, 2026 – Dec 31, 2026")
    invoice_id = page.path.split("/")[-1].split("?")[0]
    issued = stack.http("GET", f"/api/v1/staff/invoices/{invoice_id}", stack.admin_token).json()
    assert (issued["lines"][0]["period_start"], issued["lines"][0]["period_end"]) == (
        "2026-12-01",
        "2026-12-31",
    )
    page.check("invoice-issued")

    # paid, then refunded in part to the personal account: a credit note
    p.get_by_label("Reference").fill("TX-55")
    p.get_by_role("button", name="Record the payment").click()
    p.wait_for_url("**?done=paid")
    p.get_by_label("Amount to refund").fill("5")
    p.get_by_label("Why is it refunded?").fill("One day of downtime")
    p.get_by_role("button", name="Refund", exact=True).click()
    p.wait_for_url("**/staff/refunds/*?done=requested")
    expect(p.get_by_role("heading", name="Refund for invoice")).to_contain_text("Completed")
    page.check("refund")
    refund_id = page.path.split("/")[-1].split("?")[0]
    refund = stack.http("GET", f"/api/v1/staff/refunds/{refund_id}", stack.admin_token).json()
    p.get_by_role("link", name=refund["credit_note_number"], exact=True).click()
    expect(
        p.get_by_role("heading", name=f"Credit note {refund['credit_note_number']}")
    ).to_be_visible()
    expect(p.get_by_text("One day of downtime")).to_be_visible()
    page.check("credit-note")

    for path, heading in (
        ("/staff/refunds?status=failed", "Refunds"),
        ("/staff/credit-notes", "Credit notes"),
        ("/staff/payments/unmatched", "Unmatched payments"),
        ("/staff/invoices?status=overdue", "Invoices"),
    ):
        page.goto(path)
        expect(p.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.check(path.split("/")[-1].split("?")[0])
    page.close()


def test_admin_adds_and_ends_a_tax_rule_and_deactivates_a_program_in_french(stack, browser):
    _, _, page = staff_page(stack, browser, "admin", "fr", "staff-billing-rules-fr")
    p = page.page
    name = f"TVA test {uuid.uuid4().hex[:4]}"
    page.goto("/staff/tax-rules")
    form = p.get_by_role("region", name="Ajouter une règle de taxe")
    form.get_by_label("Nom").fill(name)
    form.get_by_label("Pays de l'acheteur").fill("li")
    form.get_by_label("Taux en pourcentage").fill("beaucoup")
    form.get_by_label("Valable à partir du").fill("2099-01-01")
    form.get_by_role("button", name="Ajouter la règle").click()
    expect(p.locator("#error-rate")).to_have_text("Un pourcentage entre 0 et 100, par exemple 20.")
    page.check("tax-rule-refused", allow=(400,))
    p.get_by_label("Taux en pourcentage").fill("7,7")
    p.get_by_role("button", name="Ajouter la règle").click()
    p.wait_for_url("**/staff/tax-rules?done=added")
    row = p.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("À venir")
    page.check("tax-rules")

    row.get_by_role("link", name=name).click()
    expect(p.get_by_role("heading", name=f"Règle de taxe {name}")).to_be_visible()
    p.get_by_label("Valable jusqu'au").fill("2099-06-30")
    p.get_by_role("button", name="Enregistrer la règle").click()
    p.wait_for_url("**/staff/tax-rules?done=changed")
    expect(p.get_by_role("row").filter(has_text=name)).to_contain_text("30 juin 2099")

    program = f"Partenaires {uuid.uuid4().hex[:4]}"
    page.goto("/staff/affiliate-programs")
    p.get_by_label("Nom").fill(program)
    p.get_by_label("Commission en pourcentage").fill("10")
    p.get_by_label("Maturation, jours").fill("30")
    p.get_by_role("button", name="Ajouter le programme").click()
    p.wait_for_url("**/staff/affiliate-programs?done=added")
    p.get_by_role("link", name=program).click()
    expect(p.get_by_role("heading", name=f"Programme d'affiliation {program}")).to_be_visible()
    p.get_by_label("Actif : de nouvelles commissions sont gagnées avec lui").uncheck()
    page.check("program")
    p.get_by_role("button", name="Enregistrer le programme").click()
    p.wait_for_url("**/staff/affiliate-programs?done=changed")
    expect(p.get_by_role("listitem").filter(has_text=program)).to_contain_text("Désactivé")
    page.check("programs")
    page.close()
