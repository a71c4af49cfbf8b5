"""The staff panel's "Erase personal data" page: a deleted customer's card offers it to
administrators only (support sees no button, and the page and a direct POST answer them
403); the form refuses a missing reason and a missing confirmation tick, each error next
to its field, erasing nothing; sent properly, the card says when, by whom and why, and
the customer's name and e-mail read as the placeholder. The page is translated in Russian
and French and usable on a phone. Each page is checked (console, requests, axe-core) and
kept as a screenshot."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page

PLACEHOLDER = "[erased]"
ENGLISH_LABELS = (
    "Erase the personal data",
    "Reason",
    "Recorded with your name in every service.",
    "I understand that this cannot be undone",
    "Cancel",
    "Back to customer",
    "In every service",
)
LABELS = {
    "en": {
        "card_button": "Erase personal data",
        "heading": "Erase the personal data of customer {number}: {name}",
        "reason": "Reason",
        "hint": "Recorded with your name in every service.",
        "confirm": "I understand that this cannot be undone",
        "submit": "Erase the personal data",
        "cancel": "Cancel",
        "back": "Back to customer {number}",
        "no_reason": "Say why the data is erased: it is recorded.",
        "no_tick": "Tick this to confirm: it cannot be undone.",
        "done": "The customer's personal data is erased here; the other services follow in a "
        "moment.",
        "erased_by": "Its personal data was erased on",
        "why": "Reason: {reason}",
        "card_heading": "Customer {number}: {name}",
        "erased": "erased",
        "email": "E-mail",
        "contact": "Contact person",
        "registered": "Registered",
    },
    "ru": {
        "card_button": "Удалить персональные данные",
        "heading": "Удаление персональных данных клиента {number}: {name}",
        "reason": "Причина",
        "hint": "Записывается с вашим именем во всех сервисах.",
        "confirm": "Я понимаю, что это нельзя отменить",
        "submit": "Удалить персональные данные",
        "cancel": "Отмена",
        "back": "Назад к клиенту {number}",
        "no_reason": "Укажите, почему данные удаляются: это записывается.",
        "no_tick": "Отметьте, чтобы подтвердить: это нельзя отменить.",
        "done": "Персональные данные клиента удалены здесь; остальные сервисы сделают это "
        "через мгновение.",
        "erased_by": "Его персональные данные удалены",
        "why": "Причина: {reason}",
        "card_heading": "Клиент {number}: {name}",
        "erased": "стёрто",
        "email": "E-mail",
        "contact": "Контактное лицо",
        "registered": "Зарегистрирован",
    },
    "fr": {
        "card_button": "Effacer les données personnelles",
        "heading": "Effacer les données personnelles du client {number} : {name}",
        "reason": "Motif",
        "hint": "Enregistré avec votre nom dans chaque service.",
        "confirm": "Je comprends que c'est irréversible",
        "submit": "Effacer les données personnelles",
        "cancel": "Annuler",
        "back": "Retour au client {number}",
        "no_reason": "Dites pourquoi les données sont effacées : c'est enregistré.",
        "no_tick": "Cochez pour confirmer : c'est irréversible.",
        "done": "Les données personnelles du client sont effacées ici ; les autres services "
        "suivent dans un instant.",
        "erased_by": "Ses données personnelles ont été effacées le",
        "why": "Motif : {reason}",
        "card_heading": "Client {number} : {name}",
        "erased": "effacé",
        "email": "E-mail",
        "contact": "Personne à contacter",
        "registered": "Inscrit",
    },
}


def _deleted_customer(stack, name: str) -> dict:
    customer = stack.register_customer(contact_person=name)
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        params={"confirm": "true"},
    )
    assert r.status_code in (200, 204), r.text
    return customer


def _not_erased(stack, page, customer: dict, name: str, offered: bool = True) -> None:
    """The card, in another tab of the same session, still names the customer and its
    e-mail, says nothing of an erasure and still offers it (to an administrator)."""
    tab = page.page.context.new_page()
    try:
        tab.goto(f"{stack.base_url}/staff/customers/{customer['id']}", wait_until="networkidle")
        main = tab.locator("main")
        expect(main.locator("h1")).to_contain_text(name)
        expect(main).to_contain_text(customer["email"])
        expect(main).not_to_contain_text(PLACEHOLDER)
        expect(main.locator("a[href$='/erase']")).to_have_count(1 if offered else 0)
    finally:
        tab.close()


def _first_erasure(stack, customer: dict) -> dict:
    """The erasure as recorded: a repeat of the erase request answers the first one and
    records nothing."""
    r = stack.http(
        "POST",
        f"/api/v1/staff/customers/{customer['id']}/erase",
        stack.admin_token,
        json={"reason": "a second time"},
    )
    assert r.status_code == 202, r.text
    return r.json()


def _erase_it(stack, page, customer: dict, name: str, language: str, member: dict):
    """From the card of the deleted customer: the button, the form refused twice (each
    error next to its field, nothing erased), then the erasure shown on the card."""
    words = LABELS[language]
    p = page.page
    number = customer["number"]
    page.goto(f"/staff/customers/{customer['id']}")
    expect(
        p.get_by_role("heading", name=words["card_heading"].format(number=number, name=name))
    ).to_be_visible()
    registered = p.locator(".facts div", has=p.locator("dt", has_text=words["registered"]))
    assert customer.get("registration_ip"), customer
    expect(registered.locator("dd")).to_contain_text(f"({customer['registration_ip']})")
    p.get_by_role("link", name=words["card_button"], exact=True).click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}/erase")
    expect(
        p.get_by_role("heading", name=words["heading"].format(number=number, name=name))
    ).to_be_visible()
    expect(p.get_by_role("link", name=words["back"].format(number=number))).to_be_visible()
    expect(p.get_by_label(words["reason"], exact=True)).to_be_visible()
    expect(p.get_by_text(words["hint"], exact=True)).to_be_visible()
    expect(p.get_by_label(words["confirm"], exact=True)).not_to_be_checked()
    expect(p.get_by_role("button", name=words["submit"], exact=True)).to_be_visible()
    expect(p.get_by_role("link", name=words["cancel"], exact=True)).to_be_visible()
    if language != "en":
        main = p.locator("main").inner_text()
        leftovers = [label for label in ENGLISH_LABELS if label in main]
        assert not leftovers, f"English left on the {language} page: {leftovers}"
    page.check("erase-form")

    # ticked, without a reason: the error next to the reason, nothing erased
    p.get_by_label(words["confirm"], exact=True).check()
    p.get_by_role("button", name=words["submit"], exact=True).click()
    expect(p.locator("#error-reason")).to_have_text(words["no_reason"])
    expect(p.get_by_label(words["reason"], exact=True)).to_have_attribute(
        "aria-describedby", "hint-reason error-reason"
    )
    expect(p.get_by_label(words["reason"], exact=True)).to_be_focused()
    expect(p.locator("#error-confirm")).to_have_count(0)
    page.check("erase-no-reason", allow=(400,))
    _not_erased(stack, page, customer, name)

    # a reason, not ticked: the error next to the tick, the reason kept, nothing erased
    reason = f"Asked by the customer {uuid.uuid4().hex[:6]}"
    p.get_by_label(words["reason"], exact=True).fill(reason)
    tick = p.get_by_label(words["confirm"], exact=True)
    if tick.is_checked():
        tick.uncheck()
    p.get_by_role("button", name=words["submit"], exact=True).click()
    expect(p.locator("#error-confirm")).to_have_text(words["no_tick"])
    expect(p.get_by_label(words["confirm"], exact=True)).to_have_attribute(
        "aria-describedby", "error-confirm"
    )
    expect(p.locator("#error-reason")).to_have_count(0)
    expect(p.get_by_label(words["reason"], exact=True)).to_have_value(reason)
    page.check("erase-no-tick", allow=(400,))
    _not_erased(stack, page, customer, name)

    # sent properly: the card says it, when, by whom, why; name and e-mail are gone
    p.get_by_label(words["confirm"], exact=True).check()
    p.get_by_role("button", name=words["submit"], exact=True).click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}?done=erased")
    expect(p.get_by_role("status")).to_have_text(words["done"])
    erased_line = p.locator("p", has_text=words["erased_by"])
    expect(erased_line).to_contain_text(member["name"])
    expect(erased_line).to_contain_text(words["why"].format(reason=reason))
    erasure = _first_erasure(stack, customer)
    assert erasure["reason"] == reason, erasure
    assert erasure["actor"]["kind"] == "staff", erasure
    assert erasure["actor"]["id"] == member["id"], erasure
    # the erased values read as the translated word, muted, never as the raw placeholder
    label = words["erased"]
    expect(
        p.get_by_role("heading", name=words["card_heading"].format(number=number, name=label))
    ).to_be_visible()
    for fact in (words["email"], words["contact"]):
        value = p.locator(".facts div", has=p.locator("dt", has_text=fact)).locator("dd")
        expect(value).to_have_text(label)
        expect(value.locator("span.erased")).to_have_class(re.compile(r"\bmuted\b"))
    # the registration address is gone from beside the date, not shown as a placeholder
    expect(registered.locator("dd")).not_to_contain_text("(")
    body = p.locator("main").inner_text()
    assert name not in body and customer["email"] not in body, body
    assert PLACEHOLDER not in body and f"({PLACEHOLDER})" not in body, body
    # erased once: no button any more
    expect(p.get_by_role("link", name=words["card_button"], exact=True)).to_have_count(0)
    page.check("erased-card")
    # and at a phone's width
    desktop = p.viewport_size
    p.set_viewport_size(PHONE)
    expect(p.get_by_role("heading", name=re.compile(re.escape(label)))).to_be_visible()
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.check("erased-card")  # named after the width
    p.set_viewport_size(desktop)
    return reason


def test_support_sees_no_erase_and_is_refused(stack, browser):
    tag = uuid.uuid4().hex[:8]
    name = f"Erin Keep {tag}"
    customer = _deleted_customer(stack, name)
    _, token, page = staff_page(stack, browser, "support", "en", "staff-erasure-support")
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}")
    expect(p.get_by_role("heading", name=f"Customer {customer['number']}: {name}")).to_be_visible()
    expect(p.get_by_text("Deleted", exact=True).first).to_be_visible()
    expect(p.get_by_role("link", name="Erase personal data")).to_have_count(0)
    csrf = p.locator("input[name=csrf_token]").first.get_attribute("value")
    assert csrf
    page.check("card-support")

    answer = page.goto(f"/staff/customers/{customer['id']}/erase")
    assert answer.status == 403
    page.check("erase-page-refused", allow=(403,))
    # a direct POST of the form, with the session's own CSRF token: refused for the role
    posted = p.request.post(
        f"{stack.base_url}/staff/customers/{customer['id']}/erase",
        form={"csrf_token": csrf, "reason": "support tries", "confirm": "1"},
        max_redirects=0,
    )
    assert posted.status == 403, posted.status
    assert "This form has expired" not in posted.text()
    r = stack.http(
        "POST",
        f"/api/v1/staff/customers/{customer['id']}/erase",
        token,
        json={"reason": "support tries"},
    )
    assert r.status_code == 403, r.text
    _not_erased(stack, page, customer, name, offered=False)
    page.close()


def test_an_administrator_erases_a_deleted_customer_in_english(stack, browser):
    tag = uuid.uuid4().hex[:8]
    name = f"Erin Gone {tag}"
    customer = _deleted_customer(stack, name)
    member, _, page = staff_page(stack, browser, "admin", "en", "staff-erasure-en")
    _erase_it(stack, page, customer, name, "en", member)
    # erased once: the page, opened again (a tab left open, the back button), sends the
    # person to the card, which says it is done
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}/erase")
    assert page.path == f"/staff/customers/{customer['id']}", page.path
    expect(p.locator("p", has_text="Its personal data was erased on")).to_be_visible()
    expect(p.get_by_role("link", name="Erase personal data")).to_have_count(0)
    page.check("erase-page-again")
    page.close()


def test_a_customer_not_deleted_offers_no_erase(stack, browser):
    tag = uuid.uuid4().hex[:8]
    customer = stack.register_customer(contact_person=f"Erin Here {tag}")
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-erasure-live")
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}")
    expect(p.get_by_role("link", name="Delete", exact=True)).to_be_visible()
    expect(p.get_by_role("link", name="Erase personal data")).to_have_count(0)
    page.goto(f"/staff/customers/{customer['id']}/erase")
    assert page.path == f"/staff/customers/{customer['id']}", page.path
    page.check("erase-page-not-deleted")
    expect(p.locator("main h1")).to_contain_text(f"Erin Here {tag}")
    page.close()


@pytest.mark.parametrize("language", ["ru", "fr"])
def test_the_erase_page_in_russian_and_french(stack, browser, language):
    tag = uuid.uuid4().hex[:8]
    name = {"ru": f"Ирина Стерта {tag}", "fr": f"Élise Effacée {tag}"}[language]
    customer = _deleted_customer(stack, name)
    member, _, page = staff_page(stack, browser, "admin", language, f"staff-erasure-{language}")
    _erase_it(stack, page, customer, name, language, member)
    page.close()


def test_the_erase_form_on_a_phone(stack, browser):
    tag = uuid.uuid4().hex[:8]
    name = f"Erin Phone {tag}"
    customer = _deleted_customer(stack, name)
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-erasure-phone", viewport=PHONE)
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}/erase")
    expect(p.get_by_role("heading", name="Erase the personal data of customer")).to_be_visible()
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for control in (
        p.get_by_label("Reason", exact=True),
        p.get_by_label("I understand that this cannot be undone", exact=True),
        p.get_by_role("button", name="Erase the personal data", exact=True),
        p.get_by_role("link", name="Cancel", exact=True),
    ):
        control.scroll_into_view_if_needed()
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    reason_box = p.get_by_label("Reason", exact=True).bounding_box()
    assert reason_box["width"] >= 200, reason_box
    page.check("erase-form")
    p.get_by_role("button", name="Erase the personal data", exact=True).click()
    expect(p.locator("#error-reason")).to_be_visible()
    expect(p.locator("#error-confirm")).to_be_visible()
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.check("erase-errors", allow=(400,))
    _not_erased(stack, page, customer, name)
    p.get_by_label("Reason", exact=True).fill("Asked by phone")
    p.get_by_label("I understand that this cannot be undone", exact=True).check()
    p.get_by_role("button", name="Erase the personal data", exact=True).click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}?done=erased")
    expect(p.get_by_role("heading", name="erased")).to_be_visible()
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.check("erased-card")
    page.close()
