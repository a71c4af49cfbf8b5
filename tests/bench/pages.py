"""The client area's pages beside the same data through the JSON API.

`n` clients, each logged in with its own session and holding `invoices` unpaid invoices,
ask at the same time, one request after another:

- the dashboard page (`GET /dashboard`, the session in its cookie), and the JSON the page
  is made of, asked the way a client of the API would: `GET /api/v1/client/account`,
  `.../invoices?status=unpaid`, `.../services` and `.../tickets?status=open`, one after
  the other (one op is the four);
- the invoice list page (`GET /invoices`) and `GET /api/v1/client/invoices` (one page of
  20 each).

Each answer is checked (200, HTML or JSON); the latency of each op is kept.
"""

from __future__ import annotations

import contextlib
import itertools

import requests

from gateway.http import SESSION_COOKIE
from tests.bench.drive import Result, drive
from tests.bench.system import bench_customers, wait_for_billing_accounts

CURRENCY = "EUR"
DASHBOARD_JSON = (
    "/api/v1/client/account?page_size=1",
    "/api/v1/client/invoices?status=unpaid&page_size=5",
    "/api/v1/client/services?page_size=5",
    "/api/v1/client/tickets?status=open&page_size=5",
)
MEASURED = {
    "dashboard_page": ("page", ("/dashboard",)),
    "dashboard_json": ("api", DASHBOARD_JSON),
    "invoice_list_page": ("page", ("/invoices",)),
    "invoice_list_json": ("api", ("/api/v1/client/invoices?page_size=20",)),
}


def bench_clients(stack, n: int, invoices: int) -> list[dict]:
    """`n` customers, each with `invoices` unpaid invoices and a session: `{"id", "token"}`."""
    customers = bench_customers(stack, n)
    wait_for_billing_accounts(stack, [c["id"] for c in customers])
    clients = []
    for customer in customers:
        for i in range(invoices):
            body = {
                "customer_id": customer["id"],
                "lines": [
                    {
                        "description": f"hosting, month {i + 1}",
                        "unit_price": {"amount": 1000 + i, "currency": CURRENCY},
                    }
                ],
            }
            r = stack.http("POST", "/api/v1/staff/invoices", stack.admin_token, json=body)
            if r.status_code != 201:
                raise RuntimeError(f"an invoice answered {r.status_code}: {r.text[:200]}")
        r = stack.http("POST", "/api/v1/auth/login", json=customer["credentials"])
        if r.status_code != 200:
            raise RuntimeError(f"a client's login answered {r.status_code}: {r.text[:200]}")
        clients.append({"id": customer["id"], "token": r.json()["token"]})
    return clients


def wait_for_invoices(stack, clients: list[dict], invoices: int, timeout: float = 120) -> None:
    """Until every client's invoice list shows all its invoices (the read model caught up)."""
    for client in clients:
        stack.wait_until(
            lambda c=client: (
                stack.http("GET", "/api/v1/client/invoices?page_size=1", c["token"]).json()["total"]
                >= invoices
            ),
            timeout=timeout,
            what="a client's invoices listed",
        )


def measure(stack, clients: list[dict], requests_per_kind: int, on_start=None) -> dict:
    """Each of MEASURED from every client at once: its Result summary."""
    out = {}
    for name, (kind, paths) in MEASURED.items():
        result = _reads(stack, clients, kind, paths, requests_per_kind, on_start)
        out[name] = result.summary()
    return out


def _reads(stack, clients, kind: str, paths: tuple[str, ...], total: int, on_start) -> Result:
    assigned = itertools.count()

    def factory(resources: contextlib.ExitStack):
        session = resources.enter_context(requests.Session())
        client = clients[next(assigned) % len(clients)]
        if kind == "page":
            session.cookies.set(SESSION_COOKIE, client["token"])
            session.headers["Accept"] = "text/html"
        else:
            session.headers["Authorization"] = f"Bearer {client['token']}"
        urls = [stack.base_url + p for p in paths]

        def read():
            for url in urls:
                r = session.get(url, timeout=60, allow_redirects=False)
                wanted = "text/html" if kind == "page" else "application/json"
                if r.status_code != 200 or wanted not in r.headers.get("Content-Type", ""):
                    raise RuntimeError(f"GET {url} answered {r.status_code}: {r.text[:200]}")

        return read

    return drive(factory, len(clients), total=total, warmup=len(clients), before_measure=on_start)
