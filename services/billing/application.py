"""Billing: personal accounts, invoices, payments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

from eventlet.semaphore import Semaphore
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import billing as contract
from contracts.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from contracts.fields import invalid
from services.billing import ledger
from services.billing.checkout import Checkouts
from services.billing.discounts import SCHEMA as DISCOUNT_BOOK  # renewal batches
from services.billing.domain import (
    AffiliateProgram,
    Commission,
    CreditNote,
    CustomerAccounts,
    CustomerInvoices,
    InsufficientBalance,
    Invoice,
    InvoiceNotPayable,
    InvoiceNotVoidable,
    InvoiceSeries,
    Payment,
    PersonalAccount,
    ProjectBook,
    Refund,
    TaxTable,
    UnmatchedPayment,
    invoice_buyer,
)
from services.billing.processors import BadSignature
from services.billing.refunds import Refunds
from services.billing.tax import invoice_totals
from services.billing.views import lines_view, tax_view
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat
from services.infra.money import Money, discounted, percentage_of
from services.infra.paging import page_window
from services.infra.personal_data import PersonalFields
from services.infra.requests import answer_with_save

T = TypeVar("T")
DEFAULT_DUE_DAYS = 14
RETRIES = 20


# the buyer's contact details are personal; an invoice's and a credit note's legal name,
# country, kind, company name, number, lines and totals are what tax law keeps
_CONTACT = PersonalFields.fields("buyer.email", "buyer.contact_person")
_CONTACT_CHANGES = PersonalFields.fields("changes.email", "changes.contact_person")
# what staff typed about the customer's money: why they corrected its account, voided,
# cancelled or refunded its invoice (readmodels.Ledger scrubs the entries' copies)
_REASON = PersonalFields.fields("reason")
PERSONAL = PersonalFields(
    {
        "PersonalAccount.Opened": _CONTACT,
        "PersonalAccount.BuyerChanged": _CONTACT_CHANGES,
        "PersonalAccount.Credited": _REASON,
        "PersonalAccount.Debited": _REASON,
        "CustomerAccounts.BuyerChangesKept": _CONTACT_CHANGES,
        "Invoice.Issued": _CONTACT,
        "Invoice.Voided": _REASON,
        "Invoice.Cancelled": _REASON,
        "Invoice.Refunded": _REASON,
        "Refund.Requested": _REASON,
        "CreditNote.Issued": {**_CONTACT, **_REASON},
    }
)


class Billing(Checkouts, Refunds, HostledgerApplication):
    name = "billing"
    service = "billing"
    personal = PERSONAL
    # a busy account is read from its latest snapshot plus the events after it (a
    # snapshot holds the balance, not the entries: a few hundred bytes, so every 20th
    # version costs less than replaying up to 99 events in every payment)
    snapshotting_intervals = {PersonalAccount: 20, InvoiceSeries: 50, CustomerInvoices: 50}
    publications = {
        PersonalAccount.Opened: contract.AccountOpened,
        Invoice.Issued: contract.InvoiceIssued,
        Invoice.Paid: contract.InvoicePaid,
        Invoice.Voided: contract.InvoiceVoided,
        Payment.Received: contract.PaymentReceived,
        Invoice.Overdue: contract.InvoiceOverdue,
        Invoice.DueSoon: contract.InvoiceDueSoon,
        CreditNote.Issued: contract.CreditNoteIssued,
        Refund.Completed: contract.RefundIssued,
        PersonalAccount.Credited: contract.FundsAdded,
    }
    # the discount book the renewal batches are priced with (discounts.py)
    schema_statements = DISCOUNT_BOOK

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._series_locks: dict[str, Semaphore] = {}
        # whether this application's discount book was seeded from the customers service
        # (BillingService._start_discount_book): once per running service
        self.discount_book_started = False

    # -- accounts -----------------------------------------------------------------------------

    def open_account(self, customer_id: UUID, currency: str, buyer: dict | None = None):
        """Open the customer's account in `currency`; opening it again changes nothing. The
        account is added to the customer's index in the same save, and takes the buyer
        changes that came while no account was open."""
        try:
            return self.repository.get(PersonalAccount.id_for(customer_id, currency))
        except AggregateNotFoundError:
            pass
        index = self._customer_accounts(customer_id)
        account = PersonalAccount(
            customer_id=customer_id,
            currency=currency,
            opened_at=clock.now(),
            buyer=dict(buyer or {}, **index.waiting_changes),
        )
        index.add(currency)
        self.save(account, index)
        return account

    def update_buyer(self, customer_id: UUID, changes: dict) -> None:
        """Apply a customer's changes to each of its accounts; with none open yet, keep them
        for the account opened next (never dropped). Invoices issued from then on name the
        buyer so (`invoice_buyer`); issued ones keep the buyer they were issued to."""
        index = self._customer_accounts(customer_id)
        accounts = [self.account(customer_id, currency) for currency in index.currencies]
        for account in accounts:
            account.change_buyer(changes)
        if not accounts:
            index.keep_changes(changes)
        # the index is saved when it changed or is new (seeded from older accounts)
        self.save(*accounts, index)

    def accounts_of(self, customer_id: UUID) -> list[PersonalAccount]:
        """The customer's accounts, in the order they were opened (from the event store)."""
        index = self._customer_accounts(customer_id)
        return [self.account(customer_id, currency) for currency in index.currencies]

    def _customer_accounts(self, customer_id: UUID) -> CustomerAccounts:
        """The customer's account index; a new one (not saved yet) when there is none."""
        try:
            return self.repository.get(CustomerAccounts.id_for(customer_id))
        except AggregateNotFoundError:
            pass
        # accounts opened before the index existed are listed only by the read model,
        # which has long projected them: the new index starts with them
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('account_list') IS NOT NULL AS listed")
            older = []
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT currency FROM account_list WHERE customer_id = %s ORDER BY opened_at",
                    (customer_id,),
                )
                older = [r["currency"] for r in curs.fetchall()]
        return CustomerAccounts(customer_id=customer_id, currencies=older)

    def account(self, customer_id: UUID, currency: str) -> PersonalAccount:
        try:
            return self.repository.get(PersonalAccount.id_for(customer_id, currency))
        except AggregateNotFoundError:
            raise NotFound("This customer has no personal account in that currency.") from None

    def account_view(
        self, a: PersonalAccount, at: datetime | None = None, page: int = 1, page_size: int = 50
    ) -> dict:
        """Balance and a page of entries; with `at`, as they stood then (ledger.py)."""
        return ledger.account_view(self, a, at, page, page_size)

    # -- invoices ---------------------------------------------------------------------------

    def issue_invoice(
        self,
        customer_id: UUID,
        currency: str,
        lines: list[dict],
        purpose: str,
        due_days: int = DEFAULT_DUE_DAYS,
        project_id: UUID | None = None,
        seller: dict | None = None,
        discounts: list[dict] = (),
        idempotency_key: str | None = None,
        request: dict | None = None,
    ) -> dict:
        """Issue an invoice with the next number of its project's series (gapless), and
        answer it as `invoice_view` shapes it. `discounts`: the customer's discounts valid
        now (from the discount book, services.billing.discounts). The same
        `idempotency_key` with the same `request` answers the first invoice again instead
        of issuing another. A deleted customer is issued none (409): the invoice is added
        to the customer's invoice index in the same save, so one that races the deletion
        is voided with the others or refused."""
        account = self.account(customer_id, currency)
        project_id = project_id or account.buyer.get("project_id")
        priced = [price_line(line, currency, discounts) for line in lines]
        if not priced:
            raise ValidationFailed("An invoice needs at least one line.", {"lines": ["Empty."]})
        subtotal = sum(line["total"] for line in priced)
        project_key = str(project_id or "default")

        def attempt() -> dict:
            earlier = self.idempotent_answer(
                "invoice", idempotency_key, request or {}, key_names_it=purpose == "renewal"
            )
            if earlier is not None:
                return earlier
            invoices = self._customer_invoices(customer_id)
            check_not_deleted(invoices)
            series = self._series(project_key)
            now = clock.now()
            rule = self.tax_table().rule_for(project_id, account.buyer.get("country"), now)
            tax, total = invoice_totals(subtotal, rule)
            invoice = Invoice(
                customer_id=customer_id,
                project_id=project_id,
                number=series.take(),
                purpose=purpose,
                lines=priced,
                currency=currency,
                total=total,
                issued_at=now,
                due_date=(now + timedelta(days=due_days)).date().isoformat(),
                buyer=invoice_buyer(account.buyer),
                seller=seller or self.project_book().seller(project_id),
                subtotal=subtotal,
                tax=tax,
            )
            invoices.add(invoice.id)
            answer = invoice_view(invoice)
            key = self.idempotency_record(
                "invoice", idempotency_key, request or {}, answer, customer_id=customer_id
            )
            self.save(series, invoice, key, invoices)
            return answer

        # issuers in this process take turns on a series; other instances are kept
        # honest by the series' version (a lost race retries with the next number)
        with self._series_locks.setdefault(project_key, Semaphore()):
            return retry_on_conflict(attempt)

    def void_issued_for(self, idempotency_key: str, reason: str) -> dict:
        """Withdraw the invoice issued with this key (an order that was not placed): it is
        cancelled with `reason`, recorded, and can no longer be paid. When none was issued
        yet, the key is spent, so a request still on its way issues none. Doing it again
        changes nothing. Answers `status`: voided, cancelled, or paid (it was paid before
        it could be withdrawn: the order must be placed), and the invoice."""
        from services.infra.domain import IdempotencyKey

        def attempt() -> dict:
            try:
                used = self.repository.get(IdempotencyKey.id_for("invoice", idempotency_key))
            except AggregateNotFoundError:
                spent = IdempotencyKey(
                    scope="invoice",
                    key=idempotency_key,
                    request_hash="voided",
                    answer={"voided": True, "reason": reason},
                )
                self.save(spent)
                return {"invoice": None, "status": "voided"}
            if not isinstance(used.answer, dict):
                # its customer was erased (so deleted: its unpaid invoices were voided)
                return {"invoice": None, "status": "voided"}
            if used.answer.get("voided"):
                return {"invoice": None, "status": "voided"}
            invoice = self.invoice(UUID(used.answer["id"]))
            if invoice.status == "unpaid":
                invoice.cancel(reason=reason)
                self.save(invoice)
            return {"invoice": invoice_view(invoice), "status": invoice.status}

        return retry_on_conflict(attempt)

    def void_invoice(self, invoice_id: UUID, reason: str) -> Invoice:
        """Staff void an unpaid invoice with `reason` (recorded with who did it); its
        number stays used. Any other status: 409 saying what it is."""

        def attempt() -> Invoice:
            invoice = self.invoice(invoice_id)
            try:
                invoice.void(reason=reason, at=clock.now())
            except InvoiceNotVoidable as exc:
                raise Conflict(str(exc)) from None
            self.save(invoice)
            return invoice

        return retry_on_conflict(attempt)

    def customer_deleted(self, customer_id: UUID, reason: str) -> int:
        """The customer was deleted: every unpaid invoice of it is voided with `reason` and
        the customer is recorded as deleted (no invoice is issued to it from then on), in
        one save; how many were voided. Its invoices are found through its invoice index
        (never through a list that may lag), so one issued a moment before is voided too;
        one saved meanwhile makes this save conflict, and the handler runs again. Heard
        again, it changes nothing."""
        invoices = self._customer_invoices(customer_id)
        now = clock.now()
        voided = []
        for invoice_id in invoices.invoice_ids:
            # (an id the list seeded the index with may name no invoice: nothing to void)
            invoice = self._invoice_or_none(invoice_id)
            if invoice is not None and invoice.status == "unpaid":
                invoice.void(reason=reason, at=now)
                voided.append(invoice)
        if not invoices.deleted:
            invoices.customer_deleted(at=now)
        if voided or invoices.pending_events:
            self.save(invoices, *voided)
        return len(voided)

    def erase_customer(self, customer_id: UUID, reason: str) -> bool:
        """A deleted customer's personal data here is erased: its key is destroyed (the
        buyer's e-mail and contact person read as erased on its account, invoices and
        credit notes, which keep their legal name, numbers, lines and totals; the ledger
        and balances stay) and its accounts' snapshots go. False when done before."""
        try:
            index = self.repository.get(CustomerAccounts.id_for(customer_id))
            currencies = list(index.currencies)
        except AggregateNotFoundError:
            currencies = []
        return self.erase_personal_data(
            customer_id,
            reason,
            snapshot_ids=[PersonalAccount.id_for(customer_id, c) for c in currencies],
        )

    def has_invoice_index(self, customer_id: UUID) -> bool:
        try:
            self.repository.get(CustomerInvoices.id_for(customer_id))
        except AggregateNotFoundError:
            return False
        return True

    def _customer_invoices(self, customer_id: UUID) -> CustomerInvoices:
        """The customer's invoice index; a new one (not saved yet) when there is none."""
        try:
            return self.repository.get(CustomerInvoices.id_for(customer_id))
        except AggregateNotFoundError:
            pass
        # invoices issued before the index existed are listed only by the invoice list,
        # which has long projected them: the new index starts with them
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('invoice_list') IS NOT NULL AS listed")
            older = []
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT invoice_id FROM invoice_list WHERE customer_id = %s"
                    " ORDER BY issued_at, invoice_id",
                    (customer_id,),
                )
                older = [r["invoice_id"] for r in curs.fetchall()]
        return CustomerInvoices(customer_id=customer_id, invoice_ids=older)

    def project_book(self) -> ProjectBook:
        try:
            return self.repository.get(ProjectBook.ID)
        except AggregateNotFoundError:
            return ProjectBook()

    def record_project(self, project_id: UUID, name: str, seller: dict, allow_credit: bool):
        def attempt() -> None:
            book = self.project_book()
            book.record(
                project_id=str(project_id), name=name, seller=seller, allow_credit=allow_credit
            )
            self.save(book)

        retry_on_conflict(attempt)

    def tax_table(self) -> TaxTable:
        try:
            return self.repository.get(TaxTable.ID)
        except AggregateNotFoundError:
            return TaxTable()

    def add_tax_rule(self, data: dict) -> dict:
        if data.get("project_id") and str(data["project_id"]) not in self.project_book().projects:
            raise invalid("project_id", "No such project.")
        starts, ends = data.get("valid_from"), data.get("valid_to")
        if starts and ends and ends <= starts:
            raise ValidationFailed(
                "The rule ends before it starts.", {"valid_to": ["Must be after valid_from."]}
            )
        rule = {
            "id": str(uuid4()),
            "name": data["name"],
            "country": data["country"],
            "project_id": data.get("project_id"),
            "rate": str(data["rate"]),
            "inclusive": data["inclusive"],
            "valid_from": starts,
            "valid_to": ends,
        }

        def attempt() -> dict:
            table = self.tax_table()
            table.add_rule(rule)
            self.save(table)
            return rule

        return retry_on_conflict(attempt)

    def change_tax_rule(self, rule_id: str, changes: dict) -> dict:
        """Change a rule's name, rate, inclusion or validity (recorded with who did it);
        the rule as it now is. 404 for no such rule."""
        changes = {k: (str(v) if k == "rate" else v) for k, v in changes.items()}

        def attempt() -> dict:
            table = self.tax_table()
            rule = next((r for r in table.rules if r["id"] == rule_id), None)
            if rule is None:
                raise NotFound("No such tax rule.")
            merged = dict(rule, **changes)
            starts, ends = merged["valid_from"], merged["valid_to"]
            if starts and ends and ends <= starts:
                raise ValidationFailed(
                    "The rule ends before it starts.", {"valid_to": ["Must be after valid_from."]}
                )
            table.change_rule(rule_id=rule_id, changes=changes)
            self.save(table)
            return merged

        return retry_on_conflict(attempt)

    def correct_balance(
        self, customer_id: UUID, currency: str, amount: int, reason: str
    ) -> PersonalAccount:
        """A staff correction: credit (amount > 0) or debit (amount < 0), with its reason."""
        if amount == 0:
            raise ValidationFailed("A correction is not zero.", {"amount.amount": ["Not zero."]})

        def attempt() -> PersonalAccount:
            account = self.account(customer_id, currency)
            now = clock.now()
            if amount > 0:
                account.credit("correction", Money(amount, currency), None, reason, now)
            else:
                try:
                    account.debit("correction", Money(-amount, currency), None, reason, now)
                except InsufficientBalance as exc:
                    raise Conflict(
                        f"The correction would take the balance below zero. {exc}"
                    ) from None
            self.save(account)
            return account

        return retry_on_conflict(attempt)

    # -- affiliate commissions -------------------------------------------------------------

    def create_program(self, name: str, percent: str, maturity_days: int) -> AffiliateProgram:
        program = AffiliateProgram(name=name, percent=str(percent), maturity_days=maturity_days)
        try:
            self.save(program)
        except IntegrityError:
            raise Conflict(f"A program named {name!r} exists.", {"name": ["Taken."]}) from None
        return program

    def change_program(self, program_id: UUID, changes: dict) -> AffiliateProgram:
        """Change a program's percentage or maturity, or (de)activate it, recorded with
        who did it."""

        def attempt() -> AffiliateProgram:
            try:
                program = self.repository.get(program_id)
            except AggregateNotFoundError:
                program = None
            if not isinstance(program, AffiliateProgram):
                raise NotFound("No such affiliate program.")
            if changes:
                program.change(changes=changes)
                self.save(program)
            return program

        return retry_on_conflict(attempt)

    def programs(self) -> list[AffiliateProgram]:
        from eventsourcing.utils import get_topic

        topic = get_topic(AffiliateProgram.Created)
        ids = [n.originator_id for n in self.recorder.select_notifications(1, 1000, topics=[topic])]
        return [self.repository.get(i) for i in ids]

    def _commission_for(self, invoice: Invoice, account: PersonalAccount, now: datetime):
        """The referrer's commission on this payment, or None (saved with the payment)."""
        referrer, program_name = (
            account.buyer.get("referrer_id"),
            account.buyer.get("affiliate_program"),
        )
        if not referrer or not program_name or invoice.purpose == "add_funds":
            return None
        try:
            program_id = UUID(str(program_name))
        except ValueError:  # named by text, before programs were referenced by id
            program_id = AffiliateProgram.id_for(program_name)
        try:
            program = self.repository.get(program_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(program, AffiliateProgram) or not program.is_active:
            return None
        amount = percentage_of(invoice.amount, program.percent)
        if amount.amount <= 0:
            return None
        return Commission(
            referrer_id=UUID(str(referrer)),
            customer_id=invoice.customer_id,
            invoice_id=invoice.id,
            program=program.name,
            amount=amount.amount,
            currency=amount.currency,
            matures_at=now + timedelta(days=program.maturity_days),
        )

    def remind_due_invoices(self, days_before: int) -> int:
        """Once per unpaid invoice, `days_before` days before its due date; how many."""
        today = clock.now().date()
        return self._mark_unpaid(
            "NOT reminded AND NOT overdue AND due_date <= %s AND due_date >= %s",
            (today + timedelta(days=days_before), today),
            done=lambda invoice: invoice.reminded,
            mark=Invoice.remind_due,
            job="scheduler:invoice_reminders",
        )

    def mark_overdue_invoices(self) -> int:
        """Record once that each unpaid invoice is past its due date; how many were marked."""
        return self._mark_unpaid(
            "NOT overdue AND due_date < %s",
            (clock.now().date(),),
            done=lambda invoice: invoice.overdue,
            mark=Invoice.mark_overdue,
            job="scheduler:overdue_invoices",
        )

    def _mark_unpaid(self, condition: str, params: tuple, done, mark, job: str) -> int:
        """Apply `mark` once to each unpaid invoice the list finds by `condition` (a read
        model: each candidate is checked again on the invoice itself before it changes).
        An invoice that keeps failing is parked under `job` and the others go on."""
        from services.infra.parking import ScheduledItems

        items = ScheduledItems(self, job)
        now = clock.now()
        with self.datastore.transaction() as curs:
            curs.execute(
                f"SELECT invoice_id FROM invoice_list WHERE status = 'unpaid' AND {condition}"
                " ORDER BY due_date LIMIT %s",  # parked ones do not crowd the others out
                (*params, 500 + len(items.open_items())),
            )
            candidates = [r["invoice_id"] for r in curs.fetchall()]
        marked = 0
        for invoice_id in candidates:

            def attempt(invoice_id=invoice_id) -> bool:
                invoice = self.repository.get(invoice_id)
                if invoice.status != "unpaid" or done(invoice):
                    return False
                mark(invoice, at=now)
                self.save(invoice)
                return True

            marked += items.run(
                str(invoice_id), lambda a=attempt: retry_on_conflict(a), "invoice", default=0
            )
        return marked

    def mature_commissions(self) -> int:
        """Credit every pending commission whose maturity has come; how many were credited.
        The list (a read model) only finds candidates: each is checked again on the
        commission itself, and one the list has not shown yet is found by the next run."""
        from services.infra.parking import ScheduledItems

        items = ScheduledItems(self, "scheduler:commissions")
        now = clock.now()
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT commission_id FROM commission_list WHERE status = 'pending'"
                " AND matures_at <= %s ORDER BY matures_at LIMIT %s",
                (now, 500 + len(items.open_items())),
            )
            due = [r["commission_id"] for r in curs.fetchall()]
        credited = 0
        for commission_id in due:

            def attempt(commission_id=commission_id) -> bool:
                commission = self.repository.get(commission_id)
                if commission.status != "pending":
                    return False
                account = self.account(commission.referrer_id, commission.currency)
                account.credit(
                    "commission",
                    Money(commission.amount, commission.currency),
                    reference=str(commission.invoice_id),
                    reason=None,
                    at=now,
                )
                commission.mark_credited(at=now)
                self.save(commission, account)
                return True

            def credit(attempt=attempt) -> int:
                try:
                    return retry_on_conflict(attempt)
                except NotFound:
                    return 0  # the referrer has no account in that currency: stays pending

            credited += items.run(str(commission_id), credit, "commission", default=0)
        return credited

    def _series(self, project_key: str) -> InvoiceSeries:
        try:
            return self.repository.get(InvoiceSeries.id_for(project_key))
        except AggregateNotFoundError:
            prefix = "" if project_key == "default" else f"{project_key[:4].upper()}-"
            return InvoiceSeries(project_key=project_key, prefix=prefix)

    def invoice(self, invoice_id: UUID, customer_id: UUID | None = None) -> Invoice:
        try:
            invoice = self.repository.get(invoice_id)
        except AggregateNotFoundError:
            invoice = None
        if not isinstance(invoice, Invoice) or (
            customer_id is not None and invoice.customer_id != customer_id
        ):
            raise NotFound("No such invoice.")
        return invoice

    def pay_from_balance(self, customer_id: UUID, invoice_id: UUID) -> Invoice:
        """Debit the account and mark the invoice paid, in one atomic save."""

        def attempt() -> Invoice:
            invoice = self.invoice(invoice_id, customer_id)
            account = self.account(customer_id, invoice.currency)
            now = clock.now()
            try:
                invoice.mark_paid(source="balance", reference=None, at=now)
                account.debit(
                    "invoice_payment",
                    invoice.amount,
                    reference=invoice.number,
                    reason=None,
                    at=now,
                    allow_credit=self.project_book().allows_credit(invoice.project_id),
                )
            except InvoiceNotPayable as exc:
                raise Conflict(str(exc)) from None
            except InsufficientBalance as exc:
                raise Conflict(
                    f"Not enough balance to pay invoice {invoice.number}. {exc}"
                ) from None
            self.save(invoice, account, self._commission_for(invoice, account, now))
            return invoice

        return retry_on_conflict(attempt)

    # -- payments ----------------------------------------------------------------------------

    def record_payment(
        self,
        customer_id: UUID,
        amount: Money,
        method: str,
        reference: str,
        invoice_id: UUID | None,
        idempotency_key: str | None,
        request: dict,
    ) -> dict:
        """Money received: to the personal account, or paying that invoice with any excess
        left on the account. The same idempotency key with the same request answers the
        first answer again; with another request, 409."""

        def attempt() -> dict:
            earlier = self.idempotent_answer("payment", idempotency_key, request)
            if earlier is not None:
                return earlier
            try:
                account = self.account(customer_id, amount.currency)
            except NotFound:
                raise invalid(
                    "customer_id", f"No such customer with a personal account in {amount.currency}."
                ) from None
            now = clock.now()
            payment = Payment(
                customer_id=customer_id,
                amount=amount.amount,
                currency=amount.currency,
                method=method,
                reference=reference,
                invoice_id=invoice_id,
                received_at=now,
            )
            account.credit(
                "payment", amount, reference=f"{method}:{reference}", reason=None, at=now
            )
            changed = [payment, account]
            if invoice_id is not None:
                try:
                    invoice = self.invoice(invoice_id, customer_id)
                except NotFound:
                    raise invalid("invoice_id", "No such invoice of this customer.") from None
                if invoice.currency != amount.currency:
                    raise ValidationFailed(
                        "The payment's currency is not the invoice's.",
                        {"amount.currency": [f"Not the invoice's currency ({invoice.currency})."]},
                    )
                try:
                    invoice.mark_paid(source=method, reference=reference, at=now)
                except InvoiceNotPayable as exc:
                    raise Conflict(str(exc)) from None
                if amount.amount < invoice.total:
                    raise ValidationFailed(
                        f"The payment ({amount.amount}) is less than invoice {invoice.number} "
                        f"({invoice.total}); record it to the account instead.",
                        {"amount": ["Less than the invoice total."]},
                    )
                if invoice.purpose != "add_funds":
                    # an add-funds invoice is paid by the money staying on the account
                    account.debit(
                        "invoice_payment",
                        invoice.amount,
                        reference=invoice.number,
                        reason=None,
                        at=now,
                    )
                changed.append(invoice)
                changed.append(self._commission_for(invoice, account, now))
            # kept as the request's answer in the save's transaction (no transaction after)
            answer = answer_with_save(payment_view(payment))
            changed.append(
                self.idempotency_record(
                    "payment", idempotency_key, request, answer, customer_id=customer_id
                )
            )
            self.save(*changed)
            return answer

        return retry_on_conflict(attempt)

    def processor_notification(self, processor, headers: dict, body: bytes) -> dict:
        """A processor's webhook: verified, counted once, applied or kept for staff."""
        try:
            event = processor.verify(headers, body, clock.now())
        except BadSignature as exc:
            raise Unauthorized(f"The notification is not validly signed: {exc}.") from None
        scope, key = f"webhook:{processor.name}", event["id"]
        request = {"event": event["id"]}
        earlier = self.idempotent_answer(scope, key, request)
        if earlier is not None:
            return dict(earlier, duplicate=True)
        paid = processor.payment(event)
        answer: dict = {"received": True, "event_id": event["id"]}
        to_save: list = []
        refunds = processor.refund_updates(event)
        if refunds:
            # each update is idempotent on the refund itself (a completed refund stays so)
            outcomes = {u.processor_refund_id: self.processor_refund_update(u) for u in refunds}
            answer.update(outcome="refund_updated", refunds=outcomes)
        elif paid is None:
            answer["outcome"] = "ignored"
        else:
            # one payment at the processor counts once, whichever of its events (a
            # Checkout Session's, its payment intent's) comes first
            counted_scope = f"processor_payment:{processor.name}"
            counted_request = {"reference": paid.reference}
            counted = self.idempotent_answer(counted_scope, paid.reference, counted_request)
            if counted is not None:
                answer.update(counted, outcome="already_counted")
                to_save.append(self.idempotency_record(scope, key, request, answer))
                try:
                    self.save(*to_save)
                except IntegrityError:
                    pass
                return dict(answer, duplicate=True)
            invoice = self._invoice_or_none(paid.invoice_id)
            payment = None
            if invoice is not None and invoice.currency == paid.currency:
                try:
                    # idempotent by its own key, so a redelivery after a crash between
                    # this save and the next one does not pay twice
                    payment = self.record_payment(
                        invoice.customer_id,
                        Money(paid.amount, paid.currency),
                        processor.name,
                        paid.reference,
                        invoice.id,
                        f"{processor.name}:{paid.reference}",
                        counted_request,
                    )
                except (Conflict, ValidationFailed):
                    payment = None  # paid already, or too little: staff decide
            if payment is not None:
                answer.update(outcome="paid", invoice_id=str(invoice.id), payment_id=payment["id"])
                to_save.append(
                    self.idempotency_record(
                        counted_scope,
                        paid.reference,
                        counted_request,
                        {"invoice_id": str(invoice.id), "payment_id": payment["id"]},
                    )
                )
            else:
                kept = UnmatchedPayment(
                    processor=processor.name,
                    event_id=event["id"],
                    reference=paid.reference,
                    amount=paid.amount,
                    currency=paid.currency,
                    invoice_id=paid.invoice_id,
                    received_at=clock.now(),
                )
                to_save.append(kept)
                answer.update(outcome="kept_for_staff", unmatched_id=str(kept.id))
                to_save.append(
                    self.idempotency_record(
                        counted_scope,
                        paid.reference,
                        counted_request,
                        {"unmatched_id": str(kept.id)},
                    )
                )
        to_save.append(self.idempotency_record(scope, key, request, answer))
        try:
            self.save(*to_save)
        except IntegrityError:
            return dict(self.idempotent_answer(scope, key, request) or answer, duplicate=True)
        return answer

    def _invoice_or_none(self, invoice_id: str | None) -> Invoice | None:
        try:
            return self.invoice(UUID(str(invoice_id)))
        except (ValueError, NotFound):
            return None


