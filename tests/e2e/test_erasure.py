"""Erasure of a deleted customer's personal data, through the running system: after
`POST /api/v1/staff/customers/{id}/erase` no stored event and no table of any service holds
the customer's name, e-mail, phone, street, its user's name and e-mail, or its tickets'
and mail's texts in plain text; invoices keep their numbers, lines, totals and the legal
name, the account its balance; the history says who erased it and why; every chain still
verifies and every replay still equals the live state. Who may erase, and what is refused.

On a stack of its own: it compares the whole of every database with what it wrote."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.infra.settings import SERVICES
from tests.stack import Stack

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "erasure client password 1"
PLACEHOLDER = "[erased]"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module")
def stack():
    s = Stack(name="er" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _ok(r, status=200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _run(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), "audit", *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _plain_text_in(stack, markers: list[str]) -> list[str]:
    """Where any marker is found in plain text in any table of any service's database (the
    event tables' state bytes decoded): `service.table: marker`."""
    found = []
    lowered = [m.lower() for m in markers]
    for service in SERVICES:
        with stack.db(service) as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_type = 'BASE TABLE'"
                " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            for schema, table in tables:
                rows = conn.execute(
                    sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, table))
                ).fetchall()
                for row in rows:
                    text = " ".join(
                        bytes(v).decode("utf-8", "replace")
                        if isinstance(v, bytes | memoryview)
                        else str(v)
                        for v in row
                    ).lower()
                    for marker in lowered:
                        if marker in text:
                            found.append(f"{service}.{table}: {marker}")
    return sorted(set(found))


def _erased_in(stack, service: str, customer_id: str) -> bool:
    with stack.db(service) as conn:
        row = conn.execute(
            "SELECT data_key IS NULL AND erased_at IS NOT NULL FROM personal_keys"
            " WHERE customer_id = %s",
            (uuid.UUID(customer_id),),
        ).fetchone()
    return bool(row and row[0])


def _balance(stack, customer_id: str) -> int:
    """The personal account's balance as billing loads it (a deleted customer's account
    is no longer answered through the API)."""
    from services.billing.application import Billing
    from services.billing.domain import PersonalAccount

    app = Billing(cfg=stack.settings)
    try:
        account = app.repository.get(PersonalAccount.id_for(uuid.UUID(customer_id), "EUR"))
        return account.balance_amount
    finally:
        app.close()


def _deliver(stack, sender: str, to: str, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content(body)

    def answers():
        try:
            with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=5) as s:
                return s.noop()[0] == 250
        except OSError:
            return False

    stack.wait_until(answers, timeout=60, what="the SMTP server")
    with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=60) as s:
        s.sendmail(sender, [to], msg.as_bytes())


