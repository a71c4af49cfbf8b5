"""Parked events: what a loop that applies events could not apply, kept where staff see it.

Every loop that applies events (consumers, read-model followers, the mail gateway's
notification builder, schedulers) records here the one item that keeps failing and
goes on with the next (DESIGN.md, event flow, rules 4 and 5). `upstream` says which
loop: an upstream service's name for a consumer, `readmodel:<name>` for a read model,
`scheduler:<job>` for a scheduler. Log events have a `position`; a scheduler's items
have an `item` key instead (a service and its period, an invoice, ...).

Parking must not fail on the data it parks: PostgreSQL refuses NUL in text and in
jsonb, lone surrogates, and NaN in jsonb, so the `envelope` column holds a copy with
those replaced, and `envelope_raw` the exact original as ASCII JSON (NUL escaped).
"""

from __future__ import annotations

import json
import math
import re

from psycopg.types.json import Jsonb

PARKED_TABLE = """
CREATE TABLE IF NOT EXISTS parked_events (
    id bigserial PRIMARY KEY,
    upstream text NOT NULL,
    position bigint,
    type text,
    envelope jsonb NOT NULL,
    error text NOT NULL,
    attempts integer NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolution text
);
ALTER TABLE parked_events ADD COLUMN IF NOT EXISTS envelope_raw text;
ALTER TABLE parked_events ADD COLUMN IF NOT EXISTS item text;
CREATE UNIQUE INDEX IF NOT EXISTS parked_events_position
    ON parked_events (upstream, position) WHERE position IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS parked_events_item
    ON parked_events (upstream, item) WHERE item IS NOT NULL;
"""