NOT_FOR_DELETED = "This customer was deleted: no invoice is issued to it."


def check_not_deleted(invoices: CustomerInvoices) -> None:
    """409 naming `customer_id` when the index says its customer was deleted."""
    if invoices.deleted:
        raise Conflict(NOT_FOR_DELETED, {"customer_id": [NOT_FOR_DELETED]})


def retry_on_conflict(attempt: Callable[[], T], retries: int = RETRIES) -> T:
    """Run `attempt` again when its save lost a race (optimistic concurrency)."""
    for n in range(retries):
        try:
            return attempt()
        except IntegrityError:
            if n + 1 == retries:
                raise Conflict("Too many concurrent changes; try again.") from None
            clock_jitter(n)
    raise AssertionError("unreachable")


def clock_jitter(n: int) -> None:
    import random

    import eventlet

    eventlet.sleep(random.uniform(0, 0.01 * (n + 1)))


def price_line(line: dict, currency: str, discounts: list[dict] = ()) -> dict:
    """A line's amount, less the best of the customer's discounts that apply to it.

    A discount applies when it names no products or names this line's product, and (a
    fixed one) is in the invoice's currency. Only one discount per line: the largest.
    """
    quantity = int(line.get("quantity", 1))
    unit = int(line["unit_price"])
    if quantity < 1:
        raise ValidationFailed("A line's quantity is at least 1.", {"quantity": ["At least 1."]})
    gross = Money(quantity * unit, currency)
    product = str(line["product_id"]) if line.get("product_id") else None
    best, best_amount = None, Money.zero(currency)
    for d in discounts:
        if d["product_ids"] and product not in d["product_ids"]:
            continue
        if d["kind"] == "fixed":
            if d["amount"]["currency"] != currency:
                continue
            amount = discounted(gross, "fixed", amount=Money.from_dict(d["amount"]))
        else:
            amount = discounted(gross, "percentage", percent=d["percent"])
        if amount > best_amount:
            best, best_amount = d, amount
    priced = {
        "description": line["description"],
        "product_id": product,
        "quantity": quantity,
        "unit_price": unit,
        "period": line.get("period"),
        # the days it covers, inclusive (ISO dates; none on lines covering no period)
        "period_start": line.get("period_start"),
        "period_end": line.get("period_end"),
        "discount": {"name": best["name"], "amount": best_amount.amount} if best else None,
        "total": (gross - best_amount).amount,
    }
    return priced


