"""Services and ordering in a browser (Debian's Chromium through Playwright), as a person
uses them: a client orders a product with an add-on from /order and is taken to its
invoice, finds the service on /services and in detail, renews it early and cancels it
with a reason (in French); a visitor orders from the public form, which makes the account
and shows its login once (in Russian). Every page is checked for console errors, failed
requests and axe-core's serious or critical violations, and kept as a screenshot."""

import re
import uuid

import requests
from playwright.sync_api import expect

from gateway.web import i18n
from tests.browser.chromium import PHONE, Watched
from tests.browser.test_client_area import EN, FR, _csrf, _log_in
from tests.e2e.test_mail_out import sent_to

PASSWORD = "orders password 1"
FRENCH = i18n.translations("fr")
RUSSIAN = i18n.translations("ru")


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _product(stack) -> dict:
    """A product of its own (the shared stack's catalog holds every test's), with an
    add-on that has a monthly and an annual price."""
    tag = uuid.uuid4().hex[:6]
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {
                "en": f"Cloud Server {tag}",
                "fr": f"Serveur cloud {tag}",
                "ru": f"Облачный сервер {tag}",
            },
            "description": {"en": "4 vCPU, 8 GB", "fr": "4 vCPU, 8 Go", "ru": "4 vCPU, 8 ГБ"},
            "prices": {"monthly": _eur(1200), "annually": _eur(12000)},
            "setup_fee": _eur(900),
            "addons": [
                {
                    "name": {
                        "en": f"Backups {tag}",
                        "fr": f"Sauvegardes {tag}",
                        "ru": f"Резервные копии {tag}",
                    },
                    "prices": {"monthly": _eur(300), "annually": _eur(3000)},
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _client(stack, language: str = "fr") -> tuple[dict, str]:
    customer = stack.register_customer(
        country="BE", language=language, password=PASSWORD, contact_person="Camille Martin"
    )
    return customer, stack.login(customer["username"], PASSWORD)


def _card(p, name: str):
    return p.locator("article", has=p.get_by_role("heading", name=name, exact=True))


def _pay(stack, customer_id: str, invoice_id: str, token: str) -> None:
    invoice = stack.http("GET", f"/api/v1/client/invoices/{invoice_id}", token).json()
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "amount": invoice["total"],
            "method": "bank_transfer",
            "reference": f"WEB-{uuid.uuid4().hex[:8]}",
            "invoice_id": invoice_id,
        },
    )
    assert r.status_code == 201, r.text


