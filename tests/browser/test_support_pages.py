"""Support tickets in the client area, in French, as a client uses them: open a ticket in
a department that asks for a domain, with an attachment (a refused one named next to the
field first), see it, reply, archive and reopen it; a staff answer sent through the API
shows on the page. Each page is checked (console, requests, axe-core) and kept as a
screenshot."""

import re
import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE, Watched
from tests.browser.test_client_area import FR, _log_in

PASSWORD = "support password 1"


def _department(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={
            "name": f"Hébergement {uuid.uuid4().hex[:6]}",
            "client_visible": True,
            "fields": [{"name": "domain", "label": "Nom de domaine", "required": True}],
            "addresses": [f"support-{uuid.uuid4().hex[:6]}@provider.example"],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_client_opens_answers_archives_and_reopens_a_ticket_in_french(stack, browser):
    department = _department(stack)
    _department(stack)  # a choice to make
    customer = stack.register_customer(
        language="fr",
        country="BE",
        contact_person="Léa Dubois",
        username=f"lea-{uuid.uuid4().hex[:6]}",
        password=PASSWORD,
    )
    page = Watched.open(browser, stack.base_url, "support-fr", locale="fr-FR")
    p = page.page
    page.goto("/support")
    assert page.path == "/login?next=%2Fsupport"
    _log_in(page, customer["username"], PASSWORD, FR)
    p.wait_for_url("**/support")
    expect(p.get_by_role("heading", name="Assistance", exact=True)).to_be_visible()
    expect(p.get_by_text("Aucun ticket ouvert.")).to_be_visible()
    page.check("support-empty")

    p.get_by_role("link", name="Ouvrir un ticket").click()
    p.wait_for_url("**/tickets/new")
    p.get_by_label("Service").select_option(label=department["name"])
    page.check("new-ticket-department")
    p.get_by_role("button", name="Continuer").click()
    p.wait_for_url(f"**/tickets/new?department={department['id']}")
    expect(p.get_by_text(department["name"])).to_be_visible()
    page.check("new-ticket-form")

    # a file the helpdesk does not take: named next to the attachments, nothing opened
    p.get_by_label("Nom de domaine").fill("exemple.be")
    p.get_by_label("Objet").fill("Le site ne répond plus")
    p.get_by_label("Message").fill("Depuis ce matin, le site affiche une erreur 502.\nMerci !")
    p.get_by_label("Pièces jointes").set_input_files(
        [{"name": "outil.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00"}]
    )
    p.get_by_role("button", name="Ouvrir le ticket").click()
    error = p.locator("#error-files")
    expect(error).to_contain_text("outil.exe : ce type de fichier n'est pas accepté")
    assert p.get_by_label("Pièces jointes").get_attribute("aria-invalid") == "true"
    # what was typed is still there
    expect(p.get_by_label("Objet")).to_have_value("Le site ne répond plus")
    expect(p.get_by_label("Nom de domaine")).to_have_value("exemple.be")
    page.check("new-ticket-refused-file", allow=(400,))
    token = stack.login(customer["username"], PASSWORD)
    assert stack.http("GET", "/api/v1/client/tickets", token).json()["total"] == 0

    # the department's field is required
    p.get_by_label("Nom de domaine").fill("")
    p.get_by_label("Pièces jointes").set_input_files(
        [{"name": "journal.txt", "mimeType": "text/plain", "buffer": b"502 Bad Gateway\n"}]
    )
    p.locator("form").last.evaluate("f => f.noValidate = true")
    p.get_by_role("button", name="Ouvrir le ticket").click()
    expect(p.locator("#error-field_domain")).to_have_text("Remplissez ce champ.")
    page.check("new-ticket-missing-field", allow=(400,))

    p.get_by_label("Nom de domaine").fill("exemple.be")
    p.get_by_label("Pièces jointes").set_input_files(
        [{"name": "journal.txt", "mimeType": "text/plain", "buffer": b"502 Bad Gateway\n"}]
    )
    p.get_by_role("button", name="Ouvrir le ticket").click()
    p.wait_for_url(re.compile(r".*/tickets/[0-9a-f-]{36}\?done=opened$"))
    ticket_id = re.search(r"/tickets/([0-9a-f-]{36})", p.url).group(1)
    expect(p.get_by_role("status")).to_have_text(
        "Votre ticket est ouvert : nous répondrons ici et par e-mail."
    )
    expect(p.get_by_role("heading", name="Le site ne répond plus")).to_be_visible()
    facts = p.locator("dl.facts")
    expect(facts.locator("div", has_text="Nom de domaine")).to_contain_text("exemple.be")
    expect(facts).to_contain_text(department["name"])
    expect(facts).to_contain_text("En attente de réponse")
    first = p.locator("li.message").first
    expect(first).to_contain_text("Depuis ce matin, le site affiche une erreur 502.")
    link = first.get_by_role("link", name="journal.txt")
    download = p.context.request.get(stack.base_url + link.get_attribute("href"))
    assert download.status == 200 and download.body() == b"502 Bad Gateway\n"
    assert "attachment" in download.headers["content-disposition"]
    page.check("ticket-opened")

    # the client answers
    p.get_by_label("Votre message").fill("Le domaine est bien exemple.be.")
    p.get_by_role("button", name="Envoyer la réponse").click()
    p.wait_for_url(f"**/tickets/{ticket_id}?done=replied")
    expect(p.locator("li.message")).to_have_count(2)
    expect(p.locator("li.message").last).to_contain_text("Le domaine est bien exemple.be.")
    page.check("ticket-replied")

    # a staff answer through the API shows on the page
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket_id}/replies",
        stack.admin_token,
        json={"body": "Nous avons redémarré le serveur web."},
    )
    assert r.status_code == 201, r.text
    page.goto(f"/tickets/{ticket_id}")
    staff = p.locator("li.message-staff")
    expect(staff).to_contain_text("Nous avons redémarré le serveur web.")
    expect(staff).to_contain_text("Équipe d'assistance")
    expect(p.locator("dl.facts")).to_contain_text("Répondu")
    page.check("ticket-answered")

    # the list: subject, department, progress
    page.goto("/support")
    row = p.locator("tr", has=p.get_by_role("link", name="Le site ne répond plus"))
    expect(row).to_contain_text(department["name"])
    expect(row).to_contain_text("Répondu")
    page.check("support-list")

    # archive, then reopen
    page.goto(f"/tickets/{ticket_id}")
    p.get_by_role("button", name="Archiver").click()
    p.wait_for_url(f"**/tickets/{ticket_id}?done=archived")
    expect(p.get_by_role("status")).to_have_text("Le ticket est archivé.")
    expect(p.get_by_role("button", name="Rouvrir le ticket")).to_be_visible()
    expect(p.get_by_label("Votre message")).to_have_count(0)
    page.check("ticket-archived")
    page.goto("/support?status=archived")
    expect(p.get_by_role("link", name="Le site ne répond plus")).to_be_visible()
    page.check("support-archived")
    page.goto("/support")
    expect(p.get_by_text("Aucun ticket ouvert.")).to_be_visible()
    page.goto(f"/tickets/{ticket_id}")
    p.get_by_role("button", name="Rouvrir le ticket").click()
    p.wait_for_url(f"**/tickets/{ticket_id}?done=reopened")
    expect(p.get_by_role("status")).to_have_text("Le ticket est de nouveau ouvert.")
    expect(p.get_by_label("Votre message")).to_be_visible()
    page.check("ticket-reopened")
    answer = stack.http("GET", f"/api/v1/client/tickets/{ticket_id}", token).json()
    assert answer["status"] == "open" and answer["fields"] == {"domain": "exemple.be"}
    assert [m["attachments"][0]["filename"] for m in answer["messages"][:1]] == ["journal.txt"]
    page.close()


