"""Billing's aggregates: personal accounts (ledgers), invoices and their number series,
payments, and idempotency keys.

Money is integer minor units; every entry records when it happened (the event's
time, from the one clock), so a balance can be told at any past instant.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate, DomainError, IdempotencyKey, KeyedIndex  # noqa: F401
from services.infra.money import Money

_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/billing")

CREDIT_KINDS = ("payment", "refund", "correction", "commission")
DEBIT_KINDS = ("invoice_payment", "correction", "withdrawal")


class InsufficientBalance(DomainError):
    pass


class InvoiceNotPayable(DomainError):
    pass


class InvoiceNotVoidable(DomainError):
    pass


class PersonalAccount(KeyedIndex):
    """One per customer and currency; its balance is the sum of its entries.

    The aggregate keeps only what its invariants need: the balance (a debit may not take
    it below zero unless credit is allowed) and the currency, plus how many entries it
    has and whether their times are in order (what a reader of the ledger read model
    needs to know it is not missing any). Each entry is one event that also carries
    the balance after it, so the history
    explains every balance; the entries themselves are served by the ledger read model
    (readmodels.Ledger), and a snapshot stays a few hundred bytes however long the
    history grows.
    """

    # version 1 kept every entry in the aggregate (and in each snapshot)
    class_version = 2

    id_namespace = _NS
    id_prefix = "account"
    key_fields = ("customer_id", "currency")

    @event("Opened")
    def __init__(self, customer_id: UUID, currency: str, opened_at: datetime, buyer: dict):
        self.customer_id = customer_id
        self.currency = currency
        self.opened_at = opened_at
        self.buyer = buyer
        self.balance_amount = 0
        self.entry_count = 0
        # whether every entry's time is at or after the one before (the clock can be
        # moved back): then a reader knows that entries it has not read yet are all
        # later than the ones it has
        self.last_entry_at: datetime | None = None
        self.entries_in_order = True

    @staticmethod
    def upcast_v1_v2(state: dict) -> None:
        """A snapshot taken while the entries lived in the aggregate."""
        entries = state.pop("entries", None) or []
        state["balance_amount"] = sum(e["amount"] for e in entries)
        state["entry_count"] = len(entries)
        times = [e["at"] for e in entries]
        state["last_entry_at"] = max(times) if times else None
        state["entries_in_order"] = times == sorted(times)

    @event("BuyerChanged")
    def change_buyer(self, changes: dict) -> None:
        self.buyer = dict(self.buyer, **changes)

    @property
    def balance(self) -> Money:
        return Money(self.balance_amount, self.currency)

    def credit(
        self, kind: str, amount: Money, reference: str | None, reason: str | None, at: datetime
    ) -> UUID:
        """Add an entry; its id."""
        if kind not in CREDIT_KINDS:
            raise ValueError(f"unknown credit kind {kind!r}")
        self._check(amount)
        entry_id = uuid4()
        self._credited(
            entry_id=entry_id,
            kind=kind,
            amount=amount.amount,
            reference=reference,
            reason=reason,
            at=at,
            balance_after=self.balance_amount + amount.amount,
            customer_id=self.customer_id,
            currency=self.currency,
        )
        return entry_id

    @event("Credited")
    def _credited(
        self,
        entry_id: UUID,
        kind: str,
        amount: int,
        reference: str | None,
        reason: str | None,
        at: datetime,
        balance_after: int | None = None,
        customer_id: UUID | None = None,
        currency: str | None = None,
    ) -> None:
        # customer and currency ride along so that FundsAdded names whose money it is
        self._add_entry(amount, at)

    def debit(
        self,
        kind: str,
        amount: Money,
        reference: str | None,
        reason: str | None,
        at: datetime,
        allow_credit: bool = False,
    ) -> UUID:
        """Take an entry off; its id. Refused below zero unless credit is allowed."""
        if kind not in DEBIT_KINDS:
            raise ValueError(f"unknown debit kind {kind!r}")
        self._check(amount)
        if not allow_credit and self.balance_amount < amount.amount:
            raise InsufficientBalance(
                f"The balance ({self.balance_amount}) does not cover {amount.amount}."
            )
        entry_id = uuid4()
        self._debited(
            entry_id=entry_id,
            kind=kind,
            amount=-amount.amount,
            reference=reference,
            reason=reason,
            at=at,
            balance_after=self.balance_amount - amount.amount,
        )
        return entry_id

    @event("Debited")
    def _debited(
        self,
        entry_id: UUID,
        kind: str,
        amount: int,
        reference: str | None,
        reason: str | None,
        at: datetime,
        balance_after: int | None = None,
    ) -> None:
        self._add_entry(amount, at)

    def _add_entry(self, amount: int, at: datetime) -> None:
        # credits and debits are entries alike; debits carry a negative amount. Events
        # recorded before `balance_after` existed are applied the same way.
        self.balance_amount += amount
        self.entry_count += 1
        if self.last_entry_at is not None and at < self.last_entry_at:
            self.entries_in_order = False
        self.last_entry_at = at if self.last_entry_at is None else max(at, self.last_entry_at)

    def _check(self, amount: Money) -> None:
        if amount.currency != self.currency:
            raise ValueError(f"this account is in {self.currency}, not {amount.currency}")
        if amount.amount <= 0:
            raise ValueError("an entry's amount must be positive")


class CustomerAccounts(KeyedIndex):
    """Index: the currencies a customer has personal accounts in, saved with each account
    opened, so a handler finds a customer's accounts in the event store (a read model may
    lag). It also keeps the buyer details changed while no account was open here yet (a
    CustomerUpdated applied before the account of its CustomerRegistered was opened):
    the account opened next takes them."""

    id_namespace = _NS
    id_prefix = "customer-accounts"
    key_fields = ("customer_id",)

    @event("Started")
    def __init__(self, customer_id: UUID, currencies: list[str]):
        self.customer_id = customer_id
        self.currencies = list(currencies)
        self.waiting_changes: dict = {}

    @event("AccountAdded")
    def add(self, currency: str) -> None:
        if currency not in self.currencies:
            self.currencies.append(currency)
        self.waiting_changes = {}

    @event("BuyerChangesKept")
    def keep_changes(self, changes: dict) -> None:
        self.waiting_changes = dict(self.waiting_changes, **changes)


class CustomerInvoices(KeyedIndex):
    """Index: every invoice issued to a customer, saved with each invoice, and whether the
    customer was deleted (saved with the voiding of its unpaid invoices). A handler finds
    a customer's invoices here, never through a list that may lag; and since an invoice
    and a deletion both change the index, one issued at the moment of the deletion
    either is voided with the others or, saved after it, is refused."""

    id_namespace = _NS
    id_prefix = "customer-invoices"
    key_fields = ("customer_id",)

    @event("Started")
    def __init__(self, customer_id: UUID, invoice_ids: list[UUID]):
        self.customer_id = customer_id
        self.invoice_ids = list(invoice_ids)
        self.deleted_at: datetime | None = None

    @event("InvoiceAdded")
    def add(self, invoice_id: UUID) -> None:
        self.invoice_ids.append(invoice_id)

    @event("InvoicesAdded")
    def add_many(self, invoice_ids: list[UUID]) -> None:
        """A batch of invoices issued together (one event for them all)."""
        self.invoice_ids.extend(invoice_ids)

    @event("CustomerDeleted")
    def customer_deleted(self, at: datetime) -> None:
        self.deleted_at = at

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def invoice_buyer(details: dict) -> dict:
    """The buyer an invoice is issued to, from the customer's details as billing holds
    them when it is issued (the invoice keeps them from then on): `legal_name` is the
    company name for a company (and for a sole proprietor who gave a business name),
    the contact person for everyone else. The display name staff give a customer in
    their lists (`name`) is not the buyer's, and an individual is named by no company."""
    buyer = {k: v for k, v in details.items() if k != "name"}
    company = (buyer.get("company_name") or "").strip() or None
    if buyer.get("kind") == "individual":
        buyer["company_name"] = company = None
    if buyer.get("kind") in ("company", "sole_proprietor") and company:
        buyer["legal_name"] = company
    else:
        buyer["legal_name"] = buyer.get("contact_person") or company
    return buyer


