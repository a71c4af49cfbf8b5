"""The audit index: each event of a service's own log, what it concerns and what it changed.

A read model like the others (`audit_index` in every service's READ_MODELS, rebuilt with
`hostledger readmodels rebuild <service> audit_index`), fed by the service's own log in
order. For every stored event it keeps one row of `audit_events`: the position in the
log, the aggregate (id, type, version), the event type, its time (the event's timestamp,
from the injectable clock), who did it (`actor`, `on_behalf_of`, `cause`, stamped by
HostledgerApplication.save), its reason when it has one, a summary in plain words, and
what it changed, `{field: [before, after]}`. `audit_refs` says which objects each event
concerns, `(kind, object id)`, indexed so that one object's history pages in time order
however long it is.

What an event concerns:
- its own aggregate, when the service's mapping says which kind of object it is;
- every attribute that names an object (`customer_id`, `invoice_id`, ... and lists of
  them, `customer_ids` ...; a mapping adds its own, such as `referrer_id`), also inside
  an edit's `changes`;
- the customer its aggregate was created for: an event of an aggregate whose creation
  named a customer concerns that customer too (`audit_aggregates.owners`);
- who did it: a staff member's actions are in that member's history (also while acting
  in a client's panel, as `on_behalf_of`), a client's in its customer's.

What an event changed: the index keeps, per aggregate, the last value it saw of each of
its events' attributes and of the lifecycle fields its events set without carrying them
(`status`, `deleted` ...: the mapping's `effects`) in `audit_aggregates.fields`; an
event's `changes` are the values that differ from them (an edit's `changes` dict counts
as its fields; a dict is one field per key, `buyer.email`). Attributes that describe
the event rather than the object (an amount credited, a message's body: the mapping's
`moments`) have no before. Secrets are never kept (password hashes, tokens, TOTP
secrets: `is_secret`), nor bulky values (file contents, whole message lists); long text
is cut.

Bookkeeping aggregates (the mapping's `internal`: unique-name indexes, idempotency keys)
are in the index too, with their changes, so that it covers the whole log, but concern no
object: no history shows them.

A service answers `audit_history`, `audit_events` (a time window of the whole log) and
`audit_state` from it (services/infra/service.py); the gateway merges the services'
histories (gateway/api/audit.py) and exports (gateway/api/audit_export.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from contracts.audit import KINDS
from contracts.errors import NotFound
from services.infra.readmodels import ReadModel

# what every stored event carries besides its own attributes
ENVELOPE = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "actor",
        "on_behalf_of",
        "cause",
        "request_id",
    }
)
# attributes that name an object of a kind, by their name
REFERENCES: dict[str, str] = {f"{kind}_id": kind for kind in KINDS} | {
    f"{kind}_ids": kind for kind in KINDS
}
# the kinds an aggregate's creation passes on to all its later events
INHERITED = ("customer",)
# attributes of an event that describe it, not the object, in every service
MOMENTS = frozenset({"at", "comment"})
# values that are never kept: contents of files and raw messages
BULKY = frozenset({"content", "raw", "data", "bytes"})
SECRET_NAMES = frozenset(
    {"otp", "answer", "credentials", "request_key", "recovery_code", "api_key", "private_key"}
)
MAX_TEXT = 1000
# the fields an aggregate's events set in their own code rather than carry (where an
# object stands in its life: paid, suspended, deleted ...); a mapping's `effects` say
# which event sets which, so that a history shows them changing
LIFECYCLE = frozenset(
    {
        "status",
        "active",
        "removed",
        "deleted",
        "archived",
        "two_factor",
        "overdue",
        "reminded",
        "confirmed",
    }
)
ELLIPSIS = "…"

# how summaries name fields (else: the name without `_id`, in words)
FIELD_LABELS = {
    "email": "e-mail",
    "new_email": "new e-mail",
    "previous_email": "previous e-mail",
    "name": "name",
    "display_name": "name",
    "group_ids": "groups",
    "notify": "notification preferences",
    "verified_phone": "verified phone",
}
# summaries of events any service may have (by event name; {subject}, {fields})
SUMMARIES: dict[str, str] = {
    "Edited": "{subject} {fields} changed",
    "Changed": "{subject} {fields} changed",
    "TwoFactorEnabled": "{subject}: two-factor authentication turned on",
    "TwoFactorDisabled": "{subject}: two-factor authentication turned off",
    "TwoFactorReset": "{subject}: two-factor authentication turned off by staff",
    "RecoveryCodeUsed": "{subject}: a two-factor recovery code used",
    "PasswordChanged": "{subject} password changed",
}


def is_secret(name: str) -> bool:
    """A field whose value the index never keeps: passwords and their hashes, secrets,
    tokens, one-time codes, stored answers (which may hold a password shown once)."""
    lowered = str(name).lower()
    return (
        lowered in SECRET_NAMES
        or lowered.endswith("_hash")
        or any(word in lowered for word in ("password", "secret", "token"))
    )


@dataclass(frozen=True)
class AuditMapping:
    """What one service's aggregates are, for its audit index.

    `kinds`: aggregate class name -> kind of object (customer, invoice, ...).
    `references`: attribute names that name an object of a kind, beyond REFERENCES.
    `internal`: bookkeeping aggregate classes (indexes, idempotency keys): in no history.
    `moments`: aggregate class name -> attributes that describe an event, not the object.
    `bulky`: attribute names whose values are too large to keep (lists of messages ...).
    `nested`: "Class.Event" -> the attribute an edit's `changes` are keys of (`buyer`).
    `summaries`: "Class.Event" or "Event" -> a summary, text with {subject} and {fields}
    or a function of the event's values.
    `subjects`: aggregate class name -> how summaries name it.
    `effects`: "Class.Event" -> the values of LIFECYCLE fields the event sets without
    carrying them (`Service.Suspended` sets `status` to `suspended`), or a function of the
    event's values giving them (where the event's code decides by its values): its
    changes show them, before → after, as if the event carried them.
    """

    kinds: Mapping[str, str] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)
    internal: frozenset[str] = frozenset()
    moments: Mapping[str, frozenset[str]] = field(default_factory=dict)
    bulky: frozenset[str] = frozenset()
    nested: Mapping[str, str] = field(default_factory=dict)
    summaries: Mapping[str, str | Callable[[dict], str]] = field(default_factory=dict)
    subjects: Mapping[str, str] = field(default_factory=dict)
    effects: Mapping[str, Mapping[str, Any] | Callable[[dict], Mapping[str, Any]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        unknown = {k for k in (*self.kinds.values(), *self.references.values()) if k not in KINDS}
        if unknown:
            raise ValueError(f"unknown kinds of object: {sorted(unknown)}")
        untracked = {
            f for values in self.effects.values() if not callable(values) for f in values
        } - LIFECYCLE
        if untracked:
            raise ValueError(f"effects on fields that are no lifecycle field: {sorted(untracked)}")

    def kind_of_attribute(self, name: str) -> str | None:
        return self.references.get(name) or REFERENCES.get(name)

    def types_of(self, kind: str) -> list[str]:
        """The aggregate classes that are objects of `kind`."""
        return sorted(t for t, k in self.kinds.items() if k == kind)


# -- JSON-safe values ----------------------------------------------------------------------


def clean_text(text: str, limit: int | None = MAX_TEXT) -> str:
    """Text PostgreSQL takes (no NUL, no lone surrogate), cut to `limit` characters."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(text) > limit:
        text = text[:limit] + ELLIPSIS
    return text