def test_support_pages_on_a_phone_in_dark_and_for_a_user_without_support(stack, browser):
    department = _department(stack)
    customer = stack.register_customer(
        language="fr", country="BE", username=f"tel-{uuid.uuid4().hex[:6]}", password=PASSWORD
    )
    token = stack.login(customer["username"], PASSWORD)
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={
            "department_id": department["id"],
            "subject": "Question de facturation",
            "body": "Bonjour",
            "fields": {"domain": "exemple.fr"},
        },
    )
    assert r.status_code == 201, r.text
    page = Watched.open(
        browser,
        stack.base_url,
        "support-phone-fr",
        viewport=PHONE,
        color_scheme="dark",
        locale="fr-FR",
    )
    p = page.page
    page.goto("/login")
    _log_in(page, customer["username"], PASSWORD, FR)
    p.wait_for_url("**/dashboard")
    page.goto(f"/tickets/{r.json()['id']}")
    page.check("ticket")
    page.goto(f"/tickets/new?department={department['id']}")
    page.check("new-ticket")
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/tickets", token).json()["total"] == 1,
        what="the ticket listed",
    )
    page.goto("/support")
    expect(p.get_by_role("link", name="Question de facturation")).to_be_visible()
    page.check("support")
    page.close()

    # a user of the account with billing only may not see the tickets
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": f"compta-{uuid.uuid4().hex[:6]}",
            "email": "compta@example.com",
            "name": "Compta",
            "permissions": ["billing"],
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    user = Watched.open(browser, stack.base_url, "support-billing-user", locale="fr-FR")
    user.goto("/login")
    _log_in(user, r.json()["username"], PASSWORD, FR)
    user.page.wait_for_url("**/dashboard")
    answer = user.goto("/support")
    assert answer.status == 403
    user.close()