class InvoiceSeries(KeyedIndex):
    """Numbers invoices of one project without gaps: the next number is taken in the same
    save as the invoice, so two issuers at once cannot both take it (one retries)."""

    id_namespace = _NS
    id_prefix = "series"
    key_fields = ("project_key",)

    @event("Started")
    def __init__(self, project_key: str, prefix: str):
        self.project_key = project_key
        self.prefix = prefix
        self.last = 0

    def take(self) -> str:
        self._taken(number=self.last + 1)
        return f"{self.prefix}{self.last:06d}"

    @event("NumberTaken")
    def _taken(self, number: int) -> None:
        self.last = number

    def take_many(self, count: int) -> list[str]:
        """The next `count` numbers, one after another, taken in one event (a batch of
        invoices saved together)."""
        first = self.last + 1
        self._taken_many(first=first, count=count)
        return [f"{self.prefix}{n:06d}" for n in range(first, first + count)]

    @event("NumbersTaken")
    def _taken_many(self, first: int, count: int) -> None:
        self.last = first + count - 1


class Invoice(Aggregate):
    @event("Issued")
    def __init__(
        self,
        customer_id: UUID,
        project_id: UUID | None,
        number: str,
        purpose: str,
        lines: list[dict],
        currency: str,
        total: int,
        issued_at: datetime,
        due_date: str,
        buyer: dict,
        seller: dict,
        subtotal: int,
        tax: dict | None,
    ):
        self.customer_id = customer_id
        self.project_id = project_id
        self.number = number
        self.purpose = purpose
        self.lines = lines
        self.currency = currency
        self.total = total
        self.issued_at = issued_at
        self.due_date = due_date
        self.buyer = buyer
        self.seller = seller
        self.subtotal = subtotal
        self.tax = tax
        self.status = "unpaid"
        self.overdue = False
        self.reminded = False
        self.paid_at: datetime | None = None
        self.payments: list[dict] = []
        self.refunds: dict[str, dict] = {}
        self.refunded = 0

    @property
    def amount(self) -> Money:
        return Money(self.total, self.currency)

    def check_payable(self) -> None:
        if self.status == "paid":
            raise InvoiceNotPayable(f"Invoice {self.number} is already paid.")
        if self.status != "unpaid":
            raise InvoiceNotPayable(f"Invoice {self.number} is {self.status}.")

    def mark_paid(self, source: str, reference: str | None, at: datetime) -> None:
        self.check_payable()
        self._paid(source=source, reference=reference, at=at, purpose=self.purpose)

    @event("Paid")
    def _paid(
        self, source: str, reference: str | None, at: datetime, purpose: str | None = None
    ) -> None:
        # the purpose rides along, so that InvoicePaid says what the invoice was for
        self.status = "paid"
        self.paid_at = at
        self.payments.append({"source": source, "reference": reference, "at": at})

    @event("Cancelled")
    def cancel(self, reason: str) -> None:
        self.check_payable()
        self.status = "cancelled"

    def void(self, reason: str, at: datetime) -> None:
        """Staff withdraw an unpaid invoice: it can no longer be paid, and its number stays
        used (the series never reuses it), so the gap-free numbering still explains it.
        No money moved for it (a personal account is debited only when an invoice is
        paid), so voiding needs no credit note: credit notes document money going back
        (refunds of paid invoices)."""
        if self.status != "unpaid":
            raise InvoiceNotVoidable(
                f"Only an unpaid invoice can be voided; invoice {self.number} is {self.status}."
            )
        self._voided(
            reason=reason,
            at=at,
            customer_id=self.customer_id,
            number=self.number,
            purpose=self.purpose,
        )

    @event("Voided")
    def _voided(
        self, reason: str, at: datetime, customer_id: UUID, number: str, purpose: str | None = None
    ) -> None:
        # the customer, number and purpose ride along, so the event names what it voided
        # and InvoiceVoided says what the invoice was for (older events have no purpose)
        self.status = "void"
        self.voided_at = at
        self.void_reason = reason

    def _notice(self) -> dict:
        """Carried by reminder and overdue events, so their readers need no lookup."""
        return {
            "customer_id": self.customer_id,
            "number": self.number,
            "total": self.total,
            "currency": self.currency,
            "due_date": self.due_date,
        }

    def remind_due(self, at: datetime) -> None:
        """Due soon and unpaid: a reminder is sent once (the mail gateway turns it into mail)."""
        self._due_soon(at=at, **self._notice())

    @event("DueSoon")
    def _due_soon(
        self, at: datetime, customer_id: UUID, number: str, total: int, currency: str, due_date: str
    ) -> None:
        self.reminded = True

    def mark_overdue(self, at: datetime) -> None:
        """Past its due date and still unpaid (recorded once, for reminders and dunning)."""
        self._overdue(at=at, **self._notice())

    @event("Overdue")
    def _overdue(
        self, at: datetime, customer_id: UUID, number: str, total: int, currency: str, due_date: str
    ) -> None:
        self.overdue = True

    @property
    def refund_reserved(self) -> int:
        """What the refunds asked for so far take of the total (done or on their way)."""
        return sum(r["amount"] for r in getattr(self, "refunds", {}).values())

    @property
    def refundable(self) -> int:
        return self.total - self.refund_reserved

    def processor_payment(self) -> dict | None:
        """The payment a processor took for this invoice (its source and reference)."""
        for payment in reversed(self.payments):
            if payment["source"] in PROCESSORS and payment.get("reference"):
                return payment
        return None

    def request_refund(self, refund_id: UUID, amount: int, to: str, at: datetime) -> None:
        """Reserve `amount` of the paid total for a refund; never more than was paid."""
        if self.status != "paid":
            raise InvoiceNotRefundable(
                f"Only a paid invoice can be refunded; {self.number} is {self.status}."
            )
        if amount < 1 or amount > self.refundable:
            raise InvoiceNotRefundable(
                f"Invoice {self.number} has {self.refundable} left to refund, not {amount}."
            )
        self._refund_requested(refund_id=refund_id, amount=amount, to=to, at=at)

    @event("RefundRequested")
    def _refund_requested(self, refund_id: UUID, amount: int, to: str, at: datetime) -> None:
        if not hasattr(self, "refunds"):
            self.refunds = {}
        self.refunds[str(refund_id)] = {"amount": amount, "to": to, "done": False}

    def complete_refund(self, refund_id: UUID, reason: str, at: datetime) -> None:
        """The refund's money went back; the invoice is refunded once all of it has."""
        refund = self.refunds[str(refund_id)]
        if refund["done"]:
            return
        self._refund_completed(refund_id=refund_id, at=at)
        if self.refunded == self.total:
            self._refunded(reason=reason, at=at)

    @event("RefundCompleted")
    def _refund_completed(self, refund_id: UUID, at: datetime) -> None:
        refund = self.refunds[str(refund_id)]
        refund["done"] = True
        self.refunded = getattr(self, "refunded", 0) + refund["amount"]

    @event("Refunded")
    def _refunded(self, reason: str, at: datetime) -> None:
        self.status = "refunded"


