"""The billing service's audit index: which of its aggregates are invoices and personal
accounts, which are bookkeeping, and what its events say in plain words
(services/infra/audit.py)."""

from __future__ import annotations

from services.infra.audit import AuditIndex, AuditMapping

MAPPING = AuditMapping(
    kinds={"Invoice": "invoice", "PersonalAccount": "account"},
    references={"referrer_id": "customer"},
    internal=frozenset(
        {"CustomerAccounts", "CustomerInvoices", "InvoiceSeries", "ProjectBook", "IdempotencyKey"}
    ),
    moments={
        # each entry is an event of its own; the balance after it is the account's state
        "PersonalAccount": frozenset({"entry_id", "kind", "amount", "reference"}),
        "Invoice": frozenset({"refund_id", "amount", "to", "source", "reference"}),
    },
    nested={"PersonalAccount.BuyerChanged": "buyer"},
    subjects={"CreditNote": "Credit note", "UnmatchedPayment": "Unmatched payment"},
    summaries={
        "PersonalAccount.Opened": "Personal account opened",
        "PersonalAccount.BuyerChanged": "Personal account buyer's {fields} changed",
        "Invoice.DueSoon": "Invoice due soon: reminder sent",
        "Invoice.Overdue": "Invoice overdue",
        "Invoice.RefundRequested": "Invoice refund asked for",
        "Invoice.RefundCompleted": "Invoice refund paid out",
        "Refund.Sent": "Refund sent to the payment processor",
        "Commission.Credited": "Commission credited to the referrer",
        "UnmatchedPayment.Kept": "Payment for no known invoice kept for staff",
        "TaxTable.RuleAdded": "Tax rule added",
        "TaxTable.RuleChanged": "Tax rule changed",
        "AffiliateProgram.Changed": "Affiliate program {fields} changed",
    },
    # what its events set without carrying it (services/infra/audit.py: LIFECYCLE)
    effects={
        "Invoice.Issued": {"status": "unpaid", "overdue": False, "reminded": False},
        "Invoice.Paid": {"status": "paid"},
        "Invoice.Cancelled": {"status": "cancelled"},
        "Invoice.Voided": {"status": "void"},
        "Invoice.DueSoon": {"reminded": True},
        "Invoice.Overdue": {"overdue": True},
        "Invoice.Refunded": {"status": "refunded"},
        "Refund.Requested": {"status": "requested"},
        "Refund.Sent": {"status": "pending"},
        "Refund.Completed": {"status": "completed"},
        "Refund.Failed": {"status": "failed"},
        "AffiliateProgram.Created": {"active": True},
        "Commission.Earned": {"status": "pending"},
        "Commission.Credited": {"status": "credited"},
    },
)


class BillingAuditIndex(AuditIndex):
    mapping = MAPPING
