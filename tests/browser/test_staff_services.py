"""The staff panel's services and catalogue: in Russian, an administrator finds a service
by its product, suspends it with a reason and unsuspends it (its page shows suspended,
then active, and the reasons in its history); in French, a product is added with names
in three languages and two prices, then one price is changed; a `billing` member sees
the product without a way to save it, and a direct post is refused. Each page is checked
(console, requests, axe-core) and kept as a screenshot."""

import re
import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page
from tests.e2e.test_orders import _paid_order


def _active_service(stack, customer_id):
    with stack.rpc() as rpc:
        items = rpc.orders.list("services", customer_id)["items"]
    return items[0] if items and items[0]["status"] == "active" else None


def test_suspend_and_unsuspend_a_service_in_russian(stack, browser):
    tag = uuid.uuid4().hex[:6]
    _, order = _paid_order(stack, "staff-svc", name={"en": f"VPS {tag}", "ru": f"ВПС {tag}"})
    service = stack.wait_until(lambda: _active_service(stack, order["customer_id"]), what="active")
    _, _, page = staff_page(stack, browser, "support", "ru", "staff-services-ru")
    p = page.page
    page.goto("/staff/services")
    expect(p.get_by_role("heading", name="Услуги", exact=True)).to_be_visible()
    p.get_by_label("Продукт").select_option(label=f"ВПС {tag}")
    p.get_by_role("button", name="Показать").click()
    expect(p.get_by_role("status").filter(has_text="1 услуга")).to_be_visible()
    page.check("services-by-product")
    p.get_by_role("link", name=f"ВПС {tag}").click()
    p.wait_for_url(f"**/staff/services/{service['id']}")
    expect(p.locator("#service-status")).to_have_text("Активна")
    page.check("service-active")

    # the reason is required before anything is sent
    expect(p.get_by_label("Причина")).to_have_attribute("required", "")
    p.get_by_label("Причина").fill("Жалоба на рассылку спама")
    p.get_by_role("button", name="Приостановить").click()
    expect(p.get_by_role("status").filter(has_text="Услуга приостановлена.")).to_be_visible()
    expect(p.locator("#service-status")).to_have_text("Приостановлена")
    expect(p.get_by_role("button", name="Приостановить")).to_have_count(0)
    history = p.get_by_role("region", name="История")
    expect(history.get_by_text("Жалоба на рассылку спама")).to_be_visible()
    expect(history.get_by_text("Счёт оплачен.")).to_be_visible()
    page.check("service-suspended")

    p.get_by_label("Причина").fill("Клиент убрал рассылку")
    p.get_by_role("button", name="Возобновить").click()
    expect(p.get_by_role("status").filter(has_text="Услуга снова активна.")).to_be_visible()
    expect(p.locator("#service-status")).to_have_text("Активна")
    expect(history.get_by_text("Клиент убрал рассылку")).to_be_visible()
    page.check("service-unsuspended")
    page.close()

    r = stack.http("GET", f"/api/v1/staff/services/{service['id']}", stack.admin_token)
    assert [h["event"] for h in r.json()["history"]] == ["activated", "suspended", "unsuspended"]


def test_an_auditor_sees_a_service_without_its_actions_on_a_phone(stack, browser):
    _, order = _paid_order(stack, "staff-svc-audit")
    service = stack.wait_until(lambda: _active_service(stack, order["customer_id"]), what="active")
    _, _, page = staff_page(
        stack, browser, "auditor", "en", "staff-service-auditor", viewport=PHONE
    )
    p = page.page
    page.goto(f"/staff/services/{service['id']}")
    expect(p.locator("#service-status")).to_have_text("Active")
    expect(p.get_by_role("button", name="Suspend")).to_have_count(0)
    expect(p.get_by_role("button", name="Terminate")).to_have_count(0)
    page.check("service-auditor-phone")
    page.goto(f"/staff/orders?customer={order['customer_id']}")
    expect(p.get_by_role("status").filter(has_text="1 order")).to_be_visible()
    page.check("orders-one-customer")
    page.goto("/staff/provisioning")
    expect(p.get_by_role("heading", name="Services to set up by hand")).to_be_visible()
    expect(p.get_by_role("button", name="Mark as set up")).to_have_count(0)
    page.check("provisioning-auditor")
    page.close()


