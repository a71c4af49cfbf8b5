"""The staff catalogue editor's setup fees, project and add-ons: an administrator adds a
product with a setup fee, a project and two add-ons (an add-on's price that is not an
amount is refused next to that very field, the rest kept), changes an add-on's price and
removes the other; the catalog then offers the product with its setup fee, project and
the one add-on left, under the id it had from the start. The editor is used on a phone
too; a billing member reads all of it without a form. Each page is checked (console,
requests, axe-core) and kept as a screenshot."""

import re
import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page


def _project(stack, tag: str) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": f"Brand {tag}", "sender_email": "billing@brand.example"},
    )
    assert r.status_code == 201, r.text
    project = r.json()

    def listed():
        listing = stack.http(
            "GET", "/api/v1/staff/projects", stack.admin_token, params={"page_size": 200}
        ).json()
        return any(p["id"] == project["id"] for p in listing["items"])

    stack.wait_until(listed, what="the project listed")
    return project


def _in_catalog(stack, product_id: str):
    r = stack.http("GET", "/api/v1/catalog", params={"currency": "EUR", "page_size": 200})
    return next((p for p in r.json()["items"] if p["id"] == product_id), None)


def _price(scope, number: int, cycle: str, currency: str, amount: str) -> None:
    row = scope.get_by_role("group", name=f"Price {number}", exact=True)
    row.get_by_label("Billing cycle").select_option(label=cycle)
    row.get_by_label("Currency").fill(currency)
    row.get_by_label("Price", exact=True).fill(amount)


def _fee(scope, number: int, currency: str, amount: str) -> None:
    row = scope.get_by_role("group", name=f"Setup fee {number}", exact=True)
    row.get_by_label("Currency").fill(currency)
    row.get_by_label("Setup fee", exact=True).fill(amount)


def _new_addon(page, number: int):
    """The form's spare add-on `number`, opened."""
    p = page.page
    summary = p.locator("summary", has_text=re.compile(rf"^New add-on {number}$"))
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
    return p.get_by_role("group", name=f"New add-on {number}", exact=True)


