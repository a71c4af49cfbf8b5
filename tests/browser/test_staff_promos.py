"""The staff panel's promo codes, clicked through as a person would: in English a
billing member adds a code (a malformed one is refused next to its field), changes its
terms, deactivates it and finds it by the list's filters, and a client ordering with it
is told it is no longer valid; in Russian and French the list and the code's page read
in their language, and a support member sees them without the forms. Each page is
checked (console, requests, axe-core) and kept as a screenshot."""

import uuid
from urllib.parse import urlencode

from playwright.sync_api import expect

from gateway.web.client.ordering import cart_query
from tests.browser.chromium import PHONE, Watched
from tests.browser.staff import staff_page
from tests.browser.test_client_area import EN, _log_in

PASSWORD = "promo client password 1"


def _product(stack, tag: str) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": f"Promo VPS {tag}", "ru": f"Промо VPS {tag}", "fr": f"VPS promo {tag}"},
            "prices": {"monthly": {"amount": 1000, "currency": "EUR"}},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_billing_adds_changes_and_deactivates_a_code_in_english(stack, browser):
    tag = uuid.uuid4().hex[:6].upper()
    code = f"SPRING-{tag}"
    product = _product(stack, tag)
    member, _, page = staff_page(stack, browser, "billing", "en", "staff-promos-en")
    p = page.page
    page.goto("/staff/promo-codes")
    expect(p.get_by_role("heading", name="Promo codes", level=1)).to_be_visible()
    tabs = p.get_by_role("navigation", name="Billing")
    expect(tabs.get_by_role("link", name="Promo codes")).to_have_attribute("aria-current", "page")
    page.check("list")

    p.get_by_role("link", name="New promo code").click()
    p.get_by_label("Code", exact=True).fill("x!")
    p.get_by_label("Kind").select_option(label="A fixed amount")
    p.get_by_label("Amount").fill("9.99")
    p.get_by_label("Currency").fill("eur")
    p.get_by_role("button", name="Add the promo code").click()
    expect(p.locator("#error-code")).to_have_text("From 3 to 40 letters, digits, _ or -.")
    page.check("refused", allow=(400,))

    p.get_by_label("Code", exact=True).fill(code)
    p.get_by_label(f"Promo VPS {tag}").check()
    p.get_by_label("Expires at the end of").fill("2099-12-31")
    p.get_by_label("Most uses").fill("3")
    p.get_by_role("button", name="Add the promo code").click()
    p.wait_for_url("**/staff/promo-codes/*?done=created")
    expect(p.get_by_role("status").filter(has_text="The promo code is added.")).to_be_visible()
    expect(p.get_by_role("heading", name=f"Promo code {code}")).to_be_visible()
    facts = p.locator("dl.facts")
    expect(facts).to_contain_text("€9.99")
    expect(facts).to_contain_text(f"Promo VPS {tag}")
    expect(facts).to_contain_text("Used 0 of 3 times")
    page.check("added")
    promo_id = page.path.split("?")[0].rsplit("/", 1)[1]

    # its terms: a percentage now, no limit; a limit of 0 is refused first
    p.get_by_label("Kind").select_option(label="A percentage")
    p.get_by_label("Percent").fill("15")
    p.get_by_label("Most uses").fill("0")
    p.get_by_role("button", name="Save").click()
    expect(p.locator("#error-max_uses")).to_have_text(
        "A whole number from 1, or empty for no limit."
    )
    page.check("change-refused", allow=(400,))
    p.get_by_label("Most uses").fill("")
    p.get_by_role("button", name="Save").click()
    expect(p.get_by_role("status").filter(has_text="The promo code is saved.")).to_be_visible()
    expect(facts).to_contain_text("15 %")
    expect(facts).to_contain_text("Used 0 times, no limit")
    history = p.get_by_role("region", name="History")
    expect(history.get_by_role("listitem").first).to_contain_text("Changed")
    expect(history.get_by_role("listitem").first).to_contain_text(member["name"])
    page.check("changed")

    p.get_by_role("button", name="Deactivate the code").click()
    expect(
        p.get_by_role("status").filter(
            has_text="The promo code is deactivated: orders can no longer use it."
        )
    ).to_be_visible()
    expect(p.locator(".page-head")).to_contain_text("Deactivated")
    expect(p.get_by_role("button", name="Activate the code again")).to_be_visible()
    page.check("deactivated")

    # the list finds it by its state and a part of its code
    page.goto("/staff/promo-codes")
    p.get_by_label("State").select_option(label="Deactivated")
    p.get_by_label("Code contains").fill(tag.lower())
    p.get_by_role("button", name="Show").click()
    p.wait_for_url("**/staff/promo-codes?state=deactivated&code=*")
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/promo-codes",
                stack.admin_token,
                params={"code": code, "state": "deactivated"},
            ).json()["total"]
            == 1
        ),
        what="the list to follow",
    )
    p.reload()
    row = p.get_by_role("row").filter(has_text=code)
    expect(row).to_contain_text("Deactivated")
    expect(row).to_contain_text("15 %")
    page.check("filtered")
    page.close()

    # a client ordering with it is told, next to the field
    customer = stack.register_customer(language="en", password=PASSWORD)
    client = Watched.open(browser, stack.base_url, "staff-promos-client", locale="en-GB")
    items = [{"product_id": product["id"], "billing_cycle": "monthly", "addons": []}]
    client.goto("/login?" + urlencode({"next": "/order/review?" + cart_query(items)}))
    _log_in(client, customer["username"], PASSWORD, EN)
    client.page.wait_for_url("**/order/review?*")
    client.page.get_by_label("Promo code").fill(code.lower())
    client.page.get_by_role("button", name="Place the order").click()
    expect(client.page.locator("#error-promo_code")).to_have_text(
        "This promo code is no longer valid."
    )
    client.check("order-refused", allow=(400,))
    client.close()
    r = stack.http("GET", f"/api/v1/staff/promo-codes/{promo_id}", stack.admin_token)
    assert r.json()["uses"] == 0 and r.json()["orders_total"] == 0


