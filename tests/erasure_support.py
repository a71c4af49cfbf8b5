"""What the end-to-end tests of erasure share: a stack of their own (they compare whole
databases and data directories with what they wrote), the scan of every table for what
must be gone, whether a service destroyed a customer's key, and the ways they write to the
helpdesk (a department it lists, mail in, a customer's tickets)."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from psycopg import sql

from services.infra.settings import SERVICES
from tests.stack import Stack

PLACEHOLDER = "[erased]"


def own_stack(prefix: str):
    """A module's `stack` fixture: a stack of its own, named `prefix` and a random tail."""

    @pytest.fixture(scope="module")
    def stack():
        s = Stack(name=prefix + uuid.uuid4().hex[:6])
        try:
            s.up()
            yield s
        finally:
            s.down()

    return stack


def ok(r, status=200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def plain_text_in(stack, markers: list[str], services: Iterable[str] = SERVICES) -> list[str]:
    """Where any marker is found in plain text (case aside) in any table of the databases
    of `services` (the event tables' state bytes decoded): `service.table: marker`."""
    found = []
    lowered = [m.lower() for m in markers]
    for service in services:
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


def erased_in(stack, service: str, customer_id: str) -> bool:
    """Whether `service` destroyed the customer's key (and noted when)."""
    with stack.db(service) as conn:
        row = conn.execute(
            "SELECT data_key IS NULL AND erased_at IS NOT NULL FROM personal_keys"
            " WHERE customer_id = %s",
            (uuid.UUID(customer_id),),
        ).fetchone()
    return bool(row and row[0])


def mail(sender: str, to: str, subject: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content(body)
    return msg.as_bytes()


def send_mail(stack, raw: bytes, sender: str, to: str) -> None:
    """`raw` handed to the stack's SMTP server, once it answers."""

    def answers():
        try:
            with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=5) as s:
                return s.noop()[0] == 250
        except OSError:
            return False

    stack.wait_until(answers, timeout=60, what="the SMTP server")
    with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=60) as s:
        s.sendmail(sender, [to], raw)


def listed_department(stack, name: str, addresses: list[str] | None = None) -> dict:
    """A new department the client can see, once the helpdesk lists it (mail to its
    addresses finds it from then on)."""
    admin = stack.admin_token
    body: dict = {"name": name, "client_visible": True}
    if addresses is not None:
        body["addresses"] = addresses
    department = ok(stack.http("POST", "/api/v1/staff/departments", admin, json=body), 201)
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
    return department


def tickets_of(stack, customer_id: str) -> list[dict]:
    """The customer's tickets as staff list them (none while the list is not answered)."""
    r = stack.http(
        "GET", "/api/v1/staff/tickets", stack.admin_token, params={"customer_id": customer_id}
    )
    return r.json()["items"] if r.status_code == 200 else []