def test_an_erased_customer_leaves_no_personal_data_and_every_total_stands(stack):
    tag = uuid.uuid4().hex[:8]
    contact = f"Zelda Quixotemarsh{tag}"
    email = f"zelda.{tag}@erasure.example"
    phone = "+49 30 5550 1234"
    street = f"Kastanienallee{tag}"
    user_name = f"Ulrich Vantablack{tag}"
    user_email = f"ulrich.{tag}@erasure.example"
    ticket_text = f"Sprocket{tag} server is on fire"
    mail_text = f"Mailed{tag} question"
    company = f"Erasable Widgets {tag} GmbH"
    # what staff typed about the customer: why they corrected, credited, voided, deleted
    reasons = [
        f"Corrected{tag} on the phone",
        f"Goodwill{tag} credit",
        f"Voided{tag} twice",
        f"Reversed{tag} the credit",
    ]
    deleted_for = f"Deleted{tag} at request"
    markers = [
        contact,
        email,
        "5550 1234",
        street,
        user_name,
        user_email,
        ticket_text,
        mail_text,
        *reasons,
        deleted_for,
    ]
    admin = stack.admin_token

    # registered with an Idempotency-Key: the first answer (its e-mail, its contact) is kept
    registration = {
        "kind": "company",
        "company_name": company,
        "contact_person": contact,
        "email": email,
        "country": "BE",
        "password": PASSWORD,
    }
    registered_with = {"Idempotency-Key": f"register-{tag}"}
    customer = _ok(
        stack.http(
            "POST", "/api/v1/staff/customers", admin, json=registration, headers=registered_with
        ),
        201,
    )
    again = stack.http(
        "POST", "/api/v1/staff/customers", admin, json=registration, headers=registered_with
    )
    assert again.status_code == 201 and again.json()["id"] == customer["id"], again.text
    cid = customer["id"]
    token = stack.login(customer["username"], PASSWORD)
    profile = _ok(stack.http("GET", "/api/v1/client/profile", token))
    _ok(
        stack.http(
            "PATCH",
            "/api/v1/client/profile",
            token,
            json={"phone": phone, "address": f"{street} 77, 10435 Berlin"},
        )
    )
    assert profile["email"] == email
    _ok(
        stack.http(
            "POST",
            "/api/v1/client/users",
            token,
            json={
                "username": f"u{tag}",
                "email": user_email,
                "name": user_name,
                "permissions": ["support"],
                "password": "erasure user password 1",
            },
        ),
        201,
    )

    # two invoices, one paid
    stack.wait_until(
        lambda: (
            stack.http("GET", f"/api/v1/staff/customers/{cid}/account", admin).status_code == 200
        ),
        what="the personal account",
    )
    invoices = []
    for amount in (1000, 2500):
        r = stack.http(
            "POST",
            "/api/v1/staff/invoices",
            admin,
            json={
                "customer_id": cid,
                "lines": [{"description": "Hosting plan", "unit_price": _eur(amount)}],
            },
        )
        invoices.append(_ok(r, 201))
    _ok(
        stack.http(
            "POST",
            "/api/v1/staff/payments",
            admin,
            json={
                "customer_id": cid,
                "amount": invoices[0]["total"],
                "method": "bank_transfer",
                "reference": "ERASURE-1",
                "invoice_id": invoices[0]["id"],
            },
        ),
        201,
    )

    # staff's reasons: a correction of what it registered with, a credit, a voided invoice
    _ok(
        stack.http(
            "PATCH",
            f"/api/v1/staff/customers/{cid}",
            admin,
            json={"country": "NL", "reason": reasons[0]},
        )
    )
    credited_with = {"Idempotency-Key": f"credit-{tag}"}
    credit = {"amount": _eur(300), "reason": reasons[1]}
    corrections = f"/api/v1/staff/customers/{cid}/account/corrections"
    _ok(stack.http("POST", corrections, admin, json=credit, headers=credited_with), 201)
    # taken back (a customer is deleted with its account at zero)
    debit = {"amount": _eur(-300), "reason": reasons[3]}
    _ok(stack.http("POST", corrections, admin, json=debit), 201)
    voided = _ok(
        stack.http(
            "POST",
            "/api/v1/staff/invoices",
            admin,
            json={
                "customer_id": cid,
                "lines": [{"description": "Setup", "unit_price": _eur(700)}],
            },
        ),
        201,
    )
    _ok(
        stack.http(
            "POST",
            f"/api/v1/staff/invoices/{voided['id']}/void",
            admin,
            json={"reason": reasons[2]},
        )
    )

    # a ticket with an attachment and a staff reply; a mail from the customer
    address = f"support-{tag}@provider.example"
    department = _ok(
        stack.http(
            "POST",
            "/api/v1/staff/departments",
            admin,
            json={"name": f"Support {tag}", "client_visible": True, "addresses": [address]},
        ),
        201,
    )
    ticket = _ok(
        stack.http(
            "POST",
            "/api/v1/client/tickets",
            token,
            data={"department_id": department["id"], "subject": ticket_text, "body": ticket_text},
            files=[("files", ("screen.png", PNG, "image/png"))],
        ),
        201,
    )
    # the staff reply sent with an Idempotency-Key: the gateway keeps its first answer
    replied_with = {"Idempotency-Key": f"reply-{tag}"}
    reply = {"body": f"Dear {contact}, we are on it."}
    replies = f"/api/v1/staff/tickets/{ticket['id']}/replies"
    _ok(stack.http("POST", replies, admin, json=reply, headers=replied_with), 201)
    assert stack.http("POST", replies, admin, json=reply, headers=replied_with).status_code == 201
    # a second ticket merged into the first: its messages live on in the merge
    merged_text = f"Merged{tag} words about the sprocket"
    markers.append(merged_text)
    second = _ok(
        stack.http(
            "POST",
            "/api/v1/client/tickets",
            token,
            json={"department_id": department["id"], "subject": "More", "body": merged_text},
        ),
        201,
    )
    _ok(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{ticket['id']}/merge",
            admin,
            json={"ticket_id": second["id"]},
        )
    )
    stack.wait_until(
        lambda: (
            department["id"]
            in [
                d["id"]
                for d in stack.http("GET", "/api/v1/staff/departments", admin).json()["items"]
            ]
        ),
        what="the department",
    )
    _deliver(stack, email, address, mail_text, mail_text)

    def tickets():
        r = stack.http("GET", "/api/v1/staff/tickets", admin, params={"customer_id": cid})
        return r.json()["items"] if r.status_code == 200 else []

    stack.wait_until(
        lambda: mail_text in [t["subject"] for t in tickets()],
        timeout=90,
        what="the mailed ticket",
    )
    assert any(f.startswith("customers.") for f in _plain_text_in(stack, [contact]))

    # refused: not deleted, not an administrator, no reason, unknown customer
    erase = f"/api/v1/staff/customers/{cid}/erase"
    r = stack.http("POST", erase, admin, json={"reason": "asked by the customer"})
    assert r.status_code == 409, r.text
    for role in ("support", "auditor", "billing"):
        _member, other = stack.staff_member(role)
        r = stack.http("POST", erase, other, json={"reason": "asked by the customer"})
        assert r.status_code == 403, (role, r.text)
    r = stack.http("POST", erase, token, json={"reason": "asked by the customer"})
    assert r.status_code in (401, 403), r.text

    balance = _ok(stack.http("GET", f"/api/v1/staff/customers/{cid}/account", admin))["balance"]
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{cid}",
        admin,
        params={"confirm": "true", "reason": deleted_for},
    )
    assert r.status_code in (200, 204), r.text
    # its unpaid invoice is voided with the deletion: compared from then on
    stack.wait_until(
        lambda: (
            _ok(stack.http("GET", f"/api/v1/staff/invoices/{invoices[1]['id']}", admin))["status"]
            == "void"
        ),
        what="the unpaid invoice voided",
    )
    before = {
        i["id"]: _ok(stack.http("GET", f"/api/v1/staff/invoices/{i['id']}", admin))
        for i in invoices
    }
    assert [before[i["id"]]["status"] for i in invoices] == ["paid", "void"]
    assert _balance(stack, cid) == balance["amount"]

    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 1001}):
        r = stack.http("POST", erase, admin, json=body)
        assert r.status_code == 400, (body, r.text)
        assert "reason" in r.json()["error"]["fields"], r.text
    r = stack.http(
        "POST", f"/api/v1/staff/customers/{uuid.uuid4()}/erase", admin, json={"reason": "x"}
    )
    assert r.status_code == 404, r.text
    assert not _erased_in(stack, "customers", cid)

    # erased
    reason = "GDPR request 2026-118"
    answer = _ok(stack.http("POST", erase, admin, json={"reason": reason}), 202)
    me = _ok(stack.http("GET", "/api/v1/me", admin))
    assert answer["customer_id"] == cid and answer["reason"] == reason
    assert answer["actor"]["kind"] == "staff"
    assert "email" in answer["erased"] and "helpdesk" in answer["following"]
    again = _ok(stack.http("POST", erase, admin, json={"reason": "a second time"}), 202)
    assert again == answer  # the first erasure, nothing again
    for service in SERVICES:
        stack.wait_until(
            lambda s=service: _erased_in(stack, s, cid), timeout=60, what=f"{service} to erase"
        )
    with stack.db("customers") as conn:
        [(erasures,)] = conn.execute(
            "SELECT count(*) FROM customers_events WHERE topic LIKE %s",
            ("%PersonalData.Erased",),
        ).fetchall()
    assert erasures == 1

    # nothing personal in plain text anywhere (read models follow within moments)
    try:
        stack.wait_until(lambda: not _plain_text_in(stack, markers), timeout=30)
    except TimeoutError:
        pass
    left = _plain_text_in(stack, markers)
    assert left == [], "\n".join(left)
    # the company name: only billing keeps it (the legal name invoices need)
    assert {f.split(".")[0] for f in _plain_text_in(stack, [company])} <= {"billing"}

    # the first answers kept with an Idempotency-Key went with the key: a repeat is told
    for path, body, headers in (
        ("/api/v1/staff/customers", registration, registered_with),  # kept in its event
        (replies, reply, replied_with),  # kept by the gateway
        (corrections, credit, credited_with),
    ):
        r = stack.http("POST", path, admin, json=body, headers=headers)
        assert r.status_code == 409, (path, r.text)
        error = r.json()["error"]
        assert "erased" in error["message"] and "Idempotency-Key" in error["fields"], r.text
        assert contact not in r.text and email not in r.text

    # staff see the placeholder
    state = _ok(stack.http("GET", f"/api/v1/staff/audit/customer/{cid}", admin))["state"]
    assert state["email"] == PLACEHOLDER and state["contact_person"] == PLACEHOLDER
    assert state["phone"] == PLACEHOLDER and state["address"] == PLACEHOLDER
    shown = _ok(stack.http("GET", f"/api/v1/staff/tickets/{ticket['id']}", admin))
    assert shown["subject"] == PLACEHOLDER
    assert {m["body"] for m in shown["messages"]} == {PLACEHOLDER}
    assert all(m["attachments"] == [] for m in shown["messages"])
    listed = {t["id"]: t for t in tickets()}
    assert {t["subject"] for t in listed.values()} == {PLACEHOLDER}

    # invoices keep numbers, lines, totals and the legal name; the balance stands
    for invoice_id, earlier in before.items():
        now = _ok(stack.http("GET", f"/api/v1/staff/invoices/{invoice_id}", admin))
        for key in ("number", "total", "lines", "status"):
            assert now[key] == earlier[key], key
        assert now["buyer"]["legal_name"] == company
        assert now["buyer"]["email"] == PLACEHOLDER
    assert _balance(stack, cid) == balance["amount"]

    # the history says who erased it and why, in every service
    history = _ok(
        stack.http(
            "GET",
            f"/api/v1/staff/audit/customers/{cid}/history",
            admin,
            params={"limit": 200},
        )
    )["items"]
    erased = [i for i in history if i["type"] == "PersonalData.Erased"]
    assert {i["service"] for i in erased} == set(SERVICES), erased
    for item in erased:
        assert item["reason"] == reason
        assert item["actor"]["kind"] == "staff" and item["actor"]["id"] == me["staff_id"]
    # staff's own reasons went with the rest: they were about the customer
    [deletion] = [i for i in history if i["type"] == "Customer.Deleted"]
    assert deletion["reason"] == PLACEHOLDER
    with stack.db("billing") as conn:
        entries = conn.execute(
            "SELECT reason FROM ledger_entries WHERE customer_id = %s AND kind = 'correction'",
            (uuid.UUID(cid),),
        ).fetchall()
    assert entries == [(PLACEHOLDER,), (PLACEHOLDER,)]

    # the address is free again
    again_customer = stack.register_customer(email=email)
    assert again_customer["id"] != cid

    # every chain verifies, every replay equals the live state
    done = _run(stack, "verify-chain")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run(stack, "verify-replay")
    differences = [line for line in done.stdout.splitlines() if line.startswith("DIFFERENCE")]
    assert differences == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify-replay: replaying the history gives the live state" in done.stdout
    for service in SERVICES:
        assert f"{service} aggregates:" in done.stdout, done.stdout
    assert "customers.customer_list: compared at position" in done.stdout, done.stdout

    # a downstream catching up on the log after the erasure reads `[erased]` where the
    # events held the customer's e-mail, and takes it: what every service publishes
    # passes the contract, and a billing started afresh takes the customers service's
    # whole log, the erased customer's events too, without parking one
    published = {service: _published(stack, service) for service in SERVICES}
    registered = [
        e
        for e in published["customers"]
        if e["type"] == "CustomerRegistered" and e["aggregate_id"] == cid
    ]
    assert [e["payload"]["email"] for e in registered] == [PLACEHOLDER]
    _caught_up_afresh(stack, cid)


