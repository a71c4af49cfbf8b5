"""A client's settings through the API: an e-mail change takes effect only through the
link mailed to the new address (once, before it expires; the old address is told),
favourite pages are checked (client-area pages only, at most 20, each once), and each
person of a client keeps its own style of the pages, which the pages then show."""

import re
import uuid
from datetime import timedelta

import requests

from services.infra.clock import FileClock
from tests.e2e.test_mail_out import sent_to, wait_mail
from tests.e2e.test_openapi_answers import check  # noqa: F401 - the fixture

PASSWORD = "settings password 1"


def _client(stack, language: str = "en") -> dict:
    email = f"st-{uuid.uuid4().hex[:10]}@example.com"
    customer = stack.register_customer(
        email=email, country="BE", language=language, password=PASSWORD
    )
    customer["token"] = stack.login(email, PASSWORD)
    return customer


def _confirm_token(stack, address: str, count: int = 1) -> str:
    mail = wait_mail(stack, address, count)[-1]
    assert mail["Subject"] == "Confirm your new e-mail address"
    text = mail.get_content()
    link = re.search(r"(http\S+/settings/email/confirm\?token=[A-Za-z0-9_\-]+)", text).group(1)
    assert link.startswith(stack.base_url + "/settings/email/confirm?token=")
    return link.split("token=", 1)[1]


def _login_status(stack, username: str, password: str = PASSWORD) -> int:
    r = stack.http("POST", "/api/v1/auth/login", json={"username": username, "password": password})
    return r.status_code


def test_the_email_changes_only_once_the_mailed_link_is_opened_and_only_once(stack):
    client, other = _client(stack), _client(stack)
    token, old = client["token"], client["email"]
    new = f"st-new-{uuid.uuid4().hex[:10]}@example.com"
    path = "/api/v1/client/profile/email"

    r = stack.http("POST", path, token, json={"email": new, "current_password": "wrong one"})
    assert r.status_code == 401, r.text
    r = stack.http("POST", path, token, json={"email": old.upper(), "current_password": PASSWORD})
    assert r.status_code == 400 and "email" in r.json()["error"]["fields"], r.text
    r = stack.http(
        "POST", path, token, json={"email": other["email"], "current_password": PASSWORD}
    )
    assert r.status_code == 409 and "email" in r.json()["error"]["fields"], r.text
    r = stack.http("POST", path, token, json={"email": "not an address", "current_password": "x"})
    assert r.status_code == 400 and "email" in r.json()["error"]["fields"], r.text

    r = stack.http("POST", path, token, json={"email": new, "current_password": PASSWORD})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["email"] == new

    # nothing changed yet: the old address is the account's, the new one logs nobody in
    link_token = _confirm_token(stack, new)
    assert stack.http("GET", "/api/v1/client/profile", token).json()["email"] == old
    assert _login_status(stack, new) == 401
    assert _login_status(stack, old) == 200

    # the link is the account's own: another client's session cannot use it
    r = stack.http("POST", f"{path}/confirm", other["token"], json={"token": link_token})
    assert r.status_code == 400 and "token" in r.json()["error"]["fields"], r.text

    r = stack.http("POST", f"{path}/confirm", token, json={"token": link_token})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == new
    assert stack.http("GET", "/api/v1/client/profile", token).json()["email"] == new
    assert _login_status(stack, new) == 200
    assert _login_status(stack, old) == 401

    # once only
    r = stack.http("POST", f"{path}/confirm", token, json={"token": link_token})
    assert r.status_code == 400, r.text

    # the old address is told where the account's mail goes now
    [notice] = wait_mail(stack, old, 1)
    assert notice["Subject"] == "Your e-mail address was changed"
    assert new in notice.get_content()

    # staff see the new address, in the customer and in the customer list
    customer = stack.http("GET", f"/api/v1/staff/customers/{client['id']}", stack.admin_token)
    assert customer.json()["email"] == new

    def listed():
        r = stack.http("GET", "/api/v1/staff/customers", stack.admin_token, params={"name": new})
        return [c for c in r.json()["items"] if c["id"] == client["id"]]

    assert stack.wait_until(listed, what="the customer list")[0]["email"] == new

    # the old address is free: a new customer may register with it
    again = stack.register_customer(email=old, country="BE", password=PASSWORD)
    assert again["email"] == old
    assert stack.login(old, PASSWORD)  # the new customer's, not the changed one's
    r = stack.http("GET", "/api/v1/me", stack.login(old, PASSWORD))
    assert r.json()["customer_id"] == again["id"]


def test_an_email_change_link_expires_and_a_newer_one_voids_it(stack):
    client = _client(stack)
    token = client["token"]
    path = "/api/v1/client/profile/email"
    first = f"st-a-{uuid.uuid4().hex[:10]}@example.com"
    second = f"st-b-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": first, "current_password": PASSWORD}
    assert stack.http("POST", path, token, json=body).status_code == 202
    voided = _confirm_token(stack, first)
    body = {"email": second, "current_password": PASSWORD}
    assert stack.http("POST", path, token, json=body).status_code == 202
    expiring = _confirm_token(stack, second)

    r = stack.http("POST", f"{path}/confirm", token, json={"token": voided})
    assert r.status_code == 400, r.text  # a newer request was made

    FileClock.set_offset(stack.clock_file, timedelta(hours=25))
    try:
        r = stack.http("POST", f"{path}/confirm", token, json={"token": expiring})
        assert r.status_code == 400, r.text  # the link lives 24 hours
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    assert stack.http("GET", "/api/v1/client/profile", token).json()["email"] == client["email"]
    assert not sent_to(stack, client["email"])  # no change: no notice


