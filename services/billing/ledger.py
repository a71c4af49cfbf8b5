"""Reading a personal account: its balance and a page of its entries, now or at a past instant.

The balance of *now* is the aggregate's own (read by id: never lags a write). The
entries, and any past balance, come from the ledger read model (readmodels.Ledger):
each row is one entry with the balance after it and its rank in the account, so
`?at=` is one index lookup (the balance after the last entry at or before `at`, and
its rank: how many entries stood then) and a page is one range read, however long
the history. Should an entry's time be earlier than an earlier entry's (the clock
moved back), that account's `?at=` counts and sums the entries at or before `at`
instead, which is exact in every case and costs a scan of them.

The read model may lag the aggregate by the events its follower has not projected
yet (`ledger_accounts.version` says how far it got). The answer is still exact:

- the balance and the number of entries of now are the aggregate's own;
- a page of now that reaches past the projected entries takes the rest straight
  from the event store (the events after the projected version: few, as the
  follower runs on every new event);
- `?at=` in the past needs nothing more when every entry's time is in order (the
  aggregate knows) and the last projected entry is already after `at`: the entries
  not projected yet all come later. Otherwise those events are read from the store
  too, and their entries up to `at` added.

Only when the gap is large (a model being rebuilt, a bulk import) does a read that
needs the gap wait up to WAIT_SECONDS for the follower, and then read it anyway.
"""

from __future__ import annotations

import time
from datetime import datetime

from services.infra.clock import isoformat
from services.infra.paging import page_window

# a gap above this many events waits up to WAIT_SECONDS for the follower first
TAIL_LIMIT = 500
WAIT_SECONDS = 2.0
ENTRY_EVENTS = ("PersonalAccount.Credited", "PersonalAccount.Debited")


def account_view(app, account, at: datetime | None = None, page: int = 1, page_size: int = 50):
    """The account as `GET .../account` answers it: balance, one page of entries (oldest
    first) and `total`, `page`, `page_size` of the entries; with `at`, as it stood then:
    the entries at or before `at`, and their sum."""
    page_size, offset = page_window(page, page_size)
    state = _projected(app, account)
    if _needs_tail(account, state, at, offset + page_size):
        if account.version - state["version"] > TAIL_LIMIT:
            deadline = time.monotonic() + WAIT_SECONDS
            while account.version - state["version"] > TAIL_LIMIT and time.monotonic() < deadline:
                time.sleep(0.05)
                state = _projected(app, account)
        tail = _tail(app, account, state["version"], state["balance"])
    else:
        tail = []
    if at is not None:
        tail = [e for e in tail if e["at"] <= at]

    where = "account_id = %s AND version <= %s"
    params: list = [account.id, state["version"]]
    if at is not None:
        where += " AND occurred_at <= %s"
        params.append(at)
    with app.datastore.transaction() as curs:
        if at is None:
            count, balance = state["entries"], account.balance_amount
        elif state["in_order"]:
            # the entries up to `at` are the first n: the last of them says n and the sum
            curs.execute(
                f"SELECT seq, balance_after FROM ledger_entries WHERE {where}"
                " ORDER BY occurred_at DESC, version DESC LIMIT 1",
                params,
            )
            last = curs.fetchone()
            count, balance = (last["seq"], last["balance_after"]) if last else (0, 0)
        else:
            curs.execute(
                "SELECT count(*) AS n, COALESCE(sum(amount), 0) AS balance"
                f" FROM ledger_entries WHERE {where}",
                params,
            )
            row = curs.fetchone()
            count, balance = row["n"], int(row["balance"])
        rows: list[dict] = []
        if offset < count and (at is None or state["in_order"]):
            # a range of the n-th entries, however deep the page
            curs.execute(
                f"SELECT {COLUMNS} FROM ledger_entries WHERE account_id = %s"
                " AND seq > %s AND seq <= %s ORDER BY seq",
                [account.id, offset, min(offset + page_size, count)],
            )
            rows = [_from_row(r) for r in curs.fetchall()]
        elif offset < count:
            curs.execute(
                f"SELECT {COLUMNS} FROM ledger_entries WHERE {where}"
                " ORDER BY version LIMIT %s OFFSET %s",
                [*params, page_size, offset],
            )
            rows = [_from_row(r) for r in curs.fetchall()]
    if at is None:
        total = account.entry_count  # the aggregate's own count: never lags
    else:
        balance += sum(e["amount"] for e in tail)
        total = count + len(tail)
    start = max(0, offset - count)
    rows += tail[start : start + page_size - len(rows)]
    money = lambda amount: {"amount": amount, "currency": account.currency}  # noqa: E731
    return {
        "id": str(account.id),
        "customer_id": str(account.customer_id),
        "currency": account.currency,
        "balance": money(balance),
        "entries": [entry_view(e, account.currency) for e in rows],
        "total": total,
        "page": page,
        "page_size": page_size,
        "opened_at": isoformat(account.opened_at),
        "at": isoformat(at) if at else None,
        "version": account.version,
    }


def _needs_tail(account, state: dict, at: datetime | None, page_end: int) -> bool:
    """Whether the answer needs entries the read model has not projected yet."""
    if account.version <= state["version"] or account.entry_count <= state["entries"]:
        return False
    if at is None:
        return page_end > state["entries"]  # the page reaches past the projected entries
    # the entries not projected yet all come after the projected ones; when every entry
    # is in time order and the last projected one is after `at`, none is at or before it
    last = state["last_at"]
    return not (account.entries_in_order and last is not None and at < last)


COLUMNS = "entry_id, version, occurred_at, kind, amount, balance_after, reference, reason, actor"


def _projected(app, account) -> dict:
    """How far the read model got with this account: its version, and the balance, the
    number of entries and whether their times are in order at that version."""
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT version, balance, entries, in_order, last_at FROM ledger_accounts"
            " WHERE account_id = %s",
            (account.id,),
        )
        row = curs.fetchone()
    return row or {"version": 0, "balance": 0, "entries": 0, "in_order": True, "last_at": None}


def _tail(app, account, projected: int, balance: int) -> list[dict]:
    """The entries after version `projected`, from the event store, with running balances."""
    if account.version <= projected:
        return []
    out = []
    for event in app.repository.event_store.get(account.id, gt=projected, lte=account.version):
        if type(event).__qualname__ not in ENTRY_EVENTS:
            continue
        after = getattr(event, "balance_after", None)
        balance = after if after is not None else balance + event.amount
        out.append(
            {
                "id": event.entry_id,
                "version": event.originator_version,
                "at": event.at,
                "kind": event.kind,
                "amount": event.amount,
                "balance_after": balance,
                "reference": event.reference,
                "reason": event.reason,
                "actor": getattr(event, "actor", None),
            }
        )
    return out


def _from_row(r: dict) -> dict:
    return {
        "id": r["entry_id"],
        "version": r["version"],
        "at": r["occurred_at"],
        "kind": r["kind"],
        "amount": r["amount"],
        "balance_after": r["balance_after"],
        "reference": r["reference"],
        "reason": r["reason"],
        "actor": r["actor"],
    }


def entry_view(e: dict, currency: str) -> dict:
    return {
        "id": str(e["id"]),
        "kind": e["kind"],
        "amount": {"amount": e["amount"], "currency": currency},
        "balance_after": {"amount": e["balance_after"], "currency": currency},
        "reference": e.get("reference"),
        "reason": e.get("reason"),
        "at": isoformat(e["at"]),
        "actor": e.get("actor"),
    }
