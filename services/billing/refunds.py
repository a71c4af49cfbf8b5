"""Refunds of paid invoices and their credit notes (a part of the Billing application).

A refund is recorded before any money moves, in one save with its credit note (the
next number of the project's credit-note series), the invoice's reservation of the
amount (never more than was paid) and the request's Idempotency-Key. To the personal
account it completes in that same save. Out through the payment processor it is then
sent, and completed on the processor's answer or its webhook; a failure is recorded
(visible to staff in the refund list) and retried by staff, each retry guarded so
that the processor pays out once (processors.py).
"""

from __future__ import annotations

from uuid import UUID, uuid4

from eventlet.semaphore import Semaphore
from eventsourcing.application import AggregateNotFoundError

from contracts.errors import Conflict, NotFound
from services.billing.domain import (
    CreditNote,
    InsufficientBalance,
    Invoice,
    InvoiceNotRefundable,
    InvoiceSeries,
    Refund,
    RefundNotRetryable,
)
from services.billing.processors import ProcessorRefund, RefundNotSent
from services.billing.views import lines_view, tax_view
from services.infra import clock
from services.infra.clock import isoformat
from services.infra.money import Money


class Refunds:
    """Mixed into Billing: uses its repository, save, series and idempotency helpers."""

    def refund_invoice(
        self,
        invoice_id: UUID,
        reason: str,
        amount: int | None = None,
        to: str = "account",
        processors: dict | None = None,
        idempotency_key: str | None = None,
        request: dict | None = None,
    ) -> dict:
        """Refund `amount` (default: all that is left) of a paid invoice, to the personal
        account or out through the processor that took the payment, with a credit note.
        The same Idempotency-Key with the same request answers the same refund (as it
        now is) and refunds nothing more."""
        from services.billing.application import retry_on_conflict

        processors = processors or {}
        request = request or {}
        earlier = self.idempotent_answer("refund", idempotency_key, request)
        if earlier is not None:
            return self.refund_answer(UUID(earlier["refund_id"]))
        invoice = self.invoice(invoice_id)
        key = f"credit-notes:{invoice.project_id or 'default'}"

        def attempt() -> tuple[Refund, object]:
            earlier = self.idempotent_answer("refund", idempotency_key, request)
            if earlier is not None:
                return self.repository.get(UUID(earlier["refund_id"])), None
            invoice = self.invoice(invoice_id)
            wanted = invoice.refundable if amount is None else amount
            processor, paid = None, None
            if to == "processor":
                paid = invoice.processor_payment()
                if paid is None:
                    raise Conflict(
                        f"Invoice {invoice.number} was not paid through a payment processor;"
                        " refund it to the personal account.",
                        {"to": ["Not paid through a processor."]},
                    )
                processor = processors.get(paid["source"])
                if processor is None:
                    raise Conflict(f"The processor {paid['source']!r} is not configured.")
            if invoice.purpose == "add_funds" and to == "account":
                raise Conflict(
                    f"Invoice {invoice.number} added funds: its money is on the account"
                    " already; refund it through the processor.",
                    {"to": ["The money is on the account already."]},
                )
            now = clock.now()
            refund_id = uuid4()
            try:
                invoice.request_refund(refund_id, wanted, to, now)
            except InvoiceNotRefundable as exc:
                raise Conflict(str(exc), {"amount": [str(exc)]} if wanted else None) from None
            series = self._credit_note_series(invoice.project_id)
            full = wanted == invoice.total
            note = CreditNote(
                customer_id=invoice.customer_id,
                project_id=invoice.project_id,
                number=series.take(),
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                refund_id=refund_id,
                to=to,
                reason=reason,
                lines=invoice.lines if full else [_partial_line(invoice, wanted)],
                currency=invoice.currency,
                subtotal=invoice.subtotal if full else wanted,
                tax=invoice.tax if full else None,
                total=wanted,
                issued_at=now,
                buyer=dict(invoice.buyer),
                seller=dict(invoice.seller),
            )
            refund = Refund(
                refund_id=refund_id,
                customer_id=invoice.customer_id,
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                credit_note_id=note.id,
                credit_note_number=note.number,
                amount=wanted,
                currency=invoice.currency,
                to=to,
                processor=paid["source"] if paid else None,
                payment_reference=paid["reference"] if paid else None,
                reason=reason,
                requested_at=now,
            )
            changed = [invoice, series, note, refund]
            if invoice.purpose == "add_funds":
                # the funds leave the account as the refund is asked for, so they cannot be
                # spent meanwhile (a failed refund keeps them out, to be sent again)
                account = self.account(invoice.customer_id, invoice.currency)
                try:
                    account.debit(
                        "withdrawal", Money(wanted, invoice.currency), note.number, reason, now
                    )
                except InsufficientBalance as exc:
                    raise Conflict(
                        f"The funds of invoice {invoice.number} were spent already. {exc}",
                        {"amount": ["More than the balance."]},
                    ) from None
                changed.append(account)
            elif to == "account":
                account = self.account(invoice.customer_id, invoice.currency)
                account.credit("refund", Money(wanted, invoice.currency), note.number, reason, now)
                refund.complete(None, now)
                invoice.complete_refund(refund_id, reason, now)
                changed.append(account)
            answer = {"refund_id": str(refund_id)}
            changed.append(
                self.idempotency_record(
                    "refund", idempotency_key, request, answer, invoice.customer_id
                )
            )
            self.save(*changed)
            return refund, processor

        with self._series_locks.setdefault(key, Semaphore()):
            refund, processor = retry_on_conflict(attempt)
        if processor is not None:
            self._send_refund(refund.id, processor)
        return self.refund_answer(refund.id)

    def retry_refund(self, refund_id: UUID, processors: dict) -> dict:
        """Send a failed (or never sent) processor refund again."""
        refund = self.refund(refund_id)
        try:
            refund.check_retryable()
        except RefundNotRetryable as exc:
            raise Conflict(str(exc)) from None
        processor = processors.get(refund.processor)
        if processor is None:
            raise Conflict(f"The processor {refund.processor!r} is not configured.")
        self._send_refund(refund.id, processor)
        return self.refund_answer(refund.id)

    def _send_refund(self, refund_id: UUID, processor) -> None:
        refund = self.refund(refund_id)
        if refund.status not in ("requested", "failed"):
            return
        try:
            found = None
            if refund.attempt > 1:
                # an earlier attempt was answered: did one of ours go through after all?
                found = processor.find_refund(refund.payment_reference, str(refund.id))
            outcome = found or processor.refund(
                refund.payment_reference,
                refund.amount,
                refund.currency,
                str(refund.id),
                refund.attempt_key,
            )
        except RefundNotSent as exc:
            self._refund_outcome(refund_id, None, failure=(str(exc), exc.answered))
            return
        self._refund_outcome(refund_id, outcome)

    def _refund_outcome(
        self,
        refund_id: UUID,
        outcome: ProcessorRefund | None,
        failure: tuple[str, bool] | None = None,
    ) -> str:
        """Record what the processor said of a refund; the refund's status after it."""
        from services.billing.application import retry_on_conflict

        def attempt() -> str:
            refund = self.refund(refund_id)
            now = clock.now()
            changed = [refund]
            if refund.status == "completed":
                return refund.status  # told again (answer and webhook both): done already
            if failure is not None:
                refund.fail(failure[0], failure[1], now)
            elif outcome.status == "succeeded":
                invoice = self.invoice(refund.invoice_id)
                refund.complete(outcome.processor_refund_id, now)
                invoice.complete_refund(refund.id, refund.reason, now)
                changed.append(invoice)
            elif outcome.status in ("failed", "canceled"):
                refund.fail(f"{outcome.status}: {outcome.failure or 'no reason given'}", True, now)
            elif refund.status != "pending" or refund.processor_refund_id is None:
                refund.mark_sent(outcome.processor_refund_id, outcome.status)
            self.save(*changed)
            return refund.status

        return retry_on_conflict(attempt)

    def processor_refund_update(self, update: ProcessorRefund) -> str | None:
        """A processor's webhook about one of our refunds; its status now, or None."""
        try:
            refund_id = UUID(str(update.refund_id))
            self.refund(refund_id)
        except (ValueError, NotFound):
            return None
        return self._refund_outcome(refund_id, update)

    # -- reading -----------------------------------------------------------------------------

    def refund(self, refund_id: UUID) -> Refund:
        try:
            refund = self.repository.get(refund_id)
        except AggregateNotFoundError:
            refund = None
        if not isinstance(refund, Refund):
            raise NotFound("No such refund.")
        return refund

    def credit_note(self, note_id: UUID, customer_id: UUID | None = None) -> CreditNote:
        try:
            note = self.repository.get(note_id)
        except AggregateNotFoundError:
            note = None
        if not isinstance(note, CreditNote) or (
            customer_id is not None and note.customer_id != customer_id
        ):
            raise NotFound("No such credit note.")
        return note

    def refund_answer(self, refund_id: UUID) -> dict:
        """What a refund request (or its retry) answers: the refund as it now is (its
        credit note and invoice by id and number)."""
        return refund_view(self.refund(refund_id))

    def _credit_note_series(self, project_id) -> InvoiceSeries:
        key = str(project_id or "default")
        try:
            return self.repository.get(InvoiceSeries.id_for(f"credit-notes:{key}"))
        except AggregateNotFoundError:
            prefix = "CN-" if key == "default" else f"CN-{key[:4].upper()}-"
            return InvoiceSeries(project_key=f"credit-notes:{key}", prefix=prefix)