def test_a_product_with_a_setup_fee_a_project_and_add_ons(stack, browser):
    tag = uuid.uuid4().hex[:6]
    project = _project(stack, tag)
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-products-editor")
    p = page.page
    page.goto("/staff/products/new")
    expect(p.get_by_role("heading", name="New product")).to_be_visible()
    # the spare add-ons wait closed under the form's other fields
    expect(p.get_by_role("group", name="New add-on 1")).to_be_hidden()
    page.check("new-product")

    names = p.get_by_role("group", name="Name and description")
    names.get_by_label("Name in English").fill(f"Cloud server {tag}")
    names.get_by_label("Name in French").fill(f"Serveur cloud {tag}")
    prices = p.get_by_role("group", name="Prices", exact=True)
    _price(prices, 1, "Monthly", "EUR", "9.99")
    _price(prices, 2, "Annually", "EUR", "99")
    _fee(p.get_by_role("group", name="Setup fee", exact=True), 1, "EUR", "15")
    p.get_by_label("Project", exact=True).select_option(label=f"Brand {tag}")

    backups = _new_addon(page, 1)
    backups.get_by_label("Name in English").fill(f"Backups {tag}")
    backups.get_by_label("Name in Russian").fill(f"Резервные копии {tag}")
    _price(backups, 1, "Monthly", "EUR", "2")
    _price(backups, 2, "Annually", "EUR", "20")
    _fee(backups, 1, "EUR", "1")
    extra_ip = _new_addon(page, 2)
    extra_ip.get_by_label("Name in English").fill(f"Extra IP {tag}")
    _price(extra_ip, 1, "Monthly", "EUR", "three")
    page.check("new-product-filled")
    p.get_by_role("button", name="Add the product").click()

    # refused next to the add-on's own price; everything typed is still there
    extra_ip = p.get_by_role("group", name="New add-on 2", exact=True)
    amount = extra_ip.get_by_role("group", name="Price 1").get_by_label("Price", exact=True)
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(amount).to_be_focused()
    expect(p.locator("#error-addon_1_price_amount_0")).to_have_text(
        "Write the price as an amount, like 9.99."
    )
    expect(extra_ip.locator(".field-error")).to_have_count(1)
    expect(p.locator(".field-error")).to_have_count(1)
    expect(
        p.get_by_role("group", name="New add-on 1").get_by_label("Name in English")
    ).to_have_value(f"Backups {tag}")
    expect(p.get_by_label("Project", exact=True)).to_have_value(project["id"])
    page.check("addon-bad-price", allow=(400,))
    amount.fill("3.00")
    p.get_by_role("button", name="Add the product").click()
    p.wait_for_url(re.compile(r".*/staff/products/[0-9a-f-]{36}\?done=created$"))
    expect(p.get_by_role("status").filter(has_text="The product is added")).to_be_visible()
    product_id = p.url.split("/staff/products/")[1].split("?")[0]
    backups = p.get_by_role("group", name=f"Add-on: Backups {tag}")
    extra_ip = p.get_by_role("group", name=f"Add-on: Extra IP {tag}")
    expect(backups).to_be_visible()
    expect(extra_ip).to_be_visible()
    expect(
        backups.get_by_role("group", name="Price 2").get_by_label("Price", exact=True)
    ).to_have_value("20.00")
    page.check("product-created")

    created = stack.http("GET", f"/api/v1/staff/products/{product_id}", stack.admin_token).json()
    assert created["project_id"] == project["id"]
    assert created["all_setup_fees"] == [{"amount": 1500, "currency": "EUR"}]
    ids = {a["name"]["en"]: a["id"] for a in created["addons"]}
    assert created["addons"][0]["name"] == {"en": f"Backups {tag}", "ru": f"Резервные копии {tag}"}
    assert created["addons"][0]["all_setup_fees"] == [{"amount": 100, "currency": "EUR"}]
    assert created["addons"][1]["all_prices"] == {"monthly": [{"amount": 300, "currency": "EUR"}]}

    # an add-on's price changed
    backups.get_by_role("group", name="Price 1").get_by_label("Price", exact=True).fill("2.50")
    p.get_by_role("button", name="Save").click()
    expect(p.get_by_role("status").filter(has_text="The product is saved.")).to_be_visible()
    expect(
        p.get_by_role("group", name=f"Add-on: Backups {tag}")
        .get_by_role("group", name="Price 1")
        .get_by_label("Price", exact=True)
    ).to_have_value("2.50")
    page.check("addon-price-changed")

    # the other one removed
    p.get_by_role("group", name=f"Add-on: Extra IP {tag}").get_by_label(
        "Remove this add-on"
    ).check()
    page.check("addon-to-remove")
    p.get_by_role("button", name="Save").click()
    expect(p.get_by_role("status").filter(has_text="The product is saved.")).to_be_visible()
    expect(p.get_by_role("group", name=f"Add-on: Extra IP {tag}")).to_have_count(0)
    expect(p.get_by_role("group", name=f"Add-on: Backups {tag}")).to_be_visible()
    page.check("addon-removed")

    # the list says it too
    page.goto("/staff/products")
    row = p.get_by_role("listitem").filter(has_text=f"Cloud server {tag}")
    expect(row).to_contain_text(f"Project: Brand {tag}")
    expect(row).to_contain_text("Setup fee: €15.00")
    expect(row).to_contain_text(f"Add-on: Backups {tag}")
    page.check("products-list")
    page.close()

    offered = stack.wait_until(lambda: _in_catalog(stack, product_id), what="in the catalog")
    assert offered["name"] == f"Cloud server {tag}"
    assert offered["setup_fee"] == {"amount": 1500, "currency": "EUR"}
    assert offered["project_id"] == project["id"]
    assert offered["prices"] == {
        "monthly": {"amount": 999, "currency": "EUR"},
        "annually": {"amount": 9900, "currency": "EUR"},
    }
    [addon] = offered["addons"]
    assert addon["id"] == ids[f"Backups {tag}"]  # the same add-on, as orders name it
    assert addon["name"] == f"Backups {tag}"
    assert addon["prices"] == {
        "monthly": {"amount": 250, "currency": "EUR"},
        "annually": {"amount": 2000, "currency": "EUR"},
    }
    assert addon["setup_fee"] == {"amount": 100, "currency": "EUR"}


