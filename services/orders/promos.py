"""Staff's promo codes beyond creating them: the list (by state and a part of the code),
one code with its uses, the orders placed with it and its changes, changing what may
change, deactivating and activating it again.

The code itself never changes (orders and invoices name it), and a code is never
deleted: a deactivated one is refused at order time with its own message. Each change
is an event of its own, stamped with the staff member who made it like every event.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import orders as contract
from contracts.errors import Conflict, NotFound, ValidationFailed
from contracts.fields import invalid
from services.infra import clock
from services.infra.clock import isoformat
from services.infra.paging import page_window
from services.infra.rpc import load, rpc
from services.orders.domain import PromoCode, promo_state

RETRIES = 20
# the orders listed on one code's page: the newest ones
ORDERS_SHOWN = 50
# the events a code's history shows (its uses are the orders)
HISTORY_EVENTS = ("Created", "Changed", "Deactivated", "Activated")


def promo_view(p: PromoCode, now: datetime | None = None) -> dict:
    """A promo code as the API answers it, with its `state` now."""
    now = now or clock.now()
    return {
        "id": str(p.id),
        "code": p.code,
        "kind": p.kind,
        "percent": p.percent,
        "amount": {"amount": p.amount, "currency": p.currency} if p.amount is not None else None,
        "product_ids": [str(i) for i in p.product_ids],
        "max_uses": p.max_uses,
        "uses": p.uses,
        "expires_at": isoformat(p.expires_at) if p.expires_at else None,
        "active": p.active,
        "state": p.state(now),
    }


def row_view(row: dict, now: datetime) -> dict:
    """A row of the promo list in the same shape as `promo_view`."""
    amount = row["amount"]
    return {
        "id": str(row["promo_id"]),
        "code": row["code"],
        "kind": row["kind"],
        "percent": row["percent"],
        "amount": {"amount": amount, "currency": row["currency"]} if amount is not None else None,
        "product_ids": list(row["product_ids"] or []),
        "max_uses": row["max_uses"],
        "uses": row["uses"],
        "expires_at": isoformat(row["expires_at"]) if row["expires_at"] else None,
        "active": row["active"],
        "state": promo_state(row["active"], row["expires_at"], row["max_uses"], row["uses"], now),
    }


def promo_changes(promo: PromoCode, data: dict) -> dict:
    """What `data` (ChangePromo, loaded) changes on `promo`: only the fields whose value
    differs, or ValidationFailed naming the field at fault. A percentage promo has a
    percent and no amount, a fixed one an amount (whose currency it is used in); turning
    one into the other takes the other's value. `max_uses` cannot go below the uses made
    (its own value: used up now)."""
    current = {name: getattr(promo, name) for name in PromoCode.EDITABLE}
    current["product_ids"] = [str(i) for i in current["product_ids"]]
    new = dict(current)
    if "kind" in data:
        new["kind"] = data["kind"]
    if "percent" in data:
        new["percent"] = str(data["percent"]) if data["percent"] is not None else None
    if "amount" in data:
        money = data["amount"]
        new["amount"] = money["amount"] if money else None
        new["currency"] = money["currency"] if money else None
    if "product_ids" in data:
        ids = [str(i) for i in data["product_ids"]]
        new["product_ids"] = list(dict.fromkeys(ids))
    if "expires_at" in data:
        new["expires_at"] = data["expires_at"]
    if "max_uses" in data:
        new["max_uses"] = data["max_uses"]

    if new["kind"] == "percentage":
        if data.get("amount") is not None:
            raise invalid("amount", "Only a fixed promo has an amount.")
        new["amount"] = new["currency"] = None
        if new["percent"] is None:
            raise invalid("percent", "A percentage promo needs its percent.")
    else:
        if data.get("percent") is not None:
            raise invalid("percent", "Only a percentage promo has a percent.")
        if current["kind"] != "fixed" or "percent" in data:
            new["percent"] = None
        if new["amount"] is None:
            raise invalid("amount", "A fixed promo needs its amount (money).")
    if new["max_uses"] is not None and new["max_uses"] < promo.uses:
        raise invalid(
            "max_uses",
            f"It has been used {promo.uses} times already: the limit cannot be lower.",
        )
    changes = {name: value for name, value in new.items() if value != current[name]}
    if "amount" in changes or "currency" in changes:  # money: the two together
        changes.update(amount=new["amount"], currency=new["currency"])
    return changes


def _plain(value):
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def promo_history(app, promo: PromoCode) -> list[dict]:
    """Its creation and each change, newest first: {"type", "occurred_at", "actor",
    "on_behalf_of", "changes"?} (its uses are the orders placed with it)."""
    history = []
    for stored in app.recorder.select_events(promo.id, desc=True):
        e = app.mapper.to_domain_event(stored)
        kind = type(e).__name__
        if kind not in HISTORY_EVENTS:
            continue
        item = {
            "type": kind,
            "occurred_at": isoformat(e.timestamp),
            "actor": getattr(e, "actor", None),
            "on_behalf_of": getattr(e, "on_behalf_of", None),
        }
        if kind == "Changed":
            changes = {k: _plain(v) for k, v in e.changes.items()}
            if "amount" in changes:
                amount, currency = changes.pop("amount"), changes.pop("currency", None)
                changes["amount"] = (
                    {"amount": amount, "currency": currency} if amount is not None else None
                )
            item["changes"] = changes
        history.append(item)
    return history


def _promo(app, promo_id) -> PromoCode:
    try:
        found = app.repository.get(UUID(str(promo_id)))
    except (ValueError, AggregateNotFoundError):
        found = None
    if not isinstance(found, PromoCode):
        raise NotFound("No such promo code.")
    return found


def _saved(app, promo_id, command) -> PromoCode:
    """`command(promo)` on the code as it is now, saved when it recorded something; again
    when an order used the code meanwhile (its version moved)."""
    for _ in range(RETRIES):
        promo = _promo(app, promo_id)
        command(promo)
        if not promo.pending_events:
            return promo
        try:
            app.save(promo)
        except IntegrityError:
            continue
        return promo
    raise Conflict("This promo code is being changed by someone else; try again.")


def _check_products(app, product_ids) -> None:
    for i, product_id in enumerate(product_ids or ()):
        try:
            app.product(UUID(str(product_id)))
        except (NotFound, ValueError):
            raise invalid(f"product_ids.{i}", "No such product.") from None


def _like(text: str) -> str:
    """A part of a code as an ILIKE pattern (its own % and _ taken literally)."""
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_promos(app, filters: dict, page: int, page_size: int, now: datetime) -> dict:
    """The codes, newest first, in `state` and containing `code` when given."""
    limit, offset = page_window(page, page_size)
    where, params = ["true"], []
    state = filters.get("state")
    expired = "(expires_at IS NOT NULL AND expires_at <= %s)"
    used_up = "(max_uses IS NOT NULL AND uses >= max_uses)"
    if state == "deactivated":
        where.append("NOT active")
    elif state == "expired":
        where.append(f"active AND {expired}")
        params.append(now)
    elif state == "used_up":
        where.append(f"active AND NOT {expired} AND {used_up}")
        params.append(now)
    elif state == "active":
        where.append(f"active AND NOT {expired} AND NOT {used_up}")
        params.append(now)
    if filters.get("code"):
        where.append("code ILIKE %s")
        params.append(_like(filters["code"]))
    clause = " AND ".join(where)
    with app.datastore.transaction() as curs:
        curs.execute(f"SELECT count(*) AS n FROM promo_list WHERE {clause}", params)
        total = curs.fetchone()["n"]
        curs.execute(
            f"SELECT * FROM promo_list WHERE {clause}"
            " ORDER BY created_at DESC, promo_id LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        rows = curs.fetchall()
    return {
        "items": [row_view(r, now) for r in rows],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


def orders_with(app, promo_id: UUID, limit: int = ORDERS_SHOWN) -> tuple[list[dict], int]:
    """The newest orders placed with the code (the list may lag the orders a moment), and
    how many there are."""
    with app.datastore.transaction() as curs:
        curs.execute("SELECT count(*) AS n FROM promo_orders WHERE promo_id = %s", (promo_id,))
        total = curs.fetchone()["n"]
        curs.execute(
            "SELECT order_id, customer_id, invoice_id, placed_at FROM promo_orders"
            " WHERE promo_id = %s ORDER BY placed_at DESC, order_id LIMIT %s",
            (promo_id, limit),
        )
        rows = curs.fetchall()
    orders = [
        {
            "order_id": str(r["order_id"]),
            "customer_id": str(r["customer_id"]),
            "invoice_id": str(r["invoice_id"]),
            "placed_at": isoformat(r["placed_at"]),
        }
        for r in rows
    ]
    return orders, total


class PromoRpcs:
    """Mixed into OrdersService: what staff read and change of promo codes."""

    @rpc
    def list_promos(self, filters: dict | None = None, page: int = 1, page_size: int = 50):
        data = load(contract.PromoFilters, filters or {})
        return list_promos(self.app, data, page, page_size, clock.now())

    @rpc
    def get_promo(self, promo_id: str) -> dict:
        """The code as it is now (never behind), the orders placed with it and its history."""
        promo = _promo(self.app, promo_id)
        orders, total = orders_with(self.app, promo.id)
        return dict(
            promo_view(promo),
            orders=orders,
            orders_total=total,
            history=promo_history(self.app, promo),
        )

    @rpc
    def change_promo(self, promo_id: str, payload: dict) -> dict:
        """The fields sent change; nothing is recorded when nothing changes."""
        data = load(contract.ChangePromo, payload, partial=True)
        if data.get("product_ids"):
            _check_products(self.app, data["product_ids"])

        def change(promo: PromoCode) -> None:
            changes = promo_changes(promo, data)
            if changes:
                promo.change(changes)

        return promo_view(_saved(self.app, promo_id, change))

    @rpc
    def set_promo_active(self, promo_id: str, active: bool) -> dict:
        """Deactivate (refused at order time from now on) or activate it again; a code
        already so is answered as it is."""
        if not isinstance(active, bool):
            raise ValidationFailed("active: true or false.", {"active": ["true or false."]})

        def turn(promo: PromoCode) -> None:
            if promo.active != active:
                if active:
                    promo.activate()
                else:
                    promo.deactivate()

        return promo_view(_saved(self.app, promo_id, turn))