class InvoiceNotRefundable(DomainError):
    pass


PROCESSORS = ("stripe",)


class CreditNote(Aggregate):
    """The document of a refund: numbered in its project's own gapless series (taken in
    the same save), referring to the invoice, with the buyer and seller frozen as they
    stood on it. A full refund credits the invoice's lines; a partial one, one line."""

    @event("Issued")
    def __init__(
        self,
        customer_id: UUID,
        project_id: UUID | None,
        number: str,
        invoice_id: UUID,
        invoice_number: str,
        refund_id: UUID,
        to: str,
        reason: str,
        lines: list[dict],
        currency: str,
        subtotal: int,
        tax: dict | None,
        total: int,
        issued_at: datetime,
        buyer: dict,
        seller: dict,
    ):
        self.customer_id = customer_id
        self.project_id = project_id
        self.number = number
        self.invoice_id = invoice_id
        self.invoice_number = invoice_number
        self.refund_id = refund_id
        self.to = to
        self.reason = reason
        self.lines = lines
        self.currency = currency
        self.subtotal = subtotal
        self.tax = tax
        self.total = total
        self.issued_at = issued_at
        self.buyer = buyer
        self.seller = seller


class Refund(Aggregate):
    """Money going back for a paid invoice: to the personal account (done at once) or out
    through the processor that took the payment (requested, then completed on the
    processor's answer or webhook; a failure is recorded and may be retried, each retry
    guarded so that the processor never pays out twice)."""

    @event("Requested")
    def __init__(
        self,
        refund_id: UUID,
        customer_id: UUID,
        invoice_id: UUID,
        invoice_number: str,
        credit_note_id: UUID,
        credit_note_number: str,
        amount: int,
        currency: str,
        to: str,
        processor: str | None,
        payment_reference: str | None,
        reason: str,
        requested_at: datetime,
    ):
        self.customer_id = customer_id
        self.invoice_id = invoice_id
        self.invoice_number = invoice_number
        self.credit_note_id = credit_note_id
        self.credit_note_number = credit_note_number
        self.amount = amount
        self.currency = currency
        self.to = to
        self.processor = processor
        self.payment_reference = payment_reference
        self.reason = reason
        self.requested_at = requested_at
        self.status = "requested"
        self.attempt = 1
        self.processor_refund_id: str | None = None
        self.error: str | None = None
        self.completed_at: datetime | None = None

    @staticmethod
    def create_id(refund_id: UUID, **_) -> UUID:
        """Chosen before the refund exists: its invoice and credit note name it."""
        return refund_id

    @property
    def attempt_key(self) -> str:
        """The Idempotency-Key of the current attempt at the processor."""
        return f"hostledger-refund-{self.id}-{self.attempt}"

    @event("Sent")
    def mark_sent(self, processor_refund_id: str, processor_status: str) -> None:
        """The processor accepted it and is paying out (its own status: pending ...)."""
        self.processor_refund_id = processor_refund_id
        self.status = "pending"
        self.error = None

    def complete(self, processor_refund_id: str | None, at: datetime) -> None:
        if self.status == "completed":
            return
        self._completed(
            processor_refund_id=processor_refund_id or self.processor_refund_id,
            at=at,
            customer_id=self.customer_id,
            invoice_id=self.invoice_id,
            invoice_number=self.invoice_number,
            credit_note_number=self.credit_note_number,
            amount=self.amount,
            currency=self.currency,
            to=self.to,
        )

    @event("Completed")
    def _completed(
        self,
        processor_refund_id: str | None,
        at: datetime,
        customer_id: UUID,
        invoice_id: UUID,
        invoice_number: str,
        credit_note_number: str,
        amount: int,
        currency: str,
        to: str,
    ) -> None:
        self.status = "completed"
        self.processor_refund_id = processor_refund_id
        self.completed_at = at
        self.error = None

    @event("Failed")
    def fail(self, error: str, answered: bool, at: datetime) -> None:
        """The processor refused, failed or could not be reached. `answered`: it did
        answer, so it keeps that answer under this attempt's key and a retry needs a
        new key (after checking that no refund of ours went through meanwhile)."""
        self.status = "failed"
        self.error = error
        if answered:
            self.attempt += 1

    def check_retryable(self) -> None:
        if self.to != "processor" or self.status not in ("failed", "requested"):
            raise RefundNotRetryable(f"This refund is {self.status}; only a failed one is retried.")