def invoice_view(i: Invoice) -> dict:
    money = lambda amount: {"amount": amount, "currency": i.currency}  # noqa: E731
    return {
        "id": str(i.id),
        "customer_id": str(i.customer_id),
        "number": i.number,
        "status": i.status,
        "purpose": i.purpose,
        "lines": lines_view(i.lines, i.currency),
        "subtotal": money(i.subtotal),
        "tax": tax_view(i.tax, i.currency),
        "total": money(i.total),
        "issued_at": isoformat(i.issued_at),
        "due_date": i.due_date,
        "paid_at": isoformat(i.paid_at) if i.paid_at else None,
        "overdue": i.overdue,
        "buyer": i.buyer,
        "seller": i.seller,
        "version": i.version,
    }


def staff_invoice_view(i: Invoice) -> dict:
    """An invoice as staff see it: also the payments that paid it, and when and why it
    was voided (clients see `invoice_view`)."""
    return dict(
        invoice_view(i),
        voided_at=isoformat(i.voided_at) if getattr(i, "voided_at", None) else None,
        void_reason=getattr(i, "void_reason", None),
        payments=[
            {
                "source": p["source"],
                "reference": p["reference"],
                "at": isoformat(p["at"]) if isinstance(p["at"], datetime) else p["at"],
            }
            for p in i.payments
        ],
    )


