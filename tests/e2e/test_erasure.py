"""Erasure of a deleted customer's personal data, through the running system: after
`POST /api/v1/staff/customers/{id}/erase` no stored event and no table of any service holds
the customer's name, e-mail, phone, street, its user's name and e-mail, its tickets' and
mail's texts, or the text and comment of an abuse notice sent to it alone in plain text;
invoices keep their numbers, lines, totals and the legal name, the account its balance;
the history says who erased it and why; every chain still verifies and every replay still
equals the live state. Who may erase, and what is refused.

On a stack of its own: it compares the whole of every database with what it wrote."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from services.infra.settings import SERVICES
from tests.erasure_support import (
    PLACEHOLDER,
    erased_in,
    listed_department,
    mail,
    ok,
    own_stack,
    plain_text_in,
    send_mail,
    tickets_of,
)

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "erasure client password 1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

stack = own_stack("er")


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _run(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMMAND), "audit", *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


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
    customer = ok(
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
    profile = ok(stack.http("GET", "/api/v1/client/profile", token))
    ok(
        stack.http(
            "PATCH",
            "/api/v1/client/profile",
            token,
            json={"phone": phone, "address": f"{street} 77, 10435 Berlin"},
        )
    )
    assert profile["email"] == email
    ok(
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
        invoices.append(ok(r, 201))
    ok(
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
    ok(
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
    ok(stack.http("POST", corrections, admin, json=credit, headers=credited_with), 201)
    # taken back (a customer is deleted with its account at zero)
    debit = {"amount": _eur(-300), "reason": reasons[3]}
    ok(stack.http("POST", corrections, admin, json=debit), 201)
    voided = ok(
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
    ok(
        stack.http(
            "POST",
            f"/api/v1/staff/invoices/{voided['id']}/void",
            admin,
            json={"reason": reasons[2]},
        )
    )

    # a ticket with an attachment and a staff reply; a mail from the customer
    address = f"support-{tag}@provider.example"
    department = listed_department(stack, f"Support {tag}", [address])
    ticket = ok(
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
    ok(stack.http("POST", replies, admin, json=reply, headers=replied_with), 201)
    assert stack.http("POST", replies, admin, json=reply, headers=replied_with).status_code == 201
    # a second ticket merged into the first: its messages live on in the merge
    merged_text = f"Merged{tag} words about the sprocket"
    markers.append(merged_text)
    second = ok(
        stack.http(
            "POST",
            "/api/v1/client/tickets",
            token,
            json={"department_id": department["id"], "subject": "More", "body": merged_text},
        ),
        201,
    )
    ok(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{ticket['id']}/merge",
            admin,
            json={"ticket_id": second["id"]},
        )
    )
    send_mail(stack, mail(email, address, mail_text, mail_text), email, address)

    def tickets():
        return tickets_of(stack, cid)

    stack.wait_until(
        lambda: mail_text in [t["subject"] for t in tickets()],
        timeout=90,
        what="the mailed ticket",
    )

    # an abuse notice to this customer alone: its text, its comment and the penalty
    # points' comment are about the customer
    notice_subject = f"Abuse{tag} report: spam from sprocket"
    notice_body = f"Dear %client_person%, Phishing{tag} pages on your server."
    notice_comment = f"Blocklisted{tag} twice"
    markers += [notice_subject, f"Phishing{tag} pages", notice_comment]
    deadline = datetime.now(UTC) + timedelta(days=3)
    notice = ok(
        stack.http(
            "POST",
            "/api/v1/staff/messages",
            admin,
            json={
                "customer_ids": [cid],
                "department_id": department["id"],
                "subject": notice_subject,
                "body": notice_body,
                "translations": {"fr": {"subject": notice_subject, "body": notice_body}},
                "abuse": {
                    "deadline": deadline.isoformat(),
                    "action": "move_to_active",
                    "penalty_points": 3,
                    "comment": notice_comment,
                },
            },
        ),
        201,
    )
    assert notice["status"] == "sent" and notice["subject"] == notice_subject, notice
    [noticed] = notice["tickets"]
    assert noticed["customer_id"] == cid
    shown = ok(stack.http("GET", f"/api/v1/staff/tickets/{noticed['ticket_id']}", admin))
    assert shown["subject"] == notice_subject
    assert shown["abuse"]["comment"] == notice_comment
    stack.wait_until(
        lambda: noticed["ticket_id"] in [t["id"] for t in tickets()], what="the notice listed"
    )
    assert any(f.startswith("customers.") for f in plain_text_in(stack, [contact]))

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

    balance = ok(stack.http("GET", f"/api/v1/staff/customers/{cid}/account", admin))["balance"]
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
            ok(stack.http("GET", f"/api/v1/staff/invoices/{invoices[1]['id']}", admin))["status"]
            == "void"
        ),
        what="the unpaid invoice voided",
    )
    before = {
        i["id"]: ok(stack.http("GET", f"/api/v1/staff/invoices/{i['id']}", admin)) for i in invoices
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
    assert not erased_in(stack, "customers", cid)

    # erased
    reason = "GDPR request 2026-118"
    answer = ok(stack.http("POST", erase, admin, json={"reason": reason}), 202)
    me = ok(stack.http("GET", "/api/v1/me", admin))
    assert answer["customer_id"] == cid and answer["reason"] == reason
    assert answer["actor"]["kind"] == "staff"
    assert "email" in answer["erased"] and "helpdesk" in answer["following"]
    again = ok(stack.http("POST", erase, admin, json={"reason": "a second time"}), 202)
    assert again == answer  # the first erasure, nothing again
    for service in SERVICES:
        stack.wait_until(
            lambda s=service: erased_in(stack, s, cid), timeout=60, what=f"{service} to erase"
        )
    with stack.db("customers") as conn:
        [(erasures,)] = conn.execute(
            "SELECT count(*) FROM customers_events WHERE topic LIKE %s",
            ("%PersonalData.Erased",),
        ).fetchall()
    assert erasures == 1

    # nothing personal in plain text anywhere (read models follow within moments)
    try:
        stack.wait_until(lambda: not plain_text_in(stack, markers), timeout=30)
    except TimeoutError:
        pass
    left = plain_text_in(stack, markers)
    assert left == [], "\n".join(left)
    # the company name: only billing keeps it (the legal name invoices need)
    assert {f.split(".")[0] for f in plain_text_in(stack, [company])} <= {"billing"}

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
    state = ok(stack.http("GET", f"/api/v1/staff/audit/customer/{cid}", admin))["state"]
    assert state["email"] == PLACEHOLDER and state["contact_person"] == PLACEHOLDER
    assert state["phone"] == PLACEHOLDER and state["address"] == PLACEHOLDER
    shown = ok(stack.http("GET", f"/api/v1/staff/tickets/{ticket['id']}", admin))
    assert shown["subject"] == PLACEHOLDER
    assert {m["body"] for m in shown["messages"]} == {PLACEHOLDER}
    assert all(m["attachments"] == [] for m in shown["messages"])
    listed = {t["id"]: t for t in tickets()}
    assert {t["subject"] for t in listed.values()} == {PLACEHOLDER}
    # the notice to it alone went with it, its counts kept
    message = ok(stack.http("GET", f"/api/v1/staff/messages/{notice['id']}", admin))
    assert message["subject"] == message["body"] == PLACEHOLDER
    assert message["abuse"]["comment"] == PLACEHOLDER
    assert message["abuse"]["penalty_points"] == 3
    assert (message["count"], message["opened"], message["status"]) == (1, 1, "sent")
    assert [t["ticket_id"] for t in message["tickets"]] == [noticed["ticket_id"]]
    messages = ok(stack.http("GET", "/api/v1/staff/messages", admin))["items"]
    assert [m["subject"] for m in messages if m["id"] == notice["id"]] == [PLACEHOLDER]
    shown = ok(stack.http("GET", f"/api/v1/staff/tickets/{noticed['ticket_id']}", admin))
    assert shown["subject"] == PLACEHOLDER and shown["abuse"]["comment"] == PLACEHOLDER
    assert shown["abuse"]["penalty_points"] == 3

    # invoices keep numbers, lines, totals and the legal name; the balance stands
    for invoice_id, earlier in before.items():
        now = ok(stack.http("GET", f"/api/v1/staff/invoices/{invoice_id}", admin))
        for key in ("number", "total", "lines", "status"):
            assert now[key] == earlier[key], key
        assert now["buyer"]["legal_name"] == company
        assert now["buyer"]["email"] == PLACEHOLDER
    assert _balance(stack, cid) == balance["amount"]

    # the history says who erased it and why, in every service
    history = ok(
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
