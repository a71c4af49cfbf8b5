"""Staff's customer fixes through the gateway: a company is registered only with its
company name (by staff, by the order form, and in corrections), countries are ISO 3166
codes everywhere a customer or payer gives one, projects are renamed and removed once
nothing refers to them (each change recorded with who made it), a deleted customer's
discounts stay as they were, read-only, and the customer's history gathers its users,
payers and discounts with the customer's own events."""

import json
import uuid

import pytest

from contracts.errors import NotFound


def _fields(r) -> dict:
    assert r.status_code == 400, r.text
    return r.json()["error"]["fields"]


def _client(stack, **fields):
    customer = stack.register_customer(**fields)
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


def _staff_body(**changes) -> dict:
    body = {
        "kind": "individual",
        "email": f"fix-{uuid.uuid4().hex[:10]}@example.com",
        "country": "DE",
        "contact_person": "Ines Fixer",
    }
    body.update(changes)
    return body


def _project(stack, name: str) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": name, "sender_email": "billing@brand.example"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _admin_id(stack) -> str:
    return stack.http("GET", "/api/v1/me", stack.admin_token).json()["staff_id"]


def _events_of(stack, aggregate_id: str) -> list[tuple[str, str]]:
    """(topic, stored state as text) of an aggregate's events, oldest first."""
    with stack.db("customers") as db:
        rows = db.execute(
            "SELECT topic, state FROM customers_events WHERE originator_id = %s"
            " ORDER BY originator_version",
            (uuid.UUID(aggregate_id),),
        ).fetchall()
    return [(topic, bytes(state).decode()) for topic, state in rows]


def test_a_company_needs_its_company_name_wherever_a_customer_is_registered(stack):
    path = "/api/v1/staff/customers"
    for missing in ({}, {"company_name": None}, {"company_name": ""}, {"company_name": "   "}):
        r = stack.http("POST", path, stack.admin_token, json=_staff_body(kind="company", **missing))
        assert _fields(r) == {"company_name": ["A company needs its company name."]}
    # a sole proprietor trades under the contact person's own name: none needed
    r = stack.http("POST", path, stack.admin_token, json=_staff_body(kind="sole_proprietor"))
    assert r.status_code == 201, r.text
    assert r.json()["company_name"] is None
    r = stack.http(
        "POST", path, stack.admin_token, json=_staff_body(kind="company", company_name=" Acme ")
    )
    assert r.status_code == 201, r.text
    assert (r.json()["company_name"], r.json()["name"]) == ("Acme", "Acme")

    # the order form's new customer: refused before anything is made
    email = f"fix-order-{uuid.uuid4().hex[:8]}@example.com"
    person = {"email": email, "kind": "company", "contact_person": "Olga", "country": "FR"}
    items = [{"product_id": str(uuid.uuid4()), "billing_cycle": "monthly"}]
    r = stack.http("POST", "/api/v1/orders", json={"customer": person, "items": items})
    assert _fields(r) == {"customer.company_name": ["A company needs its company name."]}
    with stack.rpc() as rpc:
        assert rpc.customers.customer_for_order(email, None, None) is None  # no account made

    # a correction to a company must bring the company name
    customer = stack.register_customer()
    edit = f"/api/v1/staff/customers/{customer['id']}"
    r = stack.http("PATCH", edit, stack.admin_token, json={"kind": "company", "reason": "a firm"})
    assert _fields(r) == {"company_name": ["A company needs its company name."]}
    r = stack.http(
        "PATCH",
        edit,
        stack.admin_token,
        json={"kind": "company", "company_name": " ", "reason": "a firm"},
    )
    assert _fields(r) == {"company_name": ["A company needs its company name."]}
    r = stack.http(
        "PATCH",
        edit,
        stack.admin_token,
        json={"kind": "company", "company_name": "Firm SA", "reason": "a firm"},
    )
    assert r.status_code == 200, r.text
    # ... and keeps it: emptying a company's name is refused
    r = stack.http("PATCH", edit, stack.admin_token, json={"company_name": None, "reason": "typo"})
    assert _fields(r) == {"company_name": ["A company needs its company name."]}
    assert stack.http("GET", edit, stack.admin_token).json()["company_name"] == "Firm SA"