def payment_view(p: Payment) -> dict:
    return {
        "id": str(p.id),
        "customer_id": str(p.customer_id),
        "amount": {"amount": p.amount, "currency": p.currency},
        "method": p.method,
        "reference": p.reference,
        "invoice_id": str(p.invoice_id) if p.invoice_id else None,
        "received_at": isoformat(p.received_at),
    }


LISTS = {
    # name: (table, columns, time column)
    "invoices": (
        "invoice_list",
        "invoice_id AS id, customer_id, number, status, purpose, total,"
        " currency, issued_at, due_date",
        "issued_at",
    ),
    "payments": (
        "payment_list",
        "payment_id AS id, customer_id, amount, currency, method,"
        " reference, invoice_id, received_at",
        "received_at",
    ),
    "commissions": (
        "commission_list",
        "commission_id AS id, referrer_id AS customer_id, customer_id AS referred_id, invoice_id,"
        " program, amount, currency, status, earned_at, matures_at",
        "earned_at",
    ),
    "unmatched_payments": (
        "unmatched_list",
        "unmatched_id AS id, NULL::uuid AS customer_id, processor, event_id, reference, amount,"
        " currency, invoice_ref, received_at",
        "received_at",
    ),
    "credit_notes": (
        "credit_note_list",
        "credit_note_id AS id, customer_id, number, invoice_id, invoice_number, refund_id,"
        " refund_to AS to, total, currency, issued_at",
        "issued_at",
    ),
    "refunds": (
        "refund_list",
        "refund_id AS id, customer_id, invoice_id, invoice_number, credit_note_number, amount,"
        " currency, refund_to AS to, processor, status, attempt, processor_refund_id, error,"
        " requested_at",
        "requested_at",
    ),
    "expenses": (
        "expense_list",
        "entry_id AS id, customer_id, kind, amount, currency, reference, at",
        "at",
    ),
}