class RefundNotRetryable(DomainError):
    pass


class ProjectBook(Aggregate):
    """What billing knows of each project (brand): the seller on its invoices and whether
    its customers' accounts may go below zero. One aggregate, read by id: never stale."""

    ID = uuid5(_NS, "projects")

    @event("Started")
    def __init__(self):
        self.projects: dict[str, dict] = {}

    @staticmethod
    def create_id(**_) -> UUID:
        return ProjectBook.ID

    @event("ProjectRecorded")
    def record(self, project_id: str, name: str, seller: dict, allow_credit: bool) -> None:
        self.projects[project_id] = {"name": name, "seller": seller, "allow_credit": allow_credit}

    def seller(self, project_id) -> dict:
        project = self.projects.get(str(project_id)) if project_id else None
        return dict(project["seller"]) if project else {"legal_name": DEFAULT_SELLER}

    def allows_credit(self, project_id) -> bool:
        project = self.projects.get(str(project_id)) if project_id else None
        return bool(project and project["allow_credit"])


DEFAULT_SELLER = "hostledger"


class TaxTable(Aggregate):
    """Every tax rule of the provider, in one aggregate: read by id, so never stale."""

    ID = uuid5(_NS, "tax-table")

    @event("Started")
    def __init__(self):
        self.rules: list[dict] = []

    @staticmethod
    def create_id(**_) -> UUID:
        return TaxTable.ID

    @event("RuleAdded")
    def add_rule(self, rule: dict) -> None:
        self.rules.append(rule)

    @event("RuleChanged")
    def change_rule(self, rule_id: str, changes: dict) -> None:
        """A rule's name, rate, inclusion or validity changed (ending a rule: `valid_to`
        now). Issued invoices keep the tax they were issued with."""
        for rule in self.rules:
            if rule["id"] == rule_id:
                rule.update(changes)

    def rule_for(self, project_id: UUID | None, country: str | None, at: datetime) -> dict | None:
        """The rule for this project (or any project) and buyer country at `at`; the most
        specific wins (a project's own rule before a rule for every project). A project
        is the same whether named by its id or by the id's text (as a buyer names it)."""
        project = str(project_id) if project_id else None
        matching = [
            r
            for r in self.rules
            if r["country"] == country
            and (r["project_id"] is None or str(r["project_id"]) == project)
            and (r["valid_from"] is None or r["valid_from"] <= at)
            and (r["valid_to"] is None or at < r["valid_to"])
        ]
        matching.sort(key=lambda r: r["project_id"] is None)
        return matching[0] if matching else None


