"""The IMAP poller: mailboxes at other providers, each routed to a department's address.

HOSTLEDGER_IMAP_MAILBOXES is a JSON list, one object per mailbox:
    [{"name": "support-at-isp", "host": "imap.example.net", "port": 993, "ssl": true,
      "user": "support", "password": "...", "folder": "INBOX",
      "recipient": "support@example.com"}]
`recipient` is the address the mail counts as sent to (it picks the department).

Each mailbox's position is (UIDVALIDITY, highest UID handed on), kept in the
mailgateway's database and moved one message at a time, only after the message was
taken: nothing is fetched twice, nothing is skipped. A message the helpdesk cannot take
now stops the poll there; the next poll starts again with it. When the server's
UIDVALIDITY changes (the mailbox was rebuilt), the old UIDs mean nothing: the whole
mailbox is read again, and the helpdesk ignores the Message-IDs it has already seen.
Messages are read with BODY.PEEK and left on the server.
"""

from __future__ import annotations

import imaplib
import json
import logging
import re
import threading
from dataclasses import dataclass

from services.mailgateway.metrics import IMAP_POLLS, MAIL_IN

log = logging.getLogger("hostledger.imap")

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


@dataclass(frozen=True)
class Mailbox:
    name: str
    host: str
    port: int
    user: str
    password: str
    recipient: str
    folder: str = "INBOX"
    ssl: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> Mailbox:
        ssl = bool(data.get("ssl", False))
        return cls(
            name=str(data.get("name") or f"{data['user']}@{data['host']}"),
            host=str(data["host"]),
            port=int(data.get("port") or (993 if ssl else 143)),
            user=str(data["user"]),
            password=str(data["password"]),
            recipient=str(data["recipient"]),
            folder=str(data.get("folder") or "INBOX"),
            ssl=ssl,
        )


def mailboxes(raw: str) -> list[Mailbox]:
    if not raw.strip():
        return []
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("HOSTLEDGER_IMAP_MAILBOXES must be a JSON list of mailboxes")
    return [Mailbox.from_dict(item) for item in data]


class Poller:
    def __init__(self, mailin, mailbox: Mailbox):
        self.mailin = mailin
        self.mailbox = mailbox

    def _position(self) -> tuple[int, int] | None:
        rows = self.mailin._execute(
            "SELECT uidvalidity, last_uid FROM mail_imap_positions WHERE mailbox = %s",
            (self.mailbox.name,),
        )
        return (rows[0]["uidvalidity"], rows[0]["last_uid"]) if rows else None

    def _move(self, uidvalidity: int, uid: int) -> None:
        self.mailin._execute(
            "INSERT INTO mail_imap_positions (mailbox, uidvalidity, last_uid) VALUES (%s, %s, %s)"
            " ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity,"
            " last_uid = CASE WHEN mail_imap_positions.uidvalidity = EXCLUDED.uidvalidity"
            " THEN greatest(mail_imap_positions.last_uid, EXCLUDED.last_uid)"
            " ELSE EXCLUDED.last_uid END",
            (self.mailbox.name, uidvalidity, uid),
        )

    def _connect(self) -> imaplib.IMAP4:
        box = self.mailbox
        conn = (imaplib.IMAP4_SSL if box.ssl else imaplib.IMAP4)(box.host, box.port, timeout=30)
        conn.login(box.user, box.password)
        return conn

    def poll_once(self) -> int:
        """Hand on every new message; how many were taken. Raises TryLater (after keeping
        the position of what was taken) when the helpdesk cannot take one now. Of several
        instances, one polls a mailbox at a time (an advisory lock on this thread's
        connection)."""
        key = f"imap:{self.mailbox.name}"
        rows = self.mailin._execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (key,))
        if not rows[0]["ok"]:
            return 0
        try:
            return self._poll()
        finally:
            self.mailin._execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def _poll(self) -> int:
        box = self.mailbox
        conn = self._connect()
        taken = 0
        try:
            typ, _ = conn.select(box.folder, readonly=True)
            if typ != "OK":
                raise OSError(f"cannot open folder {box.folder!r} of {box.name}")
            uidvalidity = _uidvalidity(conn, box.folder)
            position = self._position()
            last_uid = 0
            if position is not None:
                if position[0] == uidvalidity:
                    last_uid = position[1]
                else:
                    log.warning(
                        "%s: UIDVALIDITY changed (%s -> %s); reading the mailbox again",
                        box.name,
                        position[0],
                        uidvalidity,
                    )
            typ, data = conn.uid("SEARCH", None, f"UID {last_uid + 1}:*")
            if typ != "OK":
                raise OSError(f"UID SEARCH failed on {box.name}: {data}")
            # "N:*" always names the highest UID, even when it is below N
            uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) > last_uid)
            for uid in uids:
                typ, fetched = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
                if typ != "OK":
                    raise OSError(f"UID FETCH {uid} failed on {box.name}")
                raw = _literal(fetched)
                if raw is None:
                    # expunged meanwhile: nothing to take, nothing skipped
                    self._move(uidvalidity, uid)
                    continue
                # TryLater propagates: this message and the ones after wait for the next poll
                self.mailin.take(raw, _return_path(raw), [box.recipient])
                self._move(uidvalidity, uid)
                taken += 1
            if position is None and not uids:
                self._move(uidvalidity, last_uid)
        finally:
            try:
                conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
        return taken


def _uidvalidity(conn: imaplib.IMAP4, folder: str) -> int:
    _, data = conn.response("UIDVALIDITY")
    if data and data[0] is not None:
        return int(data[0])
    _, data = conn.status(folder, "(UIDVALIDITY)")
    match = _UIDVALIDITY.search((data or [b""])[0] or b"")
    if match is None:
        raise OSError("the server did not say its UIDVALIDITY")
    return int(match.group(1))


def _literal(fetched) -> bytes | None:
    for item in fetched or ():
        if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _return_path(raw: bytes) -> str | None:
    """The Return-Path the delivering server wrote, or None when there is none."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(b"return-path:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def start_pollers(mailin, cfg, stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for box in mailboxes(cfg.imap_mailboxes):
        poller = Poller(mailin, box)
        thread = threading.Thread(
            target=_loop, args=(poller, cfg.imap_interval, stop), name=f"imap:{box.name}"
        )
        thread.daemon = True
        thread.start()
        threads.append(thread)
    return threads


def _loop(poller: Poller, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            taken = poller.poll_once()
            IMAP_POLLS.labels(poller.mailbox.name, "ok").inc()
            if taken:
                MAIL_IN.labels("imap", "taken").inc(taken)
                log.info("%s: took %d messages", poller.mailbox.name, taken)
        except Exception as exc:  # noqa: BLE001 - the next poll tries again from the position
            IMAP_POLLS.labels(poller.mailbox.name, "failed").inc()
            log.warning(
                "%s: poll stopped (%s); next poll in %ss", poller.mailbox.name, exc, interval
            )
        stop.wait(interval)