def test_a_client_orders_renews_early_and_cancels_in_french(stack, browser):
    product = _product(stack)
    name, addon = product["name"]["fr"], product["addons"][0]
    customer, token = _client(stack)
    page = Watched.open(browser, stack.base_url, "services-order-fr", locale="fr-FR")
    p = page.page
    t = FRENCH.gettext

    page.goto("/login?next=/order")
    _log_in(page, customer["username"], PASSWORD, FR)
    p.wait_for_url("**/order")
    expect(p.get_by_role("heading", name="Commander un service", level=1)).to_be_visible()
    card = _card(p, name)
    expect(card).to_contain_text("4 vCPU, 8 Go")
    expect(card).to_contain_text(i18n.money(_eur(900), "fr"))  # the setup fee
    expect(p.locator("#cart")).to_contain_text(
        "Votre commande est vide : ajoutez un produit du catalogue."
    )
    page.check("catalog")

    # annually, with the add-on
    card.get_by_label(t("Billing cycle")).select_option("annually")
    card.get_by_label(re.compile(addon["name"]["fr"])).check()
    card.get_by_role("button", name="Ajouter à la commande").click()
    p.wait_for_url("**/order?cart=*")
    cart = p.locator("#cart")
    expect(cart).to_contain_text(name)
    expect(cart).to_contain_text(f"+ {addon['name']['fr']}")
    # the first year (120,00 + 30,00) and the setup fee: 159,00 €
    expect(cart.locator("tfoot")).to_contain_text(i18n.money(_eur(15900), "fr"))
    page.check("cart")

    cart.get_by_role("button", name=t("Continue")).click()
    p.wait_for_url("**/order/review?cart=*")
    expect(p.get_by_role("heading", name="Vérifiez votre commande")).to_be_visible()
    expect(p.locator(".order-summary")).to_contain_text(i18n.money(_eur(15900), "fr"))
    page.check("review")

    # a promo code that does not exist is said next to its field
    p.get_by_label(t("Promo code")).fill("NOPE-123")
    p.get_by_role("button", name="Passer la commande").click()
    expect(p.locator("#error-promo_code")).to_have_text("Ce code promo n'existe pas.")
    page.check("review-bad-promo", allow=(400,))

    p.get_by_label(t("Promo code")).fill("")
    p.get_by_role("button", name="Passer la commande").click()
    p.wait_for_url(re.compile(r".*/invoices/[0-9a-f-]{36}$"))
    invoice_id = page.path.rsplit("/", 1)[1]
    invoice = stack.http("GET", f"/api/v1/client/invoices/{invoice_id}", token)
    assert invoice.status_code == 200, invoice.text  # the client's own order invoice
    assert invoice.json()["purpose"] == "order"
    assert invoice.json()["total"] == _eur(15900)
    assert sorted(line["unit_price"]["amount"] for line in invoice.json()["lines"]) == [
        900,
        3000,
        12000,
    ]
    page.check("invoice")

    # the service, awaiting payment
    page.goto("/services")
    row = p.locator("tr", has=p.get_by_role("link", name=name))
    expect(row).to_contain_text("En attente de paiement")
    expect(row).to_contain_text("Annuel")
    expect(row).to_contain_text(i18n.money(_eur(15000), "fr"))  # per period with the add-on
    page.check("services-pending")

    _pay(stack, customer["id"], invoice_id, token)
    [service] = stack.wait_until(
        lambda: stack.http(
            "GET", "/api/v1/client/services", token, params={"status": "active"}
        ).json()["items"],
        what="the service active",
    )
    page.goto("/services")
    p.get_by_label(t("Status")).select_option("active")
    p.get_by_role("button", name=t("Show")).click()
    p.wait_for_url("**/services?status=active")
    row = p.locator("tr", has=p.get_by_role("link", name=name))
    expect(row).to_contain_text("Actif")
    expect(row).to_contain_text(i18n.date(service["next_due_date"], "fr"))
    page.check("services-active")

    row.get_by_role("link", name=name).click()
    p.wait_for_url(f"**/services/{service['id']}")
    expect(p.get_by_role("heading", name=name, level=1)).to_be_visible()
    about = p.locator("section", has=p.get_by_role("heading", name="À propos de ce service"))
    expect(about).to_contain_text(addon["name"]["fr"])
    expect(about).to_contain_text(i18n.date(service["next_due_date"], "fr"))
    invoices = p.locator("section", has=p.get_by_role("heading", name="Factures de ce service"))
    expect(invoices.get_by_role("link")).to_have_count(1)
    page.check("service")

    p.get_by_role("button", name="Renouveler en avance").click()
    p.wait_for_url(f"**/services/{service['id']}?done=renewed")
    expect(p.get_by_role("status")).to_have_text(
        "La facture de renouvellement de la prochaine période est émise."
    )
    expect(invoices.get_by_role("link")).to_have_count(2)
    expect(invoices).to_contain_text("renouvellement")
    expect(invoices).to_contain_text(i18n.money(_eur(15000), "fr"))
    page.check("renewed")

    # once per period: asking again shows the invoice already issued
    p.get_by_role("button", name="Renouveler en avance").click()
    p.wait_for_url(f"**/services/{service['id']}?done=renewal_unpaid")
    expect(p.get_by_role("status")).to_contain_text("était déjà émise")
    expect(invoices.get_by_role("link")).to_have_count(2)
    page.check("renewed-again")

    def renewals():
        items = stack.http("GET", "/api/v1/client/invoices", token).json()["items"]
        return [i for i in items if i["purpose"] == "renewal"]

    [renewal] = stack.wait_until(renewals, what="the renewal invoice listed")
    assert renewal["due_date"] == service["next_due_date"]

    p.get_by_role("link", name="Résilier le service").click()
    p.wait_for_url(f"**/services/{service['id']}/cancel")
    expect(p.get_by_role("heading", name=f"Résilier {name} ?")).to_be_visible()
    page.check("cancel")
    p.get_by_label("Pourquoi le résiliez-vous ?").fill("   ")
    p.get_by_role("button", name="Oui, résilier le service").click()
    expect(p.locator("#error-reason")).to_have_text("Dites pourquoi vous résiliez le service.")
    page.check("cancel-without-reason", allow=(400,))
    p.get_by_label("Pourquoi le résiliez-vous ?").fill("Je regroupe mes serveurs ailleurs.")
    p.get_by_role("button", name="Oui, résilier le service").click()
    p.wait_for_url(f"**/services/{service['id']}?done=cancelled")
    expect(p.get_by_role("status")).to_have_text("Le service est résilié.")
    expect(p.locator(".svc-head .badge")).to_have_text("Résilié")
    expect(p.get_by_role("button", name="Renouveler en avance")).to_have_count(0)
    page.check("cancelled")
    answer = stack.http("GET", "/api/v1/client/services", token).json()["items"]
    assert [s["status"] for s in answer if s["id"] == service["id"]] == ["cancelled"]
    page.close()


