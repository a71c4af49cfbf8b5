"""The staff panel's SEND MESSAGE dialog, in French: a violation notice to the customer the
panel is filtered by (forbidding replies with it is refused next to the field), its
deadline passing on a moved clock (the customer's service suspended, an internal note on
the ticket), the messages sent with their progress; a reply template as the starting
text without JavaScript, on a phone; and a `billing` member refused."""

import uuid
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from services.infra.clock import FileClock
from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page
from tests.e2e.test_orders import _paid_order, _service


def _department(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Abus {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_violation_notice_suspends_the_service_at_its_deadline_in_french(stack, browser):
    department = _department(stack)
    customer_id = _paid_order(stack, "violation-web")[1]["customer_id"]
    stack.wait_until(
        lambda: (_service(stack, customer_id) or {}).get("status") == "active", what="active"
    )
    customer = stack.http("GET", f"/api/v1/staff/customers/{customer_id}", stack.admin_token).json()
    _, _, page = staff_page(stack, browser, "support", "fr", "staff-messages-fr")
    p = page.page
    # the panel is filtered by the customer: the dialog offers them as the recipient
    page.goto(f"/staff/messages/new?customer={customer_id}")
    expect(p.get_by_role("heading", name="Envoyer un message")).to_be_visible()
    expect(
        p.get_by_label(f"Le client choisi dans le panneau : {customer['number']}")
    ).to_be_checked()
    page.check("dialog")

    p.get_by_label("Catégorie (service)").select_option(department["id"])
    english = p.get_by_role("group", name="En anglais")
    english.get_by_label("Objet").fill("Violation: spam from your server")
    english.get_by_label("Message").fill("Spam leaves your server. Stop it, %client_person%.")
    french = p.get_by_role("group", name="En français")
    french.get_by_label("Objet").fill("Infraction : du spam part de votre serveur")
    french.get_by_label("Message").fill("Du spam part de votre serveur, %client_person%.")
    p.get_by_label("C'est un avis d'infraction").check()
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    p.get_by_label("Échéance (UTC)").fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    p.get_by_label("Suspendre les services du client").check()
    p.get_by_label("Points de pénalité").fill("3")
    p.get_by_label("Commentaire (pour l'équipe)").fill("Signalé par Spamhaus")
    # a violation notice must let the client answer: refused next to the field
    p.get_by_label("Interdire les réponses").check()
    p.get_by_role("button", name="Envoyer", exact=True).click()
    expect(p.locator("#error-forbid_replies")).to_have_text(
        "Le client doit pouvoir répondre à un avis d'infraction : "
        "les réponses ne peuvent pas être interdites."
    )
    expect(p.get_by_label("Interdire les réponses")).to_have_attribute("aria-invalid", "true")
    # what was typed is still there
    expect(french.get_by_label("Objet")).to_have_value("Infraction : du spam part de votre serveur")
    page.check("forbid-replies-refused", allow=(400,))

    p.get_by_label("Interdire les réponses").uncheck()
    p.get_by_role("button", name="Envoyer", exact=True).click()
    p.wait_for_url("**/staff/messages/*?done=sent")
    expect(p.get_by_text("Le message part : chaque destinataire reçoit un ticket.")).to_be_visible()
    expect(p.get_by_text("1 sur 1")).to_be_visible()
    expect(p.get_by_text("puis les services du client sont suspendus")).to_be_visible()
    message_url = page.path.split("?")[0]
    ticket_link = p.get_by_role("link", name="#")
    ticket_id = ticket_link.get_attribute("href").rsplit("/", 1)[-1]
    page.check("message-sent")

    # the sent messages, with their progress
    page.goto("/staff/messages")
    row = p.locator("li", has=p.get_by_role("link", name="Violation: spam from your server"))
    expect(row.get_by_text("Envoyé", exact=True)).to_be_visible()
    expect(row.get_by_text("1 ticket ouvert sur 1")).to_be_visible()
    page.check("messages-list")

    # the client answers nothing; the deadline passes (the scheduler runs on the clock)
    assert _service(stack, customer_id)["status"] == "active"
    try:
        FileClock.set_offset(stack.clock_file, timedelta(minutes=30))
        stack.wait_until(
            lambda: _service(stack, customer_id)["status"] == "suspended",
            what="the service suspended at the deadline",
        )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    page.goto(message_url)
    p.get_by_role("link", name="#").click()
    p.wait_for_url(f"**/staff/tickets/{ticket_id}")
    expect(
        p.get_by_text("passed without an answer: the customer's services are being")
    ).to_be_visible()
    page.check("ticket-after-deadline")
    page.close()


def test_a_template_starts_the_text_without_javascript_and_errors_on_a_phone(stack, browser):
    department = _department(stack)
    r = stack.http(
        "POST",
        "/api/v1/staff/reply-templates",
        stack.admin_token,
        json={
            "name": f"Travaux {uuid.uuid4().hex[:6]}",
            "bodies": {"en": "Dear %client_person%,", "fr": "Bonjour %client_person%,"},
        },
    )
    assert r.status_code == 201, r.text
    template = r.json()
    _, _, page = staff_page(
        stack, browser, "admin", "fr", "staff-messages-no-js", java_script_enabled=False
    )
    p = page.page
    page.goto("/staff/messages/new?customer=")
    p.get_by_label("Modèle de réponse").select_option(template["id"])
    p.get_by_role("button", name="Utiliser ce modèle").click()
    expect(p.get_by_role("group", name="En français").get_by_label("Message")).to_have_value(
        "Bonjour %client_person%,"
    )
    expect(p.get_by_role("group", name="En anglais").get_by_label("Message")).to_have_value(
        "Dear %client_person%,"
    )
    # without JavaScript axe-core cannot run: the same page is checked on the phone below
    page.screenshot("template-used")
    page.close()

    _, _, page = staff_page(stack, browser, "support", "fr", "staff-messages-phone", viewport=PHONE)
    p = page.page
    page.goto("/staff/messages/new?customer=")
    p.get_by_label("Catégorie (service)").select_option(department["id"])
    english = p.get_by_role("group", name="En anglais")
    english.get_by_label("Objet").fill("Travaux")
    english.get_by_label("Message").fill("Ce soir.")
    # nobody named: said next to the recipients
    p.get_by_label("Des clients par numéro").check()
    p.get_by_role("button", name="Envoyer", exact=True).click()
    expect(p.locator("#error-numbers")).to_have_text("Saisissez un ou plusieurs numéros de client.")
    page.check("dialog-phone", allow=(400,))
    page.close()


def test_a_billing_member_may_not_send_messages(stack, browser):
    _, _, page = staff_page(stack, browser, "billing", "ru", "staff-messages-billing")
    p = page.page
    answer = page.goto("/staff/messages/new")
    assert answer.status == 403
    expect(p.get_by_text("Ваша роль не позволяет видеть или делать это.")).to_be_visible()
    page.check("billing-refused", allow=(403,))
    page.close()


def test_the_customer_lists_filters_name_the_recipients(stack, browser):
    department = _department(stack)
    tag = uuid.uuid4().hex[:8]
    for name in ("Ada", "Bob"):
        stack.register_customer(contact_person=f"{name} {tag}")
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", "/api/v1/staff/customers", stack.admin_token, params={"name": tag}
            ).json()["total"]
            == 2
        ),
        what="the customer list",
    )
    _, _, page = staff_page(stack, browser, "support", "en", "staff-messages-filter")
    p = page.page
    # what the customer list's page was filtered by comes along in the address
    page.goto(f"/staff/messages/new?customer=&name={tag}")
    choice = p.get_by_label("The customers the customer list shows with its filters")
    expect(choice).to_be_checked()
    expect(p.locator("#filter-summary")).to_contain_text(tag)
    page.check("dialog-filter")
    p.get_by_label("Category (department)").select_option(department["id"])
    english = p.get_by_role("group", name="In English")
    english.get_by_label("Subject").fill("Planned works")
    english.get_by_label("Message").fill("Tonight, %client_person%.")
    p.get_by_label("Move the ticket to me when the client answers").check()
    p.get_by_role("button", name="Send", exact=True).click()
    p.wait_for_url("**/staff/messages/*?done=sent")
    expect(p.get_by_text("2 of 2")).to_be_visible()
    expect(p.get_by_text("the ticket moves to the sender when the client answers")).to_be_visible()
    expect(p.get_by_role("link", name="#")).to_have_count(2)
    page.check("message-to-filter")
    page.close()