def test_countries_are_iso_3166_codes_wherever_they_are_given(stack):
    for wrong in ("XX", "de", "DEU", "", "EU"):
        r = stack.http(
            "POST", "/api/v1/staff/customers", stack.admin_token, json=_staff_body(country=wrong)
        )
        assert "country" in _fields(r), wrong
        person = {
            "email": f"fix-{uuid.uuid4().hex[:8]}@example.com",
            "kind": "individual",
            "contact_person": "Olga",
            "country": wrong,
        }
        items = [{"product_id": str(uuid.uuid4()), "billing_cycle": "monthly"}]
        r = stack.http("POST", "/api/v1/orders", json={"customer": person, "items": items})
        assert "customer.country" in _fields(r), wrong
    customer, token = _client(stack)
    payer = {"kind": "company", "name": "Payer SARL", "address": "1 rue X", "country": "XX"}
    r = stack.http("POST", "/api/v1/client/payers", token, json=payer)
    assert "country" in _fields(r)
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"country": "UK", "reason": "moved"},  # the United Kingdom is GB
    )
    assert "country" in _fields(r)
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"country": "GB", "reason": "moved"},
    )
    assert r.status_code == 200 and r.json()["country"] == "GB", r.text


def test_a_project_is_renamed_then_removed_once_nothing_refers_to_it(stack):
    tag = uuid.uuid4().hex[:6]
    project = _project(stack, f"Brand {tag}")
    other = _project(stack, f"Other {tag}")
    path = f"/api/v1/staff/projects/{project['id']}"
    _, support = stack.staff_member("support")
    assert stack.http("PATCH", path, support, json={"name": "x"}).status_code == 403
    assert stack.http("DELETE", path, support).status_code == 403

    r = stack.http(
        "PATCH",
        path,
        stack.admin_token,
        json={
            "name": f"  Renamed {tag} ",
            "sender_email": "hello@renamed.example",
            "sender_name": "Renamed Team",
            "renew_days_before": 10,
        },
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == f"Renamed {tag}"
    assert (changed["sender_email"], changed["sender_name"]) == (
        "hello@renamed.example",
        "Renamed Team",
    )
    assert changed["renew_days_before"] == 10
    assert changed["seller"] == project["seller"]  # invoices' seller stays as created
    assert _fields(stack.http("PATCH", path, stack.admin_token, json={"name": " "})) == {
        "name": ["A project needs a name."]
    }
    for refused in ({"name": ""}, {"sender_email": "not an address"}, {"allow_credit": True}):
        assert stack.http("PATCH", path, stack.admin_token, json=refused).status_code == 400
    # an empty sender name is the project's name
    r = stack.http("PATCH", path, stack.admin_token, json={"sender_name": ""})
    assert r.status_code == 200 and r.json()["sender_name"] == f"Renamed {tag}", r.text
    # each change is an event with who made it
    admin = _admin_id(stack)
    changes = [state for topic, state in _events_of(stack, project["id"]) if "Changed" in topic]
    assert len(changes) == 2 and all(admin in state for state in changes)
    listed = stack.http(
        "GET", "/api/v1/staff/projects", stack.admin_token, params={"page_size": 200}
    ).json()["items"]
    assert [p["name"] for p in listed if p["id"] == project["id"]] == [f"Renamed {tag}"]

    # a customer and a product in it keep it from being removed, saying how many
    customer = stack.register_customer(project_id=project["id"])
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": f"Brand VPS {tag}",
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
            "project_id": project["id"],
        },
    )
    assert product.status_code == 201, product.text
    # (the lists are read models: both listed before the removal is asked for)
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/customers",
                stack.admin_token,
                params={"project_id": project["id"]},
            ).json()["total"]
            == 1
        ),
        what="the customer listed in the project",
    )
    stack.wait_until(
        lambda: (
            product.json()["id"]
            in {
                p["id"]
                for p in stack.http(
                    "GET", "/api/v1/staff/products", stack.admin_token, params={"page_size": 200}
                ).json()["items"]
            }
        ),
        what="the product listed",
    )
    r = stack.http("DELETE", path, stack.admin_token)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["fields"] == {"customers": ["1"], "products": ["1"]}
    assert "1 customer(s) and 1 product(s)" in error["message"]

    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"project_id": other["id"], "reason": "moved to the other brand"},
    )
    assert r.status_code == 200, r.text
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/products/{product.json()['id']}",
        stack.admin_token,
        json={"project_id": other["id"]},
    )
    assert r.status_code == 200, r.text

    def removed():
        r = stack.http("DELETE", path, stack.admin_token)
        assert r.status_code in (200, 409), r.text
        return r.status_code == 200 and r.json()

    assert stack.wait_until(removed, what="removed") == {"id": project["id"], "removed": True}
    [state] = [s for t, s in _events_of(stack, project["id"]) if "Removed" in t]
    assert admin in state
    # no longer listed, changed or given to a new customer; the other brand is untouched
    stack.wait_until(
        lambda: (
            project["id"]
            not in {
                p["id"]
                for p in stack.http(
                    "GET", "/api/v1/staff/projects", stack.admin_token, params={"page_size": 200}
                ).json()["items"]
            }
        ),
        what="the project gone from the list",
    )
    assert stack.http("PATCH", path, stack.admin_token, json={"name": "x"}).status_code == 404
    assert stack.http("DELETE", path, stack.admin_token).status_code == 404
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json=_staff_body(project_id=project["id"]),
    )
    assert _fields(r) == {"project_id": ["No such project."]}
    stack.wait_until(
        lambda: any(
            e["type"] == "ProjectRemoved" and e["aggregate_id"] == project["id"]
            for e in stack.published("customers")
        ),
        what="ProjectRemoved published",
    )
    nowhere = f"/api/v1/staff/projects/{uuid.uuid4()}"
    assert stack.http("DELETE", nowhere, stack.admin_token).status_code == 404


