"""The mail gateway: incoming mail from SMTP accept to ticket visible, notifications sent.

- incoming: `concurrency` SMTP clients (one connection each, smtplib) send mail from a
  different guest address each to one department's address; a message is accepted (250)
  only once the helpdesk has taken it. Measured: accepted per second, and per second
  from the first send until every ticket shows in `GET /api/v1/staff/tickets` (the
  helpdesk's list read model). The bare figure is the same clients against the stack's
  mail sink (aiosmtpd that only writes a file).
- outgoing: `n` notifications put straight into the outbox table (pending, due now),
  then timed until the sender has sent them all to the mail sink: it renders each
  template, builds the message, claims and settles each row in its own transaction. The
  bare figure is smtplib sending as many built messages to the sink on one connection.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import requests
from psycopg.types.json import Jsonb

from tests.bench.drive import Result, distribution_ms, drive


def _message(sender: str, to: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Bench message {n}"
    msg["Message-ID"] = make_msgid(domain="bench.example")
    msg.set_content("The site answers 502 since 10:00. " * 10)
    return msg.as_bytes()


def _smtp_clients(port: int, to: str, concurrency: int, total: int, prefix: str) -> Result:
    import smtplib

    numbers = itertools.count()

    def factory(resources: contextlib.ExitStack):
        conn = resources.enter_context(smtplib.SMTP("127.0.0.1", port, timeout=120))

        def send():
            n = next(numbers)
            sender = f"{prefix}-{n}@bench.example"
            conn.sendmail(sender, [to], _message(sender, to, n))

        return send

    return drive(factory, concurrency, total=total)


def _department(stack) -> tuple[dict, str]:
    address = f"bench-{uuid.uuid4().hex[:8]}@provider.example"
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": "Bench mail", "addresses": [address]},
    )
    if r.status_code != 201:
        raise RuntimeError(f"POST /api/v1/staff/departments answered {r.status_code}: {r.text}")
    department = r.json()
    stack.wait_until(
        lambda: any(
            d["id"] == department["id"]
            for d in stack.http("GET", "/api/v1/staff/departments", stack.admin_token).json()[
                "items"
            ]
        ),
        what="the bench department",
    )
    return department, address


def _visible(stack, department_id: str) -> int:
    r = requests.get(
        f"{stack.base_url}/api/v1/staff/tickets",
        params={"department_id": department_id, "page_size": 1},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=60,
    )
    r.raise_for_status()
    return r.json()["total"]


def wait_smtp(stack, timeout: float = 60) -> None:
    import smtplib

    def answers():
        try:
            with smtplib.SMTP("127.0.0.1", stack.smtp_in_port, timeout=5) as s:
                return s.noop()[0] == 250
        except OSError:
            return False

    stack.wait_until(answers, timeout=timeout, what="the mail gateway's SMTP server")


def incoming(stack, concurrency: int, total: int) -> dict:
    wait_smtp(stack)
    department, address = _department(stack)
    t0 = time.perf_counter()
    accepted = _smtp_clients(stack.smtp_in_port, address, concurrency, total, "in")
    t_accepted = time.perf_counter()
    deadline = t_accepted + 300
    visible = 0
    while time.perf_counter() < deadline:
        visible = _visible(stack, department["id"])
        if visible >= accepted.ops:
            break
        time.sleep(0.05)
    t_visible = time.perf_counter()
    bare = _smtp_clients(stack.smtp_out_port, address, concurrency, total, "bare")
    out = {
        "accepted": accepted.summary(),
        "visible": visible,
        "visible_per_second": round(visible / (t_visible - t0), 1) if visible else 0.0,
        "last_accept_to_all_visible_ms": round((t_visible - t_accepted) * 1000, 1),
        "bare_sink": bare.summary(),
    }
    if bare.per_second and accepted.per_second:
        out["ratio"] = round(bare.per_second / accepted.per_second, 1)
    return out


def outgoing(stack, total: int) -> dict:
    import smtplib

    from services.infra import clock
    from services.mailgateway.compose import build

    run = uuid.uuid4().hex[:8]
    now = clock.now()
    rows = [
        (
            f"bench:{run}:{n}",
            "password_changed",
            f"out-{run}-{n}@bench.example",
            "en",
            Jsonb({"customer_name": f"Bench {n}", "company": "Bench"}),
            f"<hlm.bench-{run}-{n}@hostledger.local>",
            now,
            now,
        )
        for n in range(total)
    ]
    with stack.db("mailgateway") as conn:
        t0 = time.perf_counter()
        with conn.cursor() as curs:
            curs.executemany(
                "INSERT INTO mail_outbox (key, kind, recipient, language, context, message_id,"
                " next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        deadline = t0 + 600
        sent = 0
        while time.perf_counter() < deadline:
            (sent,) = conn.execute(
                "SELECT count(*) FROM mail_outbox WHERE key LIKE %s AND status = 'sent'",
                (f"bench:{run}:%",),
            ).fetchone()
            if sent >= total:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    messages = [
        build(
            sender="hostledger <noreply@hostledger.local>",
            recipient=f"bare-{run}-{n}@bench.example",
            subject="Your password was changed",
            body="Hello,\n\nthe password of your account was changed.\n",
            message_id=f"<hlm.bare-{run}-{n}@hostledger.local>",
        ).as_bytes()
        for n in range(total)
    ]
    times = []
    with smtplib.SMTP("127.0.0.1", stack.smtp_out_port, timeout=120) as s:
        b0 = time.perf_counter()
        for n, data in enumerate(messages):
            t = time.perf_counter()
            s.sendmail("noreply@hostledger.local", [f"bare-{run}-{n}@bench.example"], data)
            times.append(time.perf_counter() - t)
        bare_elapsed = time.perf_counter() - b0
    out = {
        "notifications": total,
        "sent": sent,
        "seconds": round(elapsed, 3),
        "per_second": round(sent / elapsed, 1) if sent else 0.0,
        "bare_smtp_per_second": round(total / bare_elapsed, 1),
        "bare_smtp": distribution_ms(times),
    }
    if out["per_second"]:
        out["ratio"] = round(out["bare_smtp_per_second"] / out["per_second"], 1)
    return out


def report_lines(r: dict) -> list[str]:
    m = r["mail"]
    lines = [f"MAIL GATEWAY, {r['concurrency']} concurrent SMTP clients", ""]
    if "incoming" in m:
        i = m["incoming"]
        a = i["accepted"]
        lines += [
            f"   incoming: {a['ops']} messages, each from a new guest to one department",
            f"   {'accepted (250 once the helpdesk took it), per second':62} "
            f"{a.get('per_second', 0):>8}",
            f"   {'  accept latency p50 / p99 ms':62} "
            f"{a['latency']['p50_ms']!s:>8} / {a['latency']['p99_ms']!s}",
            f"   {'from first send to every ticket in the staff list, per second':62} "
            f"{i['visible_per_second']:>8}",
            f"   {'  last accept to all visible, ms':62} {i['last_accept_to_all_visible_ms']:>8}",
            f"   {'bare aiosmtpd (the mail sink), per second':62} "
            f"{i['bare_sink'].get('per_second', 0):>8}",
            f"   {'  bare / accepted':62} {i.get('ratio', '-')!s:>8}",
        ]
    if "outgoing" in m:
        o = m["outgoing"]
        lines += [
            "",
            f"   outgoing: {o['notifications']} notifications queued at once in the outbox",
            f"   {'sent to the relay (rendered, claimed, settled), per second':62} "
            f"{o['per_second']:>8}",
            f"   {'bare smtplib to the same relay, one connection, per second':62} "
            f"{o['bare_smtp_per_second']:>8}",
            f"   {'  bare / sent':62} {o.get('ratio', '-')!s:>8}",
        ]
    return lines
