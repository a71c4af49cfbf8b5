"""The billing service: personal accounts, invoices, payments."""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from uuid import UUID

from nameko.rpc import RpcProxy
from nameko.timer import timer

from contracts import billing as contract
from contracts.envelope import IntegrationEvent
from contracts.errors import NotFound, ValidationFailed
from contracts.fields import invalid
from services.billing import application as queries
from services.billing import discounts as discount_book
from services.billing import pdf
from services.billing.application import Billing, invoice_view, staff_invoice_view
from services.billing.audit import BillingAuditIndex
from services.billing.batches import batch_item, issue_invoices
from services.billing.checkout import no_such_processor
from services.billing.processors import Stripe
from services.billing.readmodels import AccountList, BillingLists, Ledger
from services.billing.refunds import credit_note_view, refund_view
from services.infra import clock, context
from services.infra.clock import isoformat
from services.infra.consumer import handles
from services.infra.failpoints import failpoint_raise
from services.infra.money import Money
from services.infra.rpc import ask, load, rpc
from services.infra.service import ServiceBase, catch_up_read_model, catch_up_with
from services.infra.settings import settings
from services.infra.store import CaughtUp, EventStore

log = logging.getLogger(__name__)

APPLICATION = Billing
READ_MODELS = (AccountList, BillingLists, Ledger, BillingAuditIndex)
# the reason recorded on the invoices voided when their customer is deleted
CUSTOMER_DELETED = "customer deleted"
BUYER_FIELDS = ("kind", "email", "country", "contact_person", "company_name", "language")
# what a CustomerUpdated changes of the buyer: the client's and staff's edits and staff's
# corrections of what the customer registered with (the display name staff give a
# customer, `name`, is not the buyer's: invoices name the legal name, domain.invoice_buyer)
BUYER_CHANGES = (
    *BUYER_FIELDS,
    "project_id",
    "referrer_id",
    "affiliate_program",
)