def test_a_deleted_customers_discounts_stay_as_they_were(stack):
    customer = stack.register_customer()
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={
            "name": "Loyal",
            "kind": "percentage",
            "percent": "10",
            "customer_id": customer["id"],
        },
    )
    assert r.status_code == 201, r.text
    discount = r.json()
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{customer['id']}?confirm=true&reason=left",
        stack.admin_token,
    )
    assert r.status_code == 200, r.text

    # still listed for that customer, as it was
    r = stack.http(
        "GET",
        "/api/v1/staff/discounts",
        stack.admin_token,
        params={"customer_id": customer["id"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [discount]
    # read-only: neither changed nor ended
    path = f"/api/v1/staff/discounts/{discount['id']}"
    r = stack.http("PATCH", path, stack.admin_token, json={"name": "Renamed"})
    assert r.status_code == 409, r.text
    assert "was deleted" in r.json()["error"]["message"]
    assert stack.http("DELETE", path, stack.admin_token).status_code == 409
    with stack.rpc() as rpc:
        assert rpc.customers.directory_entry("discount", discount["id"]) == discount
        # nothing new is priced for the deleted customer, with or without its discount
        with pytest.raises(NotFound):
            rpc.customers.discounts_for(customer["id"])
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "lines": [
                {
                    "description": "after deletion",
                    "quantity": 1,
                    "unit_price": {"amount": 1000, "currency": "EUR"},
                }
            ],
        },
    )
    assert r.status_code in (400, 404, 409), r.text
    # and no new discount is given to it
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={"name": "Late", "kind": "percentage", "percent": "5", "customer_id": customer["id"]},
    )
    assert _fields(r) == {"customer_id": ["No such customer."]}


