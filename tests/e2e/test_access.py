"""Access: impersonation bound to its staff session, staff accounts, password reset, login
limits, cookie sessions, through the gateway."""

import hashlib
import re
import uuid

import eventlet
import requests
from requests.adapters import HTTPAdapter

from tests.e2e.test_mail_in import deliver, department, mail, one_ticket, smtp_in, ticket
from tests.e2e.test_mail_out import sent_to, wait_mail
from tests.stack import MAIL_AUTHSERV_ID, TRUSTED_PROXY

__all__ = ["smtp_in"]  # the fixture, for the mail test here

LOGIN = "/api/v1/auth/login"


class _From(HTTPAdapter):
    """Connect from a given local address (the loopback network is all ours)."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def from_address(source: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _From(source))
    return session


def _client(stack, **fields):
    customer = stack.register_customer(**fields)
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _impersonate(stack, staff_token: str, customer_id: str) -> str:
    r = stack.http("POST", f"/api/v1/staff/customers/{customer_id}/impersonate", staff_token)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def _me(stack, token: str) -> int:
    return stack.http("GET", "/api/v1/me", token).status_code


# -- impersonation ---------------------------------------------------------------------------


def test_impersonation_gives_back_the_same_staff_session_and_ends_with_it(stack):
    customer = stack.register_customer()
    member, staff = stack.staff_member("support")
    acting = _impersonate(stack, staff, customer["id"])
    with stack.db("customers") as db:
        (own, parent) = (
            db.execute(
                "SELECT expires_at FROM sessions WHERE token_hash = %s", (_hash(t),)
            ).fetchone()[0]
            for t in (acting, staff)
        )
    assert own <= parent  # never outlives the staff session
    r = stack.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 200, r.text
    assert r.json() == {"token": staff, "kind": "staff", "staff_id": member["id"]}
    assert _me(stack, acting) == 401 and _me(stack, staff) == 200

    # the staff member logs out: the client session ends at once, and cannot "return"
    acting = _impersonate(stack, staff, customer["id"])
    assert _me(stack, acting) == 200
    assert stack.http("POST", "/api/v1/auth/logout", staff).status_code == 200
    assert _me(stack, acting) == 401
    r = stack.http("POST", "/api/v1/auth/return", acting)
    assert r.status_code == 401, r.text
    assert "token" not in r.json()

    # the staff session expires: so does the client session
    staff = stack.login(member["username"], "staff-password-1")
    acting = _impersonate(stack, staff, customer["id"])
    with stack.db("customers") as db:
        db.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
            (_hash(staff),),
        )
    assert _me(stack, acting) == 401
    assert stack.http("POST", "/api/v1/auth/return", acting).status_code == 401


def test_disabling_a_staff_member_ends_every_session_at_once(stack):
    customer = stack.register_customer()
    member, staff = stack.staff_member("support")
    second = stack.login(member["username"], "staff-password-1")
    acting = _impersonate(stack, staff, customer["id"])
    r = stack.http("POST", f"/api/v1/staff/staff/{member['id']}/disable", stack.admin_token)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert [_me(stack, t) for t in (staff, second, acting)] == [401, 401, 401]
    r = stack.http(
        "POST", LOGIN, json={"username": member["username"], "password": "staff-password-1"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    # only administrators disable
    other, support = stack.staff_member("support")
    r = stack.http("POST", f"/api/v1/staff/staff/{other['id']}/disable", support)
    assert r.status_code == 403
    events = [e for e in stack.published("customers") if e["aggregate_id"] == member["id"]]
    assert events  # the member exists in the log; the disabling is in the store, with its actor
    with stack.db("customers") as db:
        rows = db.execute(
            "SELECT topic, state FROM customers_events WHERE originator_id = %s"
            " ORDER BY originator_version",
            (uuid.UUID(member["id"]),),
        ).fetchall()
    [disabled] = [bytes(s) for t, s in rows if t.endswith("StaffMember.Disabled")]
    admin_id = stack.http("GET", "/api/v1/me", stack.admin_token).json()["staff_id"]
    assert admin_id in disabled.decode()


def test_staff_acting_as_a_client_cannot_take_the_account_over(stack):
    customer, _ = _client(stack)
    acting = _impersonate(stack, stack.admin_token, customer["id"])
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        acting,
        json={
            "username": f"u{uuid.uuid4().hex[:8]}",
            "email": "helper@example.com",
            "name": "Helper",
            "permissions": ["full"],
        },
    )
    assert r.status_code == 403, r.text
    assert "acting in a client's panel" in r.json()["error"]["message"]
    r = stack.http(
        "POST",
        "/api/v1/client/password",
        acting,
        json={
            "current_password": customer["credentials"]["password"],
            "new_password": "taken over 123",
        },
    )
    assert r.status_code == 403, r.text
    assert stack.login(customer["username"], customer["credentials"]["password"])
    # helping stays possible
    r = stack.http("PATCH", "/api/v1/client/profile", acting, json={"phone": "+33 1 23 45 67"})
    assert r.status_code == 200, r.text


# -- staff accounts ------------------------------------------------------------------------------


def test_administrators_change_a_members_role_name_language_and_preferences(stack):
    member, token = stack.staff_member("support")
    path = f"/api/v1/staff/staff/{member['id']}"
    r = stack.http(
        "PATCH",
        path,
        stack.admin_token,
        json={
            "role": "billing",
            "name": "Bea Billing",
            "language": "fr",
            "notifications": {"new_ticket": False},
        },
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["role"], edited["name"], edited["language"]) == ("billing", "Bea Billing", "fr")
    assert edited["notifications"]["new_ticket"] is False
    assert edited["notifications"]["ticket_reply"] is True
    me = stack.http("GET", "/api/v1/me", token).json()
    assert me["role"] == "billing"  # effective at once, in the open session
    # the new role's limits apply at once too
    r = stack.http(
        "POST", f"/api/v1/staff/customers/{stack.register_customer()['id']}/impersonate", token
    )
    assert r.status_code == 403
    r = stack.http(
        "PATCH", path, stack.admin_token, json={"role": "owner", "notifications": {"x": 1}}
    )
    assert r.status_code == 400
    assert {"role"} <= set(r.json()["error"]["fields"]), r.text
    assert stack.http("PATCH", path, token, json={"name": "Me"}).status_code == 403
    r = stack.http("PATCH", f"/api/v1/staff/staff/{uuid.uuid4()}", stack.admin_token, json={})
    assert r.status_code == 404


def test_an_auditor_reads_everything_staff_read_and_changes_nothing(stack):
    _, auditor = stack.staff_member("auditor")
    assert stack.http("GET", "/api/v1/me", auditor).json()["role"] == "auditor"
    customer = stack.register_customer()
    for path in (
        "/api/v1/staff/customers",
        f"/api/v1/staff/customers/{customer['id']}",
        "/api/v1/staff/invoices",
        "/api/v1/staff/tickets",
    ):
        r = stack.http("GET", path, auditor)
        assert r.status_code == 200, (path, r.text)
    for method, path, body in (
        ("POST", "/api/v1/staff/customers", {"kind": "individual"}),
        ("PATCH", f"/api/v1/staff/customers/{customer['id']}", {"note": "x"}),
        ("POST", f"/api/v1/staff/customers/{customer['id']}/impersonate", None),
        ("POST", "/api/v1/staff/staff", {"username": "x"}),
    ):
        r = stack.http(method, path, auditor, json=body)
        assert r.status_code == 403, (method, path, r.text)
    # and an administrator makes someone an auditor
    other, _ = stack.staff_member("support")
    r = stack.http(
        "PATCH", f"/api/v1/staff/staff/{other['id']}", stack.admin_token, json={"role": "auditor"}
    )
    assert r.status_code == 200 and r.json()["role"] == "auditor", r.text


# -- password reset --------------------------------------------------------------------------


def _reset_token(stack, address: str, count: int = 1) -> str:
    mails = wait_mail(stack, address, count)
    text = mails[-1].get_content()
    return re.search(r"token=([A-Za-z0-9_\-]+)", text).group(1)


def test_a_client_resets_the_password_by_mail_once(stack):
    customer, session = _client(stack)
    r = stack.http("POST", "/api/v1/auth/password-reset", json={"email": customer["email"]})
    assert r.status_code == 202, r.text
    nobody = stack.http(
        "POST", "/api/v1/auth/password-reset", json={"email": "nobody-here@example.com"}
    )
    assert (nobody.status_code, nobody.json()) == (202, r.json())  # nothing revealed
    token = _reset_token(stack, customer["email"])
    confirm = {"token": token, "new_password": "reset and new 1"}
    r = stack.http("POST", "/api/v1/auth/password-reset/confirm", json=confirm)
    assert r.status_code == 200, r.text
    assert _me(stack, session) == 401  # every session ended
    assert stack.login(customer["username"], "reset and new 1")
    r = stack.http(
        "POST",
        LOGIN,
        json={"username": customer["username"], "password": customer["credentials"]["password"]},
    )
    assert r.status_code == 401
    again = stack.http(
        "POST", "/api/v1/auth/password-reset/confirm", json=dict(confirm, new_password="x" * 12)
    )
    assert again.status_code == 400 and "token" in again.json()["error"]["fields"]
    assert stack.login(customer["username"], "reset and new 1")


def test_a_staff_member_resets_the_password_by_username(stack):
    name = f"reset-{uuid.uuid4().hex[:6]}"
    email = f"{name}@staff.example.com"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": name,
            "name": "Rita",
            "role": "support",
            "email": email,
            "password": "old staff pass 1",
        },
    )
    assert r.status_code == 201, r.text
    session = stack.login(name, "old staff pass 1")
    r = stack.http("POST", "/api/v1/auth/password-reset", json={"username": name})
    assert r.status_code == 202, r.text
    token = _reset_token(stack, email)
    r = stack.http(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "new staff pass 1"},
    )
    assert r.status_code == 200, r.text
    assert _me(stack, session) == 401
    assert stack.login(name, "new staff pass 1")


def test_password_reset_requests_are_rate_limited_per_address(stack):
    proxy = from_address(TRUSTED_PROXY)
    client = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    codes = []
    for i in range(11):
        r = proxy.post(
            stack.base_url + "/api/v1/auth/password-reset",
            json={"email": f"n{i}-{uuid.uuid4().hex[:6]}@example.com"},
            headers={"X-Forwarded-For": client},
            timeout=30,
        )
        codes.append(r.status_code)
    assert codes[:10] == [202] * 10 and codes[10] == 429
    assert int(r.headers["Retry-After"]) > 0


# -- login limits ----------------------------------------------------------------------------------


def _wrong(stack, username: str, session=None, headers=None) -> requests.Response:
    send = session or requests
    return send.post(
        stack.base_url + LOGIN,
        json={"username": username, "password": f"wrong {uuid.uuid4().hex[:6]}"},
        headers=headers or {},
        timeout=60,
    )


def test_concurrent_wrong_passwords_are_counted_exactly(stack):
    customer = stack.register_customer()
    here = from_address("127.0.0.11")
    pool = eventlet.GreenPool(30)
    answers = list(pool.imap(lambda _: _wrong(stack, customer["username"], here), range(30)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 10 + [429] * 20, codes
    assert all(int(r.headers["Retry-After"]) > 0 for r in answers if r.status_code == 429)


def test_username_and_email_share_one_budget(stack):
    customer = stack.register_customer()
    here = from_address("127.0.0.12")
    codes = [_wrong(stack, customer["username"], here).status_code for _ in range(5)]
    codes += [_wrong(stack, customer["email"], here).status_code for _ in range(5)]
    assert codes == [401] * 10
    assert _wrong(stack, customer["email"].upper(), here).status_code == 429
    r = _wrong(stack, customer["username"], here)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0


def test_a_lockout_does_not_refuse_the_right_password_from_another_address(stack):
    customer = stack.register_customer()
    right = {"username": customer["username"], "password": customer["credentials"]["password"]}
    here = from_address("127.0.0.13")
    assert [_wrong(stack, customer["username"], here).status_code for _ in range(11)][-1] == 429
    assert here.post(stack.base_url + LOGIN, json=right).status_code == 429  # from here: locked
    elsewhere = from_address("127.0.0.2").post(stack.base_url + LOGIN, json=right, timeout=30)
    assert elsewhere.status_code == 200, elsewhere.text


def test_forwarded_for_counts_only_from_a_trusted_proxy(stack):
    customer = stack.register_customer()
    right = {"username": customer["username"], "password": customer["credentials"]["password"]}
    # not a trusted proxy: the header is ignored, every attempt is this address's
    here = from_address("127.0.0.14")
    for i in range(10):
        r = _wrong(stack, customer["username"], here, {"X-Forwarded-For": f"10.0.0.{i}"})
        assert r.status_code == 401
    r = here.post(stack.base_url + LOGIN, json=right, headers={"X-Forwarded-For": "10.0.1.1"})
    assert r.status_code == 429
    # from the trusted proxy, the forwarded address is the caller's
    proxy = from_address(TRUSTED_PROXY)
    attacker = {"X-Forwarded-For": "192.0.2.66"}
    for _ in range(10):
        assert _wrong(stack, customer["username"], proxy, attacker).status_code == 401
    assert _wrong(stack, customer["username"], proxy, attacker).status_code == 429
    r = proxy.post(
        stack.base_url + LOGIN,
        json=right,
        headers={"X-Forwarded-For": "198.51.100.7, 192.0.2.66"},  # a spoofed first hop
        timeout=30,
    )
    assert r.status_code == 429  # the proxy saw 192.0.2.66: its nearest hop
    r = proxy.post(
        stack.base_url + LOGIN, json=right, headers={"X-Forwarded-For": "198.51.100.7"}, timeout=30
    )
    assert r.status_code == 200, r.text


# -- cookie sessions ---------------------------------------------------------------------------


def test_a_session_cookie_changes_nothing_without_the_csrf_token_or_our_origin(stack):
    _, token = _client(stack)
    cookies = {"hostledger_session": token}
    url = stack.base_url + "/api/v1/client/profile"
    change = {"phone": "+49 30 555 000"}
    # reading with the cookie works, and tells the page its CSRF token
    me = requests.get(stack.base_url + "/api/v1/me", cookies=cookies, timeout=30)
    assert me.status_code == 200, me.text
    csrf = me.json()["csrf_token"]
    # another site's form or script: the browser sends the cookie, not the token
    r = requests.patch(url, json=change, cookies=cookies, timeout=30)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["error"]["message"]
    r = requests.patch(
        url, json=change, cookies=cookies, headers={"Origin": "https://evil.example"}, timeout=30
    )
    assert r.status_code == 403
    r = requests.patch(
        url, json=change, cookies=cookies, headers={"X-CSRF-Token": "0" * 64}, timeout=30
    )
    assert r.status_code == 403
    # our own page: the session's token, or our own origin
    r = requests.patch(
        url, json=change, cookies=cookies, headers={"X-CSRF-Token": csrf}, timeout=30
    )
    assert r.status_code == 200, r.text
    r = requests.patch(
        url, json=change, cookies=cookies, headers={"Origin": stack.base_url}, timeout=30
    )
    assert r.status_code == 200, r.text
    # a Bearer token is not sent by a browser on its own: no token needed
    assert stack.http("PATCH", "/api/v1/client/profile", token, json=change).status_code == 200


# -- the public order form -----------------------------------------------------------------------


def _order_body(email: str, product_id: str) -> dict:
    return {
        "customer": {
            "email": email,
            "kind": "individual",
            "contact_person": "Olga Order",
            "country": "DE",
        },
        "items": [{"product_id": product_id, "billing_cycle": "monthly"}],
    }


def test_the_order_form_is_limited_per_address_and_per_email(stack):
    proxy = from_address(TRUSTED_PROXY)
    url = stack.base_url + "/api/v1/orders"
    unknown = str(uuid.uuid4())  # refused after counting: nothing is made
    caller = {"X-Forwarded-For": "203.0.113.21"}
    codes = [
        proxy.post(
            url,
            json=_order_body(f"o{i}-{uuid.uuid4().hex[:6]}@example.com", unknown),
            headers=caller,
            timeout=30,
        ).status_code
        for i in range(20)
    ]
    assert set(codes) == {400}, codes
    r = proxy.post(url, json=_order_body("late@example.com", unknown), headers=caller, timeout=30)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # one e-mail from many addresses
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    codes = [
        proxy.post(
            url,
            json=_order_body(email, unknown),
            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            timeout=30,
        ).status_code
        for i in range(11)
    ]
    assert codes == [400] * 10 + [429], codes


def mail_settled(stack, customer_id: str) -> bool:
    """Every mail the customers service recorded for the customer was taken by the mail
    gateway, and every mail the mail gateway queued for the customer was settled (sent,
    skipped, failed): none is waiting anywhere to be sent."""
    with stack.db("customers") as conn:
        (waiting,) = conn.execute(
            "SELECT count(*) FROM mail_requests WHERE customer_id = %s AND handed_over_at IS NULL",
            (uuid.UUID(customer_id),),
        ).fetchone()
    if waiting:
        return False
    with stack.db("mailgateway") as conn:
        (queued,) = conn.execute(
            "SELECT count(*) FROM mail_outbox WHERE customer_id = %s"
            " AND status IN ('pending', 'sending')",
            (uuid.UUID(customer_id),),
        ).fetchone()
    return queued == 0


def test_a_new_email_gets_one_credentials_mail(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Mail box", "prices": {"monthly": {"amount": 100, "currency": "EUR"}}},
    )
    assert r.status_code == 201, r.text
    email = f"once-{uuid.uuid4().hex[:8]}@example.com"
    first = stack.http("POST", "/api/v1/orders", json=_order_body(email, r.json()["id"]))
    assert first.status_code == 201, first.text
    second = stack.http("POST", "/api/v1/orders", json=_order_body(email, r.json()["id"]))
    assert second.status_code == 401 and second.json()["error"]["code"] == "password_required"

    def credentials():
        return [m for m in sent_to(stack, email) if m["Subject"] == "Your new account"]

    stack.wait_until(credentials, what="the credentials mail")
    # a second mail, had one been asked for or queued, is sent by now
    customer_id = first.json()["customer_id"]
    stack.wait_until(lambda: mail_settled(stack, customer_id), what="no mail waiting")
    assert len(credentials()) == 1


# -- what sub-users, the public and product settings may do ------------------------------------


def test_only_a_user_with_full_permission_edits_the_profile(stack):
    _, owner = _client(stack)
    users = {}
    for permissions in (["billing", "support", "services"], ["full"]):
        name = f"u{uuid.uuid4().hex[:8]}"
        r = stack.http(
            "POST",
            "/api/v1/client/users",
            owner,
            json={
                "username": name,
                "email": f"{name}@example.com",
                "name": name,
                "permissions": permissions,
                "password": "user password 1",
            },
        )
        assert r.status_code == 201, r.text
        users[permissions[0]] = stack.login(name, "user password 1")
    change = {"contact_person": "Changed By User"}
    r = stack.http("PATCH", "/api/v1/client/profile", users["billing"], json=change)
    assert r.status_code == 403, r.text
    assert stack.http("GET", "/api/v1/client/profile", users["billing"]).status_code == 200
    r = stack.http("PATCH", "/api/v1/client/profile", users["full"], json=change)
    assert r.status_code == 200, r.text
    assert stack.http("GET", "/api/v1/client/profile", owner).json()["contact_person"] == (
        "Changed By User"
    )


def _product_with_hook(stack, url: str) -> requests.Response:
    return stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": "Hooked",
            "prices": {"monthly": {"amount": 700, "currency": "EUR"}},
            "provisioning": {"kind": "webhook", "url": url},
        },
    )


def test_the_public_catalog_shows_no_provisioning_settings(stack):
    secret_url = "https://tooling.example.com/provision?token=s3cr3t-" + uuid.uuid4().hex
    r = _product_with_hook(stack, secret_url)
    assert r.status_code == 201, r.text
    product = r.json()

    def listed():
        for page in range(1, 50):
            r = stack.http("GET", "/api/v1/catalog", params={"page": page, "page_size": 200})
            assert r.status_code == 200, r.text
            assert "s3cr3t" not in r.text
            found = [p for p in r.json()["items"] if p["id"] == product["id"]]
            if found or not r.json()["items"]:
                return found
        return []

    [shown] = stack.wait_until(listed, what="the product in the catalog")
    assert "provisioning" not in shown
    # staff still see it
    staff = stack.http("GET", f"/api/v1/staff/products/{product['id']}", stack.admin_token)
    assert staff.json()["provisioning"]["url"] == secret_url


def test_provisioning_webhooks_call_public_http_addresses_only(stack):
    r = _product_with_hook(stack, "ftp://tooling.example.com/provision")
    assert r.status_code == 400 and "provisioning.url" in r.json()["error"]["fields"], r.text
    # this stack allows private hosts (its tests run a receiver here); by default:
    stack.restart("orders", {"HOSTLEDGER_PROVISIONING_ALLOW_PRIVATE": ""})
    try:
        stack.wait_for_service("orders")
        for url in (
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
        ):
            r = _product_with_hook(stack, url)
            assert r.status_code == 400, (url, r.text)
            assert "provisioning.url" in r.json()["error"]["fields"], r.text
        assert _product_with_hook(stack, "https://93.184.215.14/hook").status_code == 201
    finally:
        stack.restart("orders")
        stack.wait_for_service("orders")


# -- incoming mail ----------------------------------------------------------------------------


def test_a_from_header_alone_is_no_staff_answer_and_failed_checks_are_shown(stack, smtp_in):
    staff_email = f"sam-{uuid.uuid4().hex[:8]}@provider.example"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": staff_email.split("@")[0],
            "name": "Sam",
            "role": "support",
            "email": staff_email,
            "password": "staff-password-1",
        },
    )
    assert r.status_code == 201, r.text
    dept, address = department(stack, staff_ids=[r.json()["id"]])
    c = stack.register_customer()
    deliver(stack, mail(c["email"], address, "Server down", "It is down."))
    t = one_ticket(stack, dept["id"])
    subject = f"Re: [#{t['tracking_number']}] Server down"

    def messages():
        return ticket(stack, t["id"])["messages"]

    def wait_for(count):
        return stack.wait_until(lambda: len(messages()) >= count and messages(), what="mail")

    # the customer's address, but our mail server found DMARC failed: shown to staff
    failed = f"{MAIL_AUTHSERV_ID}; spf=fail smtp.mailfrom=x@evil.example; dmarc=fail"
    deliver(stack, mail(c["email"], address, subject, "Pay here.", Authentication_Results=failed))
    appended = wait_for(3)
    body, note = appended[1], appended[2]
    assert body["body"] == "Pay here." and not body["internal"]
    assert note["internal"] and "Sender not verified" in note["body"]
    # another server's verdict counts for nothing; a staff From alone is only a note
    claimed = "mx.evil.example; dmarc=pass header.from=provider.example"
    deliver(
        stack,
        mail(staff_email, address, subject, "Refund approved.", Authentication_Results=claimed),
    )
    noted = wait_for(4)[3]
    assert noted["internal"] and noted["author_kind"] != "staff"
    assert "Refund approved." in noted["body"]
    assert ticket(stack, t["id"])["status"] != "answered"
    # verified by our own server: a staff answer
    passed = f"{MAIL_AUTHSERV_ID}; spf=pass smtp.mailfrom={staff_email}; dmarc=pass"
    deliver(stack, mail(staff_email, address, subject, "Fixed now.", Authentication_Results=passed))
    answer = wait_for(5)[4]
    assert answer["author_kind"] == "staff" and not answer["internal"]
    assert answer["body"] == "Fixed now."