def _published(stack, service: str) -> list[dict]:
    """Every integration event `service` publishes from its log (its `integration_events`
    RPC, which a catching-up consumer reads), each loaded against its contract."""
    import importlib

    from services.infra.inbox import load_event
    from services.infra.relay import integration_events

    app = importlib.import_module(f"services.{service}.service").APPLICATION(cfg=stack.settings)
    events, after = [], 0
    try:
        while True:
            page = integration_events(app, after, 1000)
            for raw in page["events"]:
                load_event(raw)  # PoisonEvent if the contract refuses it
            events += page["events"]
            if page["scanned"] <= after:
                return events
            after = page["scanned"]
    finally:
        app.close()


def _caught_up_afresh(stack, customer_id: str) -> None:
    """A billing instance of its own database, started now, catches up on every upstream
    log from the start; nothing the customers service published is parked."""
    from services.infra.databases import drop_database, ensure_database
    from services.infra.settings import Settings

    prefix = f"hlt_{stack.run_id}_fresh_"
    fresh = Settings.from_env(dict(stack.env, HOSTLEDGER_DB_PREFIX=prefix))
    dbname = fresh.database_name("billing")
    ensure_database(fresh, dbname)
    try:
        stack.start("billing", {"HOSTLEDGER_DB_PREFIX": prefix}, instance="fresh")

        def erased_there() -> bool:
            try:
                with psycopg.connect(fresh.database.conninfo(dbname)) as conn:
                    row = conn.execute(
                        "SELECT data_key IS NULL FROM personal_keys WHERE customer_id = %s",
                        (uuid.UUID(customer_id),),
                    ).fetchone()
            except psycopg.Error:
                return False  # its tables are not made yet
            return bool(row and row[0])

        stack.wait_until(erased_there, timeout=120, what="the fresh billing to catch up")
        with psycopg.connect(fresh.database.conninfo(dbname)) as conn:
            parked = conn.execute(
                "SELECT upstream, position, error FROM parked_events"
                " WHERE upstream = 'customers' OR error LIKE '%%contract%%'"
            ).fetchall()
        assert parked == [], parked
    finally:
        stack.stop("billing-fresh")
        drop_database(fresh, dbname)


def test_the_keys_are_the_only_way_back(stack):
    """A sealed value does not name the customer's data: the stored state of a new
    customer's registration holds its e-mail only sealed."""
    email = f"sealed.{uuid.uuid4().hex[:8]}@erasure.example"
    customer = stack.register_customer(email=email, contact_person="Sealed Person")
    with stack.db("customers") as conn:
        rows = conn.execute(
            "SELECT state FROM customers_events WHERE originator_id = %s",
            (uuid.UUID(customer["id"]),),
        ).fetchall()
    states = [bytes(s).decode() for (s,) in rows]
    assert states and all(email not in s and "Sealed Person" not in s for s in states)
    assert any("_sealed_" in s for s in states)
    with stack.db("customers") as conn:
        [(keys,)] = conn.execute(
            "SELECT count(*) FROM personal_keys WHERE customer_id = %s AND data_key IS NOT NULL",
            (uuid.UUID(customer["id"]),),
        ).fetchall()
    assert keys == 1