BIGINT_MAX = 2**63 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value, limit: int | None = None) -> str:
    """`value` as text PostgreSQL takes: NUL and lone surrogates become U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    text = _UNSTORABLE.sub("\ufffd", text)
    return text[:limit] if limit else text


def storable(value):
    """A JSON-able copy of `value` that a jsonb column takes (see the module's docstring)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return storable_text(value)


def storable_position(position) -> int | None:
    """A log position that fits the bigint column, else None."""
    if isinstance(position, int) and not isinstance(position, bool):
        if -BIGINT_MAX - 1 <= position <= BIGINT_MAX:
            return position
    return None


def envelope_columns(raw) -> tuple[Jsonb, str | None]:
    """(the storable copy for `envelope`, the exact original for `envelope_raw` when the
    copy differs from it)."""
    copy = storable(raw)
    if not isinstance(copy, dict):
        copy = {"value": copy}
    try:
        exact = json.dumps(raw, default=str)  # ASCII: NUL and surrogates are escaped
    except (TypeError, ValueError):
        exact = None
    if exact is not None and json.dumps(copy, default=str) == exact:
        exact = None
    return Jsonb(copy), exact


def park_statement(
    upstream: str,
    position: int | None,
    event_type,
    raw,
    error: str,
    attempts: int,
    reopen: bool = False,
) -> tuple[str, tuple]:
    """The INSERT recording one parked event; a second one at the same position is a no-op,
    or (`reopen`) opens the row again, counting the attempts (a read model rebuilt)."""
    envelope, exact = envelope_columns(raw)
    position = storable_position(position)
    conflict = "DO NOTHING"
    if reopen:
        conflict = (
            "(upstream, position) WHERE position IS NOT NULL DO UPDATE SET"
            " error = excluded.error, attempts = parked_events.attempts + excluded.attempts,"
            " resolved_at = NULL, resolution = NULL"
        )
    return (
        "INSERT INTO parked_events (upstream, position, type, envelope, envelope_raw, error,"
        f" attempts) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT {conflict}",
        (
            storable_text(upstream, 200),
            position,
            storable_text(event_type, 200) if event_type is not None else None,
            envelope,
            exact,
            storable_text(error, 2000) or "unknown error",
            attempts,
        ),
    )


def original_envelope(row: dict):
    """The envelope as it was parked (exact, NUL and all)."""
    if row.get("envelope_raw"):
        return json.loads(row["envelope_raw"])
    return row["envelope"]


# -- for staff ----------------------------------------------------------------------------------


def _when(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def list_parked(
    app,
    include_resolved: bool = False,
    limit: int = 200,
    upstream: str | None = None,
    parked_id: int | None = None,
) -> list[dict]:
    """What staff see (GET /api/v1/staff/parked-events). A scheduler's item is named in
    the envelope (`item`, `job`); a read model's event by its position and type."""
    query = (
        "SELECT id, upstream, position, type, envelope, error, attempts, parked_at,"
        " resolved_at, resolution FROM parked_events WHERE true"
    )
    params: list = []
    if not include_resolved:
        query += " AND resolved_at IS NULL"
    if upstream is not None:
        query += " AND upstream = %s"
        params.append(upstream)
    if parked_id is not None:
        query += " AND id = %s"
        params.append(parked_id)
    query += " ORDER BY id LIMIT %s"
    params.append(limit)
    with app.datastore.transaction() as curs:
        curs.execute(query, params)
        rows = curs.fetchall()
    return [
        {
            "id": r["id"],
            "service": app.service,
            "upstream": r["upstream"],
            "position": r["position"],
            "type": r["type"],
            "error": r["error"],
            "attempts": r["attempts"],
            "parked_at": _when(r["parked_at"]),
            "resolved_at": _when(r["resolved_at"]),
            "resolution": r["resolution"],
            "envelope": r["envelope"],
        }
        for r in rows
    ]


def get_parked(app, parked_id: int) -> dict | None:
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT id, upstream, position, item, type, envelope, envelope_raw, resolved_at,"
            " attempts FROM parked_events WHERE id = %s",
            (parked_id,),
        )
        return curs.fetchone()


def resolve_statement(parked_id: int, resolution: str) -> tuple[str, tuple]:
    return (
        "UPDATE parked_events SET resolved_at = now(), resolution = %s"
        " WHERE id = %s AND resolved_at IS NULL",
        (resolution, parked_id),
    )


def note_failed_retry(app, parked_id: int, error: str) -> None:
    with app.datastore.transaction(commit=True) as curs:
        curs.execute(
            "UPDATE parked_events SET attempts = attempts + 1, error = %s WHERE id = %s",
            (storable_text(error, 2000), parked_id),
        )


# -- a scheduler's items ---------------------------------------------------------------------


class ScheduledItems:
    """What one scheduler job could not do, item by item.

        items = ScheduledItems(app, "scheduler:renewals")
        for service in due:
            items.run(f"{service.id}:{period}", lambda: renew(service), type="renewal")

    `run` does one item: a failure that is not transient (see inbox.is_transient) is
    recorded as a parked row and the job goes on with the next item. The job tries the
    item again on its next runs until it failed `attempts` times; from then on it is
    skipped until staff retry it (which releases it to the next run). An item that
    succeeds again resolves its row.
    """

    def __init__(self, app, upstream: str, attempts: int = 3):
        self.app = app
        self.upstream = upstream
        self.attempts = max(1, attempts)
        self._open: dict[str, int] | None = None

    def open_items(self) -> dict[str, int]:
        """Items with an unresolved failure: how often each failed."""
        if self._open is None:
            with self.app.datastore.transaction() as curs:
                curs.execute(
                    "SELECT item, attempts FROM parked_events WHERE upstream = %s"
                    " AND item IS NOT NULL AND resolved_at IS NULL",
                    (self.upstream,),
                )
                self._open = {r["item"]: r["attempts"] for r in curs.fetchall()}
        return self._open

    def parked(self, item: str) -> bool:
        """Failed too often: left alone until staff retry it."""
        return self.open_items().get(storable_text(item, 500), 0) >= self.attempts

    def run(self, item: str, action, type: str | None = None, default=None):
        """`action()`'s answer; `default` when the item is parked or failed now."""
        from services.infra.inbox import is_transient

        key = storable_text(item, 500)
        if self.parked(key):
            return default
        try:
            result = action()
        except Exception as exc:
            if is_transient(exc):
                raise
            self.failed(key, exc, type)
            return default
        self.succeeded(key)
        return result

    def succeeded(self, item: str) -> None:
        """The item went through: a failure recorded before is resolved."""
        key = storable_text(item, 500)
        if key not in self.open_items():
            return
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE parked_events SET resolved_at = now(), resolution = 'succeeded'"
                " WHERE upstream = %s AND item = %s AND resolved_at IS NULL",
                (self.upstream, key),
            )
        self.open_items().pop(key, None)

    def failed(self, item: str, exc: BaseException, type: str | None = None) -> None:
        import logging

        key = storable_text(item, 500)
        error = storable_text(f"{type_name(exc)}: {exc}", 2000)
        attempts = self.open_items().get(key, 0) + 1
        logging.getLogger(__name__).warning(
            "%s: %s failed (attempt %d of %d%s): %s",
            self.upstream,
            key,
            attempts,
            self.attempts,
            "; parked until staff retry it" if attempts >= self.attempts else "",
            error,
        )
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO parked_events (upstream, item, type, envelope, error, attempts)"
                " VALUES (%s, %s, %s, %s, %s, 1)"
                " ON CONFLICT (upstream, item) WHERE item IS NOT NULL DO UPDATE SET"
                " error = excluded.error, type = excluded.type,"
                " attempts = CASE WHEN parked_events.resolved_at IS NULL"
                " THEN parked_events.attempts + 1 ELSE 1 END,"
                " parked_at = CASE WHEN parked_events.resolved_at IS NULL"
                " THEN parked_events.parked_at ELSE now() END,"
                " resolved_at = NULL, resolution = NULL",
                (
                    self.upstream,
                    key,
                    storable_text(type, 200) if type else None,
                    Jsonb({"item": key, "job": self.upstream}),
                    error,
                ),
            )
        self.open_items()[key] = attempts


def type_name(exc: BaseException) -> str:
    return type(exc).__name__


def release_statement(parked_id: int) -> tuple[str, tuple]:
    """Staff retry a scheduler's item: the job's next run tries it again."""
    return resolve_statement(parked_id, "released: the next run tries it again")
