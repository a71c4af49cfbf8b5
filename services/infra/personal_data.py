"""Personal data in events, erasable by destroying a per-customer key (crypto-shredding).

Stored events are chained (services.infra.chain): their bytes can never be rewritten. So
the personal fields of an event (a name, an e-mail, a phone, an address, a ticket's text)
are sealed when the event is stored, each with AES-256-GCM under a data key of the
customer they belong to, a fresh 96-bit nonce per value, and the customer, the event
(aggregate id and version) and the field as associated data: a sealed value moved to
another customer, event or field, or changed by one bit, is refused (`PersonalDataTampered`),
never read as something else. Each service keeps its customers' keys in its own database
(`personal_keys`), never in an event.

Erasure destroys the key (the row stays, with `data_key` NULL, who erased it, when and
why) in the same transaction as the service's `PersonalData.Erased` event. From then on
every sealed value of that customer reads back as its placeholder (`PLACEHOLDER`, or what
the service's declaration says for that field, such as an empty list), both for the live
service and for anyone replaying the log: the chain still verifies, because the stored
bytes did not change. The read models handle the `Erased` event by setting the same
placeholders in their rows (the audit index derives the customer's rows again from the
events), so a replay equals the live state.

Which fields are personal is said per service (`PersonalFields`): for each event class
(`"Ticket.MessageAdded"`), the attribute paths (`"buyer.email"`, `"changes.phone"`, or
`"messages.*.body"` for a key of every item of a list, each item sealed on its own) and,
where the placeholder is not the text `[erased]`, which placeholder. The customer a value
belongs to is the event's `customer_id`, else the aggregate's (stamped by
HostledgerApplication.save). An event with no customer keeps its values as they are, and
so does a value that is None.

Keys are cached per process for `HOSTLEDGER_PERSONAL_KEY_CACHE_SECONDS` (5 by default): an
instance that did not perform an erasure stops opening that customer's values within that
time at most; a destroyed key is remembered for good.

Events stored before this existed hold personal values in plain text: they still load,
and the read models and the audit index are scrubbed all the same, but those bytes stay in
the log (they are chained): only what was recorded since can be erased by key destruction.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import event
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from contracts.fields import ERASED
from services.infra.domain import Aggregate

PLACEHOLDER = ERASED  # "[erased]"
SEALED = "_sealed_"  # {"_sealed_": [customer id, base64(nonce || ciphertext)]}
SUBJECT = "_personal_subject"  # stamped on an event by save(), never stored
_VERSION = b"hostledger-personal-1"
_NONCE_BYTES = 12

PERSONAL_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS personal_keys (
    customer_id uuid PRIMARY KEY,
    data_key bytea,
    created_at timestamptz NOT NULL,
    erased_at timestamptz,
    erased_by json,
    reason text
)
"""

# the id of a customer's PersonalData aggregate in every service
_NS = UUID("6b0f6c52-51c4-4d1e-9a3e-0b6cf0c5e1a7")


class PersonalDataTampered(MapperDeserialisationError):
    """A sealed value does not open with its customer's key: it was changed or moved."""


# -- the declaration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonalFields:
    """Which attributes of which events are personal, in one service.

    `rules`: event class qualname (`"PersonalAccount.Opened"`) -> {path: placeholder}; a
    path is an attribute (`"body"`), a key of a dict attribute (`"buyer.email"`), or a key
    of every item of a list attribute (`"messages.*.body"`)."""

    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def of(self, event_class: type) -> Mapping[str, Any]:
        return self.rules.get(event_class.__qualname__) or {}

    @staticmethod
    def fields(*paths: str, **placeholders: Any) -> dict[str, Any]:
        """{path: PLACEHOLDER} for `paths`, plus `placeholders` (a dotted path as
        `buyer__email`)."""
        out: dict[str, Any] = dict.fromkeys(paths, PLACEHOLDER)
        out.update({k.replace("__", "."): v for k, v in placeholders.items()})
        return out


NOTHING = PersonalFields()


# -- the cipher --------------------------------------------------------------------------------


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def associated_data(customer_id: str, originator_id: Any, version: int, path: str) -> bytes:
    return b"|".join(
        (
            _VERSION,
            str(customer_id).encode(),
            str(originator_id).encode(),
            b"%d" % version,
            path.encode(),
        )
    )


def seal(key: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, aad)).decode("ascii")


def unseal(key: bytes, sealed: str, aad: bytes) -> bytes:
    """The plaintext; PersonalDataTampered when it does not open."""
    try:
        raw = base64.b64decode(sealed.encode("ascii"), validate=True)
        return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise PersonalDataTampered("a sealed personal value does not open: it was altered") from exc