def _fill_details(p, t, email: str, contact: str) -> None:
    p.get_by_label(t("E-mail")).fill(email)
    p.get_by_label(t("Who orders")).select_option("individual")
    p.get_by_label(t("Contact person")).fill(contact)
    p.get_by_label(t("Country")).select_option("BE")
    p.get_by_label(t("How did you hear about us?")).fill("Поиск в интернете")


def _to_checkout(page: Watched, name: str, t, check: bool = True) -> None:
    p = page.page
    page.goto("/order/new")
    card = _card(p, name)
    card.get_by_label(t("Billing cycle")).select_option("monthly")
    card.get_by_role("button", name=t("Add to the order")).click()
    p.wait_for_url("**/order/new?cart=*")
    expect(p.locator("#cart")).to_contain_text(name)
    if check:
        page.check("cart")
    p.locator("#cart").get_by_role("button", name=t("Continue")).click()
    p.wait_for_url("**/order/new/checkout?cart=*")


def test_a_visitor_orders_and_gets_an_account_in_russian(stack, browser):
    product = _product(stack)
    name = product["name"]["ru"]
    t = RUSSIAN.gettext
    # the visitor comes through a client's referral link
    referrer, referrer_token = _client(stack, "ru")
    code = stack.http("GET", "/api/v1/client/affiliate", referrer_token).json()["code"]
    page = Watched.open(browser, stack.base_url, "public-order-ru", locale="ru-RU")
    p = page.page

    page.goto(f"/r/{code}")
    assert page.path == "/order/new"
    expect(p.get_by_role("heading", name=t("Order"), level=1)).to_be_visible()
    expect(p.get_by_role("link", name=t("Already a client? Log in"))).to_have_attribute(
        "href", "/login?next=/order"
    )
    expect(_card(p, name)).to_contain_text("4 vCPU, 8 ГБ")
    page.check("catalog")
    _to_checkout(page, name, t)
    expect(p.get_by_role("heading", name=t("Place your order"))).to_be_visible()
    expect(p.get_by_label(t("Referral code"))).to_have_value(code)
    # the first month and the setup fee: 21,00 €
    expect(p.locator(".order-summary")).to_contain_text(i18n.money(_eur(2100), "ru"))
    page.check("checkout")

    email = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    _fill_details(p, t, email, "   ")
    p.get_by_role("button", name=t("Place the order")).click()
    expect(p.locator("#error-contact_person")).to_have_text(
        t("Enter the name of the contact person.")
    )
    page.check("checkout-errors", allow=(400,))

    _fill_details(p, t, email, "Анна Смирнова")
    p.get_by_role("button", name=t("Place the order")).click()
    expect(p.get_by_role("heading", name=t("Your order is placed"))).to_be_visible()
    login = p.locator(".order-credentials dd code").nth(0).inner_text()
    password = p.locator(".order-credentials dd code").nth(1).inner_text()
    expect(p.locator(".order-done")).to_contain_text(email)
    page.check("placed")

    # the login works, the account is the visitor's, in Russian, with the order's invoice
    token = stack.login(login, password)
    me = stack.http("GET", "/api/v1/client/profile", token).json()
    assert me["email"] == email and me["language"] == "ru"
    with stack.rpc() as rpc:
        customer = rpc.customers.get_customer(me["id"])
    assert customer["referral_source"] == "Поиск в интернете"
    assert customer["referrer_id"] == referrer["id"]
    invoices = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/invoices", token).json()["items"],
        what="the order's invoice",
    )
    assert [i["total"] for i in invoices] == [_eur(2100)]
    link = p.get_by_role("link", name=t("Log in and pay"))
    expect(link).to_have_attribute("href", f"/login?next=/invoices/{invoices[0]['id']}")
    # and the same login was mailed (beside the invoice's mail)
    stack.wait_until(
        lambda: any(login in m.get_content() for m in sent_to(stack, email)),
        what="the credentials mailed",
    )
    page.close()

    # the same e-mail again: that account must log in first
    again = Watched.open(browser, stack.base_url, "public-order-ru-existing", locale="ru-RU")
    _to_checkout(again, name, t, check=False)
    _fill_details(again.page, t, email, "Анна Смирнова")
    again.page.get_by_role("button", name=t("Place the order")).click()
    expect(again.page.locator("#error-email")).to_have_text(
        t("This e-mail already has an account: log in first to order with it.")
    )
    log_in = again.page.get_by_role("link", name=t("Log in to order with it"))
    expect(log_in).to_have_attribute("href", "/login?next=/order")
    again.check("existing-email", allow=(400,))
    again.close()
    with stack.rpc() as rpc:
        assert rpc.orders.list("orders", me["id"])["total"] == 1


