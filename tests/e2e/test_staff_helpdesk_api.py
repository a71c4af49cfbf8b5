"""The helpdesk routes the staff panel's pages use: a reply template read, changed and
deleted (by support and admin only; a deleted one answers nothing any more), and the
staff ticket list filtered by tracking number and by the archive."""

import uuid

from tests.e2e.test_helpdesk import _client, _department, _open


def _template(stack, **extra) -> dict:
    body = {"name": f"Greeting {uuid.uuid4().hex[:6]}", "bodies": {"en": "Hello %client_person%."}}
    body.update(extra)
    r = stack.http("POST", "/api/v1/staff/reply-templates", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_reply_template_is_changed_and_deleted_by_support_only(stack):
    department = _department(stack)
    template = _template(stack)
    _, support = stack.staff_member("support")
    _, billing = stack.staff_member("billing")
    url = f"/api/v1/staff/reply-templates/{template['id']}"

    r = stack.http("GET", url, billing)
    assert r.status_code == 200, r.text
    assert r.json() == template

    r = stack.http("PATCH", url, billing, json={"name": "Not allowed"})
    assert r.status_code == 403, r.text
    r = stack.http("PATCH", url, support, json={"bodies": {"ru": ""}})
    assert r.status_code == 400, r.text
    r = stack.http(
        "PATCH",
        url,
        support,
        json={
            "name": "Welcome",
            "bodies": {
                "en": "Welcome, %client_person%!",
                "ru": "Добро пожаловать, %client_person%!",
            },
            "department_id": department["id"],
        },
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == "Welcome"
    assert changed["bodies"]["ru"] == "Добро пожаловать, %client_person%!"
    assert stack.http("GET", url, support).json() == changed
    stack.wait_until(
        lambda: (
            "Welcome"
            in [
                t["name"]
                for t in stack.http(
                    "GET",
                    f"/api/v1/staff/reply-templates?department_id={department['id']}",
                    support,
                ).json()["items"]
            ]
        ),
        what="the changed name in the list",
    )

    # a Russian client's ticket answered with it gets the Russian text
    _, client = _client(stack, language="ru", contact_person="Анна")
    ticket = _open(stack, client, department)
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        support,
        json={"template_id": template["id"]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["messages"][-1]["body"] == "Добро пожаловать, Анна!"

    assert stack.http("DELETE", url, billing).status_code == 403
    r = stack.http("DELETE", url, support)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": template["id"], "removed": True}
    assert stack.http("GET", url, support).status_code == 404
    assert stack.http("PATCH", url, support, json={"name": "Back"}).status_code == 404
    listed = stack.http("GET", "/api/v1/staff/reply-templates?page_size=200", support).json()
    assert template["id"] not in [t["id"] for t in listed["items"]]
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        support,
        json={"template_id": template["id"]},
    )
    assert r.status_code == 400, r.text
    assert "template_id" in r.json()["error"]["fields"]


def test_staff_find_a_ticket_by_its_number_and_filter_the_archive(stack):
    department = _department(stack)
    _, client = _client(stack)
    kept = _open(stack, client, department)
    closed = _open(stack, client, department)
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/tickets/{closed['id']}",
        stack.admin_token,
        json={"status": "closed"},
    )
    assert r.status_code == 200, r.text

    def listed(query: str) -> list[str]:
        r = stack.http("GET", f"/api/v1/staff/tickets?{query}", stack.admin_token)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert stack.wait_until(
        lambda: listed(f"tracking_number={kept['tracking_number']}") == [kept["id"]],
        what="the ticket found by its number",
    )
    scope = f"department_id={department['id']}"
    stack.wait_until(
        lambda: listed(f"{scope}&archived=true") == [closed["id"]], what="the archived ticket"
    )
    assert listed(f"{scope}&archived=false") == [kept["id"]]
    assert listed("tracking_number=ZZZ-000000") == []
