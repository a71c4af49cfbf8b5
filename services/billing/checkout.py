"""Paying an invoice online: the processor's hosted payment page.

`start_checkout` asks the processor (processors.py: `checkout`) for a page where the
client pays what the invoice is due, and answers where to send the browser. It records
nothing: the money counts only when the processor's signed webhook says it arrived
(`Billing.processor_notification`), once per processor payment however often and in
whatever order its events are delivered.

The page sends the client back to `return_url`, a page of this site (under
HOSTLEDGER_PUBLIC_URL: never elsewhere, so the site cannot be made to forward a
client to another one), with `checkout=success` or `checkout=cancel` added.

The same invoice, unchanged, with the same return address, asks the processor with the
same Idempotency-Key during one hour, and the page it opens stays valid for at least
another hour: a second click (or a retried request) opens the same page, not a second
one that could be paid too.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from contracts.errors import Conflict, Unavailable, ValidationFailed
from contracts.fields import invalid
from services.billing.processors import CheckoutNotStarted, CheckoutRequest
from services.infra import clock

# one page per invoice, version and return address in each such window (seconds)
WINDOW = 3600


def on_site(url: str, public_url: str) -> bool:
    """`url` is a page of this site: the scheme and host of `public_url`, under its path."""
    try:
        target, site = urlsplit(url), urlsplit(public_url)
        target_port, site_port = target.port, site.port
    except ValueError:
        return False
    if target.scheme.lower() != site.scheme.lower() or target.username or target.password:
        return False
    if (target.hostname or "").lower() != (site.hostname or "").lower():
        return False
    default = {"http": 80, "https": 443}.get(site.scheme.lower())
    if (target_port or default) != (site_port or default):
        return False
    base = site.path.rstrip("/")
    path = target.path or "/"
    return path == base or path.startswith(base + "/")


def with_outcome(url: str, outcome: str) -> str:
    """`url` with `checkout=<outcome>` in its query (replacing one already there)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "checkout"]
    query.append(("checkout", outcome))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


class Checkouts:
    """Mixed into the Billing application."""

    def start_checkout(
        self, customer_id: UUID, invoice_id: UUID, processor, return_url: str, public_url: str
    ) -> dict:
        """`{"redirect_url", "processor", "session_id", "expires_at"}`: the processor's page
        where the client pays this unpaid invoice of theirs."""
        invoice = self.invoice(invoice_id, customer_id)
        if not on_site(return_url, public_url):
            raise invalid("return_url", f"Must be a page of this site ({public_url}).")
        if invoice.status != "unpaid":
            state = "already paid" if invoice.status == "paid" else invoice.status
            raise Conflict(
                f"Invoice {invoice.number} is {state}: there is nothing to pay.",
                {"invoice": [f"Invoice is {invoice.status}."]},
            )
        if invoice.total <= 0:
            raise Conflict(
                f"Invoice {invoice.number} is for nothing: pay it from the balance.",
                {"invoice": ["Nothing to pay."]},
            )
        now = int(clock.now().timestamp())
        window = now // WINDOW
        digest = hashlib.sha256(return_url.encode()).hexdigest()[:16]
        request = CheckoutRequest(
            invoice_id=str(invoice.id),
            invoice_number=invoice.number,
            customer_id=str(invoice.customer_id),
            amount=invoice.total,
            currency=invoice.currency,
            success_url=with_outcome(return_url, "success"),
            cancel_url=with_outcome(return_url, "cancel"),
            # at least an hour left whenever in the window the page is asked for again
            expires_at=(window + 2) * WINDOW,
            key=f"hostledger-checkout:{invoice.id}:{invoice.version}:{window}:{digest}",
            email=invoice.buyer.get("email") or None,
        )
        try:
            session = processor.checkout(request)
        except CheckoutNotStarted as exc:
            raise Unavailable(
                f"The payment processor did not open a payment page ({exc}); try again in a "
                "moment, or pay from the balance."
            ) from None
        return {
            "redirect_url": session.redirect_url,
            "processor": session.processor,
            "session_id": session.session_id,
            "expires_at": session.expires_at,
            "invoice_id": str(invoice.id),
        }


def no_such_processor(name: str) -> ValidationFailed:
    return invalid("processor", f"No payment processor {name!r} takes payments here.")
