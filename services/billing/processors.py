"""Payment processors behind one small interface.

A processor verifies a webhook exactly as its maker documents it and turns it into
a `ProcessorPayment`; billing does the rest (pay the invoice, or keep the payment
for staff when it names no invoice we know). Stripe is the first: its
`Stripe-Signature` header (`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`),
checked in constant time against every `v1` given, with a 300-second tolerance on
`t`, as https://docs.stripe.com/webhooks#verify-manually describes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class BadSignature(Exception):
    """The notification is unsigned, wrongly signed, or too old: it changes nothing."""


@dataclass(frozen=True)
class ProcessorPayment:
    processor: str
    event_id: str
    reference: str
    amount: int
    currency: str
    invoice_id: str | None
    customer_id: str | None


class PaymentProcessor(Protocol):
    name: str

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> dict: ...

    def payment(self, event: dict) -> ProcessorPayment | None: ...


class Stripe:
    name = "stripe"
    tolerance_seconds = 300
    # the events that mean money arrived
    PAID_TYPES = ("payment_intent.succeeded", "checkout.session.completed")

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("the Stripe webhook signing secret is not set")
        self.secret = secret.encode()

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> dict:
        header = _header(headers, "Stripe-Signature")
        if not header:
            raise BadSignature("no Stripe-Signature header")
        timestamp, signatures = None, []
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t":
                timestamp = value
            elif key == "v1":
                signatures.append(value)
        if timestamp is None or not timestamp.isdigit() or not signatures:
            raise BadSignature("the Stripe-Signature header has no t= or no v1=")
        expected = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256)
        if not any(hmac.compare_digest(expected.hexdigest(), s) for s in signatures):
            raise BadSignature("no v1 signature matches")
        if abs(now.timestamp() - int(timestamp)) > self.tolerance_seconds:
            raise BadSignature("the signature's timestamp is outside the tolerance")
        try:
            event = json.loads(body)
        except ValueError:
            raise BadSignature("the signed body is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise BadSignature("the signed body is not a Stripe event")
        return event

    def payment(self, event: dict) -> ProcessorPayment | None:
        if event.get("type") not in self.PAID_TYPES:
            return None
        obj = (event.get("data") or {}).get("object") or {}
        amount = obj.get("amount_received", obj.get("amount_total"))
        currency = obj.get("currency")
        if not isinstance(amount, int) or not isinstance(currency, str):
            return None
        metadata = obj.get("metadata") or {}
        return ProcessorPayment(
            processor=self.name,
            event_id=event["id"],
            reference=str(obj.get("payment_intent") or obj.get("id") or event["id"]),
            amount=amount,
            currency=currency.upper(),
            invoice_id=metadata.get("invoice_id"),
            customer_id=metadata.get("customer_id"),
        )

    @staticmethod
    def sign(secret: str, body: bytes, timestamp: int) -> str:
        """The header Stripe would send (for tests and for staff checking a setup)."""
        mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None
