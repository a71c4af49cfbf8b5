"""Staff's customer list order, corrections of registration details with their reason,
the display name, and deleting with a reason, through the gateway."""

import uuid


def test_the_customer_list_sorts_by_number_name_and_registration(stack):
    tag = uuid.uuid4().hex[:8]
    made = [
        stack.register_customer(contact_person=f"{name} {tag}")
        for name in ("Bravo", "Alpha", "Charlie")
    ]
    path = f"/api/v1/staff/customers?name={tag}"

    def names(sort):
        r = stack.http("GET", f"{path}&sort={sort}", stack.admin_token)
        assert r.status_code == 200, r.text
        return [c["name"].split()[0] for c in r.json()["items"]]

    stack.wait_until(lambda: len(names("number")) == 3, what="the three customers listed")
    assert names("number") == ["Bravo", "Alpha", "Charlie"]
    assert names("-number") == ["Charlie", "Alpha", "Bravo"]
    assert names("name") == ["Alpha", "Bravo", "Charlie"]
    assert names("-name") == ["Charlie", "Bravo", "Alpha"]
    assert names("registered_at") == ["Bravo", "Alpha", "Charlie"]
    assert names("-registered_at") == ["Charlie", "Alpha", "Bravo"]
    r = stack.http("GET", f"{path}&sort=email", stack.admin_token)
    assert r.status_code == 400 and "sort" in r.json()["error"]["fields"]
    assert len(made) == 3


def test_the_display_name_leaves_the_legal_name_and_contact_person(stack):
    customer = stack.register_customer(
        kind="company", company_name="Legal Name SARL", contact_person="Jeanne Contact"
    )
    path = f"/api/v1/staff/customers/{customer['id']}"
    r = stack.http("PATCH", path, stack.admin_token, json={"name": "Shown Name"})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["name"] == "Shown Name"
    assert edited["company_name"] == "Legal Name SARL"
    assert edited["contact_person"] == "Jeanne Contact"
    stack.wait_until(
        lambda: (
            stack.http("GET", "/api/v1/staff/customers?name=Shown Name", stack.admin_token).json()[
                "total"
            ]
            >= 1
        ),
        what="the list under the display name",
    )


def test_corrections_need_a_reason_and_are_recorded_with_it(stack):
    customer = stack.register_customer(contact_person="Wrong Person")
    path = f"/api/v1/staff/customers/{customer['id']}"
    new_email = f"fixed-{uuid.uuid4().hex[:8]}@example.com"
    r = stack.http("PATCH", path, stack.admin_token, json={"email": new_email})
    assert r.status_code == 400
    assert "reason" in r.json()["error"]["fields"]
    r = stack.http("PATCH", path, stack.admin_token, json={"country": "XX", "reason": "typo"})
    assert r.status_code == 400 and "country" in r.json()["error"]["fields"]
    r = stack.http(
        "PATCH", path, stack.admin_token, json={"kind": "company", "reason": "it is a firm"}
    )
    assert r.status_code == 400 and "company_name" in r.json()["error"]["fields"]
    r = stack.http(
        "PATCH",
        path,
        stack.admin_token,
        json={
            "email": new_email,
            "country": "FR",
            "kind": "company",
            "company_name": "Right SAS",
            "contact_person": "Right Person",
            "reason": "the client wrote to support with the right details",
        },
    )
    assert r.status_code == 200, r.text
    fixed = r.json()
    assert (fixed["email"], fixed["country"], fixed["kind"]) == (new_email, "FR", "company")
    assert (fixed["company_name"], fixed["contact_person"]) == ("Right SAS", "Right Person")
    # the new address logs in; the old one is free for someone else
    assert stack.login(new_email, customer["credentials"]["password"])
    stack.register_customer(email=customer["email"])
    # an address another customer has: 409
    other = stack.register_customer()
    r = stack.http(
        "PATCH", path, stack.admin_token, json={"email": other["email"], "reason": "mixed up"}
    )
    assert r.status_code == 409, r.text
    # recorded with who and why
    admin = stack.http("GET", "/api/v1/me", stack.admin_token).json()
    with stack.rpc() as rpc:
        history = rpc.customers.customer_history(customer["id"], 1, 20)
    [corrected] = [e for e in history["items"] if e["type"] == "Corrected"]
    assert corrected["reason"] == "the client wrote to support with the right details"
    assert corrected["actor"] == {"kind": "staff", "id": admin["staff_id"]}
    assert set(corrected["changes"]) == {
        "email",
        "country",
        "kind",
        "company_name",
        "contact_person",
    }
    # support may correct too; billing may not edit at all
    _, billing = stack.staff_member("billing")
    r = stack.http("PATCH", path, billing, json={"country": "DE", "reason": "x"})
    assert r.status_code == 403


def test_a_deleted_customer_keeps_its_record_with_the_reason(stack):
    customer = stack.register_customer()
    path = f"/api/v1/staff/customers/{customer['id']}"
    r = stack.http("DELETE", f"{path}?confirm=true&reason=asked+to+leave", stack.admin_token)
    assert r.status_code == 200, r.text
    assert stack.http("GET", path, stack.admin_token).status_code == 404
    with stack.rpc() as rpc:
        record = rpc.customers.customer_record(customer["id"])
    assert record["deleted"] is True
    assert record["deletion"]["reason"] == "asked to leave"
    assert record["deletion"]["actor"]["kind"] == "staff"


def test_staff_acting_as_the_client_may_not_change_its_email(stack):
    customer = stack.register_customer()
    r = stack.http(
        "POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", stack.admin_token
    )
    assert r.status_code == 200, r.text
    acting = r.json()["token"]
    r = stack.http(
        "POST",
        "/api/v1/client/profile/email",
        acting,
        json={
            "email": f"taken-{uuid.uuid4().hex[:8]}@example.com",
            "current_password": customer["credentials"]["password"],
        },
    )
    assert r.status_code == 403, r.text
    assert "acting in a client's panel" in r.json()["error"]["message"]
    r = stack.http("POST", "/api/v1/client/profile/email/confirm", acting, json={"token": "x" * 20})
    assert r.status_code == 403, r.text
    # staff correct it from the staff panel instead, saying why
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"email": f"right-{uuid.uuid4().hex[:8]}@example.com", "reason": "client asked"},
    )
    assert r.status_code == 200, r.text
