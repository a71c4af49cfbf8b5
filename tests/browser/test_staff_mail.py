"""The staff panel's mail pages, in French: a message the mail gateway kept (no department
takes its address) is read as text and released into a department, where its ticket is
then; another is discarded with a reason; an admin previews a template's new text (an
unknown value named next to the field), saves it and goes back to the shipped text; the
outbox on a phone; and a `billing` member is refused the held mail. Each page is checked
(console, requests, axe-core) and kept as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page
from tests.e2e.test_mail_held import held_item
from tests.e2e.test_mail_in import deliver, mail, smtp_in

__all__ = ["smtp_in"]  # the fixture, for the mail tests here


def _department(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": f"Ventes {uuid.uuid4().hex[:6]}", "client_visible": True},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_held_mail_is_read_released_into_a_ticket_and_discarded_in_french(stack, browser, smtp_in):
    nowhere = f"nowhere-{uuid.uuid4().hex[:8]}@provider.example"
    tag = uuid.uuid4().hex[:6]
    first, second = f"Mon site est en panne {tag}", f"Offre spéciale {tag}"
    deliver(stack, mail("cliente@client.example", nowhere, first, "Bonjour,\n<b>aidez-moi</b>"))
    deliver(stack, mail("promo@spam.example", nowhere, second, "Achetez !"))
    stack.wait_until(lambda: held_item(stack, nowhere), what="the held messages")
    department = _department(stack)
    stack.wait_until(
        lambda: any(
            d["id"] == department["id"]
            for d in stack.http(
                "GET", "/api/v1/staff/departments", stack.admin_token, params={"page_size": 200}
            ).json()["items"]
        ),
        what="the department",
    )

    _, _, page = staff_page(stack, browser, "support", "fr", "staff-mail-held-fr")
    p = page.page
    page.goto("/staff/mail")
    assert page.path.startswith("/staff/mail/held")
    expect(p.get_by_role("heading", name="Courrier")).to_be_visible()
    row = p.get_by_role("row", name=first)
    expect(row.get_by_text("Refusé par le support")).to_be_visible()
    page.check("held-list")

    row.get_by_role("link", name=first).click()
    expect(p.get_by_role("heading", name=first)).to_be_visible()
    # the body is text: the markup in it shows as typed
    expect(p.get_by_text("<b>aidez-moi</b>")).to_be_visible()
    expect(p.get_by_role("rowheader", name="Subject")).to_be_visible()
    page.check("held-message")

    p.get_by_label("Service", exact=True).select_option(label=department["name"])
    p.get_by_role("button", name="Transmettre", exact=True).click()
    expect(
        p.get_by_role("status").filter(has_text="Le message a été transmis au support.")
    ).to_be_visible()
    expect(p.get_by_text("Transmis", exact=True)).to_be_visible()
    page.check("held-released")
    released = held_item(stack, nowhere, "released")
    ticket = stack.http("GET", f"/api/v1/staff/tickets/{released['ticket_id']}", stack.admin_token)
    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["subject"] == first
    assert ticket.json()["department_id"] == department["id"]
    expect(p.get_by_role("link", name=f"#{released['tracking_number']}")).to_be_visible()

    page.goto("/staff/mail/held")
    p.get_by_role("link", name=second).click()
    p.get_by_label("Pourquoi", exact=True).fill("   ")
    p.get_by_role("button", name="Écarter le message").click()
    expect(p.locator("#error-reason")).to_have_text("Indiquez la raison en quelques mots.")
    page.check("held-discard-without-reason", allow=(400,))
    p.get_by_label("Pourquoi", exact=True).fill("Publicité non sollicitée")
    p.get_by_role("button", name="Écarter le message").click()
    expect(p.get_by_role("status").filter(has_text="Le message a été écarté.")).to_be_visible()
    expect(p.get_by_text("Publicité non sollicitée")).to_be_visible()
    expect(p.get_by_role("button", name="Transmettre", exact=True)).to_have_count(0)
    page.check("held-discarded")
    page.close()


def test_a_template_is_previewed_saved_and_reset_and_the_outbox_fits_a_phone(stack, browser):
    _, _, page = staff_page(stack, browser, "admin", "fr", "staff-mail-template-fr")
    p = page.page
    page.goto("/staff/mail/templates")
    p.get_by_role("link", name="Facture bientôt due, Français").click()
    expect(p.get_by_role("heading", name="Facture bientôt due (Français)")).to_be_visible()
    page.check("template")

    p.get_by_label("Objet").fill("Rappel : facture {{ number }}")
    p.get_by_label("Texte").fill("Bonjour {{ customer_name }},\nmerci de régler {{ inconnu }}.")
    p.get_by_role("button", name="Aperçu").click()
    expect(p.locator("#error-body")).to_contain_text("Ce modèle contient une erreur")
    expect(p.locator("#error-subject")).to_have_count(0)
    page.check("template-error", allow=(400,))

    p.get_by_label("Texte").fill("Bonjour {{ customer_name }},\nmerci de régler la facture.")
    p.get_by_role("button", name="Aperçu").click()
    preview = p.get_by_role("region", name="Aperçu")
    expect(preview).to_contain_text("Rappel : facture INV-2026-000001")
    expect(preview).to_contain_text("Bonjour Jane Doe,")
    page.check("template-preview")

    p.get_by_role("button", name="Enregistrer").click()
    expect(p.get_by_role("status").filter(has_text="Le modèle a été enregistré.")).to_be_visible()
    expect(p.get_by_label("Objet")).to_have_value("Rappel : facture {{ number }}")
    page.check("template-saved")
    p.get_by_role("button", name="Revenir au texte d'origine").click()
    expect(
        p.get_by_role("status").filter(has_text="Le modèle a retrouvé son texte d'origine.")
    ).to_be_visible()
    expect(p.get_by_label("Objet")).not_to_have_value("Rappel : facture {{ number }}")

    page.goto("/staff/mail")
    p.get_by_role("navigation", name="Courrier").get_by_role("link", name="Courrier reçu").click()
    expect(p.get_by_label("Adresse de l'expéditeur")).to_be_visible()
    page.check("received")
    page.close()

    _, _, phone = staff_page(
        stack, browser, "support", "fr", "staff-mail-outbox-phone", viewport=PHONE
    )
    phone.goto("/staff/mail/outbox")
    expect(phone.page.get_by_role("navigation", name="Quelles notifications")).to_be_visible()
    phone.check("outbox-phone")
    phone.close()


def test_a_billing_member_is_refused_the_held_mail(stack, browser):
    _, _, page = staff_page(stack, browser, "billing", "en", "staff-mail-billing")
    page.goto("/staff/mail/held")
    expect(page.page.get_by_text("Your role in the staff may not see or do this.")).to_be_visible()
    page.check("held-refused", allow=(403,))
    page.goto("/staff/mail")
    assert page.path == "/staff/mail/outbox"
    expect(page.page.get_by_role("link", name="Held mail")).to_have_count(0)
    page.close()