def test_the_pages_read_in_russian_and_french_and_support_only_reads(stack, browser):
    tag = uuid.uuid4().hex[:6].upper()
    code = f"HIVER-{tag}"
    r = stack.http(
        "POST",
        "/api/v1/staff/promo-codes",
        stack.admin_token,
        json={"code": code, "kind": "percentage", "percent": "12.5", "max_uses": 10},
    )
    assert r.status_code == 201, r.text
    promo = r.json()
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", "/api/v1/staff/promo-codes", stack.admin_token, params={"code": code}
            ).json()["total"]
            == 1
        ),
        what="the list",
    )

    _, _, page = staff_page(stack, browser, "admin", "ru", "staff-promos-ru")
    p = page.page
    page.goto("/staff/promo-codes")
    expect(p.get_by_role("heading", name="Промокоды", level=1)).to_be_visible()
    expect(p.get_by_role("link", name="Новый промокод")).to_be_visible()
    row = p.get_by_role("row").filter(has_text=code)
    expect(row).to_contain_text("Действует")
    expect(row).to_contain_text("Использован 0 из 10 раз")
    page.check("list")
    row.get_by_role("link", name=code).click()
    expect(p.get_by_role("heading", name=f"Промокод {code}")).to_be_visible()
    expect(p.get_by_role("button", name="Отключить код")).to_be_visible()
    expect(p.get_by_role("region", name="История")).to_contain_text("Добавлен")
    page.check("code")
    page.close()

    _, _, page = staff_page(stack, browser, "support", "fr", "staff-promos-fr", viewport=PHONE)
    p = page.page
    page.goto(f"/staff/promo-codes/{promo['id']}")
    expect(p.get_by_role("heading", name=f"Code promo {code}")).to_be_visible()
    expect(p.locator("dl.facts")).to_contain_text("12,5")
    expect(p.get_by_role("region", name="Commandes passées avec lui")).to_contain_text(
        "Aucune commande ne l'a encore utilisé."
    )
    expect(p.get_by_role("button", name="Enregistrer")).to_have_count(0)
    expect(p.get_by_role("button", name="Désactiver le code")).to_have_count(0)
    page.check("code")
    page.goto("/staff/promo-codes")
    expect(p.get_by_role("heading", name="Codes promo", level=1)).to_be_visible()
    expect(p.get_by_role("link", name="Nouveau code promo")).to_have_count(0)
    page.check("list")
    assert page.goto("/staff/promo-codes/new").status == 403
    page.close()
