"""What several tests do alike through the staff API: read a history (the audit
routes) page by page, and give a customer a past (a logged-in client with its personal
account, a payment, an invoice, a department for its tickets)."""

from __future__ import annotations

import uuid

AUDIT = "/api/v1/staff/audit"


def history_pages(
    stack, path: str, token: str | None = None, limit: int = 200, order: str | None = None
):
    """Every event of a history (`customers/<id>`, `invoice/<id>`, ...) and how many
    pages of `limit` it took, read as `token` (the administrator by default), in `order`
    (`newest`, `oldest`; none: the API's default)."""
    items, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        if order:
            params["order"] = order
        r = stack.http("GET", f"{AUDIT}/{path}/history", token or stack.admin_token, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def history(stack, path: str, token: str | None = None) -> list[dict]:
    """Every event of a history, through the API, page by page."""
    return history_pages(stack, path, token)[0]


def client_with_account(stack, **details) -> tuple[dict, str]:
    """A new customer (stack.register_customer's answer) and its client's token, once its
    personal account is open."""
    customer = stack.register_customer(**details)
    creds = customer["credentials"]
    client = stack.login(creds["username"], creds["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", client).status_code == 200,
        what="the personal account",
    )
    return customer, client


def record_payment(stack, cid: str, amount: int = 5000) -> dict:
    """Staff record a bank transfer from the customer (EUR minor units)."""
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": cid,
            "amount": {"amount": amount, "currency": "EUR"},
            "method": "bank_transfer",
            "reference": f"TX-{uuid.uuid4().hex[:8]}",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def issue_invoice(stack, cid: str, description: str = "Hosting", amount: int = 1999) -> dict:
    """Staff issue the customer an invoice of one line (EUR minor units)."""
    r = stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": cid,
            "lines": [
                {
                    "description": description,
                    "quantity": 1,
                    "unit_price": {"amount": amount, "currency": "EUR"},
                    "period": "2026-12",
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def department(stack, name: str) -> dict:
    """A department clients may write to."""
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": name, "client_visible": True},
    )
    assert r.status_code == 201, r.text
    return r.json()
