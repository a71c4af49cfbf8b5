"""Which notification an integration event makes, for whom and in which words (pure).

The service looks the customer up (e-mail, language, notification settings) and hands
it here with the event; what comes back is queued in the outbox as it is.
"""

from __future__ import annotations

from services.mailgateway import compose
from services.mailgateway.outbox import Notification
from services.mailgateway.templates import LANGUAGES

# kind -> the customer's notification setting that turns it off (None: always sent,
# because it is about the security of the account)
SETTING_OF = {
    "invoice_issued": "invoice_issued",
    "credit_note_issued": "invoice_issued",  # a billing document, like the invoice
    "payment_received": "payment_received",
    "invoice_due": "invoice_due",
    "invoice_overdue": "invoice_overdue",
    "service_suspended": "service_suspended",
    "service_unsuspended": "service_unsuspended",
    "ticket_opened": "ticket_reply",
    "ticket_reply": "ticket_reply",
    "account_credentials": None,
    "password_changed": None,
}


def customer_context(customer: dict, company: str) -> dict:
    return {
        "customer_name": customer.get("contact_person") or customer.get("name") or "",
        "company": company,
    }


def for_customer(
    *,
    key: str,
    kind: str,
    customer: dict | None,
    settings: dict | None,
    context: dict,
    domain: str,
    company: str,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    secret: str | None = None,
) -> Notification:
    """The notification of `kind` to a customer; `skipped` (with a reason) when the
    customer turned this kind off, is gone, or has no address."""
    status, reason = "pending", None
    if customer is None:
        status, reason = "skipped", "the customer no longer exists"
    elif not customer.get("email"):
        status, reason = "skipped", "the customer has no e-mail address"
    else:
        setting = SETTING_OF.get(kind)
        if setting is not None and not (settings or {}).get(setting, True):
            status, reason = "skipped", f"the customer turned off {setting} notifications"
    language = (customer or {}).get("language") or "en"
    if language not in LANGUAGES:
        language = "en"
    values = customer_context(customer or {}, company)
    values.update(context)
    return Notification(
        key=key,
        kind=kind,
        recipient=(customer or {}).get("email"),
        language=language,
        context=values,
        message_id=message_id or compose.notification_message_id(key, domain),
        customer_id=(customer or {}).get("id"),
        in_reply_to=in_reply_to,
        secret=secret if status == "pending" else None,
        status=status,
        reason=reason,
    )


def invoice_context(payload: dict) -> dict:
    return {
        "number": payload["number"],
        "total": int(payload["total"]),
        "currency": payload["currency"],
        "due_date": str(payload["due_date"]),
    }
