"""The staff panel's helpdesk, in Russian: a support member opens its department's queue,
opens a client's ticket, answers it with a reply template (the client gets the template's
Russian text with the names filled in) and adds an internal note (the client never sees
it), closes and reopens it; a billing member reads the ticket on a phone without the
reply form, and a reply posted directly is refused. In French, an admin keeps reply
templates, a department and the helpdesk settings. Each page is checked (console,
requests, axe-core) and kept as a screenshot."""

import re
import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page


def _department(stack, name: str) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={
            "name": name,
            "client_visible": True,
            "fields": [{"name": "domain", "label": "Домен", "required": False}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _client_ticket(stack, department: dict) -> tuple[dict, str]:
    customer = stack.register_customer(language="ru", country="RU", contact_person="Иван Петров")
    creds = customer["credentials"]
    token = stack.login(creds["username"], creds["password"])
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={
            "department_id": department["id"],
            "subject": "Сайт не открывается",
            "body": "С утра сайт отвечает ошибкой 502.",
            "fields": {"domain": "example.ru"},
        },
    )
    assert r.status_code == 201, r.text
    return r.json(), token


def test_support_answers_with_a_template_and_notes_a_ticket_in_russian(stack, browser):
    tag = uuid.uuid4().hex[:6]
    department = _department(stack, f"Хостинг {tag}")
    template = stack.http(
        "POST",
        "/api/v1/staff/reply-templates",
        stack.admin_token,
        json={
            "name": f"Проверили сервер {tag}",
            "bodies": {
                "en": "Hello %client_person%, we checked the server. %admin_name%",
                "ru": "Здравствуйте, %client_person%! Мы проверили сервер. %admin_name%",
            },
        },
    )
    assert template.status_code == 201, template.text
    ticket, client_token = _client_ticket(stack, department)
    member, _, page = staff_page(stack, browser, "support", "ru", "staff-helpdesk-ru")
    p = page.page

    # the queue of the department, newest activity first
    p.get_by_role("navigation", name="Разделы").get_by_role("link", name="Техподдержка").click()
    p.wait_for_url("**/staff/tickets")
    expect(p.get_by_role("heading", name="Тикеты", exact=True)).to_be_visible()
    p.get_by_label("Отдел").select_option(label=department["name"])
    p.get_by_label("Статус").select_option(label="Новый")
    p.get_by_role("button", name="Показать").click()
    p.wait_for_url(re.compile(r".*/staff/tickets\?department_id=.*status=open.*"))
    row = p.get_by_role("row", name=re.compile(ticket["tracking_number"]))
    expect(row).to_contain_text("Сайт не открывается")
    expect(row).to_contain_text("Иван Петров")
    expect(row).to_contain_text("Никто")
    page.check("queue-ru")

    row.get_by_role("link", name="Сайт не открывается").click()
    p.wait_for_url(f"**/staff/tickets/{ticket['id']}")
    expect(p.get_by_role("heading", name="Сайт не открывается")).to_be_visible()
    expect(p.get_by_text("С утра сайт отвечает ошибкой 502.")).to_be_visible()
    expect(p.get_by_text("example.ru")).to_be_visible()
    page.check("ticket-ru")

    p.get_by_role("button", name="Отправить").click()
    expect(p.locator("#error-body")).to_have_text("Напишите ответ или выберите шаблон.")
    page.check("reply-empty-ru", allow=(400,))

    # an answer from the template: nothing typed, the client's language, names filled in
    p.get_by_label("Шаблон ответа").select_option(label=f"Проверили сервер {tag}")
    p.get_by_role("button", name="Отправить").click()
    p.wait_for_url("**?done=replied")
    expect(p.get_by_role("status")).to_have_text("Ваш ответ отправлен клиенту.")
    expected = f"Здравствуйте, Иван Петров! Мы проверили сервер. {member['name']}"
    expect(p.locator(".message-body", has_text="Мы проверили сервер")).to_have_text(expected)
    seen = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", client_token).json()
    assert [m["body"] for m in seen["messages"]][-1] == expected
    assert seen["progress"] == "answered"

    # an internal note: marked on the page, never shown to the client
    p.get_by_label("Сообщение").fill("Клиент платит вовремя, можно продлить.")
    p.get_by_label("Внутренняя заметка: её видят только сотрудники").check()
    p.get_by_role("button", name="Отправить").click()
    p.wait_for_url("**?done=noted")
    note = p.locator(".message", has_text="Клиент платит вовремя")
    expect(note.get_by_text("Внутренняя заметка: клиент её не видит")).to_be_visible()
    page.check("ticket-note-ru")
    seen = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", client_token).json()
    assert not [m for m in seen["messages"] if "платит" in m["body"]]
    assert len(seen["messages"]) == 2

    p.get_by_role("button", name="Назначить мне").click()
    p.wait_for_url("**?done=assigned")
    expect(p.locator(".facts")).to_contain_text(member["name"])

    p.get_by_role("button", name="Закрыть тикет").click()
    p.wait_for_url("**?done=closed")
    expect(p.locator(".facts").get_by_text("Закрыт", exact=True)).to_be_visible()
    p.get_by_role("button", name="Открыть тикет снова").click()
    p.wait_for_url("**?done=reopened")
    expect(p.locator(".facts").get_by_text("Новый", exact=True)).to_be_visible()
    page.check("ticket-reopened-ru")

    p.get_by_label("Приоритет", exact=True).select_option(label="Срочный")
    p.get_by_role("button", name="Сохранить").click()
    p.wait_for_url("**?done=changed")
    expect(p.locator(".facts")).to_contain_text("Срочный")

    # another ticket of the same client, merged in by its number
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        client_token,
        json={
            "department_id": department["id"],
            "subject": "И почта тоже",
            "body": "Почта молчит.",
        },
    )
    assert r.status_code == 201, r.text
    other = r.json()
    p.get_by_label("Номер другого тикета").fill("ZZZ-000000")
    p.get_by_role("button", name="Объединить").click()
    expect(p.locator("#error-other")).to_have_text("Тикета с таким номером нет.")
    page.check("merge-unknown-ru", allow=(400,))
    p.get_by_label("Номер другого тикета").fill(other["tracking_number"].lower())
    p.get_by_role("button", name="Объединить").click()
    p.wait_for_url("**?done=merged")
    expect(p.get_by_text("Почта молчит.")).to_be_visible()
    expect(p.locator(".facts")).to_contain_text(other["tracking_number"])

    # support reads a department and the settings; only an admin changes them
    page.goto(f"/staff/departments/{department['id']}")
    expect(p.get_by_role("heading", name=department["name"])).to_be_visible()
    expect(p.locator(".facts")).to_contain_text("Домен")
    expect(p.get_by_role("button", name="Сохранить")).to_have_count(0)
    page.check("department-read-only-ru")
    page.goto("/staff/helpdesk-settings")
    expect(p.get_by_role("heading", name="Настройки техподдержки")).to_be_visible()
    expect(p.get_by_role("button", name="Сохранить")).to_have_count(0)
    csrf = p.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = p.request.post(
        f"{stack.base_url}/staff/helpdesk-settings",
        form={"csrf_token": csrf, "penalty_threshold": "1"},
        headers={"Origin": stack.base_url},
    )
    assert refused.status == 403
    page.close()

    # billing reads the ticket, on a phone, without a reply form; a direct reply is refused
    _, _, page = staff_page(
        stack, browser, "billing", "ru", "staff-helpdesk-billing", viewport=PHONE
    )
    p = page.page
    page.goto(f"/staff/tickets/{ticket['id']}")
    expect(p.get_by_role("heading", name="Сайт не открывается")).to_be_visible()
    expect(p.get_by_role("heading", name="Ответ")).to_have_count(0)
    expect(p.get_by_role("button", name="Отправить")).to_have_count(0)
    expect(p.get_by_role("button", name="Закрыть тикет")).to_have_count(0)
    page.check("ticket-billing-phone")
    csrf = p.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = p.request.post(
        f"{stack.base_url}/staff/tickets/{ticket['id']}/replies",
        form={"csrf_token": csrf, "body": "Не должно дойти."},
        headers={"Origin": stack.base_url},
    )
    assert refused.status == 403
    seen = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", client_token).json()
    assert "Не должно дойти." not in [m["body"] for m in seen["messages"]]
    page.close()