def test_the_history_gathers_the_customers_users_payers_and_discounts(stack):
    customer, token = _client(stack)
    admin = _admin_id(stack)
    username = f"helper{uuid.uuid4().hex[:6]}"
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": username,
            "email": f"{username}@example.com",
            "name": "Helga Helper",
            "permissions": ["billing"],
            "password": "helper password 1",
        },
    )
    assert r.status_code == 201, r.text
    user = r.json()
    payer = {"kind": "company", "name": "Payer GmbH", "address": "Weg 1", "country": "DE"}
    assert stack.http("POST", "/api/v1/client/payers", token, json=payer).status_code == 201
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={
            "name": "Welcome",
            "kind": "fixed",
            "amount": {"amount": 250, "currency": "EUR"},
            "customer_id": customer["id"],
        },
    )
    assert r.status_code == 201, r.text
    discount = r.json()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/discounts/{discount['id']}",
        stack.admin_token,
        json={"name": "Welcome back"},
    )
    assert r.status_code == 200, r.text
    r = stack.http("PUT", "/api/v1/client/preferences", token, json={"theme": "dark"})
    assert r.status_code == 200, r.text
    r = stack.http("DELETE", f"/api/v1/client/users/{user['id']}", token)
    assert r.status_code == 200, r.text

    def history(page=1, size=50):
        with stack.rpc() as rpc:
            return rpc.customers.customer_history(customer["id"], page, size)

    def subjects(answer):
        return [
            (e["subject"]["kind"], e["type"]) if e["subject"] else ("customer", e["type"])
            for e in answer["items"]
        ]

    answer = stack.wait_until(
        lambda: (h := history()) and ("payer", "Added") in subjects(h) and h,
        what="the users and payers in the history",
    )
    found = subjects(answer)
    for wanted in (
        ("customer", "Registered"),
        ("user", "Added"),
        ("user", "Removed"),
        ("payer", "Added"),
        ("discount", "Created"),
        ("discount", "Changed"),
        ("settings", "ThemeChosen"),
    ):
        assert wanted in found, (wanted, found)
    # newest first, the user's removal last of all
    times = [e["occurred_at"] for e in answer["items"]]
    assert times == sorted(times, reverse=True)
    assert found[0] == ("user", "Removed")
    assert found[-1] == ("customer", "Registered")
    by = {
        (e["subject"] or {}).get("kind", "customer") + "." + e["type"]: e for e in answer["items"]
    }
    added = by["user.Added"]
    assert added["subject"] == {"kind": "user", "id": user["id"], "name": "Helga Helper"}
    assert added["details"] == {
        "username": username,
        "email": f"{username}@example.com",
        "permissions": ["billing"],
    }
    assert added["actor"] == {"kind": "client", "id": customer["id"]}
    assert by["payer.Added"]["subject"]["name"] == "Payer GmbH"
    created = by["discount.Created"]
    assert created["actor"] == {"kind": "staff", "id": admin}
    assert created["subject"]["name"] == "Welcome"
    assert (created["details"]["amount"], created["details"]["currency"]) == (250, "EUR")
    assert by["discount.Changed"]["subject"]["name"] == "Welcome back"
    assert by["settings.ThemeChosen"]["details"] == {"theme": "dark"}
    assert by["settings.ThemeChosen"]["subject"]["name"] is None  # the customer's own
    # never a password hash
    assert "password_hash" not in json.dumps(answer) and "argon2" not in json.dumps(answer)
    # paged like the whole
    first, second = history(1, 2), history(2, 2)
    assert first["total"] == answer["total"] == len(answer["items"])
    assert first["items"] + second["items"] == answer["items"][:4]