def list_rows(
    app: Billing,
    name: str,
    customer_id: UUID | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
    overdue: bool = False,
) -> dict:
    """One of billing's lists, newest first (a read model: may lag a write by a moment).
    `overdue` (invoices): only unpaid ones whose due date has passed (on billing's clock)."""
    limit, offset = page_window(page, page_size)
    table, columns, at = LISTS[name]
    where, params = ["true"], []
    if customer_id is not None:
        if name == "unmatched_payments":
            where.append("false")  # they belong to no customer yet: that is why they are kept
        elif name == "commissions":
            where.append("referrer_id = %s")  # a referrer's own commissions
            params.append(customer_id)
        else:
            where.append("customer_id = %s")
            params.append(customer_id)
    if status is not None and name in ("invoices", "refunds"):
        where.append("status = %s")
        params.append(status)
    if overdue and name == "invoices":
        where.append("status = 'unpaid' AND due_date < %s")
        params.append(clock.now().date())
    clause = " AND ".join(where)
    with app.datastore.transaction() as curs:
        curs.execute(f"SELECT count(*) AS n FROM {table} WHERE {clause}", params)
        total = curs.fetchone()["n"]
        curs.execute(
            f"SELECT {columns} FROM {table} WHERE {clause} ORDER BY {at} DESC, 1"
            " LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        rows = curs.fetchall()
    return {"items": [_row(r) for r in rows], "total": total, "page": page, "page_size": page_size}


def _row(r: dict) -> dict:
    out = {}
    for key, value in r.items():
        if isinstance(value, UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = isoformat(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    # money as money: the currency inside each amount, never beside it
    currency = out.pop("currency", None)
    for money in ("total", "amount"):
        if money in out:
            out[money] = {"amount": out[money], "currency": currency}
    return out