def _product(stack, tag: str, project_id: str | None = None) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": f"Mail hosting {tag}", "fr": f"Messagerie {tag}"},
            "description": {"en": "Ten mailboxes.\nSpam filtering."},
            "prices": {
                "monthly": [
                    {"amount": 400, "currency": "EUR"},
                    {"amount": 450, "currency": "USD"},
                ],
                "annually": {"amount": 4000, "currency": "EUR"},
            },
            "setup_fee": [{"amount": 500, "currency": "EUR"}, {"amount": 600, "currency": "USD"}],
            "project_id": project_id,
            "addons": [
                {
                    "name": {"en": f"Archive {tag}", "fr": f"Archives {tag}"},
                    "prices": {"monthly": {"amount": 100, "currency": "EUR"}},
                    "setup_fee": {"amount": 200, "currency": "EUR"},
                },
                {
                    "name": f"Extra mailbox {tag}",
                    "prices": {"monthly": {"amount": 50, "currency": "EUR"}},
                },
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_the_editor_on_a_phone(stack, browser):
    tag = uuid.uuid4().hex[:6]
    product = _product(stack, tag, _project(stack, tag)["id"])
    _, _, page = staff_page(stack, browser, "admin", "en", "staff-products-phone", viewport=PHONE)
    p = page.page
    page.goto(f"/staff/products/{product['id']}")
    archive = p.get_by_role("group", name=f"Add-on: Archive {tag}")
    expect(archive.get_by_label("Name in French")).to_have_value(f"Archives {tag}")
    fee = archive.get_by_role("group", name="Setup fee 1")
    expect(fee.get_by_label("Setup fee", exact=True)).to_have_value("2.00")
    # nothing wider than the screen
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.check("editor-phone")
    added = _new_addon(page, 1)
    added.get_by_label("Name in English").fill(f"Antivirus {tag}")
    _price(added, 1, "Monthly", "EUR", "1,5")
    p.get_by_role("button", name="Save").click()
    expect(p.get_by_role("status").filter(has_text="The product is saved.")).to_be_visible()
    expect(p.get_by_role("group", name=f"Add-on: Antivirus {tag}")).to_be_visible()
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.check("addon-added-phone")
    page.close()
    after = stack.http("GET", f"/api/v1/staff/products/{product['id']}", stack.admin_token)
    addons = after.json()["addons"]
    assert [a["id"] for a in addons[:2]] == [a["id"] for a in product["addons"]]
    assert addons[2]["all_prices"] == {"monthly": [{"amount": 150, "currency": "EUR"}]}


def test_billing_reads_the_whole_product_without_a_form(stack, browser):
    tag = uuid.uuid4().hex[:6]
    project = _project(stack, tag)
    product = _product(stack, tag, project["id"])
    for viewport, name in ((None, "staff-product-read"), (PHONE, "staff-product-read-phone")):
        options = {"viewport": viewport} if viewport else {}
        _, _, page = staff_page(stack, browser, "billing", "en", name, **options)
        p = page.page
        page.goto(f"/staff/products/{product['id']}")
        expect(p.get_by_role("heading", name=f"Mail hosting {tag}")).to_be_visible()
        expect(p.get_by_text("Only an administrator may change the catalogue.")).to_be_visible()
        main = p.get_by_role("main")
        expect(main.get_by_role("textbox")).to_have_count(0)
        expect(main.get_by_role("button", name="Save")).to_have_count(0)
        expect(main).to_contain_text(f"Messagerie {tag}")
        expect(main).to_contain_text("Spam filtering.")
        expect(main).to_contain_text("€4.00, $4.50")
        expect(main).to_contain_text("€5.00, $6.00")
        expect(main).to_contain_text(f"Brand {tag}")
        addons = p.get_by_role("region", name="Add-ons")
        archive = addons.get_by_role("article").filter(
            has=p.get_by_role("heading", name=f"Archive {tag}")
        )
        expect(archive).to_contain_text(f"Archives {tag}")
        expect(archive).to_contain_text("€1.00")
        expect(archive).to_contain_text("€2.00")
        expect(addons.get_by_role("heading", name=f"Extra mailbox {tag}")).to_be_visible()
        page.check("product-read-only")
        page.close()
