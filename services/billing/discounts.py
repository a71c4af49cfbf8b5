"""Billing's discount book: the customers' and groups' discounts as the customers service
publishes them (DiscountGiven, DiscountChanged, DiscountEnded) and each customer's
groups (CustomerUpdated with `group_ids`), kept here so that a batch of invoices is
priced without asking the customers service for each invoice.

Every row carries the version of the customers service's aggregate it was read from
(the envelope's `version`): a row is only ever replaced by a later version, so the
book's start (`seed_statements`, from the customers service's `discount_book` RPC,
for discounts given before they were published) and events applied in any order
around it end in the same state. The handlers write the rows in the transaction that
records the event as applied (`also` statements), like every consumer's own writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from services.infra.clock import isoformat

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS discount_book (
        discount_id uuid PRIMARY KEY,
        customer_id uuid,
        group_id uuid,
        given_at bigint NOT NULL DEFAULT 0,
        discount jsonb NOT NULL,
        version integer NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS discount_book_customer ON discount_book (customer_id)"
    " WHERE customer_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS discount_book_group ON discount_book (group_id)"
    " WHERE group_id IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS customer_groups (
        customer_id uuid PRIMARY KEY,
        group_ids uuid[] NOT NULL,
        version integer NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS discount_book_start (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        started_at timestamptz NOT NULL
    )
    """,
)


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return isoformat(value)
    return str(value)


def _uuid(value) -> UUID | None:
    return None if value is None else UUID(str(value))


def discount_entry(d: dict) -> dict:
    """A discount as `price_line` reads it (the customers service's `discount_view`)."""
    amount = d.get("amount")
    if isinstance(amount, int):  # DiscountGiven: amount and currency apart
        amount = {"amount": amount, "currency": d.get("currency")}
    return {
        "id": str(d.get("discount_id") or d.get("id")),
        "name": d["name"],
        "kind": d["kind"],
        "percent": None if d.get("percent") is None else str(d["percent"]),
        "amount": amount,
        "customer_id": str(d["customer_id"]) if d.get("customer_id") else None,
        "group_id": str(d["group_id"]) if d.get("group_id") else None,
        "product_ids": [str(p) for p in d.get("product_ids") or ()],
        "valid_from": _iso(d.get("valid_from")),
        "valid_to": _iso(d.get("valid_to")),
    }


def given_statement(d: dict, version: int, position: int = 0) -> tuple[str, tuple]:
    entry = discount_entry(d)
    return (
        "INSERT INTO discount_book"
        " (discount_id, customer_id, group_id, given_at, discount, version)"
        " VALUES (%s, %s, %s, %s, %s::jsonb, %s)"
        " ON CONFLICT (discount_id) DO UPDATE SET customer_id = excluded.customer_id,"
        " group_id = excluded.group_id, discount = excluded.discount,"
        " version = excluded.version WHERE discount_book.version < excluded.version",
        (
            UUID(entry["id"]),
            _uuid(entry["customer_id"]),
            _uuid(entry["group_id"]),
            int(position),
            json.dumps(entry),
            int(version),
        ),
    )


def changed_statement(discount_id, changes: dict, version: int) -> tuple[str, tuple]:
    """Some of a discount's fields (name, valid_from, valid_to) as they are at `version`."""
    values = {k: (_iso(v) if k.startswith("valid_") else v) for k, v in changes.items()}
    return (
        "UPDATE discount_book SET discount = discount || %s::jsonb, version = %s"
        " WHERE discount_id = %s AND version < %s",
        (json.dumps(values), int(version), _uuid(discount_id), int(version)),
    )


def groups_statement(customer_id, group_ids, version: int) -> tuple[str, tuple]:
    return (
        "INSERT INTO customer_groups (customer_id, group_ids, version) VALUES (%s, %s, %s)"
        " ON CONFLICT (customer_id) DO UPDATE SET group_ids = excluded.group_ids,"
        " version = excluded.version WHERE customer_groups.version < excluded.version",
        (_uuid(customer_id), [_uuid(g) for g in group_ids or ()], int(version)),
    )


def seed_statements(book: dict, at: datetime) -> list[tuple[str, tuple]]:
    """The customers service's `discount_book` answer as rows (each kept only where it is
    later than what the book holds), and the mark that the book has started."""
    statements = [given_statement(d, d["version"]) for d in book.get("discounts", ())]
    statements += [
        groups_statement(g["customer_id"], g["group_ids"], g["version"])
        for g in book.get("groups", ())
    ]
    statements.append(
        (
            "INSERT INTO discount_book_start (only_row, started_at) VALUES (true, %s)"
            " ON CONFLICT (only_row) DO NOTHING",
            (at,),
        )
    )
    return statements


def started(curs) -> bool:
    curs.execute("SELECT 1 FROM discount_book_start")
    return curs.fetchone() is not None


def valid_at(entry: dict, now: datetime) -> bool:
    start, end = entry.get("valid_from"), entry.get("valid_to")
    if start and now < datetime.fromisoformat(start.replace("Z", "+00:00")):
        return False
    if end and now >= datetime.fromisoformat(end.replace("Z", "+00:00")):
        return False
    return True


def discounts_of(curs, customer_ids, now: datetime) -> dict[UUID, list[dict]]:
    """Each customer's discounts valid at `now`, as the customers service answered them:
    its own first, then its groups' (each in the order they were given)."""
    ids = list(dict.fromkeys(UUID(str(c)) for c in customer_ids))
    found: dict[UUID, list[dict]] = {c: [] for c in ids}
    if not ids:
        return found
    curs.execute(
        "SELECT customer_id, group_ids FROM customer_groups WHERE customer_id = ANY(%s)", (ids,)
    )
    groups = {r["customer_id"]: list(r["group_ids"]) for r in curs.fetchall()}
    all_groups = list({g for gs in groups.values() for g in gs})
    curs.execute(
        "SELECT customer_id, group_id, discount FROM discount_book"
        " WHERE customer_id = ANY(%s) OR group_id = ANY(%s)"
        " ORDER BY given_at, discount_id",
        (ids, all_groups),
    )
    own: dict[UUID, list[dict]] = {}
    of_group: dict[UUID, list[dict]] = {}
    for r in curs.fetchall():
        entry = r["discount"]
        if isinstance(entry, str):
            entry = json.loads(entry)
        if not valid_at(entry, now):
            continue
        if r["customer_id"] is not None:
            own.setdefault(r["customer_id"], []).append(entry)
        else:
            of_group.setdefault(r["group_id"], []).append(entry)
    for c in ids:
        found[c] = list(own.get(c, ()))
        for g in groups.get(c, ()):
            found[c] += of_group.get(g, [])
    return found