def is_sealed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get(SEALED), list)
        and len(value[SEALED]) == 2
    )


# -- the keys ----------------------------------------------------------------------------------


class KeyStore:
    """A service's customer keys (`personal_keys`), read outside the pool's transactions
    (the mapper opens values while a caller may hold a pooled connection) on the process's
    session-lock connection (services.infra.databases.SessionLocks), so keys cost no
    connection of their own; cached for `ttl` seconds."""

    def __init__(self, conninfo: str | Callable[[], str], ttl: float = 5.0, clock=time.monotonic):
        self._conninfo = conninfo
        self.ttl = ttl
        self._clock = clock
        self._locks = None
        self._cache: dict[str, tuple[float, bytes | None]] = {}

    def _connection(self):
        if self._locks is None:
            from services.infra.databases import session_locks

            conninfo = self._conninfo() if callable(self._conninfo) else self._conninfo
            self._locks = session_locks(conninfo)
            self._locks.attach(self)  # the table is made with the application's
        return self._locks

    def _execute(self, statement: str, params: tuple) -> tuple | None:
        for attempt in (1, 2):
            try:
                return self._connection().fetch_one(statement, *params)
            except psycopg.OperationalError:
                if attempt == 2:
                    raise  # the connection is opened again at the next call
        return None

    def close(self) -> None:
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.detach(self)

    def _cached(self, customer_id: str) -> tuple[bool, bytes | None]:
        hit = self._cache.get(customer_id)
        if hit is None:
            return False, None
        at, key = hit
        if key is None or self._clock() - at < self.ttl:  # an erasure is for good
            return True, key
        return False, None

    def key(self, customer_id: str, create: bool = False) -> bytes | None:
        """The customer's key; None once erased, or (unless `create`) never made."""
        customer_id = str(customer_id)
        found, key = self._cached(customer_id)
        if found:
            return key
        row = self._execute(
            "SELECT data_key, erased_at FROM personal_keys WHERE customer_id = %s",
            (customer_id,),
        )
        if row is None and create:
            # one statement whatever another process did meanwhile: the row it made (an
            # update that changes nothing gives it back) or the one made here
            row = self._execute(
                "INSERT INTO personal_keys (customer_id, data_key, created_at)"
                " VALUES (%s, %s, now()) ON CONFLICT (customer_id)"
                " DO UPDATE SET customer_id = personal_keys.customer_id"
                " RETURNING data_key, erased_at",
                (customer_id, new_key()),
            )
        if row is None:
            return None
        key = bytes(row[0]) if row[0] is not None else None
        if key is not None or row[1] is not None:
            self._cache[customer_id] = (self._clock(), key)
        return key

    def forget(self, customer_id: Any) -> None:
        self._cache.pop(str(customer_id), None)

    def prepare_many(self, customer_ids, create: bool = True) -> None:
        """Cache the keys of many customers (with `create`, made for those that have none)
        in one or two statements, where `key` takes one or two per customer: before one
        save that seals the events of many customers (a message to customers opens a
        ticket for each), or before reading many customers' events."""
        wanted = [c for c in dict.fromkeys(map(str, customer_ids)) if not self._cached(c)[0]]
        if not wanted:
            return
        if create:
            self._execute(
                "WITH made AS (INSERT INTO personal_keys (customer_id, data_key, created_at)"
                " SELECT unnest(%s::uuid[]), unnest(%s::bytea[]), now()"
                " ON CONFLICT (customer_id) DO NOTHING RETURNING 1) SELECT count(*) FROM made",
                (wanted, [new_key() for _ in wanted]),
            )
        row = self._execute(
            "SELECT array_agg(customer_id::text), array_agg(data_key),"
            " array_agg(erased_at IS NOT NULL) FROM personal_keys"
            " WHERE customer_id = ANY(%s::uuid[])",
            (wanted,),
        )
        now = self._clock()
        for customer, key, erased in zip(*(row if row and row[0] else ((), (), ())), strict=True):
            if key is not None or erased:  # as `key` caches
                self._cache[customer] = (now, bytes(key) if key is not None else None)


def destroy_statement(
    customer_id: UUID, at: datetime, erased_by: dict | None, reason: str
) -> tuple[str, tuple]:
    """SQL that destroys the customer's key (kept: who, when, why), for a save's `also`."""
    import json

    return (
        "INSERT INTO personal_keys (customer_id, data_key, created_at, erased_at, erased_by,"
        " reason) VALUES (%s, NULL, %s, %s, %s::json, %s) ON CONFLICT (customer_id) DO UPDATE"
        " SET data_key = NULL, erased_at = COALESCE(personal_keys.erased_at, EXCLUDED.erased_at),"
        " erased_by = COALESCE(personal_keys.erased_by, EXCLUDED.erased_by),"
        " reason = COALESCE(personal_keys.reason, EXCLUDED.reason)",
        (customer_id, at, at, json.dumps(erased_by), reason),
    )