def test_a_product_in_three_languages_with_two_prices_in_french(stack, browser):
    tag = uuid.uuid4().hex[:6]
    _, _, page = staff_page(stack, browser, "admin", "fr", "staff-products-fr")
    p = page.page
    page.goto("/staff/products")
    p.get_by_role("link", name="Nouveau produit").click()
    p.wait_for_url("**/staff/products/new")
    names = p.get_by_role("group", name="Nom et description")
    names.get_by_label("Nom en anglais").fill(f"Web hosting {tag}")
    names.get_by_label("Nom en russe").fill(f"Хостинг {tag}")
    names.get_by_label("Nom en français").fill(f"Hébergement {tag}")
    first, second = p.get_by_role("group", name="Prix 1"), p.get_by_role("group", name="Prix 2")
    first.get_by_label("Périodicité de facturation").select_option(label="Mensuel")
    first.get_by_label("Devise").fill("EUR")
    first.get_by_label("Prix").fill("4,99")
    second.get_by_label("Périodicité de facturation").select_option(label="Annuel")
    second.get_by_label("Devise").fill("EUR")
    second.get_by_label("Prix").fill("trois")
    p.get_by_role("button", name="Ajouter le produit").click()
    expect(p.locator("#error-price_amount_1")).to_have_text(
        "Écrivez le prix comme un montant, par exemple 9,99."
    )
    page.check("product-bad-price", allow=(400,))
    second.get_by_label("Prix").fill("49,90")
    p.get_by_role("button", name="Ajouter le produit").click()
    p.wait_for_url(re.compile(r".*/staff/products/[0-9a-f-]{36}\?done=created$"))
    expect(p.get_by_role("heading", name=f"Hébergement {tag}")).to_be_visible()
    expect(first.get_by_label("Prix")).to_have_value("4,99")
    page.check("product-created")
    product_id = p.url.split("/staff/products/")[1].split("?")[0]

    first.get_by_label("Prix").fill("5,49")
    p.get_by_role("button", name="Enregistrer").click()
    expect(p.get_by_role("status").filter(has_text="Le produit est enregistré.")).to_be_visible()
    expect(first.get_by_label("Prix")).to_have_value("5,49")
    page.check("product-price-changed")
    page.close()

    product = stack.http("GET", f"/api/v1/staff/products/{product_id}", stack.admin_token).json()
    assert product["name"] == {
        "en": f"Web hosting {tag}",
        "ru": f"Хостинг {tag}",
        "fr": f"Hébergement {tag}",
    }
    assert product["all_prices"] == {
        "monthly": [{"amount": 549, "currency": "EUR"}],
        "annually": [{"amount": 4990, "currency": "EUR"}],
    }


def test_billing_sees_a_product_but_may_not_save_it(stack, browser):
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Mail box", "prices": {"monthly": {"amount": 200, "currency": "EUR"}}},
    ).json()
    _, _, page = staff_page(stack, browser, "billing", "en", "staff-product-billing")
    p = page.page
    page.goto(f"/staff/products/{product['id']}")
    expect(p.get_by_role("heading", name="Mail box")).to_be_visible()
    expect(p.get_by_role("button", name="Save")).to_have_count(0)
    expect(p.get_by_text("Only an administrator may change the catalogue.")).to_be_visible()
    page.check("product-read-only")
    token = p.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = p.request.post(
        f"{stack.base_url}/staff/products/{product['id']}",
        form={"csrf_token": token, "name_en": "Taken", "price_rows": "0"},
    )
    assert answer.status == 403
    assert page.goto("/staff/products/new").status == 403
    page.close()
    after = stack.http("GET", f"/api/v1/staff/products/{product['id']}", stack.admin_token)
    assert after.json()["name"] == {"en": "Mail box"}
