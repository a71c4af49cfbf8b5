"""Idempotency-Key (API.md): every POST that creates something or moves money takes one;
the same key and request answer the first answer again, another request a 409, and a
key belongs to its caller."""

import uuid
from concurrent.futures import ThreadPoolExecutor

KEY = "Idempotency-Key"

# POST operations that take no Idempotency-Key, and why
NOT_IDEMPOTENT = {
    "/api/v1/auth/login": "a new session each time is what logging in means",
    "/api/v1/auth/logout": "ends the session; doing it twice changes nothing",
    "/api/v1/auth/return": "ends impersonation; the session it gives back is the staff one",
    "/api/v1/auth/password-reset": "always 202; mails a link, rate limited",
    "/api/v1/auth/password-reset/confirm": "the reset link is single-use by itself",
    "/api/v1/client/password": "sets a value; repeating it sets the same value",
    "/api/v1/staff/account/password": "sets a value; repeating it sets the same value",
    "/api/v1/client/profile/email": "a newer request voids the older link: the last one counts",
    "/api/v1/client/profile/email/confirm": "the mailed link is single-use by itself",
    "/api/v1/auth/2fa/enrol": "a new secret each time; only the last one can be confirmed",
    "/api/v1/auth/2fa/confirm": "turns it on once (a second time is a 409); codes work once",
    "/api/v1/auth/2fa/disable": "a state change; repeating it changes nothing",
    "/api/v1/staff/customers/{customer_id}/2fa/reset": "a state change (a second is a 409)",
    "/api/v1/payments/webhooks/{processor}": "the processor's event id deduplicates it",
    "/api/v1/staff/customers/{customer_id}/impersonate": "a session, not a stored object",
    "/api/v1/staff/staff/{staff_id}/disable": "a state change; repeating it changes nothing",
    "/api/v1/staff/refunds/{refund_id}/retry": "resends one refund, never paid out twice",
    "/api/v1/staff/mail/outbox/{notification_id}/resend": "resends one notification",
    "/api/v1/staff/mail/templates/{kind}/{language}/preview": "renders; nothing is saved",
    "/api/v1/staff/tickets/{ticket_id}/assign": "a state change",
    "/api/v1/staff/tickets/{ticket_id}/merge": "a state change (merging twice is a 409)",
    "/api/v1/client/services/{service_id}/cancel": "a state change",
    "/api/v1/staff/services/{service_id}/provisioned": "a state change",
    "/api/v1/staff/promo-codes/{promo_id}/{action}": "deactivate, activate: state changes",
}
NOT_IDEMPOTENT_PREFIXES = {
    "/api/v1/client/tickets/{ticket_id}/": "archive, reopen: state changes",
    "/api/v1/staff/services/{service_id}/": "suspend, unsuspend, terminate: state changes",
    "/api/v1/staff/parked-events/": "retrying a parked event applies it once by itself",
}


def _exception(path: str) -> str | None:
    if path in NOT_IDEMPOTENT:
        return NOT_IDEMPOTENT[path]
    if path.endswith("/replies"):
        return None
    return next((why for p, why in NOT_IDEMPOTENT_PREFIXES.items() if path.startswith(p)), None)


def test_every_post_that_creates_or_moves_money_declares_an_idempotency_key(stack):
    doc = stack.http("GET", "/api/v1/openapi.json").json()
    missing, needless = [], []
    for path, operations in doc["paths"].items():
        post = operations.get("post")
        if post is None:
            continue
        declared = any(
            p.get("in") == "header" and p.get("name") == KEY for p in post.get("parameters", [])
        )
        exempt = _exception(path)
        if not declared and exempt is None:
            missing.append(path)
        if declared and exempt is not None:
            needless.append(path)
    assert not missing, f"POST without {KEY}: {missing}"
    assert not needless, f"listed as exceptions but take {KEY}: {needless}"
    for path in (
        "/api/v1/staff/customers/{customer_id}/account/corrections",
        "/api/v1/client/tickets",
        "/api/v1/staff/payments",
        "/api/v1/orders",
    ):
        assert path in doc["paths"] and _exception(path) is None