# -- the mapper --------------------------------------------------------------------------------


def _places(container: Any, parts: list[str], done: tuple[str, ...], copy: bool):
    """(holder, key, concrete path) for every place the path's `parts` name under
    `container`: a part is a dict key, or `*` for every item of a list (`messages.*.body`:
    the body of each message; its concrete path, `messages.3.body`, names the item). With
    `copy`, the dicts and lists on the way are copied in place, so that the event's own are
    untouched when a value is replaced."""
    head, rest = parts[0], parts[1:]
    if head == "*":
        if not isinstance(container, list):
            return
        keys: Any = range(len(container))
    elif isinstance(container, dict) and head in container:
        keys = (head,)
    else:
        return
    for key in keys:
        label = (*done, str(key))
        if not rest:
            yield container, key, ".".join(label)
            continue
        inner = container[key]
        if not isinstance(inner, dict | list):
            continue
        if copy:
            inner = dict(inner) if isinstance(inner, dict) else list(inner)
            container[key] = inner
        yield from _places(inner, rest, label, copy)


class PersonalMapper(Mapper):
    """The eventsourcing Mapper, sealing the personal fields of the events it stores and
    opening them (or giving their placeholder) when it reads them."""

    def __init__(
        self,
        transcoder,
        compressor=None,
        cipher=None,
        *,
        personal=NOTHING,
        keys: KeyStore | None = None,
    ):
        super().__init__(transcoder, compressor=compressor, cipher=cipher)
        self.personal = personal
        self.keys = keys

    def to_stored_event(self, domain_event) -> StoredEvent:
        rules = self.personal.of(type(domain_event))
        subject = vars(domain_event).get(SUBJECT)
        if not rules and subject is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        state.pop(SUBJECT, None)
        customer = state.get("customer_id") or subject
        if rules and customer is not None and self.keys is not None:
            self._seal(state, rules, str(customer))
        shadow = object.__new__(type(domain_event))
        object.__setattr__(shadow, "__dict__", state)
        return super().to_stored_event(shadow)

    def _seal(self, state: dict, rules: Mapping[str, Any], customer: str) -> None:
        key = None
        for path in rules:
            for holder, name, place in _places(state, path.split("."), (), copy=True):
                if holder[name] is None:
                    continue
                if key is None:
                    key = self.keys.key(customer, create=True)
                if key is None:  # erased already: what comes in for it is not kept
                    holder[name] = rules[path]
                    continue
                plaintext = self.transcoder.encode({"v": holder[name]})
                aad = associated_data(
                    customer, state["originator_id"], state["originator_version"], place
                )
                holder[name] = {SEALED: [customer, seal(key, plaintext, aad)]}

    def to_domain_event(self, stored_event: StoredEvent):
        domain_event = super().to_domain_event(stored_event)
        rules = self.personal.of(type(domain_event))
        if rules:
            self._open(vars(domain_event), rules, stored_event)
        return domain_event

    def _open(self, state: dict, rules: Mapping[str, Any], stored: StoredEvent) -> None:
        for path, placeholder in rules.items():
            for holder, name, place in _places(state, path.split("."), (), copy=False):
                if not is_sealed(holder[name]):
                    continue
                customer, sealed = holder[name][SEALED]
                key = self.keys.key(customer) if self.keys is not None else None
                if key is None:
                    holder[name] = placeholder
                    continue
                aad = associated_data(
                    customer, stored.originator_id, stored.originator_version, place
                )
                holder[name] = self.transcoder.decode(unseal(key, sealed, aad))["v"]


# -- the erasure, recorded in each service's own log -------------------------------------------


class PersonalData(Aggregate):
    """A customer's personal data in one service: created when it is erased (who, when,
    why are the event's actor, timestamp and reason)."""

    @staticmethod
    def create_id(customer_id: UUID, **_: Any) -> UUID:
        return uuid5(_NS, str(customer_id))

    @classmethod
    def id_for(cls, customer_id: UUID) -> UUID:
        return uuid5(_NS, str(customer_id))

    @event("Erased")
    def __init__(self, customer_id: UUID, reason: str, at: datetime):
        self.customer_id = customer_id
        self.reason = reason
        self.erased_at = at
