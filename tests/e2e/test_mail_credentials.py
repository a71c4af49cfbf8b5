"""Mail about the account itself: the credentials of an account an order created (the only
mail that carries a generated password), and the alert that a password was changed."""

import json
import uuid
from datetime import timedelta

from tests.e2e.test_mail_out import outbox, sent_to, wait_mail

EVENT_STORES = ("customers", "orders", "billing", "helpdesk", "mailgateway")


def product(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "Mail host", "fr": "Hébergement mail", "ru": "Почтовый хостинг"},
            "description": "10 mailboxes",
            "prices": {"monthly": {"amount": 300, "currency": "EUR"}},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def order(stack, email: str, product_id: str, language="en", password=None, headers=None):
    person = {
        "email": email,
        "kind": "individual",
        "contact_person": "Nina Neuer",
        "country": "FR",
        "language": language,
    }
    if password is not None:
        person["password"] = password
    return stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": person,
            "items": [{"product_id": product_id, "billing_cycle": "monthly"}],
        },
        headers=headers or {},
    )


def credentials_rows(stack, customer_id: str) -> list[dict]:
    return outbox(stack, customer_id=customer_id, kind="account_credentials")


def carrying(stack, email: str, secret: str) -> list:
    return [m for m in sent_to(stack, email) if secret in m.get_content()]


def sent_row(stack, customer_id: str, kind: str) -> dict:
    return stack.wait_until(
        lambda: next(
            (r for r in outbox(stack, customer_id=customer_id, kind=kind) if r["status"] == "sent"),
            None,
        ),
        what=f"the {kind} notification sent",
    )


def assert_nowhere_stored(stack, secret: str) -> None:
    """Not in any service's events (nor events parked for staff), nor left in the outbox."""
    needle = secret.encode()
    for service in EVENT_STORES:
        with stack.db(service) as conn:
            (found,) = conn.execute(
                f"SELECT count(*) FROM {service}_events WHERE position(%s IN state) > 0",
                (needle,),
            ).fetchone()
            assert found == 0, f"the password is in {service}'s events"
            (parked,) = conn.execute(
                "SELECT count(*) FROM parked_events WHERE envelope::text LIKE %s",
                (f"%{secret}%",),
            ).fetchone()
            assert parked == 0, f"the password is in {service}'s parked events"
    with stack.db("mailgateway") as conn:
        (kept,) = conn.execute(
            "SELECT count(*) FROM mail_outbox WHERE secret IS NOT NULL AND secret = %s"
            " OR context::text LIKE %s",
            (secret, f"%{secret}%"),
        ).fetchone()
    assert kept == 0


def test_an_order_as_a_new_customer_mails_its_credentials_once(stack):
    p = product(stack)
    email = f"neu-{uuid.uuid4().hex[:8]}@example.com"
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    r = order(stack, email, p["id"], language="fr", headers=key)
    assert r.status_code == 201, r.text
    answer = r.json()
    creds = answer["credentials"]
    customer_id = answer["customer_id"]

    row = sent_row(stack, customer_id, "account_credentials")
    assert row["language"] == "fr" and row["recipient"] == email
    (mail,) = carrying(stack, email, creds["password"])
    assert mail["Subject"] == "Votre nouveau compte"
    assert creds["username"] in mail.get_content()
    assert mail["Auto-Submitted"] == "auto-generated"
    # the password shown in the answer works: it is the one the mail carries
    stack.login(creds["username"], creds["password"])

    # the same order sent again (a client retrying) does not mail the credentials again
    again = order(stack, email, p["id"], language="fr", headers=key)
    assert again.status_code == 201, again.text
    assert again.json() == {k: v for k, v in answer.items() if k != "credentials"}
    # nor does the mail gateway take a redelivered request for the same account twice
    with stack.rpc() as rpc:
        rpc.mailgateway.send_account_credentials(
            customer_id, creds["username"], "a-second-password", reason="order"
        )
    invoice_row = sent_row(stack, customer_id, "invoice_issued")
    assert invoice_row["language"] == "fr"
    assert len(credentials_rows(stack, customer_id)) == 1
    assert carrying(stack, email, "a-second-password") == []
    assert len(carrying(stack, email, creds["password"])) == 1

    # the password was in that one mail, and is kept nowhere now that it went out
    assert creds["password"] not in json.dumps(outbox(stack, customer_id=customer_id))
    assert_nowhere_stored(stack, creds["password"])