def test_an_admin_keeps_templates_a_department_and_the_settings_in_french(stack, browser):
    tag = uuid.uuid4().hex[:6]
    _, _, page = staff_page(stack, browser, "admin", "fr", "staff-helpdesk-admin-fr")
    p = page.page

    page.goto("/staff/reply-templates")
    expect(p.get_by_role("heading", name="Modèles de réponse", exact=True)).to_be_visible()
    expect(p.get_by_text("%client_person%")).to_be_visible()
    p.get_by_label("Nom").fill(f"Bienvenue {tag}")
    p.get_by_role("button", name="Ajouter le modèle").click()
    expect(p.locator("#error-body_en")).to_have_text("Écrivez le texte dans au moins une langue.")
    page.check("template-errors-fr", allow=(400,))
    p.get_by_label("Texte en français").fill("Bonjour %client_person%,\nbienvenue !")
    p.get_by_role("button", name="Ajouter le modèle").click()
    p.wait_for_url("**?done=template_created")
    expect(p.get_by_role("status")).to_have_text("Le modèle de réponse a été ajouté.")
    p.get_by_label("Texte en anglais").fill("Hello %client_person%, welcome!")
    p.get_by_role("button", name="Enregistrer").click()
    p.wait_for_url("**?done=template_saved")
    expect(p.get_by_label("Texte en anglais")).to_have_value("Hello %client_person%, welcome!")
    page.check("template-fr")
    p.get_by_role("button", name="Supprimer le modèle").click()
    p.wait_for_url("**/staff/reply-templates?done=template_deleted")
    expect(p.get_by_role("link", name=f"Bienvenue {tag}")).to_have_count(0)

    page.goto("/staff/departments")
    p.get_by_role("link", name="Nouveau service").click()
    p.wait_for_url("**/staff/departments/new")
    p.get_by_label("Nom", exact=True).fill(f"Domaines {tag}")
    p.get_by_label("Adresses e-mail de réception").fill(
        f"domaines-{tag}@provider.example\nnoms-{tag}@provider.example"
    )
    p.get_by_label("Nom du champ 1").fill("domain")
    p.get_by_label("Libellé 1").fill("Nom de domaine")
    p.get_by_label("Obligatoire 1").check()
    p.get_by_label("Nom du champ 2").fill("Mauvais nom")
    p.get_by_label("Lundi").check()
    p.get_by_role("button", name="Ajouter le service").click()
    expect(p.locator("#error-fields")).to_contain_text("Mauvais nom")
    page.check("department-errors-fr", allow=(400,))
    p.get_by_label("Nom du champ 2").fill("")
    p.get_by_role("button", name="Ajouter le service").click()
    p.wait_for_url("**?done=department_created")
    expect(p.get_by_role("status")).to_have_text("Le service a été ajouté.")
    expect(p.get_by_label("Libellé 1")).to_have_value("Nom de domaine")
    expect(p.get_by_label("Lundi")).to_be_checked()
    page.check("department-fr")
    department_id = page.path.split("/")[3].split("?")[0]
    saved = stack.http("GET", f"/api/v1/staff/departments/{department_id}", stack.admin_token)
    assert saved.json()["fields"] == [
        {"name": "domain", "label": "Nom de domaine", "required": True}
    ]
    assert saved.json()["business_hours"]["days"] == [0]
    assert saved.json()["addresses"] == [
        f"domaines-{tag}@provider.example",
        f"noms-{tag}@provider.example",
    ]

    page.goto("/staff/helpdesk-settings")
    before = stack.http("GET", "/api/v1/staff/helpdesk-settings", stack.admin_token).json()
    p.get_by_label("Plus grand fichier, en Kio").fill("0")
    p.get_by_role("button", name="Enregistrer").click()
    expect(p.locator("#error-max_file_kib")).to_contain_text("Écrivez un nombre entier")
    page.check("settings-errors-fr", allow=(400,))
    p.get_by_label("Plus grand fichier, en Kio").fill(str(before["max_file_bytes"] // 1024))
    p.get_by_role("button", name="Enregistrer").click()
    p.wait_for_url("**?done=settings_saved")
    page.check("settings-fr")
    page.close()