def _client(stack):
    customer = stack.register_customer()
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


def _balance(stack, token):
    r = stack.http("GET", "/api/v1/client/account", token)
    assert r.status_code == 200, r.text
    return r.json()["balance"]["amount"]


def test_an_account_correction_with_one_key_is_applied_once(stack):
    customer, token = _client(stack)
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    url = f"/api/v1/staff/customers/{customer['id']}/account/corrections"
    body = {"amount": {"amount": 1500, "currency": "EUR"}, "reason": "goodwill credit"}
    key = {KEY: uuid.uuid4().hex}
    first = stack.http("POST", url, stack.admin_token, json=body, headers=dict(key))
    again = stack.http("POST", url, stack.admin_token, json=body, headers=dict(key))
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    other = stack.http(
        "POST", url, stack.admin_token, json=dict(body, reason="another credit"), headers=dict(key)
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["fields"] == {KEY: ["Already used for another request."]}
    assert _balance(stack, token) == 1500
    # without a key, each request is its own
    plain = stack.http("POST", url, stack.admin_token, json=body)
    assert plain.status_code == 201, plain.text
    assert _balance(stack, token) == 3000


def _department(stack):
    body = {
        "name": f"Support {uuid.uuid4().hex[:6]}",
        "client_visible": True,
        "addresses": [f"support-{uuid.uuid4().hex[:6]}@provider.example"],
    }
    r = stack.http("POST", "/api/v1/staff/departments", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_two_clients_with_one_ticket_key_each_get_their_own_ticket(stack):
    department = _department(stack)
    (_, ann), (_, bob) = _client(stack), _client(stack)
    body = {"department_id": department["id"], "subject": "Mail is down", "body": "Help"}
    key = {KEY: f"ticket-{uuid.uuid4().hex}"}
    first = stack.http("POST", "/api/v1/client/tickets", ann, json=body, headers=dict(key))
    second = stack.http("POST", "/api/v1/client/tickets", bob, json=body, headers=dict(key))
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]
    # and each one's repeat is its own first answer
    again = stack.http("POST", "/api/v1/client/tickets", bob, json=body, headers=dict(key))
    assert again.status_code == 201 and again.json()["id"] == second.json()["id"]


def test_a_staff_key_and_a_client_key_never_collide(stack):
    _, token = _client(stack)
    key = {KEY: f"shared-{uuid.uuid4().hex}"}
    group = stack.http(
        "POST",
        "/api/v1/staff/customer-groups",
        stack.admin_token,
        json={"name": f"Group {uuid.uuid4().hex[:6]}"},
        headers=dict(key),
    )
    payer = stack.http(
        "POST",
        "/api/v1/client/payers",
        token,
        json={"kind": "company", "name": "Acme GmbH", "address": "Main St 1", "country": "DE"},
        headers=dict(key),
    )
    assert group.status_code == 201, group.text
    assert payer.status_code == 201, payer.text
    assert payer.json()["name"] == "Acme GmbH"
    # another staff member's key is its own too
    _, support = stack.staff_member("admin")
    other = stack.http(
        "POST",
        "/api/v1/staff/customer-groups",
        support,
        json={"name": f"Group {uuid.uuid4().hex[:6]}"},
        headers=dict(key),
    )
    assert other.status_code == 201, other.text
    assert other.json()["id"] != group.json()["id"]


def test_concurrent_requests_with_one_key_create_one_object(stack):
    name = f"Group {uuid.uuid4().hex[:8]}"
    key = {KEY: uuid.uuid4().hex}

    def post(_):
        return stack.http(
            "POST",
            "/api/v1/staff/customer-groups",
            stack.admin_token,
            json={"name": name},
            headers=dict(key),
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    made = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(made) == 1
    # a 409 here only says "still being answered": the key then answers the first answer
    assert post(0).json()["id"] in made


def test_an_idempotency_key_is_text_of_bounded_length(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/customer-groups",
        stack.admin_token,
        json={"name": "x"},
        headers={KEY: "k" * 256},
    )
    assert r.status_code == 400, r.text
    assert KEY in r.json()["error"]["fields"]