def instant(at: datetime) -> str:
    """A time as the index answers it: ISO 8601 in UTC, always with microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def plain(value: Any, limit: int | None = MAX_TEXT, bulky: frozenset[str] = BULKY):
    """`value` as JSON: ids and numbers as text where JSON has no type for them, times in
    UTC, secrets and bulky entries of dicts left out, bytes never kept (None)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return instant(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, Mapping):
        return {
            clean_text(str(k), None): plain(v, limit, bulky)
            for k, v in value.items()
            if not is_secret(k) and str(k) not in bulky
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, limit, bulky) for v in value]
    return clean_text(str(value), limit)


def _as_uuid(value) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return None
    return None


# -- what one event concerns and changed (pure) ----------------------------------------------


@dataclass
class Memory:
    """What the index keeps of one aggregate between its events: the objects its creation
    named (`owners`, passed on to its later events), the last value of each field, and
    its class (an event a base class defines names that class, not the aggregate's)."""

    owners: list[tuple[str, str]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    aggregate_type: str | None = None


@dataclass
class Entry:
    """One event in the index."""

    position: int
    aggregate_id: UUID
    aggregate_type: str
    version: int
    event_type: str
    occurred_at: datetime
    actor: dict | None
    on_behalf_of: dict | None
    cause: str | None
    reason: str | None
    summary: str
    changes: dict[str, list]
    references: list[tuple[str, str]]
    internal: bool = False


def event_names(event, memory: Memory | None = None) -> tuple[str, str]:
    """(aggregate class, event name) of a domain event: `("Customer", "Corrected")`. The
    class is the one its creation recorded (`originator_topic`), else the one the index
    remembers, else the class that defines the event."""
    qualname = type(event).__qualname__
    defined_in, _, name = qualname.rpartition(".")
    topic = getattr(event, "originator_topic", None)
    if isinstance(topic, str) and topic:
        return topic.rpartition(":")[2].rpartition(".")[2], name
    if memory is not None and memory.aggregate_type:
        return memory.aggregate_type, name
    return defined_in or name, name


def extract(mapping: AuditMapping, event, position: int, memory: Memory | None):
    """The index entry of `event` (at `position` in the log) and what the index keeps of
    its aggregate afterwards. Pure: the same event and memory give the same entry."""
    aggregate_type, name = event_names(event, memory)
    aggregate_type = clean_text(aggregate_type, None)
    memory = (
        Memory(list(memory.owners), dict(memory.fields), memory.aggregate_type)
        if memory
        else Memory()
    )
    memory.aggregate_type = aggregate_type
    internal = aggregate_type in mapping.internal
    attributes = {
        k: v for k, v in vars(event).items() if k not in ENVELOPE and not k.startswith("_")
    }
    reason = attributes.pop("reason", None)
    reason = clean_text(reason) if isinstance(reason, str) else None
    actor = plain(getattr(event, "actor", None))
    on_behalf_of = plain(getattr(event, "on_behalf_of", None))
    cause = getattr(event, "cause", None)
    cause = clean_text(str(cause)) if cause is not None else None

    named: list[str] = []  # the fields an edit's `changes` name
    given: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == "changes" and isinstance(value, Mapping):
            prefix = mapping.nested.get(f"{aggregate_type}.{name}")
            for sub, sub_value in value.items():
                given[f"{prefix}.{sub}" if prefix else str(sub)] = sub_value
                named.append(str(sub))
        else:
            given[key] = value
    # an event a base class defines (`TwoFactorAccount.TwoFactorEnabled`) by that class
    defined_in = type(event).__qualname__.rpartition(".")[0]
    effects = (
        mapping.effects.get(f"{aggregate_type}.{name}")
        or mapping.effects.get(f"{defined_in}.{name}")
        or {}
    )
    if callable(effects):
        effects = {k: v for k, v in effects(given).items() if k in LIFECYCLE}

    references: list[tuple[str, str]] = []
    if not internal:
        own_kind = mapping.kinds.get(aggregate_type)
        if own_kind:
            references.append((own_kind, str(event.originator_id)))
        named_objects = _references(mapping, given)
        if event.originator_version == 1:
            memory.owners = [
                r for r in named_objects if r[0] in INHERITED and r[1] != str(event.originator_id)
            ]
        references += named_objects + [tuple(r) for r in memory.owners]
        references += _people(actor, on_behalf_of)
        references = list(dict.fromkeys((k, i) for k, i in references))
    # what the event sets without carrying it counts as given (after the references: a
    # lifecycle value names no object)
    changes = _changes(mapping, aggregate_type, {**effects, **given}, memory)

    values = {k: plain(v) for k, v in given.items() if not is_secret(k)}
    entry = Entry(
        position=position,
        aggregate_id=event.originator_id,
        aggregate_type=aggregate_type,
        version=event.originator_version,
        event_type=f"{aggregate_type}.{name}",
        occurred_at=event.timestamp,
        actor=actor,
        on_behalf_of=on_behalf_of,
        cause=cause,
        reason=reason,
        summary=summarize(mapping, aggregate_type, name, named, dict(values, reason=reason)),
        changes=changes,
        references=references,
        internal=internal,
    )
    return entry, memory


def _references(mapping: AuditMapping, given: dict) -> list[tuple[str, str]]:
    found = []
    for key, value in given.items():
        kind = mapping.kind_of_attribute(key.rpartition(".")[2])
        if kind is None:
            continue
        for item in value if isinstance(value, list | tuple | set | frozenset) else (value,):
            ident = _as_uuid(item)
            if ident is not None:
                found.append((kind, str(ident)))
    return found


def _people(actor: dict | None, on_behalf_of: dict | None) -> list[tuple[str, str]]:
    """Whose history an event is in because they did it."""
    found = []
    for who, as_kind in ((actor, {"staff": "staff", "client": "customer"}), (on_behalf_of, {})):
        if not isinstance(who, dict):
            continue
        kind = {"staff": "staff", **as_kind}.get(who.get("kind"))
        ident = _as_uuid(who.get("id"))
        if kind and ident is not None:
            found.append((kind, str(ident)))
    return found


def _flatten(given: dict) -> dict:
    """A dict value is one field per key (`buyer.email`), one level deep."""
    out = {}
    for key, value in given.items():
        if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
            for sub, sub_value in value.items():
                out[f"{key}.{sub}"] = sub_value
        else:
            out[key] = value
    return out


def _changes(mapping: AuditMapping, aggregate_type: str, given: dict, memory: Memory) -> dict:
    moments = MOMENTS | mapping.moments.get(aggregate_type, frozenset())
    bulky = BULKY | mapping.bulky
    changes = {}
    for key, value in _flatten(given).items():
        top, leaf = key.partition(".")[0], key.rpartition(".")[2]
        if is_secret(top) or is_secret(leaf) or top in bulky or leaf in bulky:
            continue
        after = plain(value, bulky=bulky)
        if top in moments:
            if after is not None:
                changes[key] = [None, after]
            continue
        before = memory.fields.get(key)
        if before != after:
            changes[key] = [before, after]
        memory.fields[key] = after
    return changes


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(name: str) -> str:
    """`PersonalAccount` -> `personal account`."""
    return _CAMEL.sub(" ", name).lower()


def label(field_name: str) -> str:
    if field_name in FIELD_LABELS:
        return FIELD_LABELS[field_name]
    base = re.sub(r"_ids?$", "", field_name)
    return base.replace("_", " ").replace(".", " ")


def join(labels: list[str]) -> str:
    labels = list(dict.fromkeys(labels))
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def summarize(
    mapping: AuditMapping, aggregate_type: str, name: str, named: list[str], values: dict
) -> str:
    """The event in plain words: "Customer e-mail corrected", "Invoice paid"."""
    subject = mapping.subjects.get(aggregate_type) or words(aggregate_type).capitalize()
    fields_text = join([label(f) for f in named])
    rule = (
        mapping.summaries.get(f"{aggregate_type}.{name}")
        or mapping.summaries.get(name)
        or SUMMARIES.get(name)
    )
    if callable(rule):
        return clean_text(rule(values))
    if rule and (fields_text or "{fields}" not in rule):
        return clean_text(" ".join(rule.format(subject=subject, fields=fields_text).split()))
    verb = words(name)
    return f"{subject} {fields_text} {verb}" if fields_text else f"{subject} {verb}"


# -- the read model --------------------------------------------------------------------------


class AuditIndex(ReadModel):
    """A service's audit index; a subclass per service sets `mapping`."""

    name = "audit_index"
    mapping: ClassVar[AuditMapping] = AuditMapping()
    table_names = ("audit_events", "audit_refs", "audit_aggregates")
    tables = (
        """
        CREATE TABLE IF NOT EXISTS audit_events (
            position bigint PRIMARY KEY,
            aggregate_id uuid NOT NULL,
            aggregate_type text NOT NULL,
            version bigint NOT NULL,
            event_type text NOT NULL,
            occurred_at timestamptz NOT NULL,
            actor json,
            on_behalf_of json,
            cause text,
            reason text,
            summary text NOT NULL,
            changes json NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS audit_events_aggregate ON audit_events (aggregate_id, version)",
        # a time window of the whole log in order (the export): a range scan from the cursor
        "CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (occurred_at, position)",
        # one object's history in time order: an index-only range scan from the cursor
        # (newest first: the same key scanned backwards)
        """
        CREATE TABLE IF NOT EXISTS audit_refs (
            kind text NOT NULL,
            object_id uuid NOT NULL,
            occurred_at timestamptz NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (kind, object_id, occurred_at, position)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS audit_aggregates (
            aggregate_id uuid PRIMARY KEY,
            aggregate_type text NOT NULL,
            owners json NOT NULL,
            fields json NOT NULL
        )
        """,
    )

    app = None  # the application whose log it indexes (bound by its Follower)

    def bind(self, app) -> None:
        self.app = app

    def handles(self, event) -> bool:
        """Every event is indexed."""
        return True

    def project(self, curs, event) -> None:
        raise TypeError("the audit index needs each event's position: use project_stored")

    def project_stored(self, curs, position: int, event) -> None:
        curs.execute(
            "SELECT aggregate_type, owners, fields FROM audit_aggregates WHERE aggregate_id = %s",
            (event.originator_id,),
        )
        row = curs.fetchone()
        memory = None
        if row is not None:
            memory = Memory(
                [tuple(o) for o in row["owners"]], dict(row["fields"]), row["aggregate_type"]
            )
        entry, memory = extract(self.mapping, event, position, memory)
        curs.execute(
            "INSERT INTO audit_events (position, aggregate_id, aggregate_type, version,"
            " event_type, occurred_at, actor, on_behalf_of, cause, reason, summary, changes)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s::json, %s, %s, %s, %s::json)"
            " ON CONFLICT (position) DO NOTHING",
            (
                entry.position,
                entry.aggregate_id,
                entry.aggregate_type,
                entry.version,
                entry.event_type,
                entry.occurred_at,
                _json(entry.actor),
                _json(entry.on_behalf_of),
                entry.cause,
                entry.reason,
                entry.summary,
                _json(entry.changes),
            ),
        )
        if entry.references:
            curs.executemany(
                "INSERT INTO audit_refs (kind, object_id, occurred_at, position)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(k, UUID(i), entry.occurred_at, entry.position) for k, i in entry.references],
            )
        owners = [list(o) for o in memory.owners]
        if _is_erasure(event):
            self.derive_again(curs, event.customer_id, position)
        if row is None or entry.changes or owners != row["owners"]:
            curs.execute(
                "INSERT INTO audit_aggregates (aggregate_id, aggregate_type, owners, fields)"
                " VALUES (%s, %s, %s::json, %s::json) ON CONFLICT (aggregate_id) DO UPDATE"
                " SET owners = EXCLUDED.owners, fields = EXCLUDED.fields",
                (
                    entry.aggregate_id,
                    entry.aggregate_type,
                    _json(owners),
                    _json(memory.fields),
                ),
            )

    def derive_again(self, curs, customer_id: UUID, position: int) -> None:
        """After a customer's personal data was erased (at `position`): the rows of every
        aggregate that concerns it, derived again from its events before `position`, which
        now read back with placeholders. A replay of the log, where the key is already
        gone, derives the same rows from the start."""
        from eventsourcing.persistence import StoredEvent
        from psycopg import sql

        ids = self.erased_aggregates(curs, customer_id, position)
        if not ids or self.app is None:
            return
        keys = getattr(self.app, "personal_keys", None)
        if keys is not None:  # an instance that did not erase may still cache the key
            keys.forget(customer_id)
        recorder = self.app.recorder
        table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
        curs.execute(
            sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM {} WHERE originator_id = ANY(%s) AND notification_id < %s"
                " ORDER BY originator_id, originator_version"
            ).format(table),
            (ids, position),
        )
        rows = curs.fetchall()
        memories: dict[UUID, tuple[str, Memory]] = {}
        updates = []
        for r in rows:
            stored = StoredEvent(
                originator_id=r["originator_id"],
                originator_version=r["originator_version"],
                topic=r["topic"],
                state=bytes(r["state"]),
            )
            event = self.app.mapper.to_domain_event(stored)
            first_type, memory = memories.get(r["originator_id"], (None, None))
            entry, memory = extract(self.mapping, event, r["notification_id"], memory)
            memories[r["originator_id"]] = (first_type or entry.aggregate_type, memory)
            updates.append((entry.summary, _json(entry.changes), entry.reason, entry.position))
        curs.executemany(
            # the reason too: staff's words about the customer are sealed with its key
            "UPDATE audit_events SET summary = %s, changes = %s::json, reason = %s"
            " WHERE position = %s",
            updates,
        )
        curs.executemany(
            "UPDATE audit_aggregates SET owners = %s::json, fields = %s::json"
            " WHERE aggregate_id = %s",
            [
                (_json([list(o) for o in m.owners]), _json(m.fields), aggregate_id)
                for aggregate_id, (_, m) in memories.items()
            ],
        )

    def erased_aggregates(self, curs, customer_id: UUID, position: int) -> list:
        """The aggregates whose rows are derived again when the customer's personal data is
        erased at `position`: those that concern it (a service adds its bookkeeping ones
        that hold its personal values)."""
        curs.execute(
            "SELECT DISTINCT e.aggregate_id FROM audit_refs r"
            " JOIN audit_events e ON e.position = r.position"
            " WHERE r.kind = 'customer' AND r.object_id = %s AND r.position < %s",
            (customer_id, position),
        )
        return [r["aggregate_id"] for r in curs.fetchall()]


def _is_erasure(event) -> bool:
    from services.infra.personal_data import PersonalData

    return isinstance(event, PersonalData.Erased)


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


# -- the questions ---------------------------------------------------------------------------


def history(
    app, kind: str, object_id: UUID, cursor: dict | None, limit: int, order: str = "oldest"
) -> list[dict]:
    """The events of this service concerning `(kind, object_id)` after `cursor` (a point
    of the merged order `(occurred_at, service, position)`), at most `limit`, in that
    order; `order="newest"`: before `cursor`, in that order reversed."""
    statement, params = history_statement(app.service, kind, object_id, cursor, order=order)
    with app.datastore.transaction() as curs:
        curs.execute(f"{statement} LIMIT %s", (*params, limit))
        rows = curs.fetchall()
    return [_item(app.service, row) for row in rows]


def window(
    app, since: datetime, until: datetime | None, cursor: dict | None, limit: int
) -> list[dict]:
    """Every event of this service with `since <= occurred_at < until` (no `until`: up to
    the last) after `cursor`, at most `limit`, in the merged order; bookkeeping events
    too (the export of a time window is the whole log of that time)."""
    statement, params = window_statement(app.service, since, until, cursor)
    with app.datastore.transaction() as curs:
        curs.execute(f"{statement} LIMIT %s", (*params, limit))
        rows = curs.fetchall()
    return [_item(app.service, row) for row in rows]


def _after(service: str, cursor: dict | None, at: str, position: str) -> tuple[str, list]:
    """The condition "after `cursor` in the merged order" on this service's columns."""
    if cursor is None:
        return "", []
    if service > cursor["service"]:  # this service's events at that instant come after
        return f" AND {at} >= %s", [cursor["occurred_at"]]
    if service < cursor["service"]:
        return f" AND {at} > %s", [cursor["occurred_at"]]
    return f" AND ({at}, {position}) > (%s, %s)", [cursor["occurred_at"], cursor["position"]]


def _before(service: str, cursor: dict | None, at: str, position: str) -> tuple[str, list]:
    """The condition "before `cursor` in the merged order" on this service's columns."""
    if cursor is None:
        return "", []
    if service < cursor["service"]:  # this service's events at that instant come before
        return f" AND {at} <= %s", [cursor["occurred_at"]]
    if service > cursor["service"]:
        return f" AND {at} < %s", [cursor["occurred_at"]]
    return f" AND ({at}, {position}) < (%s, %s)", [cursor["occurred_at"], cursor["position"]]


def history_statement(
    service: str,
    kind: str,
    object_id: UUID,
    cursor: dict | None = None,
    count: bool = False,
    columns: str = "e.*",
    order: str = "oldest",
) -> tuple[str, list]:
    """The SQL (and its parameters) of one object's history in this service's index, in
    order, after `cursor`: a range scan of `audit_refs`' key. `order="newest"`: newest
    first, before `cursor`, the same key scanned backwards. `count`: how many there are;
    `columns`: what of each event (all of `audit_events e`, or ITEM_JSON)."""
    newest = order == "newest"
    where, params = (_before if newest else _after)(service, cursor, "r.occurred_at", "r.position")
    params = [kind, object_id, *params]
    if count:
        return (
            f"SELECT count(*) FROM audit_refs r WHERE r.kind = %s AND r.object_id = %s{where}",
            params,
        )
    return (
        f"SELECT {columns} FROM audit_refs r JOIN audit_events e ON e.position = r.position"
        f" WHERE r.kind = %s AND r.object_id = %s{where}"
        + (
            " ORDER BY r.occurred_at DESC, r.position DESC"
            if newest
            else " ORDER BY r.occurred_at, r.position"
        ),
        params,
    )


def window_statement(
    service: str,
    since: datetime,
    until: datetime | None,
    cursor: dict | None = None,
    count: bool = False,
    columns: str = "e.*",
) -> tuple[str, list]:
    """The SQL (and its parameters) of this service's events in a time window, in order,
    after `cursor`: a range scan of `audit_events_time`. `count`: how many there are;
    `columns`: what of each event (all of `audit_events e`, or ITEM_JSON)."""
    where, params = "e.occurred_at >= %s", [since]
    if until is not None:
        where += " AND e.occurred_at < %s"
        params.append(until)
    after, more = _after(service, cursor, "e.occurred_at", "e.position")
    params += more
    if count:
        return f"SELECT count(*) FROM audit_events e WHERE {where}{after}", params
    return (
        f"SELECT {columns} FROM audit_events e WHERE {where}{after}"
        " ORDER BY e.occurred_at, e.position",
        params,
    )


# one row of `audit_events` (as `e`) as the item `_item` makes of it, less `service`, made
# by PostgreSQL as JSON text: a reader of many rows (the export) parses one column a row
ITEM_JSON = (
    "json_build_object('position', e.position, 'aggregate_id', e.aggregate_id,"
    " 'aggregate_type', e.aggregate_type, 'version', e.version, 'type', e.event_type,"
    " 'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC',"
    ' \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'),'
    " 'actor', e.actor, 'on_behalf_of', e.on_behalf_of, 'cause', e.cause,"
    " 'reason', e.reason, 'summary', e.summary, 'changes', e.changes)::text"
)


def item_of_json(service: str, text: str) -> dict:
    """The item of a row selected as ITEM_JSON: the same as `_item` makes."""
    found = json.loads(text)
    found["service"] = service
    return found


def _item(service: str, row: dict) -> dict:
    return {
        "service": service,
        "position": row["position"],
        "aggregate_id": str(row["aggregate_id"]),
        "aggregate_type": row["aggregate_type"],
        "version": row["version"],
        "type": row["event_type"],
        "occurred_at": instant(row["occurred_at"]),
        "actor": row["actor"],
        "on_behalf_of": row["on_behalf_of"],
        "cause": row["cause"],
        "reason": row["reason"],
        "summary": row["summary"],
        "changes": row["changes"],
    }


def state(app, mapping: AuditMapping, kind: str, object_id: UUID, at: datetime) -> dict:
    """The object `(kind, object_id)` as it stood at `at`: its aggregate rebuilt from its
    events up to the last one at or before `at` (the repository at that version, from a
    snapshot no later than it), as JSON. NotFound when it is not one of this service's
    objects of that kind, or did not exist yet then."""
    types = mapping.types_of(kind)
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT version, aggregate_type, occurred_at FROM audit_events"
            " WHERE aggregate_id = %s AND aggregate_type = ANY(%s) AND occurred_at <= %s"
            " ORDER BY version DESC LIMIT 1",
            (object_id, types, at),
        )
        row = curs.fetchone()
        if row is None:
            curs.execute(
                "SELECT 1 FROM audit_events WHERE aggregate_id = %s AND aggregate_type = ANY(%s)"
                " LIMIT 1",
                (object_id, types),
            )
            existed = curs.fetchone() is not None
    if row is None:
        if existed:
            raise NotFound(f"This {kind} did not exist yet at {instant(at)}.")
        raise NotFound(f"No such {kind}.")
    aggregate = app.repository.get(object_id, version=row["version"])
    return {
        "kind": kind,
        "id": str(object_id),
        "service": app.service,
        "at": instant(at),
        "type": row["aggregate_type"],
        "version": row["version"],
        "as_of": instant(row["occurred_at"]),
        "state": state_of(aggregate),
    }


def state_of(aggregate) -> dict:
    """An aggregate as JSON: its id, version and times, and its attributes without
    secrets (password hashes ...) or file contents; text is not cut."""
    out = {
        "id": str(aggregate.id),
        "version": aggregate.version,
        "created_on": instant(aggregate.created_on),
        "modified_on": instant(aggregate.modified_on),
    }
    for key, value in vars(aggregate).items():
        if key.startswith("_") or is_secret(key) or key in BULKY:
            continue
        out[key] = plain(value, limit=None)
    return out
