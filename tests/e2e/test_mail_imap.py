"""The IMAP poller against a real Dovecot (Debian's dovecot-imapd, installed by
deploy/preflight.sh), started here with a private configuration on a free port."""

import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.e2e.test_mail_in import department, received, tickets

DOVECOT = os.environ.get("HOSTLEDGER_DOVECOT") or shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"""


@pytest.fixture(scope="module")
def dovecot():
    # Dovecot's own processes (auth, login) run as its users: every directory on the
    # way must be readable by them, which pytest's private tmp_path is not
    root = Path(tempfile.mkdtemp(prefix="hostledger-dovecot-"))
    os.chmod(root, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # mail processes never run as root: as root, the mail belongs to nobody
    uid, gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    for sub in ("mail", "home"):
        os.chown(root / sub, uid, gid)
    (root / "users").write_text("poller:{PLAIN}poller-secret\n")
    (root / "dovecot.conf").write_text(CONFIG.format(root=root, uid=uid, gid=gid, port=port))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"dovecot did not start: see {root / 'dovecot.log'}") from None
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(15)
    shutil.rmtree(root, ignore_errors=True)


def append(
    port: int,
    sender: str,
    to: str,
    subject: str,
    folder: str = "INBOX",
    message_id: str | None = None,
) -> str:
    message_id = message_id or make_msgid(domain="isp.example")
    raw = (
        f"Return-Path: <{sender}>\r\nFrom: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n\r\nPolled body of {subject}.\r\n"
    ).encode()
    conn = imaplib.IMAP4("127.0.0.1", port)
    try:
        conn.login("poller", "poller-secret")
        typ, _ = conn.append(folder, None, None, raw)
        assert typ == "OK"
    finally:
        conn.logout()
    return message_id


def imap(port: int, *commands: tuple) -> None:
    conn = imaplib.IMAP4("127.0.0.1", port)
    try:
        conn.login("poller", "poller-secret")
        for name, *args in commands:
            typ, data = getattr(conn, name)(*args)
            assert typ == "OK", (name, data)
    finally:
        conn.logout()


def position(stack, name: str):
    with stack.db("mailgateway") as conn:
        return conn.execute(
            "SELECT uidvalidity, last_uid FROM mail_imap_positions WHERE mailbox = %s", (name,)
        ).fetchone()


def test_the_poller_takes_each_message_once_in_order_and_waits_for_the_helpdesk(stack, dovecot):
    dept, address = department(stack)
    sender = f"polled-{uuid.uuid4().hex[:8]}@isp.example"
    name = f"isp-{uuid.uuid4().hex[:6]}"
    ids = [append(dovecot, sender, address, f"Polled {n}") for n in range(2)]
    mailbox = (
        f'[{{"name": "{name}", "host": "127.0.0.1", "port": {dovecot}, "user": "poller",'
        f' "password": "poller-secret", "recipient": "{address}"}}]'
    )
    stack.restart(
        "mailgateway", {"HOSTLEDGER_IMAP_MAILBOXES": mailbox, "HOSTLEDGER_IMAP_INTERVAL": "0.5"}
    )
    try:
        stack.wait_for_service("mailgateway")
        stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 2, what="two polled tickets")
        ids += [append(dovecot, sender, address, f"Polled {n}") for n in range(2, 4)]
        stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 4, what="four tickets")
        assert position(stack, name)[1] == 4
        # polls go on: nothing is taken twice (a whole poll began after the fourth ticket)
        polls = {"mailbox": name, "outcome": "ok"}
        since = stack.metric("mailin", "hostledger_imap_polls_total", **polls)
        stack.wait_metric("mailin", "hostledger_imap_polls_total", since + 2, **polls)
        stack.wait_projected("helpdesk")
        taken = received(stack, sender)
        assert sorted(m["message_id"] for m in taken) == sorted(ids)
        assert {m["outcome"] for m in taken} == {"opened"}
        subjects = sorted(t["subject"] for t in tickets(stack, dept["id"]))
        assert subjects == [f"Polled {n}" for n in range(4)]

        # the helpdesk away: the message stays where it is, and the position with it
        stack.stop("helpdesk")
        try:
            log = stack.logs / "mailgateway.log"
            failed_polls = log.read_text().count(f"{name}: poll stopped")
            late = append(dovecot, sender, address, "Polled late")
            stack.wait_until(
                lambda: log.read_text().count(f"{name}: poll stopped") > failed_polls,
                what="a poll that could not hand the message on",
            )
            assert position(stack, name)[1] == 4
            assert late not in [m["message_id"] for m in received(stack, sender)]
        finally:
            stack.start("helpdesk")
            stack.wait_for_service("helpdesk")
        stack.wait_until(lambda: position(stack, name)[1] == 5, what="the late message")
        stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 5, what="five tickets")
        late_rows = [m for m in received(stack, sender) if m["message_id"] == late]
        assert len(late_rows) == 1
    finally:
        stack.restart("mailgateway")
        stack.wait_for_service("mailgateway")


def test_a_rebuilt_mailbox_is_read_again_and_nothing_is_taken_twice(stack, dovecot):
    """A new UIDVALIDITY makes the old UIDs meaningless: every message is read again, and
    the helpdesk takes each Message-ID once."""
    dept, address = department(stack)
    sender = f"rebuilt-{uuid.uuid4().hex[:8]}@isp.example"
    name, folder = f"box-{uuid.uuid4().hex[:6]}", f"Box{uuid.uuid4().hex[:6]}"
    imap(dovecot, ("create", folder))
    old = [append(dovecot, sender, address, f"Old {n}", folder) for n in range(2)]
    mailbox = (
        f'[{{"name": "{name}", "host": "127.0.0.1", "port": {dovecot}, "user": "poller",'
        f' "password": "poller-secret", "recipient": "{address}", "folder": "{folder}"}}]'
    )
    stack.restart(
        "mailgateway", {"HOSTLEDGER_IMAP_MAILBOXES": mailbox, "HOSTLEDGER_IMAP_INTERVAL": "0.5"}
    )
    try:
        stack.wait_for_service("mailgateway")
        stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 2, what="two tickets")
        first_validity = stack.wait_until(lambda: position(stack, name))[0]
        # the mailbox is rebuilt: the same two messages, and a new one
        imap(dovecot, ("delete", folder), ("create", folder))
        for n, message_id in enumerate(old):
            append(dovecot, sender, address, f"Old {n}", folder, message_id)
        new = append(dovecot, sender, address, "New", folder)
        stack.wait_until(
            lambda: (p := position(stack, name)) and p[0] != first_validity and p[1] == 3,
            what="the position in the rebuilt mailbox",
        )
        stack.wait_until(lambda: len(tickets(stack, dept["id"])) == 3, what="the new ticket")
        outcomes = {}
        for m in received(stack, sender):
            outcomes.setdefault(m["message_id"], []).append(m["outcome"])
        assert outcomes == {
            old[0]: ["opened", "duplicate"],
            old[1]: ["opened", "duplicate"],
            new: ["opened"],
        }
    finally:
        stack.restart("mailgateway")
        stack.wait_for_service("mailgateway")
