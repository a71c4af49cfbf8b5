"""Passwords: the current hash of each account's password, beside the event store.

The event store is kept for ever, chained and exported for auditors: no secret belongs
in it. The events of a customer, a customer's user or a staff member only say that its
password was set (`Registered`, `Added`) or changed (`PasswordChanged`), by whom (their
actor); the hash is kept here, in `credentials`, one row per account with the current
one only, written in the same transaction as the event that says so (`also` of
`app.save`), so the two never disagree: a save that fails (a concurrent change, a taken
username) leaves the row as it was.

    owner_id       the account (a customer, a customer's user, a staff member)
    kind           client | user | staff
    password_hash  argon2id (services/infra/passwords.py)
    changed_at     when it was set (the event's time)
    version        the account's version in the save that set it

Accounts whose password was set before (events of class version 1, which carried
`password_hash`): those events are read as version 2, without the hash
(domain.drop_password_hash), and `move_recorded_hashes`, run as the service starts
(service.py: CustomersStore), copies the last hash each account recorded into the table
where the table has none for it, or has one set at an earlier version (an instance of
an earlier release still running changed it after this one started; such an instance
cannot load the accounts this release records, so all of them should be stopped
first). It reads the log from where it last stopped (`credentials_moved`) and is
idempotent: instances starting at once do the same work and agree. The hashes stay in
those events' stored bytes, which are never rewritten (the log's hash chain covers
them); nothing else reads them.

Why at the service's start rather than when such an account is first loaded: upcasting
is pure and drops the hash before any aggregate sees it (so it reaches no aggregate, no
`audit state` view, no replay's output), and the mapper also decodes events for read
models, the relay and `audit verify-replay`, which must not write; a load that wrote
would make every reader a writer. Not when an application is merely opened either: the
commands open one too (`hostledger audit verify-replay` changes nothing live). After
the start, login, password changes and resets read and write the table alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from eventsourcing.utils import get_topic

from services.customers.domain import Customer, CustomerUser, StaffMember
from services.infra.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

TABLES = (
    """
    CREATE TABLE IF NOT EXISTS credentials (
        owner_id uuid PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('client', 'user', 'staff')),
        password_hash text NOT NULL,
        changed_at timestamptz NOT NULL,
        version bigint NOT NULL
    )
    """,
    # how far the log was read for hashes recorded in events (move_recorded_hashes)
    """
    CREATE TABLE IF NOT EXISTS credentials_moved (
        name text PRIMARY KEY,
        position bigint NOT NULL
    )
    """,
)

KINDS: dict[type, str] = {Customer: "client", CustomerUser: "user", StaffMember: "staff"}

# the stored events that set a password, and the kind of account each is of
SETTING_TOPICS: dict[str, str] = {
    get_topic(Customer.Registered): "client",
    get_topic(Customer.PasswordChanged): "client",
    get_topic(CustomerUser.Added): "user",
    get_topic(CustomerUser.PasswordChanged): "user",
    get_topic(StaffMember.Registered): "staff",
    get_topic(StaffMember.PasswordChanged): "staff",
}
MOVE_BATCH = 1000

_SET = (
    "INSERT INTO credentials AS c (owner_id, kind, password_hash, changed_at, version)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (owner_id) DO UPDATE SET"
    " kind = EXCLUDED.kind, password_hash = EXCLUDED.password_hash,"
    " changed_at = EXCLUDED.changed_at, version = EXCLUDED.version"
)
# a hash recorded in an event replaces only one set at an earlier version
_MOVE = _SET + " WHERE c.version < EXCLUDED.version"


def kind_of(owner) -> str:
    try:
        return KINDS[type(owner)]
    except KeyError:
        raise TypeError(f"{type(owner).__name__} has no password") from None


def set_statement(owner, password_hash: str) -> tuple[str, tuple]:
    """The SQL that keeps `password_hash` as `owner`'s, to pass as `also` to the save of
    the event that sets it (call after that event was triggered)."""
    return (_SET, (owner.id, kind_of(owner), password_hash, owner.modified_on, owner.version))


def recorded_hashes(events: Iterable[tuple[UUID, int, str, dict]]) -> dict[UUID, tuple]:
    """From events as stored (aggregate id, version, topic, state decoded as it was
    written), the last hash each account recorded: {owner_id: (kind, hash, changed_at,
    version)}. Events of version 2 (no hash) and of other topics are left out. Pure."""
    found: dict[UUID, tuple] = {}
    for owner_id, version, topic, state in events:
        kind = SETTING_TOPICS.get(topic)
        password_hash = state.get("password_hash")
        if kind is None or not isinstance(password_hash, str) or not password_hash:
            continue
        if owner_id not in found or found[owner_id][3] < version:
            found[owner_id] = (kind, password_hash, state.get("timestamp"), version)
    return found


def _as_stored(mapper, notification) -> dict:
    """An event's state as it was written, before any upcasting."""
    data = notification.state
    if mapper.cipher:
        data = mapper.cipher.decrypt(data)
    if mapper.compressor:
        data = mapper.compressor.decompress(data)
    return mapper.transcoder.decode(data)


class PasswordCommands:
    """Mixed into services.customers.application.Customers (which provides `datastore`,
    `recorder` and `mapper`)."""

    def password_hash_of(self, owner_id: UUID) -> str | None:
        with self.datastore.transaction() as curs:
            curs.execute("SELECT password_hash FROM credentials WHERE owner_id = %s", (owner_id,))
            row = curs.fetchone()
        return row["password_hash"] if row else None

    def password_matches(self, owner, password: str) -> bool:
        """Whether `password` is `owner`'s; with no owner (an unknown name) it is checked
        against a hash of nobody's, so that the time taken does not tell."""
        password_hash = self.password_hash_of(owner.id) if owner is not None else None
        return verify_password(password_hash, password) and owner is not None

    @staticmethod
    def password_statement(owner, password: str) -> tuple[str, tuple]:
        """`password` hashed and kept as `owner`'s, in the save of the event that says it
        was set or changed (trigger the event first)."""
        return set_statement(owner, hash_password(password))

    def move_recorded_hashes(self) -> int:
        """Copy the hashes that events of class version 1 recorded into the table (see the
        module's docstring); how many rows it wrote."""
        with self.datastore.transaction() as curs:
            curs.execute("SELECT position FROM credentials_moved WHERE name = 'events'")
            row = curs.fetchone()
        start = (row["position"] if row else 0) + 1
        head = self.recorder.max_notification_id() or 0
        topics = sorted(SETTING_TOPICS)
        moved = 0
        while start <= head:
            batch = self.recorder.select_notifications(start, MOVE_BATCH, stop=head, topics=topics)
            found = recorded_hashes(
                (n.originator_id, n.originator_version, n.topic, _as_stored(self.mapper, n))
                for n in batch
            )
            # read up to here: the last one of a full batch, else the head
            reached = batch[-1].id if len(batch) == MOVE_BATCH else head
            with self.datastore.transaction(commit=True) as curs:
                for owner_id, (kind, password_hash, changed_at, version) in found.items():
                    curs.execute(_MOVE, (owner_id, kind, password_hash, changed_at, version))
                    moved += curs.rowcount
                curs.execute(
                    "INSERT INTO credentials_moved AS m (name, position) VALUES ('events', %s)"
                    " ON CONFLICT (name) DO UPDATE SET"
                    " position = greatest(m.position, EXCLUDED.position)",
                    (reached,),
                )
            start = reached + 1
        if moved:
            log.info(
                "moved %d password hash(es) recorded in events to the credentials table", moved
            )
        return moved
