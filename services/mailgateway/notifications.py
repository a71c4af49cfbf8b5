"""Which notification an integration event makes, for whom and in which words (pure).

The service looks the customer up (e-mail, language, notification settings) and hands
it here with the event; what comes back is queued in the outbox as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
    "ticket_notice": "ticket_reply",
    # a violation notice: the client must hear of it to answer before its deadline
    "abuse_notice": None,
    "account_credentials": None,
    "password_changed": None,
    "password_reset": None,
    "email_change": None,
    "email_changed": None,
}


# An alert about the account (password changed) is news only while it is fresh: one that
# reaches the mail gateway later than this (the first catch-up over the customers' log
# after an upgrade replays every past change) is recorded as skipped, not mailed.
ALERT_MAX_AGE = timedelta(days=7)


def stale_alert(occurred_at: datetime, now: datetime) -> str | None:
    """Why an alert that happened at `occurred_at` is not sent any more, or None."""
    if now - occurred_at > ALERT_MAX_AGE:
        return f"it happened more than {ALERT_MAX_AGE.days} days before it reached us"
    return None


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
    skip_reason: str | None = None,
) -> Notification:
    """The notification of `kind` to a customer; `skipped` (with a reason) when the
    customer turned this kind off, is gone, or has no address, or `skip_reason` says why."""
    status, reason = "pending", None
    if skip_reason:
        status, reason = "skipped", skip_reason
    elif customer is None:
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
