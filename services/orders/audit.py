"""The orders service's audit index: which of its aggregates are orders and services,
which are bookkeeping, and what its events say in plain words (services/infra/audit.py)."""

from __future__ import annotations

from services.infra.audit import AuditIndex, AuditMapping

MAPPING = AuditMapping(
    kinds={"Order": "order", "Service": "service"},
    references={"renewal_invoice_id": "invoice"},
    # the order's request record and the indexes saved with orders and services
    internal=frozenset(
        {
            "InvoiceOrder",
            "RenewalLink",
            "CustomerServices",
            "OrderAttempt",
            "ProjectTerms",
            "CustomerLanguage",
            "IdempotencyKey",
        }
    ),
    moments={"Service": frozenset({"error", "next_attempt_at", "outcome", "by"})},
    subjects={"PromoCode": "Promo code"},
    summaries={
        "Order.Placed": "Order placed",
        "Order.Paid": "Order paid",
        "Service.Created": "Service ordered",
        "Service.ProvisioningRequested": "Service set up asked for",
        "Service.Provisioned": "Service set up",
        "Service.ProvisioningAttemptFailed": "Service set up failed (tried again later)",
        "Service.RenewalInvoiced": "Service renewal invoiced",
        "PromoCode.Used": "Promo code used",
        "PromoCode.Released": "Promo code use given back",
    },
    # what its events set without carrying it (services/infra/audit.py: LIFECYCLE)
    effects={
        "Order.Placed": {"status": "pending"},
        "Order.Paid": {"status": "paid"},
        "PromoCode.Created": {"active": True},
        "PromoCode.Deactivated": {"active": False},
        "PromoCode.Activated": {"active": True},
        "Service.Created": {"status": "pending"},
        "Service.Activated": {"status": "active"},
        "Service.Suspended": {"status": "suspended"},
        "Service.Unsuspended": {"status": "active"},
        "Service.Terminated": {"status": "terminated"},
        "Service.Cancelled": {"status": "cancelled"},
    },
)


class OrdersAuditIndex(AuditIndex):
    mapping = MAPPING