def test_the_pages_on_a_phone_in_dark(stack, browser):
    """Each page of services and ordering on a phone, in the dark scheme (contrast)."""
    product = _product(stack)
    customer, token = _client(stack, "en")
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    r = stack.http("POST", "/api/v1/client/orders", token, json={"items": [item]})
    assert r.status_code == 201, r.text
    [service] = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/services", token).json()["items"],
        what="the service listed",
    )
    page = Watched.open(
        browser, stack.base_url, "services-phone-dark", viewport=PHONE, color_scheme="dark"
    )
    p = page.page
    page.goto("/order/new")
    page.check("public-catalog")
    _to_checkout(page, product["name"]["en"], i18n.translations("en").gettext, check=False)
    page.check("public-checkout")
    page.goto("/login?next=/services")
    _log_in(page, customer["username"], PASSWORD, EN)
    p.wait_for_url("**/services")
    page.check("services")
    for path, what in (
        (f"/services/{service['id']}", "service"),
        (f"/services/{service['id']}/cancel", "cancel"),
        (f"/order?cart={product['id']}:monthly", "order"),
        (f"/order/review?cart={product['id']}:monthly", "review"),
    ):
        page.goto(path)
        page.check(what)
    page.close()


def test_a_user_without_the_services_permission_sees_neither_services_nor_ordering(stack):
    customer, owner = _client(stack, "en")
    product = _product(stack)
    item = {"product_id": product["id"], "billing_cycle": "monthly"}
    r = stack.http("POST", "/api/v1/client/orders", owner, json={"items": [item]})
    assert r.status_code == 201, r.text
    [service] = stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/services", owner).json()["items"],
        what="the service listed",
    )
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        owner,
        json={
            "username": f"support-{uuid.uuid4().hex[:6]}",
            "email": "support-user@example.com",
            "name": "Support User",
            "permissions": ["support", "billing"],
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()["credentials"]
    browser = requests.Session()
    token = _csrf(browser.get(stack.base_url + "/login", timeout=30).text)
    r = browser.post(
        stack.base_url + "/login",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
        timeout=30,
    )
    assert r.status_code == 200 and r.url.endswith("/dashboard"), r.text
    csrf = _csrf(r.text)
    for path in (
        "/services",
        f"/services/{service['id']}",
        f"/services/{service['id']}/cancel",
        "/order",
        f"/order/review?cart={product['id']}:monthly",
    ):
        r = browser.get(stack.base_url + path, timeout=30)
        assert r.status_code == 403, (path, r.status_code)
        assert "text/html" in r.headers["Content-Type"]
    for path in (f"/services/{service['id']}/renew", f"/services/{service['id']}/cancel", "/order"):
        r = browser.post(
            stack.base_url + path,
            data={"csrf_token": csrf, "reason": "x", "cart": f"{product['id']}:monthly"},
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 403, (path, r.status_code)
    with stack.rpc() as rpc:
        assert rpc.orders.list("orders", customer["id"])["total"] == 1
        assert rpc.orders.client_service(customer["id"], service["id"])["status"] == "pending"
    # a visitor is sent to log in first; the public form is open to anyone
    anonymous = requests.Session()
    r = anonymous.get(stack.base_url + "/services", allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/login?next=%2Fservices"
    assert anonymous.get(stack.base_url + "/order/new", timeout=30).status_code == 200


def test_ordering_and_renewing_work_without_javascript(stack, browser):
    product = _product(stack)
    name = product["name"]["en"]
    customer, token = _client(stack, "en")
    page = Watched.open(
        browser, stack.base_url, "services-no-javascript", java_script_enabled=False
    )
    p = page.page
    page.goto("/login?next=/order")
    _log_in(page, customer["username"], PASSWORD, EN)
    p.wait_for_url("**/order")
    card = _card(p, name)
    card.get_by_label("Billing cycle").select_option("monthly")
    card.get_by_role("button", name="Add to the order").click()
    p.wait_for_url("**/order?cart=*")
    p.locator("#cart").get_by_role("button", name="Continue").click()
    p.wait_for_url("**/order/review?cart=*")
    p.get_by_role("button", name="Place the order").click()
    p.wait_for_url(re.compile(r".*/invoices/[0-9a-f-]{36}$"))
    invoice_id = page.path.rsplit("/", 1)[1]
    _pay(stack, customer["id"], invoice_id, token)
    [service] = stack.wait_until(
        lambda: stack.http(
            "GET", "/api/v1/client/services", token, params={"status": "active"}
        ).json()["items"],
        what="the service active",
    )
    page.goto(f"/services/{service['id']}")
    p.get_by_role("button", name="Renew early").click()
    p.wait_for_url(f"**/services/{service['id']}?done=renewed")
    expect(p.get_by_role("status")).to_have_text(
        "The renewal invoice of the next period is issued."
    )
    page.screenshot("renewed")
    page.close()