def test_an_existing_customer_ordering_gets_no_credentials_mail(stack):
    p = product(stack)
    email = f"again-{uuid.uuid4().hex[:8]}@example.com"
    first = order(stack, email, p["id"], language="ru")
    assert first.status_code == 201, first.text
    creds = first.json()["credentials"]
    customer_id = first.json()["customer_id"]
    sent_row(stack, customer_id, "account_credentials")

    second = order(stack, email, p["id"], language="ru", password=creds["password"])
    assert second.status_code == 201, second.text
    assert "credentials" not in second.json()
    assert second.json()["customer_id"] == customer_id
    # the second order's invoice mail comes after its order: by then any credentials mail
    # the order had asked for would be in the outbox too
    stack.wait_until(
        lambda: (
            len(
                [
                    r
                    for r in outbox(stack, customer_id=customer_id, kind="invoice_issued")
                    if r["status"] == "sent"
                ]
            )
            == 2
        ),
        what="both invoice mails",
    )
    assert len(credentials_rows(stack, customer_id)) == 1
    subjects = [m["Subject"] for m in sent_to(stack, email)]
    assert subjects.count("Ваша новая учётная запись") == 1


def test_the_order_succeeds_while_the_mail_gateway_is_down_and_the_mail_follows(stack):
    p = product(stack)
    email = f"later-{uuid.uuid4().hex[:8]}@example.com"
    stack.stop("mailgateway")
    try:
        r = order(stack, email, p["id"])
        assert r.status_code == 201, r.text
        creds = r.json()["credentials"]
        assert sent_to(stack, email) == []
    finally:
        stack.start("mailgateway")
        stack.wait_for_service("mailgateway")
    # the request waited in the mail gateway's queue; taken once it was back
    row = sent_row(stack, r.json()["customer_id"], "account_credentials")
    assert row["attempts"] == 1
    (mail,) = stack.wait_until(
        lambda: carrying(stack, email, creds["password"]), what="the credentials mail"
    )
    assert mail["Subject"] == "Your new account" and creds["username"] in mail.get_content()
    assert len(credentials_rows(stack, r.json()["customer_id"])) == 1


def change_password(stack, token: str, current: str, new: str) -> None:
    r = stack.http(
        "POST",
        "/api/v1/client/password",
        token,
        json={"current_password": current, "new_password": new},
    )
    assert r.status_code == 200, r.text


def test_a_changed_password_is_announced_without_the_password(stack):
    c = stack.register_customer(language="ru", contact_person="Pavel Parolev")
    old = c["credentials"]["password"]
    token = stack.login(c["credentials"]["username"], old)
    # the alert is about the account's security: no notification setting turns it off
    r = stack.http(
        "PUT",
        "/api/v1/client/notification-settings",
        token,
        json={
            "invoice_issued": False,
            "payment_received": False,
            "invoice_due": False,
            "invoice_overdue": False,
            "service_suspended": False,
            "service_unsuspended": False,
            "ticket_reply": False,
            "news": False,
        },
    )
    assert r.status_code == 200, r.text
    new = "New-" + uuid.uuid4().hex
    change_password(stack, token, old, new)

    (mail,) = wait_mail(stack, c["email"])
    assert mail["Subject"] == "Пароль изменён"
    body = mail.get_content()
    assert "Pavel Parolev" in body
    assert old not in body and new not in body
    row = sent_row(stack, c["id"], "password_changed")
    assert row["language"] == "ru"

    # what the customers service published says who changed it, and nothing secret
    def published():
        return [
            e
            for e in stack.published("customers")
            if e["type"] == "PasswordChanged" and e["aggregate_id"] == c["id"]
        ]

    (event,) = stack.wait_until(published, what="the PasswordChanged event")
    assert set(event["payload"]) == {"customer_id", "changed_by", "staff_id", "occurred_at"}
    assert event["payload"]["changed_by"] == "client" and event["payload"]["staff_id"] is None
    assert "argon2" not in json.dumps(event) and new not in json.dumps(event)

    # staff acting in the client's panel may not change it: nothing changes, nothing is sent
    r = stack.http("POST", f"/api/v1/staff/customers/{c['id']}/impersonate", stack.admin_token)
    assert r.status_code == 200, r.text
    refused = stack.http(
        "POST",
        "/api/v1/client/password",
        r.json()["token"],
        json={"current_password": new, "new_password": "Newer-" + uuid.uuid4().hex},
    )
    assert refused.status_code == 403, refused.text
    assert stack.login(c["credentials"]["username"], new)
    assert len(published()) == 1
    assert [r["status"] for r in outbox(stack, customer_id=c["id"])] == ["sent"]
    assert len(sent_to(stack, c["email"])) == 1


def mail_requests(stack, customer_id: str) -> list[dict]:
    """The customers service's recorded requests for mail about this customer."""
    with stack.db("customers") as conn:
        rows = conn.execute(
            "SELECT kind, secret, attempts, handed_over_at FROM mail_requests"
            " WHERE customer_id = %s ORDER BY id",
            (uuid.UUID(customer_id),),
        ).fetchall()
    return [
        dict(zip(("kind", "secret", "attempts", "handed_over_at"), r, strict=True)) for r in rows
    ]


