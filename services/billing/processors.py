"""Payment processors behind one small interface.

A processor verifies a webhook exactly as its maker documents it and turns it into
a `ProcessorPayment` (or `ProcessorRefund` updates); billing does the rest (pay the
invoice, or keep the payment for staff when it names no invoice we know). It also
pays refunds out (`refund`) and finds a refund it made earlier (`find_refund`).

Stripe refunds follow https://docs.stripe.com/api/refunds/create: `POST /v1/refunds`,
form-encoded, `payment_intent`, `amount` and `metadata[hostledger_refund_id]`, with
`Authorization: Bearer <secret key>` and an `Idempotency-Key` header
(https://docs.stripe.com/api/idempotent_requests). Stripe keeps the first answer to a
key, errors included, so: a request that got no answer is retried with the same key;
one that got an answer (a 5xx, a refusal, a failed refund) is retried with a new key,
and only after listing the payment's refunds (`GET /v1/refunds?payment_intent=`) shows
none of ours went through. `HOSTLEDGER_STRIPE_API_BASE` (default
https://api.stripe.com) points the calls elsewhere, e.g. at a test server speaking
the same format. Stripe is the first processor: its
`Stripe-Signature` header (`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`),
checked in constant time against every `v1` given, with a 300-second tolerance on
`t`, as https://docs.stripe.com/webhooks#verify-manually describes.

Paying online (`checkout`): the processor's hosted payment page for one invoice. Stripe
Checkout follows https://docs.stripe.com/api/checkout/sessions/create: `POST
/v1/checkout/sessions`, form-encoded, `mode=payment`, one line with `price_data` in the
invoice's currency and the amount due in minor units, `client_reference_id` and
`metadata[invoice_id]` naming the invoice (on the payment intent too, so that its own
events name it), `success_url`/`cancel_url`, `expires_at`, with an `Idempotency-Key`;
the answer's `url` is where the browser goes. Only the signed webhook counts the money:
`checkout.session.completed` once its `payment_status` is `paid` (a delayed method
completes later with `checkout.session.async_payment_succeeded`), or
`payment_intent.succeeded`; billing counts one payment reference once, whichever of them
arrives first and however often each is delivered.
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


@dataclass(frozen=True)
class ProcessorRefund:
    """A refund as the processor tells of it: ours (`refund_id`, from its metadata)."""

    refund_id: str | None
    processor_refund_id: str
    status: str  # "succeeded", "pending", "failed", "canceled", ...
    failure: str | None = None


class RefundNotSent(Exception):
    """The processor did not pay the refund out. `answered`: it answered (and keeps that
    answer under the request's idempotency key); otherwise nothing came back."""

    def __init__(self, message: str, answered: bool):
        super().__init__(message)
        self.answered = answered


class CheckoutNotStarted(Exception):
    """The processor did not open a payment page. `answered`: it answered (a refusal)."""

    def __init__(self, message: str, answered: bool):
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class CheckoutRequest:
    """One invoice to pay on the processor's hosted page."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    amount: int  # minor units: what is due
    currency: str
    success_url: str
    cancel_url: str
    expires_at: int  # unix time
    key: str  # the processor's Idempotency-Key: the same request opens the same page
    email: str | None = None


@dataclass(frozen=True)
class CheckoutSession:
    processor: str
    session_id: str
    redirect_url: str
    expires_at: int | None


class PaymentProcessor(Protocol):
    name: str
    # it can open a hosted payment page (it is set up with what that needs)
    takes_checkout: bool

    def checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> dict: ...

    def payment(self, event: dict) -> ProcessorPayment | None: ...

    def refund_updates(self, event: dict) -> list[ProcessorRefund]: ...

    def refund(
        self, payment_reference: str, amount: int, currency: str, refund_id: str, key: str
    ) -> ProcessorRefund: ...

    def find_refund(self, payment_reference: str, refund_id: str) -> ProcessorRefund | None: ...


class Stripe:
    name = "stripe"
    tolerance_seconds = 300
    # the events that mean money arrived
    PAID_TYPES = (
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    )

    REFUND_TYPES = ("refund.created", "refund.updated", "refund.failed", "charge.refunded")
    TIMEOUT = (5, 20)  # seconds to connect, to read

    def __init__(
        self, secret: str, api_key: str | None = None, api_base: str = "https://api.stripe.com"
    ):
        if not secret:
            raise ValueError("the Stripe webhook signing secret is not set")
        self.secret = secret.encode()
        self.api_key = api_key
        self.api_base = api_base.rstrip("/")

    @property
    def takes_checkout(self) -> bool:
        """Checkout Sessions are made with the secret API key."""
        return bool(self.api_key)

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
        if event["type"].startswith("checkout.session.") and obj.get("payment_status") in (
            "unpaid",
            "no_payment_required",
        ):
            # a delayed method (a bank debit): the money counts on async_payment_succeeded
            return None
        amount = obj.get("amount_received", obj.get("amount_total"))
        currency = obj.get("currency")
        if not isinstance(amount, int) or not isinstance(currency, str):
            return None
        metadata = obj.get("metadata") or {}
        invoice_id = metadata.get("invoice_id")
        if invoice_id is None and event["type"].startswith("checkout.session."):
            invoice_id = obj.get("client_reference_id")
        return ProcessorPayment(
            processor=self.name,
            event_id=event["id"],
            reference=str(obj.get("payment_intent") or obj.get("id") or event["id"]),
            amount=amount,
            currency=currency.upper(),
            invoice_id=invoice_id,
            customer_id=metadata.get("customer_id"),
        )

    def checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """A Stripe Checkout Session for the invoice; its `url` is the hosted page."""
        names = {
            "invoice_id": request.invoice_id,
            "invoice_number": request.invoice_number,
            "customer_id": request.customer_id,
        }
        form = {
            "mode": "payment",
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount),
            "line_items[0][price_data][product_data][name]": f"Invoice {request.invoice_number}",
            "client_reference_id": request.invoice_id,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": str(request.expires_at),
        }
        for key, value in names.items():
            form[f"metadata[{key}]"] = value
            form[f"payment_intent_data[metadata][{key}]"] = value
        if request.email:
            form["customer_email"] = request.email
        try:
            answer = self._call("POST", "/v1/checkout/sessions", data=form, key=request.key)
        except RefundNotSent as exc:
            raise CheckoutNotStarted(str(exc), exc.answered) from None
        url, session_id = answer.get("url"), answer.get("id")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise CheckoutNotStarted("Stripe's answer has no payment page url", answered=True)
        expires = answer.get("expires_at")
        return CheckoutSession(
            processor=self.name,
            session_id=str(session_id),
            redirect_url=url,
            expires_at=expires if isinstance(expires, int) else None,
        )

    def refund_updates(self, event: dict) -> list[ProcessorRefund]:
        """`refund.*` events carry a Refund; `charge.refunded` a Charge with its refunds."""
        if event.get("type") not in self.REFUND_TYPES:
            return []
        obj = (event.get("data") or {}).get("object") or {}
        if event["type"] == "charge.refunded":
            refunds = (obj.get("refunds") or {}).get("data") or []
        else:
            refunds = [obj]
        return [_refund(r) for r in refunds if isinstance(r, dict) and r.get("id")]

    def refund(
        self, payment_reference: str, amount: int, currency: str, refund_id: str, key: str
    ) -> ProcessorRefund:
        form = {
            "payment_intent": payment_reference,
            "amount": str(amount),
            "metadata[hostledger_refund_id]": refund_id,
        }
        answer = self._call("POST", "/v1/refunds", data=form, key=key)
        refund = _refund(answer)
        if refund.status in ("failed", "canceled"):
            raise RefundNotSent(
                f"Stripe refund {refund.processor_refund_id} {refund.status}"
                + (f": {refund.failure}" if refund.failure else ""),
                answered=True,
            )
        return refund

    def find_refund(self, payment_reference: str, refund_id: str) -> ProcessorRefund | None:
        answer = self._call("GET", "/v1/refunds", params={"payment_intent": payment_reference})
        for item in answer.get("data") or []:
            if (item.get("metadata") or {}).get("hostledger_refund_id") == refund_id:
                found = _refund(item)
                if found.status not in ("failed", "canceled"):
                    return found
        return None

    def _call(self, method: str, path: str, data=None, params=None, key=None) -> dict:
        import requests

        if not self.api_key:
            raise RefundNotSent("no Stripe secret key is configured", answered=False)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            r = requests.request(
                method,
                self.api_base + path,
                data=data,
                params=params,
                headers=headers,
                timeout=self.TIMEOUT,
            )
        except requests.RequestException as exc:
            raise RefundNotSent(
                f"Stripe could not be reached: {type(exc).__name__}", False
            ) from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            error = (body.get("error") or {}) if isinstance(body, dict) else {}
            message = error.get("message") or error.get("code") or r.reason
            # 409 (the same key still in flight) and 429 (rate limited) are not kept
            # under the key: they are retried with it
            answered = r.status_code not in (409, 429)
            raise RefundNotSent(f"Stripe answered {r.status_code}: {message}", answered)
        if not isinstance(body, dict):
            raise RefundNotSent("Stripe's answer is not a JSON object", answered=True)
        return body

    @staticmethod
    def sign(secret: str, body: bytes, timestamp: int) -> str:
        """The header Stripe would send (for tests and for staff checking a setup)."""
        mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"


def _refund(obj: dict) -> ProcessorRefund:
    return ProcessorRefund(
        refund_id=(obj.get("metadata") or {}).get("hostledger_refund_id"),
        processor_refund_id=str(obj.get("id")),
        status=str(obj.get("status") or "pending"),
        failure=obj.get("failure_reason"),
    )


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None