def _uuid(value, what: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def _program(p) -> dict:
    return {
        "id": str(p.id),
        "name": p.name,
        "percent": p.percent,
        "maturity_days": p.maturity_days,
        "active": p.is_active,
    }


def _plain(rule: dict) -> dict:
    return {
        k: (isoformat(v) if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v)
        for k, v in rule.items()
    }


def _same_currency(money: dict, currency: str, field: str, whose: str) -> None:
    """400 naming `<field>.currency` unless `money` is in `currency`."""
    if money["currency"] != currency:
        raise invalid(f"{field}.currency", f"Not {whose} currency ({currency}).")


def _processors() -> dict:
    """The payment processors configured in this process, by name."""
    cfg = settings()
    processors = {}
    if cfg.stripe_webhook_secret:
        processors["stripe"] = Stripe(
            cfg.stripe_webhook_secret, cfg.stripe_secret_key, cfg.stripe_api_base
        )
    return processors


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValidationFailed(
            "`at` must be an ISO 8601 time with its zone.",
            {"at": ["Not an ISO 8601 time with zone."]},
        )
    return at


class BillingService(ServiceBase):
    name = "billing"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
    # invoices issued side by side read the customers service's log once, not once each
    customers_caught_up = CaughtUp("customers")
    customers = RpcProxy("customers")
    orders = RpcProxy("orders")

    # -- reactions ------------------------------------------------------------------------------

    @handles("customers", "CustomerRegistered", batch=True)
    def open_account(self, event: IntegrationEvent) -> None:
        """Every new customer gets a personal account in their currency."""
        failpoint_raise("billing.open_account")
        p = event.payload
        buyer = {k: p.get(k) for k in BUYER_FIELDS}
        buyer["number"] = p["number"]
        buyer["project_id"] = str(p["project_id"]) if p.get("project_id") else None
        self.app.open_account(p["customer_id"], p["currency"], buyer)

    @handles("customers", "ProjectCreated")
    def record_project(self, event: IntegrationEvent) -> None:
        """Invoices of a project carry its seller details and follow its credit rule."""
        p = event.payload
        self.app.record_project(p["project_id"], p["name"], p["seller"], p["allow_credit"])

    @handles("customers", "CustomerUpdated")
    def update_buyer(self, event: IntegrationEvent) -> None:
        """Invoices issued from now on carry the customer's current details, staff's
        corrections included (legal name, e-mail, country, kind, project ...); issued
        ones keep the buyer they were issued to."""
        changes = {k: v for k, v in event.payload["changes"].items() if k in BUYER_CHANGES}
        if "group_ids" in event.payload["changes"]:
            # the discount book prices its groups' discounts from now on
            context.current.also = [
                *(context.current.also or ()),
                discount_book.groups_statement(
                    event.payload["customer_id"],
                    event.payload["changes"]["group_ids"],
                    event.version,
                ),
            ]
        if changes:
            self.app.update_buyer(event.payload["customer_id"], changes)
        elif context.current.also:
            self.app.save()

    @handles("customers", "DiscountGiven")
    def keep_discount(self, event: IntegrationEvent) -> None:
        """A customer's or a group's new discount goes into the discount book, which
        prices the renewal invoices (services.billing.discounts)."""
        self.app.save(
            also=[discount_book.given_statement(event.payload, event.version, event.position)]
        )

    @handles("customers", "DiscountChanged")
    def change_discount(self, event: IntegrationEvent) -> None:
        p = event.payload
        changes = {k: p.get(k) for k in ("name", "valid_from", "valid_to")}
        self.app.save(
            also=[discount_book.changed_statement(p["discount_id"], changes, event.version)]
        )

    @handles("customers", "DiscountEnded")
    def end_discount(self, event: IntegrationEvent) -> None:
        p = event.payload
        self.app.save(
            also=[
                discount_book.changed_statement(
                    p["discount_id"], {"valid_to": p["at"]}, event.version
                )
            ]
        )

    @handles("customers", "CustomerDeleted")
    def void_deleted_customers_invoices(self, event: IntegrationEvent) -> None:
        """A deleted customer's unpaid invoices are voided (reason: customer deleted) and
        it is issued no more; paid ones and the personal account stay, as the history
        needs them. Its invoices are found through its invoice index, so one issued a
        moment ago is voided too (InvoiceVoided goes out for each)."""
        customer_id = event.payload["customer_id"]
        if not self.app.has_invoice_index(customer_id):
            # its first time here: the index starts with the invoices listed before it
            # existed, so the list is brought up to date first
            catch_up_read_model(self, BillingLists.name)
        self.app.customer_deleted(customer_id, CUSTOMER_DELETED)

    @handles("customers", "CustomerErased")
    def erase_personal_data(self, event: IntegrationEvent) -> None:
        """A deleted customer's personal data is erased here too (services.infra.personal_data),
        recorded as done by whoever erased it."""
        context.current.actor = context.Actor.from_dict(event.actor)
        context.current.on_behalf_of = context.Actor.from_dict(event.on_behalf_of)
        self.app.erase_customer(event.payload["customer_id"], event.payload["reason"])

    # -- accounts -------------------------------------------------------------------------------

    @rpc
    def get_account(
        self,
        customer_id: str,
        currency: str | None = None,
        at: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> dict:
        """The customer's personal account: its balance never lags a write; `entries` is
        one page, oldest first (`total`, `page`, `page_size`); with `at`, as it stood then."""
        cid = _uuid(customer_id, "customer")
        when = _at(at)
        if currency:
            return self.app.account_view(self.app.account(cid, currency), when, page, page_size)
        accounts = self.app.accounts_of(cid)
        if not accounts:
            raise NotFound("This customer has no personal account yet.")
        return self.app.account_view(accounts[0], when, page, page_size)

    # -- invoices -------------------------------------------------------------------------------

    @rpc
    def issue_invoice(
        self, payload: dict, idempotency_key: str | None = None, purpose: str = "manual"
    ) -> dict:
        """Issue an invoice: by staff (`manual`) or for an order (`order`)."""
        if purpose not in ("manual", "order", "renewal"):
            raise ValidationFailed(f"Unknown invoice purpose {purpose!r}.")
        data = load(contract.IssueInvoice, payload)
        if purpose == "manual":  # an order's or a renewal's products come from the catalog
            self._known_products(data)
        currency = contract.invoice_currency(data)
        # priced with the discount book, as a renewal batch is: what the customers service
        # published until now (a discount given a moment ago) is applied here first
        book = self._discount_book_now([data["customer_id"]])
        discounts = book.get(UUID(str(data["customer_id"])), []) + data["extra_discounts"]

        def issue() -> dict:
            return self.app.issue_invoice(
                data["customer_id"],
                currency,
                contract.plain_lines(data["lines"]),
                purpose=purpose,
                due_days=data["due_days"],
                discounts=discounts,
                idempotency_key=idempotency_key,
                request=payload,
            )

        try:
            return issue()
        except NotFound:
            # a customer registered a moment ago: its account may not be open here yet
            catch_up_with(self, "customers")
        try:
            return issue()
        except NotFound:
            self._account_currency(data["customer_id"], currency, "lines.0.unit_price")
            if not self.app.accounts_of(data["customer_id"]):
                raise invalid("customer_id", "No such customer.") from None
            raise invalid(
                "customer_id", f"No such customer with a personal account in {currency}."
            ) from None

    @rpc
    def issue_invoices(self, requests: list, purpose: str = "renewal") -> list[dict]:
        """Issue a batch of invoices (the renewal run's) in one save, numbers of a series
        taken consecutively; each request is `{"payload", "idempotency_key"}` as
        `issue_invoice` takes them, and the same key with the same payload answers the
        same invoice by either way. Priced with the discount book (the customers
        service's discounts as it published them), not an RPC per invoice. Answers, in
        the requests' order, `{"invoice": ...}` or `{"error": {"code", "message"}}`."""
        if purpose not in ("order", "renewal"):
            raise ValidationFailed(f"Unknown invoice purpose {purpose!r}.")
        if not isinstance(requests, list):
            raise ValidationFailed("A list of requests.", {"requests": ["Not a list."]})
        loaded = []
        for r in requests:
            try:
                if not isinstance(r, dict):
                    raise ValidationFailed("A request object.", {"requests": ["Not an object."]})
                data = load(contract.IssueInvoice, r.get("payload"))
                loaded.append((data, contract.invoice_currency(data), r))
            except ValidationFailed as exc:
                loaded.append(exc)
        customer_ids = [x[0]["customer_id"] for x in loaded if not isinstance(x, Exception)]
        book = self._discount_book_now(customer_ids)
        items = [
            x
            if isinstance(x, Exception)
            else batch_item(
                x[0],
                x[1],
                book.get(UUID(str(x[0]["customer_id"])), []),
                x[2].get("idempotency_key"),
                x[2]["payload"],
            )
            for x in loaded
        ]
        return issue_invoices(self.app, items, purpose)

    def _discount_book_now(self, customer_ids: list) -> dict:
        """Each customer's discounts valid now, from the discount book once what the
        customers service published until now is applied here (a discount given, changed
        or ended a moment ago, a customer's groups changed)."""
        self.customers_caught_up()
        self._start_discount_book()
        with self.app.datastore.transaction() as curs:
            return discount_book.discounts_of(curs, customer_ids, clock.now())

    def _start_discount_book(self) -> None:
        """The discount book starts from what the customers service holds (discounts
        given before they were published), once; events then keep it."""
        if self.app.discount_book_started:
            return
        with self.app.datastore.transaction() as curs:
            started = discount_book.started(curs)
        if not started:
            book = self.customers.discount_book()
            with self.app.datastore.transaction(commit=True) as curs:
                for sql, params in discount_book.seed_statements(book, clock.now()):
                    curs.execute(sql, params)
        self.app.discount_book_started = True

    @rpc
    def void_issued_invoice(self, idempotency_key: str, reason: str) -> dict:
        """Withdraw the invoice issued with `idempotency_key` (an order that could not be
        placed): cancelled with `reason`, or, when none was issued, none ever will be.
        `status` says `paid` when it was paid first (it cannot be withdrawn)."""
        return self.app.void_issued_for(str(idempotency_key), str(reason)[:500])

    def _known_products(self, data: dict) -> None:
        """400 naming each line's `product_id` and each extra discount's product id that
        names no product (the orders service keeps the catalog), before anything is saved."""
        named = [
            (f"lines.{n}.product_id", str(line["product_id"]))
            for n, line in enumerate(data["lines"])
            if line.get("product_id")
        ]
        named += [
            (f"extra_discounts.{n}.product_ids.{m}", str(product_id))
            for n, discount in enumerate(data["extra_discounts"])
            for m, product_id in enumerate(discount["product_ids"])
        ]
        if not named:
            return
        unknown = set(ask(self.orders, "unknown_products", sorted({i for _, i in named})))
        errors = {field: ["No such product."] for field, i in named if i in unknown}
        if errors:
            raise ValidationFailed("No such product.", errors)

    def _account_currency(self, customer_id, currency: str, field: str) -> None:
        """400 naming `<field>.currency` when the customer's personal account is in another
        currency than the money given for it."""
        held = [a.currency for a in self.app.accounts_of(_uuid(customer_id, "customer"))]
        if held and currency not in held:
            raise invalid(
                f"{field}.currency", f"Not the personal account's currency ({', '.join(held)})."
            )

    @rpc
    def add_funds_invoice(
        self, customer_id: str, currency: str, payload: dict, idempotency_key: str | None = None
    ) -> dict:
        data = load(contract.AddFunds, payload)
        _same_currency(data["amount"], currency, "amount", "the personal account's")
        return self.app.issue_invoice(
            _uuid(customer_id, "customer"),
            currency,
            [
                {
                    "description": "Add funds to the personal account",
                    "unit_price": data["amount"]["amount"],
                }
            ],
            purpose="add_funds",
            idempotency_key=f"{customer_id}:{idempotency_key}" if idempotency_key else None,
            request=payload,
        )

    @rpc
    def get_invoice(self, invoice_id: str, customer_id: str | None = None) -> dict:
        return invoice_view(
            self.app.invoice(
                _uuid(invoice_id, "invoice"), _uuid(customer_id, "invoice") if customer_id else None
            )
        )

    @rpc
    def void_invoice(self, invoice_id: str, payload: dict) -> dict:
        """Void an unpaid invoice with a reason; 409 when it is not unpaid."""
        data = load(contract.VoidInvoice, payload)
        invoice = self.app.void_invoice(_uuid(invoice_id, "invoice"), data["reason"])
        return staff_invoice_view(invoice)

    @rpc
    def get_staff_invoice(self, invoice_id: str) -> dict:
        """An invoice as staff see it: with its payments and, when voided, why."""
        return staff_invoice_view(self.app.invoice(_uuid(invoice_id, "invoice")))

    @rpc
    def invoice_pdf(self, invoice_id: str, customer_id: str | None, language: str) -> str:
        """The invoice as a PDF in `language`, base64-encoded for the trip over RPC."""
        invoice = self.app.invoice(
            _uuid(invoice_id, "invoice"), _uuid(customer_id, "invoice") if customer_id else None
        )
        return base64.b64encode(pdf.render(invoice_view(invoice), language)).decode("ascii")

    @rpc
    def pay_from_balance(self, customer_id: str, invoice_id: str) -> dict:
        return invoice_view(
            self.app.pay_from_balance(_uuid(customer_id, "invoice"), _uuid(invoice_id, "invoice"))
        )

    @rpc
    def checkout_processors(self) -> list[dict]:
        """The processors a client can pay online with here (`name`)."""
        return [{"name": name} for name, p in _processors().items() if p.takes_checkout]

    @rpc
    def start_checkout(self, customer_id: str, invoice_id: str, payload: dict) -> dict:
        """`{"redirect_url", ...}`: the processor's hosted page where the client pays this
        unpaid invoice; the money counts only from the processor's signed webhook."""
        data = load(contract.Checkout, payload)
        processor = _processors().get(data["processor"])
        if processor is None or not processor.takes_checkout:
            raise no_such_processor(data["processor"])
        return self.app.start_checkout(
            _uuid(customer_id, "invoice"),
            _uuid(invoice_id, "invoice"),
            processor,
            data["return_url"],
            settings().public_url,
        )

    # -- payments ------------------------------------------------------------------------------

    @rpc
    def record_payment(self, payload: dict, idempotency_key: str | None = None) -> dict:
        data = load(contract.RecordPayment, payload)
        amount = Money(data["amount"]["amount"], data["amount"]["currency"])
        try:
            return self.app.record_payment(
                data["customer_id"],
                amount,
                data["method"],
                data["reference"],
                data.get("invoice_id"),
                idempotency_key,
                payload,
            )
        except ValidationFailed as exc:
            if "customer_id" in (exc.fields or {}):  # no account in that currency: another?
                self._account_currency(data["customer_id"], amount.currency, "amount")
            raise

    @rpc
    def processor_webhook(self, processor: str, headers: dict, body: str) -> dict:
        """A payment processor's notification: 401 unless validly signed; counted once."""
        processors = _processors()
        if processor not in processors:
            raise NotFound(f"No payment processor {processor!r} is configured.")
        return self.app.processor_notification(processors[processor], headers, body.encode("utf-8"))

    @rpc
    def add_tax_rule(self, payload: dict) -> dict:
        data = load(contract.AddTaxRule, payload)
        try:
            return _plain(self.app.add_tax_rule(data))
        except ValidationFailed as exc:
            if "project_id" not in exc.fields:
                raise
        catch_up_with(self, "customers")  # a project created a moment ago
        return _plain(self.app.add_tax_rule(data))

    @rpc
    def change_tax_rule(self, rule_id: str, payload: dict) -> dict:
        data = load(contract.EditTaxRule, payload)
        return _plain(self.app.change_tax_rule(str(_uuid(rule_id, "tax rule")), data))

    @rpc
    def tax_rules(self) -> list[dict]:
        return [_plain(r) for r in self.app.tax_table().rules]

    @rpc
    def refund_invoice(
        self, invoice_id: str, payload: dict, idempotency_key: str | None = None
    ) -> dict:
        """Refund a paid invoice, fully or in part, to the personal account or out through
        the processor that took the payment; answers the refund."""
        data = load(contract.Refund, payload)
        invoice = self.app.invoice(_uuid(invoice_id, "invoice"))
        if data["amount"] is not None:
            _same_currency(data["amount"], invoice.currency, "amount", "the invoice's")
        return self.app.refund_invoice(
            invoice.id,
            data["reason"],
            data["amount"]["amount"] if data["amount"] is not None else None,
            data["to"],
            _processors(),
            idempotency_key,
            payload,
        )

    @rpc
    def retry_refund(self, refund_id: str) -> dict:
        """Send a failed processor refund again (never paid out twice)."""
        return self.app.retry_refund(_uuid(refund_id, "refund"), _processors())

    @rpc
    def get_refund(self, refund_id: str) -> dict:
        return refund_view(self.app.refund(_uuid(refund_id, "refund")))

    @rpc
    def get_credit_note(self, note_id: str, customer_id: str | None = None) -> dict:
        return credit_note_view(
            self.app.credit_note(
                _uuid(note_id, "credit note"),
                _uuid(customer_id, "credit note") if customer_id else None,
            )
        )

    @rpc
    def credit_note_pdf(self, note_id: str, customer_id: str | None, language: str) -> str:
        """The credit note as a PDF in `language`, base64-encoded for the trip over RPC."""
        note = self.app.credit_note(
            _uuid(note_id, "credit note"),
            _uuid(customer_id, "credit note") if customer_id else None,
        )
        content = pdf.render(credit_note_view(note), language, kind="credit_note")
        return base64.b64encode(content).decode("ascii")

    @rpc
    def correct_balance(self, customer_id: str, currency: str, payload: dict) -> dict:
        data = load(contract.Correction, payload)
        _same_currency(data["amount"], currency, "amount", "the personal account's")
        account = self.app.correct_balance(
            _uuid(customer_id, "customer"), currency, data["amount"]["amount"], data["reason"]
        )
        return self.app.account_view(account)

    # -- affiliate programs ------------------------------------------------------------------

    @rpc
    def create_program(self, payload: dict) -> dict:
        data = load(contract.AffiliateProgram, payload)
        return _program(
            self.app.create_program(data["name"], data["percent"], data["maturity_days"])
        )

    @rpc
    def change_program(self, program_id: str, payload: dict) -> dict:
        data = load(contract.EditAffiliateProgram, payload)
        if "percent" in data:
            data["percent"] = str(data["percent"])
        return _program(self.app.change_program(_uuid(program_id, "affiliate program"), data))

    @rpc
    def programs(self) -> list[dict]:
        return [_program(p) for p in self.app.programs()]

    @timer(interval=settings().scheduler_interval)
    def run_schedule(self) -> None:
        """Time-driven work, on the injectable clock: overdue invoices, maturing commissions.
        Safe with several instances: each change is one versioned save."""
        days_before = settings().reminder_days_before
        jobs = (
            ("invoice reminders", lambda: self.app.remind_due_invoices(days_before)),
            ("overdue invoices", self.app.mark_overdue_invoices),
            ("commissions", self.app.mature_commissions),
        )
        for job, run in jobs:
            # one job that cannot run now does not hold up the others; an invoice or a
            # commission that keeps failing is parked by the job itself
            try:
                run()
            except Exception:
                log.exception("the %s job failed this time; the next run tries again", job)

    # -- lists ---------------------------------------------------------------------------------

    @rpc
    def list(
        self,
        name: str,
        customer_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        page_size: int = 50,
        overdue: bool = False,
    ) -> dict:
        """One of billing's lists (queries.LISTS); `overdue`: unpaid invoices past due."""
        if name not in queries.LISTS:
            raise ValidationFailed(f"There is no list {name!r}.")
        return queries.list_rows(
            self.app,
            name,
            _uuid(customer_id, "customer") if customer_id else None,
            status,
            page,
            page_size,
            bool(overdue),
        )