def test_mail_follows_from_its_record_when_the_mail_gateway_was_gone(stack):
    """The mail gateway is down and its request queue is gone with it (as when it never
    started on this broker): no request can wait for it. An order's registration and a
    password reset recorded their mail; the customers service hands each over once the
    mail gateway is back (both in one outage)."""
    import re

    p = product(stack)
    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    c = stack.register_customer(contact_person="Rita Reset")
    stack.stop("mailgateway")
    try:
        stack.rabbitmqctl("delete_queue", "-p", stack.vhost, "rpc-mailgateway")
        r = order(stack, email, p["id"])
        assert r.status_code == 201, r.text
        creds, customer_id = r.json()["credentials"], r.json()["customer_id"]
        reset = stack.http("POST", "/api/v1/auth/password-reset", json={"email": c["email"]})
        assert reset.status_code == 202, reset.text
        # tried, refused, kept (with the password, until the mail gateway takes it)
        [waiting] = stack.wait_until(
            lambda: [m for m in mail_requests(stack, customer_id) if m["attempts"] >= 2],
            what="the credentials mail tried again",
        )
        assert waiting["kind"] == "account_credentials" and waiting["handed_over_at"] is None
        assert waiting["secret"] == creds["password"]
        stack.wait_until(
            lambda: [m for m in mail_requests(stack, c["id"]) if m["attempts"] >= 2],
            what="the reset mail tried again",
        )
    finally:
        stack.start("mailgateway")
        stack.wait_for_service("mailgateway")

    # the credentials
    sent_row(stack, customer_id, "account_credentials")
    (mail,) = stack.wait_until(
        lambda: carrying(stack, email, creds["password"]), what="the credentials mail"
    )
    assert mail["Subject"] == "Your new account" and creds["username"] in mail.get_content()
    assert len(credentials_rows(stack, customer_id)) == 1
    [handed] = stack.wait_until(
        lambda: [m for m in mail_requests(stack, customer_id) if m["handed_over_at"]],
        what="the request handed over",
    )
    assert handed["secret"] is None  # erased once the mail gateway took it
    assert_nowhere_stored(stack, creds["password"])

    # the password reset
    (mail,) = wait_mail(stack, c["email"])
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_content()).group(1)
    r = stack.http(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "after the gap 1"},
    )
    assert r.status_code == 200, r.text
    [handed] = stack.wait_until(
        lambda: [m for m in mail_requests(stack, c["id"]) if m["handed_over_at"]],
        what="the request handed over",
    )
    assert handed["kind"] == "password_reset" and handed["secret"] is None
    assert len(outbox(stack, customer_id=c["id"], kind="password_reset")) == 1


def test_a_stop_cuts_off_a_hand_over_to_a_stopped_mail_gateway_and_the_mail_still_goes_once(
    stack,
):
    """The customers service asked to stop while it hands a credentials mail to a mail
    gateway that stopped first does not wait out the RPC's timeout: the hand-over is cut
    off (no "not taken" failure is logged for it), the request waits in the mail gateway's
    queue and is taken when it is back, and the same request handed over again once its
    lease ends queues no second mail."""
    from services.infra.clock import FileClock

    p = product(stack)
    email = f"cutoff-{uuid.uuid4().hex[:8]}@example.com"
    log = stack.logs / "customers.log"
    stack.stop("mailgateway")
    try:
        r = order(stack, email, p["id"])
        assert r.status_code == 201, r.text
        customer_id, creds = r.json()["customer_id"], r.json()["credentials"]

        def claimed():
            with stack.db("customers") as conn:
                row = conn.execute(
                    "SELECT attempts, handed_over_at FROM mail_requests"
                    " WHERE customer_id = %s AND kind = 'account_credentials'",
                    (customer_id,),
                ).fetchone()
            return row if row and row[0] >= 1 else None

        stack.wait_until(claimed, what="the credentials request claimed")
        logged = log.stat().st_size
        stack.stop("customers")
        said = log.read_bytes()[logged:].decode(errors="replace")
        assert "stopped cleanly" in said
        assert "was not taken by the mail gateway" not in said
        assert claimed()[1] is None  # not marked handed over: it is handed over again
    finally:
        stack.start("customers")
        stack.start("mailgateway")
        stack.wait_for_service("customers")
        stack.wait_for_service("mailgateway")
    stack.wait_until(lambda: carrying(stack, email, creds["password"]), what="the mail")
    # past the claim's lease the request is handed over again: one mail all the same
    FileClock.set_offset(stack.clock_file, timedelta(minutes=5))
    try:
        stack.wait_until(lambda: claimed()[1] is not None, what="the request handed over")
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    assert len(carrying(stack, email, creds["password"])) == 1
    assert len(credentials_rows(stack, customer_id)) == 1