class AffiliateProgram(KeyedIndex):
    """A referrer earns `percent` of what referred customers pay, `maturity_days` later."""

    id_namespace = _NS
    id_prefix = "affiliate-program"
    key_fields = ("name",)

    @classmethod
    def key_text(cls, name: str) -> str:
        return name.strip().lower()

    @event("Created")
    def __init__(self, name: str, percent: str, maturity_days: int):
        self.name = name
        self.percent = percent
        self.maturity_days = maturity_days
        self.active = True

    @event("Changed")
    def change(self, changes: dict) -> None:
        """Its percentage or maturity changed, or it was deactivated (`active`: False, no
        new commissions are earned under it; earned ones mature as they were) or active
        again. Customers keep referring to it by id."""
        for name, value in changes.items():
            setattr(self, name, value)

    @property
    def is_active(self) -> bool:
        return getattr(self, "active", True)  # programs created before it could change


class Commission(KeyedIndex):
    """Earned when a referred customer pays an invoice; credited once it matures (one per
    invoice)."""

    id_namespace = _NS
    id_prefix = "commission"
    key_fields = ("invoice_id",)

    @event("Earned")
    def __init__(
        self,
        referrer_id: UUID,
        customer_id: UUID,
        invoice_id: UUID,
        program: str,
        amount: int,
        currency: str,
        matures_at: datetime,
    ):
        self.referrer_id = referrer_id
        self.customer_id = customer_id
        self.invoice_id = invoice_id
        self.program = program
        self.amount = amount
        self.currency = currency
        self.matures_at = matures_at
        self.status = "pending"

    @event("Credited")
    def mark_credited(self, at: datetime) -> None:
        if self.status != "pending":
            raise DomainError(f"commission already {self.status}")
        self.status = "credited"


class Payment(Aggregate):
    """Money received from outside: by staff (bank transfer, cash ...) or a processor."""

    @event("Received")
    def __init__(
        self,
        customer_id: UUID,
        amount: int,
        currency: str,
        method: str,
        reference: str,
        invoice_id: UUID | None,
        received_at: datetime,
    ):
        self.customer_id = customer_id
        self.amount = amount
        self.currency = currency
        self.method = method
        self.reference = reference
        self.invoice_id = invoice_id
        self.received_at = received_at


class UnmatchedPayment(Aggregate):
    """Money a processor says arrived for no invoice we know: kept for staff to assign."""

    @event("Kept")
    def __init__(
        self,
        processor: str,
        event_id: str,
        reference: str,
        amount: int,
        currency: str,
        invoice_id: str | None,
        received_at: datetime,
    ):
        self.processor = processor
        self.event_id = event_id
        self.reference = reference
        self.amount = amount
        self.currency = currency
        self.invoice_id = invoice_id
        self.received_at = received_at
