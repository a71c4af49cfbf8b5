"""Notifications out: the outbox, the customer's language and settings, a relay that is
down, staff's templates, credentials mail. Outgoing mail lands in the stack's mail sink."""

import json
import smtplib
import time
import uuid
from email import message_from_bytes, policy

import pytest


def sent_to(stack, address: str) -> list:
    """Every message the sink received for `address`, oldest first."""
    out = []
    if not stack.mail_dir.exists():
        return out
    for meta_path in sorted(stack.mail_dir.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if address.lower() in [r.lower() for r in meta["rcpt_tos"]]:
            raw = meta_path.with_suffix(".eml").read_bytes()
            out.append(message_from_bytes(raw, policy=policy.default))
    return out


def outbox(stack, **params) -> list[dict]:
    r = stack.http("GET", "/api/v1/staff/mail/outbox", stack.admin_token, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def issue_invoice(stack, customer_id: str, amount: int = 1500) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [
                {
                    "description": "Hosting",
                    "quantity": 1,
                    "unit_price": {"amount": amount, "currency": "EUR"},
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def pay(stack, customer_id: str, amount: int, invoice_id: str | None = None):
    body = {
        "customer_id": customer_id,
        "amount": {"amount": amount, "currency": "EUR"},
        "method": "bank_transfer",
        "reference": f"TX-{uuid.uuid4().hex[:8]}",
    }
    if invoice_id:
        body["invoice_id"] = invoice_id
    r = stack.http("POST", "/api/v1/staff/payments", stack.admin_token, json=body)
    assert r.status_code in (200, 201), r.text


def customer(stack, language="en") -> dict:
    c = stack.register_customer(language=language, contact_person="Ivan Petrov")
    # billing opens the personal account from the customer's event; invoices need it
    token = stack.login(c["credentials"]["username"], c["credentials"]["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    return c


def wait_mail(stack, address: str, count: int = 1, timeout: float = 60) -> list:
    return stack.wait_until(
        lambda: (lambda found: found if len(found) >= count else None)(sent_to(stack, address)),
        timeout=timeout,
        what=f"{count} mail(s) to {address}",
    )


def test_invoice_mail_is_sent_once_in_the_customers_language_with_our_headers(stack):
    c = customer(stack, language="ru")
    invoice = issue_invoice(stack, c["id"], 1999)
    (mail,) = wait_mail(stack, c["email"])
    assert mail["Subject"] == f"Выставлен счёт {invoice['number']}"
    body = mail.get_content()
    assert "Ivan Petrov" in body and "19,99" in body
    assert mail["Auto-Submitted"] == "auto-generated"
    message_id = mail["Message-ID"].strip()
    assert message_id.startswith("<hlm.") and message_id.endswith("@hostledger.local>")
    assert mail.get_content_charset() == "utf-8"

    # the payment's mail answers the invoice's mail: one thread in the customer's program
    pay(stack, c["id"], 1999, invoice["id"])
    first, second = wait_mail(stack, c["email"], 2)
    assert first["Message-ID"].strip() == message_id
    assert second["Subject"].startswith("Платёж получен")
    assert second["In-Reply-To"].strip() == message_id
    assert second["Message-ID"].strip() != message_id

    rows = outbox(stack, customer_id=c["id"])
    assert [(r["kind"], r["status"], r["attempts"]) for r in rows] == [
        ("invoice_issued", "sent", 1),
        ("payment_received", "sent", 1),
    ]
    assert rows[0]["language"] == "ru" and rows[0]["message_id"] == message_id
    # nothing more arrives: each notification was sent once
    with stack.db("mailgateway") as conn:
        (pending,) = conn.execute(
            "SELECT count(*) FROM mail_outbox WHERE customer_id = %s AND status <> 'sent'",
            (c["id"],),
        ).fetchone()
    assert pending == 0
    assert len(sent_to(stack, c["email"])) == 2


def test_a_customer_who_turned_a_kind_off_gets_none_of_it(stack):
    c = customer(stack, language="fr")
    token = stack.login(c["credentials"]["username"], c["credentials"]["password"])
    r = stack.http(
        "PUT", "/api/v1/client/notification-settings", token, json={"invoice_issued": False}
    )
    assert r.status_code == 200, r.text
    invoice = issue_invoice(stack, c["id"], 700)
    pay(stack, c["id"], 700, invoice["id"])
    # the payment mail comes after the invoice in billing's log: once it is there, the
    # invoice mail would have been too
    (mail,) = wait_mail(stack, c["email"])
    assert mail["Subject"].startswith("Paiement reçu")
    kinds = {r["kind"]: r for r in outbox(stack, customer_id=c["id"])}
    assert kinds["invoice_issued"]["status"] == "skipped"
    assert "invoice_issued" in kinds["invoice_issued"]["reason"]
    assert kinds["payment_received"]["status"] == "sent"
    assert len(sent_to(stack, c["email"])) == 1


def test_relay_down_then_up_sends_later_and_only_once(stack):
    c = customer(stack, language="fr")
    stack.stop("mailsink")
    try:
        invoice = issue_invoice(stack, c["id"], 4200)
        row = stack.wait_until(
            lambda: next(
                # attempts count from the claim ("sending"): wait until the second one has
                # failed and the row waits for its next turn
                (
                    r
                    for r in outbox(stack, customer_id=c["id"])
                    if r["attempts"] >= 2 and r["status"] == "pending"
                ),
                None,
            ),
            what="two failed attempts",
        )
        assert row["last_error"]
        assert sent_to(stack, c["email"]) == []
    finally:
        stack.start("mailsink")
    (mail,) = wait_mail(stack, c["email"])
    assert mail["Subject"] == f"Facture {invoice['number']} émise"
    row = stack.wait_until(
        lambda: next((r for r in outbox(stack, customer_id=c["id"]) if r["status"] == "sent"), None)
    )
    assert row["attempts"] >= 3
    pay(stack, c["id"], 1)  # a later mail proves the sender went on; still one invoice mail
    wait_mail(stack, c["email"], 2)
    subjects = [m["Subject"] for m in sent_to(stack, c["email"])]
    assert subjects.count(f"Facture {invoice['number']} émise") == 1


def test_staff_edit_templates_in_a_sandbox(stack):
    url = "/api/v1/staff/mail/templates/payment_received/en"
    shipped = stack.http("GET", url, stack.admin_token).json()
    assert shipped["customized"] is False
    # a template that tries to reach Python's internals is refused, nothing saved
    for evil in (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ range(10**9) | list }}",
        "{% for x in %}",
    ):
        r = stack.http("PUT", url, stack.admin_token, json={"subject": "x", "body": evil})
        assert r.status_code == 400, (evil, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    support = stack.staff_member("support")[1]
    r = stack.http("PUT", url, support, json={"subject": "x", "body": "y"})
    assert r.status_code == 403
    assert stack.http("GET", url, stack.admin_token).json()["customized"] is False
    # a ticket mail's subject must keep the tracking number
    r = stack.http(
        "PUT",
        "/api/v1/staff/mail/templates/ticket_reply/en",
        stack.admin_token,
        json={"subject": "No number", "body": "{{ message }}"},
    )
    assert r.status_code == 400 and "subject" in r.json()["error"]["fields"]

    r = stack.http(
        "PUT",
        url,
        stack.admin_token,
        json={
            "subject": "Thanks, {{ customer_name }}!",
            "body": "Got {{ amount | money(currency) }}.",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["customized"] is True
    try:
        c = customer(stack)
        pay(stack, c["id"], 2500)
        (mail,) = wait_mail(stack, c["email"])
        assert mail["Subject"] == "Thanks, Ivan Petrov!"
        assert mail.get_content().strip() == "Got €25.00."
    finally:
        r = stack.http("DELETE", url, stack.admin_token)
        assert r.status_code == 200 and r.json()["customized"] is False


def test_generated_password_only_in_the_credentials_mail_and_never_kept(stack):
    c = customer(stack)
    secret = "Gen-" + uuid.uuid4().hex
    with stack.rpc() as rpc:
        answer = rpc.mailgateway.send_account_credentials(c["id"], c["username"], secret)
    assert answer["status"] == "pending"
    (mail,) = wait_mail(stack, c["email"])
    assert secret in mail.get_content() and c["username"] in mail.get_content()
    row = stack.wait_until(
        lambda: next((r for r in outbox(stack, customer_id=c["id"]) if r["status"] == "sent"), None)
    )
    assert row["kind"] == "account_credentials"
    assert secret not in json.dumps(outbox(stack, customer_id=c["id"]))
    with stack.db("mailgateway") as conn:
        rows = conn.execute(
            "SELECT secret, context::text FROM mail_outbox WHERE customer_id = %s", (c["id"],)
        ).fetchall()
    assert rows and all(s is None and secret not in ctx for s, ctx in rows)
    # it cannot be sent again: the password is gone
    r = stack.http("POST", f"/api/v1/staff/mail/outbox/{row['id']}/resend", stack.admin_token)
    assert r.status_code == 409


class SilentRelay:
    """A relay that takes the message data and never answers it: it hangs up at once
    (`hold=False`), or keeps the connection open without a word (`hold=True`)."""

    def __init__(self, hold: bool):
        import socket
        import threading

        self.hold = hold
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(5)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.messages = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.5)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            f = conn.makefile("rb")
            conn.sendall(b"220 silent\r\n")
            in_data = False
            for line in f:
                if in_data:
                    if line == b".\r\n":
                        self.messages += 1
                        while self.hold and not self.stop.is_set():
                            time.sleep(0.2)
                        break  # the data is complete: no answer
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    in_data = True
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")
            conn.close()

    def close(self):
        self.stop.set()
        self.listener.close()


@pytest.fixture
def relay_answering_without_reply():
    relay = SilentRelay(hold=False)
    yield relay.port
    relay.close()


@pytest.fixture
def relay_that_never_answers():
    relay = SilentRelay(hold=True)
    yield relay
    relay.close()


def test_a_message_whose_answer_was_lost_is_never_sent_twice(stack, relay_answering_without_reply):
    """The relay may have taken it: it becomes `uncertain`, and only staff can resend it."""
    port = relay_answering_without_reply
    # the answer is given up for lost after 3 s here (30 s by default)
    stack.restart("mailgateway", {"SMTP_PORT": str(port), "HOSTLEDGER_SMTP_TIMEOUT": "3"})
    try:
        stack.wait_for_service("mailgateway")
        c = customer(stack)
        issue_invoice(stack, c["id"], 300)
        row = stack.wait_until(
            lambda: next(
                (r for r in outbox(stack, customer_id=c["id"]) if r["status"] == "uncertain"),
                None,
            ),
            what="the uncertain notification",
        )
        assert row["attempts"] == 1
    finally:
        stack.restart("mailgateway")
        stack.wait_for_service("mailgateway")
    pay(stack, c["id"], 1)
    wait_mail(stack, c["email"])  # the sink works again, and the invoice mail stays unsent
    rows = {r["kind"]: r for r in outbox(stack, customer_id=c["id"])}
    assert rows["invoice_issued"]["status"] == "uncertain"
    (only,) = sent_to(stack, c["email"])
    assert only["Subject"].startswith("Payment received")
    r = stack.http(
        "POST",
        f"/api/v1/staff/mail/outbox/{rows['invoice_issued']['id']}/resend",
        stack.admin_token,
    )
    assert r.status_code == 200, r.text
    wait_mail(stack, c["email"], 2)


def test_the_sink_is_a_real_smtp_server(stack):
    """The capture server the other tests read speaks SMTP (a sanity check of the harness)."""
    address = f"probe-{uuid.uuid4().hex[:8]}@example.org"
    with smtplib.SMTP("127.0.0.1", stack.smtp_out_port, timeout=30) as s:
        s.sendmail("probe@example.org", [address], b"Subject: probe\r\n\r\nhello\r\n")
    (mail,) = wait_mail(stack, address)
    assert mail["Subject"] == "probe"


def test_the_owner_is_told_when_a_service_is_suspended_and_unsuspended(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={
            "name": {"en": "Mail VPS", "fr": "VPS courrier", "ru": "VPS почта"},
            "description": "1 vCPU",
            "prices": {"monthly": {"amount": 500, "currency": "EUR"}},
        },
    )
    assert r.status_code == 201, r.text
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    order = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": {
                "email": email,
                "kind": "individual",
                "contact_person": "Olga Owner",
                "country": "DE",
                "language": "ru",
            },
            "items": [{"product_id": r.json()["id"], "billing_cycle": "monthly"}],
        },
    ).json()
    pay(stack, order["customer_id"], 500, order["invoice_id"])

    def service():
        with stack.rpc() as rpc:
            items = rpc.orders.list("services", order["customer_id"])["items"]
        return items[0] if items and items[0]["status"] == "active" else None

    s = stack.wait_until(service, what="the active service")
    base = f"/api/v1/staff/services/{s['id']}"
    r = stack.http("POST", base + "/suspend", stack.admin_token, json={"reason": "abuse report"})
    assert r.status_code == 200, r.text
    r = stack.http("POST", base + "/unsuspend", stack.admin_token, json={"reason": "resolved"})
    assert r.status_code == 200, r.text
    mails = wait_mail(stack, email, 5)  # with the credentials, the invoice and the payment
    about = [m for m in mails if m["Subject"].startswith("Услуга")]
    # orders' events are applied in their order: suspended, then unsuspended
    assert [m["Subject"] for m in about] == ["Услуга приостановлена", "Услуга снова работает"]
    assert "abuse report" in about[0].get_content() and s["id"] in about[0].get_content()


def test_a_sender_that_dies_mid_exchange_never_sends_that_notification_again(
    stack, relay_that_never_answers
):
    """The crash window: `sending` was recorded, the data went out, the sender died before
    the answer. The next sender finds the row `sending` and makes it `uncertain`."""
    relay = relay_that_never_answers
    stack.restart("mailgateway", {"SMTP_PORT": str(relay.port)})
    try:
        stack.wait_for_service("mailgateway")
        c = customer(stack)
        issue_invoice(stack, c["id"], 300)
        stack.wait_until(lambda: relay.messages == 1, what="the data at the relay")
        (row,) = outbox(stack, customer_id=c["id"])
        assert row["status"] == "sending"
        stack.kill("mailgateway")  # SIGKILL, in the middle of the SMTP exchange
    finally:
        stack.start("mailgateway")
        stack.wait_for_service("mailgateway")
    row = stack.wait_until(
        lambda: next(
            (r for r in outbox(stack, customer_id=c["id"]) if r["status"] == "uncertain"), None
        ),
        what="the uncertain notification",
    )
    assert row["attempts"] == 1 and "stopped" in row["last_error"]
    pay(stack, c["id"], 1)
    wait_mail(stack, c["email"])  # later mail flows; the invoice mail was not sent again
    assert [m["Subject"] for m in sent_to(stack, c["email"])] == [
        next(r for r in outbox(stack, customer_id=c["id"]) if r["kind"] == "payment_received")[
            "subject"
        ]
    ]
    assert relay.messages == 1