def _partial_line(invoice: Invoice, amount: int) -> dict:
    return {
        "description": f"Partial refund of invoice {invoice.number}",
        "product_id": None,
        "quantity": 1,
        "unit_price": amount,
        "period": None,
        "discount": None,
        "total": amount,
    }


def refund_view(r: Refund) -> dict:
    return {
        "id": str(r.id),
        "customer_id": str(r.customer_id),
        "invoice_id": str(r.invoice_id),
        "invoice_number": r.invoice_number,
        "credit_note_id": str(r.credit_note_id),
        "credit_note_number": r.credit_note_number,
        "amount": {"amount": r.amount, "currency": r.currency},
        "to": r.to,
        "processor": r.processor,
        "status": r.status,
        "attempt": r.attempt,
        "processor_refund_id": r.processor_refund_id,
        "error": r.error,
        "reason": r.reason,
        "requested_at": isoformat(r.requested_at),
        "completed_at": isoformat(r.completed_at) if r.completed_at else None,
    }


def credit_note_view(c: CreditNote) -> dict:
    money = lambda amount: {"amount": amount, "currency": c.currency}  # noqa: E731
    return {
        "id": str(c.id),
        "customer_id": str(c.customer_id),
        "number": c.number,
        "invoice_id": str(c.invoice_id),
        "invoice_number": c.invoice_number,
        "refund_id": str(c.refund_id),
        "to": c.to,
        "reason": c.reason,
        "lines": lines_view(c.lines, c.currency),
        "subtotal": money(c.subtotal),
        "tax": tax_view(c.tax, c.currency),
        "total": money(c.total),
        "issued_at": isoformat(c.issued_at),
        "buyer": c.buyer,
        "seller": c.seller,
    }