def test_a_user_of_the_account_changes_neither_its_email(stack):
    client = _client(stack)
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        client["token"],
        json={
            "username": f"st-user-{uuid.uuid4().hex[:6]}",
            "email": f"st-user-{uuid.uuid4().hex[:6]}@example.com",
            "name": "Full User",
            "permissions": ["full"],
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    user = stack.login(r.json()["username"], PASSWORD)
    body = {"email": "elsewhere@example.com", "current_password": PASSWORD}
    r = stack.http("POST", "/api/v1/client/profile/email", user, json=body)
    assert r.status_code == 403, r.text


def test_favourite_pages_are_client_area_pages_at_most_twenty_each_once(stack):
    client = _client(stack)
    token = client["token"]
    path = "/api/v1/client/favourites"
    assert stack.http("GET", path, token).json() == {"pages": []}
    wanted = [
        {"path": "/invoices", "label": "Invoices"},
        {"path": f"/tickets/{uuid.uuid4()}", "label": "My ticket"},
    ]
    r = stack.http("PUT", path, token, json={"pages": wanted})
    assert r.status_code == 200 and r.json() == {"pages": wanted}, r.text
    assert stack.http("GET", path, token).json() == {"pages": wanted}

    refused = {
        "a page outside the client area": [{"path": "/login", "label": "Log in"}],
        "an address elsewhere": [{"path": "https://evil.example/", "label": "Elsewhere"}],
        "a way out with ..": [{"path": "/settings/../login", "label": "Out"}],
        "a query": [{"path": "/invoices?page=2", "label": "Page 2"}],
        "the page of a token": [{"path": "/settings/email/confirm", "label": "Confirm"}],
        "no label": [{"path": "/payments", "label": ""}],
        "a label too long": [{"path": "/payments", "label": "x" * 101}],
        "a page twice": [wanted[0], dict(wanted[0], label="Again")],
        "21 pages": [{"path": f"/help/topic-{n}", "label": f"Topic {n}"} for n in range(21)],
    }
    for what, items in refused.items():
        r = stack.http("PUT", path, token, json={"pages": items})
        assert r.status_code == 400, (what, r.text)
        assert r.json()["error"]["fields"], what
    assert stack.http("GET", path, token).json() == {"pages": wanted}  # unchanged

    twenty = [{"path": f"/help/topic-{n}", "label": f"Topic {n}"} for n in range(20)]
    assert stack.http("PUT", path, token, json={"pages": twenty}).status_code == 200

    # the pages show them in the menu
    page = requests.get(
        stack.base_url + "/dashboard", cookies={"hostledger_session": token}, timeout=30
    )
    assert page.status_code == 200
    assert 'href="/help/topic-19">Topic 19</a>' in page.text


def test_each_person_has_its_own_style_and_the_pages_show_it(stack):
    client = _client(stack)
    token = client["token"]
    path = "/api/v1/client/preferences"
    assert stack.http("GET", path, token).json() == {"theme": "auto"}

    def page(session: str) -> str:
        r = requests.get(
            stack.base_url + "/dashboard", cookies={"hostledger_session": session}, timeout=30
        )
        assert r.status_code == 200
        return re.search(r"<html[^>]*>", r.text).group(0)

    assert "data-theme" not in page(token)  # the browser's
    r = stack.http("PUT", path, token, json={"theme": "dark"})
    assert r.status_code == 200 and r.json() == {"theme": "dark"}, r.text
    assert 'data-theme="dark"' in page(token)
    r = stack.http("PUT", path, token, json={"theme": "blue"})
    assert r.status_code == 400 and "theme" in r.json()["error"]["fields"], r.text
    assert stack.http("GET", path, token).json() == {"theme": "dark"}

    # the account's language is the pages' language at once
    r = stack.http("PATCH", "/api/v1/client/profile", token, json={"language": "fr"})
    assert r.status_code == 200, r.text
    assert 'lang="fr"' in page(token)

    # a user of the account keeps its own style and favourites
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": f"st-style-{uuid.uuid4().hex[:6]}",
            "email": f"st-style-{uuid.uuid4().hex[:6]}@example.com",
            "name": "Style User",
            "permissions": ["support"],
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    user = stack.login(r.json()["username"], PASSWORD)
    assert stack.http("GET", path, user).json() == {"theme": "auto"}
    assert stack.http("PUT", path, user, json={"theme": "light"}).json() == {"theme": "light"}
    assert 'data-theme="light"' in page(user)
    assert stack.http("GET", path, token).json() == {"theme": "dark"}
    favourite = {"pages": [{"path": "/support", "label": "Support"}]}
    assert stack.http("PUT", "/api/v1/client/favourites", user, json=favourite).status_code == 200
    assert stack.http("GET", "/api/v1/client/favourites", token).json() == {"pages": []}


def test_the_settings_answers_are_as_the_openapi_document_says(stack, check):  # noqa: F811
    client = _client(stack)
    token = client["token"]
    new = f"st-doc-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": new, "current_password": PASSWORD}
    pending = check(stack.http("POST", "/api/v1/client/profile/email", token, json=body), "POST")
    assert pending["email"] == new
    link = {"token": _confirm_token(stack, new)}
    r = stack.http("POST", "/api/v1/client/profile/email/confirm", token, json=link)
    assert check(r, "POST")["email"] == new
    check(stack.http("GET", "/api/v1/client/preferences", token))
    check(stack.http("PUT", "/api/v1/client/preferences", token, json={"theme": "light"}), "PUT")
    check(stack.http("GET", "/api/v1/client/favourites", token))
    items = {"pages": [{"path": "/dashboard", "label": "Dashboard"}]}
    check(stack.http("PUT", "/api/v1/client/favourites", token, json=items), "PUT")
