"""The staff panel's customers, in French: support finds a customer with the filters,
opens its card, corrects its e-mail with a reason (refused without one, the error next
to the field), sees the change and its reason in the history, enters the customer's
area (the banner names the staff member) and comes back to the card. Billing staff see
the card without the edit button, and the edit page answers 403; the list works on a
phone. Each page is checked (console, requests, axe-core) and kept as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page


def test_find_a_customer_correct_its_email_and_enter_its_area_in_french(stack, browser):
    tag = uuid.uuid4().hex[:8]
    customer = stack.register_customer(contact_person=f"Zoé Lefort {tag}", language="fr")
    referrer = stack.register_customer(contact_person=f"Marc Parrain {tag}")
    # a product named in each language: the filters offer it in the page's
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": f"Hosting {tag}", "ru": f"Хостинг {tag}", "fr": f"Hébergement {tag}"},
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
        },
    )
    assert product.status_code == 201, product.text
    member, _, page = staff_page(stack, browser, "support", "fr", "staff-customers-fr")
    p = page.page

    p.get_by_role("navigation", name="Rubriques").get_by_role("link", name="Clients").click()
    p.wait_for_url("**/staff/customers")
    expect(p.get_by_role("heading", name="Clients", exact=True)).to_be_visible()
    p.get_by_label("Nom, identifiant ou e-mail").fill(tag)
    p.get_by_label("Trier par").select_option(label="Nom, de A à Z")
    p.get_by_text("Autres filtres").click()
    expect(p.locator("option", has_text=f"Hébergement {tag}")).to_have_count(1)
    p.get_by_label("Langue").select_option(label="Français")
    p.get_by_role("button", name="Rechercher").click()
    found = p.get_by_role("link", name=f"{customer['number']} Zoé Lefort {tag}")
    expect(found).to_be_visible(timeout=15_000)
    expect(p.get_by_text("1 client trouvé")).to_be_visible()
    page.check("customers-found")

    found.click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}")
    expect(
        p.get_by_role("heading", name=f"Client {customer['number']} : Zoé Lefort {tag}")
    ).to_be_visible()
    expect(p.get_by_text(customer["email"])).to_be_visible()
    page.check("customer-card")

    # a correction without a reason is refused, the error next to the field
    new_email = f"zoe-{tag}@example.org"
    p.get_by_role("link", name="Modifier").click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}/edit")
    p.get_by_label("E-mail").fill(new_email)
    p.get_by_role("button", name="Enregistrer").click()
    expect(p.locator("#error-reason")).to_have_text(
        "Indiquez pourquoi vous corrigez : la raison est enregistrée."
    )
    page.check("customer-edit-no-reason", allow=(400,))
    p.get_by_label("Motif de la correction").fill("Adresse mal saisie à l'inscription")
    p.get_by_label("Parrainé par (numéro de client)").fill(str(referrer["number"]))
    p.get_by_role("button", name="Enregistrer").click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}?done=saved")
    expect(p.get_by_text("Les modifications sont enregistrées.")).to_be_visible()
    expect(p.get_by_text(new_email).first).to_be_visible()
    expect(p.get_by_role("link", name="le client parrain")).to_have_attribute(
        "href", f"/staff/customers/{referrer['id']}"
    )
    page.check("customer-corrected")

    # the correction in the customer's history, with why and who
    def corrected():
        r = stack.http(
            "GET",
            f"/api/v1/staff/audit/customers/{customer['id']}/history",
            stack.admin_token,
            params={"limit": 200},
        )
        return any(i["type"] == "Customer.Corrected" for i in r.json()["items"])

    stack.wait_until(corrected, what="the correction in the customer's history")
    p.get_by_role("link", name="Historique", exact=True).click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}/history")
    row = p.get_by_role("row").filter(has_text="Informations d'inscription corrigées")
    expect(row).to_contain_text("Motif : Adresse mal saisie à l'inscription")
    expect(row).to_contain_text(member["name"])
    page.check("customer-corrected-history")
    p.get_by_role("link", name="Retour à la fiche du client").click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}")

    # into the customer's area, and back
    p.get_by_role("button", name="Passer dans l'espace du client").click()
    p.wait_for_url("**/dashboard")
    expect(
        p.get_by_text(f"{member['name']}, de l'équipe, agit dans l'espace de ce client.")
    ).to_be_visible()
    page.check("customer-area-as-staff")
    # helping, yes; taking the account over, no: the form says why
    page.goto("/settings/password")
    p.get_by_label("Mot de passe actuel").fill(customer["credentials"]["password"])
    p.get_by_label("Nouveau mot de passe", exact=True).fill("pris par le personnel 1")
    p.get_by_label("Nouveau mot de passe, à nouveau").fill("pris par le personnel 1")
    p.get_by_role("button", name="Changer le mot de passe").click()
    expect(p.get_by_role("alert")).to_have_text(
        "Un membre du personnel agissant en tant que client ne peut pas faire cela : "
        "seul le client le peut, connecté lui-même."
    )
    page.check("customer-password-refused-to-staff", allow=(403,))
    p.get_by_role("button", name="Revenir au panneau du personnel").click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}")
    expect(
        p.get_by_role("heading", name=f"Client {customer['number']} : Zoé Lefort {tag}")
    ).to_be_visible()
    page.close()


def test_billing_staff_see_no_edit_and_the_list_works_on_a_phone(stack, browser):
    tag = uuid.uuid4().hex[:8]
    customer = stack.register_customer(contact_person=f"Phone Person {tag}")
    _, _, page = staff_page(
        stack, browser, "billing", "en", "staff-customers-billing", viewport=PHONE
    )
    p = page.page
    page.goto(f"/staff/customers?name={tag}")
    row = p.get_by_role("link", name=f"{customer['number']} Phone Person {tag}")
    expect(row).to_be_visible(timeout=15_000)
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.check("customers-phone")

    row.click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}")
    expect(p.get_by_role("heading", name="Personal account")).to_be_visible()
    expect(p.get_by_role("link", name="Edit")).to_have_count(0)
    expect(p.get_by_role("button", name="Switch to the customer panel")).to_have_count(0)
    page.check("customer-card-billing")

    answer = page.goto(f"/staff/customers/{customer['id']}/edit")
    assert answer.status == 403
    page.check("customer-edit-refused", allow=(403,))
    page.close()


def test_register_a_company_then_delete_it_with_a_reason_in_russian(stack, browser):
    tag = uuid.uuid4().hex[:8]
    _, _, page = staff_page(stack, browser, "admin", "ru", "staff-customers-ru")
    p = page.page
    page.goto("/staff/customers")
    p.get_by_role("link", name="Новый клиент").click()
    p.wait_for_url("**/staff/customers/new")
    p.get_by_label("Вид").select_option(label="Компания")
    p.get_by_label("Контактное лицо").fill(f"Иван Петров {tag}")
    p.get_by_label("E-mail").fill(f"ivan-{tag}@example.ru")
    p.get_by_label("Страна").select_option("RU")
    p.get_by_role("button", name="Зарегистрировать клиента").click()
    expect(p.locator("#error-company_name")).to_have_text("Для компании нужно название компании.")
    page.check("customer-new-no-company-name", allow=(400,))
    p.get_by_label("Название компании").fill(f"ООО Ромашка {tag}")
    p.get_by_role("button", name="Зарегистрировать клиента").click()
    expect(p.get_by_role("heading", name="зарегистрирован")).to_be_visible()
    expect(p.get_by_text("Пароль", exact=True)).to_be_visible()
    page.check("customer-registered")
    p.get_by_role("link", name="Открыть карточку").click()
    expect(p.get_by_role("heading", name=f"ООО Ромашка {tag}")).to_be_visible()
    customer_id = page.path.split("/")[-1]

    # a balance keeps it from being deleted: the page says why
    p.get_by_label("Сумма в EUR").fill("5")
    p.get_by_label("Причина").fill("Компенсация за простой")
    p.get_by_role("button", name="Исправить баланс").click()
    p.wait_for_url(f"**/staff/customers/{customer_id}?done=account")
    expect(p.get_by_text("Лицевой счёт исправлен.")).to_be_visible()
    expect(p.get_by_text("5,00")).to_be_visible()
    page.check("customer-account-corrected")
    p.get_by_role("link", name="Удалить").click()
    p.get_by_role("button", name="Удалить клиента").click()
    expect(p.locator("#error-reason")).to_have_text(
        "Укажите причину удаления: она сохраняется в истории."
    )
    page.check("customer-delete-no-reason", allow=(400,))
    p.get_by_label("Причина").fill("Клиент попросил закрыть аккаунт")
    p.get_by_role("button", name="Удалить клиента").click()
    expect(p.get_by_role("alert")).to_contain_text("Баланс лицевого счёта не нулевой")
    page.check("customer-delete-refused", allow=(409,))

    # an administrator deletes it anyway; the card stays, read-only
    p.get_by_label("Причина").fill("Клиент попросил закрыть аккаунт")
    p.get_by_label("Удалить всё равно, даже при активных услугах или ненулевом балансе").check()
    p.get_by_role("button", name="Удалить клиента").click()
    p.wait_for_url(f"**/staff/customers/{customer_id}?done=deleted")
    expect(
        p.get_by_text("Этот клиент удалён; его карточка доступна только для просмотра.")
    ).to_be_visible()
    expect(p.get_by_text("Причина: Клиент попросил закрыть аккаунт").first).to_be_visible()
    expect(p.get_by_role("link", name="Изменить")).to_have_count(0)
    page.check("customer-deleted")
    page.close()
