"""The catalog, orders and the services they create."""

from __future__ import annotations

from datetime import date, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate, DomainError, KeyedIndex

_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/orders")

CYCLES = {
    "monthly": 1,
    "quarterly": 3,
    "semiannually": 6,
    "annually": 12,
    "biennially": 24,
    "triennially": 36,
}


class NotOnSale(DomainError):
    pass


class LifecycleError(DomainError):
    pass


class Product(Aggregate):
    """A plan on sale: names and descriptions per language, a price per billing cycle and
    currency (minor units), a setup fee per currency."""

    @event("Created")
    def __init__(
        self,
        name: dict,
        description: dict,
        prices: dict,
        setup_fee: dict,
        project_id: UUID | None,
        on_sale: bool,
        provisioning: dict,
        addons: list[dict] | None = None,
    ):
        self.addons = addons or []
        self.provisioning = provisioning
        self.name = name
        self.description = description
        self.prices = prices
        self.setup_fee = setup_fee
        self.project_id = project_id
        self.on_sale = on_sale

    @event("Changed")
    def change(self, changes: dict) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    def price(self, cycle: str, currency: str) -> int:
        if not self.on_sale:
            raise NotOnSale("This product is not on sale.")
        try:
            return self.prices[cycle][currency]
        except KeyError:
            raise NotOnSale(f"This product has no {cycle} price in {currency}.") from None

    def addon(self, addon_id: str) -> dict:
        """One of this product's add-ons: {id, name, prices, setup_fee}."""
        for addon in self.addons:
            if addon["id"] == str(addon_id):
                return addon
        raise UnknownAddon(f"This product has no add-on {addon_id}.")

    def addon_price(self, addon_id: str, cycle: str, currency: str) -> int:
        addon = self.addon(addon_id)
        try:
            return addon["prices"][cycle][currency]
        except KeyError:
            raise UnknownAddon(
                f"The add-on {addon_id} has no {cycle} price in {currency}."
            ) from None


class UnknownAddon(DomainError):
    pass


class Order(Aggregate):
    @event("Placed")
    def __init__(
        self,
        customer_id: UUID,
        items: list[dict],
        currency: str,
        invoice_id: UUID,
        total: int,
        placed_at: datetime,
    ):
        self.customer_id = customer_id
        self.items = items
        self.currency = currency
        self.invoice_id = invoice_id
        self.total = total
        self.placed_at = placed_at
        self.status = "pending"

    @event("Paid")
    def mark_paid(self, at: datetime) -> None:
        self.status = "paid"


class PromoCode(KeyedIndex):
    """A code giving a discount on the first invoice of an order: percentage or fixed, on
    some products or all, until it expires, is used `max_uses` times or is deactivated.

    Staff change its discount, products, expiry and limit (`change`: only what differs),
    never its code, which orders name; it is deactivated rather than deleted, since the
    invoices priced with it must still be explained by it, and may be activated again."""

    id_namespace = _NS
    id_prefix = "promo"
    key_fields = ("code",)

    @classmethod
    def key_text(cls, code: str) -> str:
        return code.strip().upper()

    @event("Created")
    def __init__(
        self,
        code: str,
        kind: str,
        percent: str | None,
        amount: int | None,
        currency: str | None,
        product_ids: list[str],
        expires_at: datetime | None,
        max_uses: int | None,
    ):
        self.code = code
        self.kind = kind
        self.percent = percent
        self.amount = amount
        self.currency = currency
        self.product_ids = product_ids
        self.expires_at = expires_at
        self.max_uses = max_uses
        self.uses = 0
        self.active = True

    # what staff may change (`change`), in the order they are shown
    EDITABLE = ("kind", "percent", "amount", "currency", "product_ids", "expires_at", "max_uses")

    def change(self, changes: dict) -> None:
        """`changes`: some of EDITABLE with their new values (see `promo_changes`); never
        its code nor its uses."""
        fixed = set(changes) - set(self.EDITABLE)
        if fixed:
            raise ValueError(f"A promo code's {', '.join(sorted(fixed))} cannot be changed.")
        self._changed(changes)

    @event("Changed")
    def _changed(self, changes: dict) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    @event("Deactivated")
    def deactivate(self) -> None:
        self.active = False

    @event("Activated")
    def activate(self) -> None:
        self.active = True

    def state(self, now: datetime) -> str:
        """`deactivated`, `expired`, `used_up` or `active` (the first that holds)."""
        return promo_state(self.active, self.expires_at, self.max_uses, self.uses, now)

    def check_usable(self, now: datetime) -> None:
        if not self.active:
            raise PromoNotUsable(f"The promo code {self.code} has been deactivated.")
        if self.expires_at is not None and now >= self.expires_at:
            raise PromoNotUsable(f"The promo code {self.code} has expired.")
        if self.max_uses is not None and self.uses >= self.max_uses:
            raise PromoNotUsable(f"The promo code {self.code} has been used up.")

    def reserve(self, now: datetime) -> None:
        self.check_usable(now)
        self._used()

    @event("Used")
    def _used(self) -> None:
        self.uses += 1

    @event("Released")
    def release(self) -> None:
        self.uses -= 1

    def as_discount(self) -> dict:
        """In the shape billing applies (the best discount per invoice line wins)."""
        return {
            "name": f"Promo {self.code}",
            "kind": "percentage" if self.kind == "percentage" else "fixed",
            "percent": self.percent,
            "amount": {"amount": self.amount, "currency": self.currency}
            if self.amount is not None
            else None,
            "product_ids": list(self.product_ids),
        }


class PromoNotUsable(DomainError):
    pass


def promo_state(
    active: bool, expires_at: datetime | None, max_uses: int | None, uses: int, now: datetime
) -> str:
    """A promo code's state at `now`: deactivated by staff first, then expired, then used
    up; `active` when it can be used."""
    if not active:
        return "deactivated"
    if expires_at is not None and now >= expires_at:
        return "expired"
    if max_uses is not None and uses >= max_uses:
        return "used_up"
    return "active"


class InvoiceOrder(KeyedIndex):
    """Index: which order (and services) an invoice is for. Read by id, so a payment heard
    a moment after the order was placed always finds it.

    A payment heard before the order was saved (the order's save failed after billing
    issued the invoice, and the client paid it) makes the index first, with no order
    and `paid_at`: the order, when it is saved, finds the payment waiting and is paid at
    once. Whichever of the two comes second conflicts with the first and tries again."""

    id_namespace = _NS
    id_prefix = "invoice-order"
    key_fields = ("invoice_id",)

    @event("Linked")
    def __init__(
        self,
        invoice_id: UUID,
        order_id: UUID | None,
        service_ids: list[UUID],
        paid_at: datetime | None = None,
    ):
        self.invoice_id = invoice_id
        self.order_id = order_id
        self.service_ids = service_ids
        self.paid_at = paid_at

    @classmethod
    def payment_waiting(cls, invoice_id: UUID, at: datetime) -> InvoiceOrder:
        return cls(invoice_id=invoice_id, order_id=None, service_ids=[], paid_at=at)

    @event("OrderAttached")
    def attach(self, order_id: UUID, service_ids: list[UUID]) -> None:
        self.order_id = order_id
        self.service_ids = service_ids


class RenewalLink(KeyedIndex):
    """Index: the service and period a renewal invoice is for (read by id). Like
    InvoiceOrder, made first by a payment heard before the renewal invoice was recorded
    on its service (`service_id` None, `paid_at`): recording it then renews at once."""

    id_namespace = _NS
    id_prefix = "renewal-link"
    key_fields = ("invoice_id",)

    @event("Linked")
    def __init__(
        self,
        invoice_id: UUID,
        service_id: UUID | None,
        period_from: str | None,
        paid_at: datetime | None = None,
    ):
        self.invoice_id = invoice_id
        self.service_id = service_id
        self.period_from = period_from
        self.paid_at = paid_at

    @classmethod
    def payment_waiting(cls, invoice_id: UUID, at: datetime) -> RenewalLink:
        return cls(invoice_id=invoice_id, service_id=None, period_from=None, paid_at=at)

    @event("ServiceAttached")
    def attach(self, service_id: UUID, period_from: str) -> None:
        self.service_id = service_id
        self.period_from = period_from


class CustomerServices(KeyedIndex):
    """Index: every service of a customer, saved with the order that creates them, so a
    command on all of a customer's services (an abuse suspension) finds them in the event
    store, never through a list that may lag."""

    id_namespace = _NS
    id_prefix = "customer-services"
    key_fields = ("customer_id",)

    @event("Started")
    def __init__(self, customer_id: UUID, service_ids: list[UUID]):
        self.customer_id = customer_id
        self.service_ids = list(service_ids)

    @event("ServicesAdded")
    def add(self, service_ids: list[UUID]) -> None:
        self.service_ids = [*self.service_ids, *service_ids]


class OrderAttempt(KeyedIndex):
    """An order being placed, recorded before billing is asked for its invoice: the
    invoice billing issues (with `invoice_key`) always belongs to a known attempt, which
    ends `placed` (the order saved with it) or `abandoned` and then `voided` (its invoice
    withdrawn, recorded by billing). Keyed by the request's Idempotency-Key (or a key of
    its own), so a retried request resumes it, or starts it again after it was voided
    (the next number: a new invoice). The items are priced once, when it starts, so every
    resumption asks billing for the same invoice. A promo code's use is counted in the
    same save as the start and given back in the same save as the abandonment."""

    id_namespace = _NS
    id_prefix = "order-attempt"
    key_fields = ("request_key",)

    @event("Started")
    def __init__(
        self,
        request_key: str,
        request_hash: str,
        customer_id: UUID,
        currency: str,
        priced: list[dict],
        promo: dict | None,
        at: datetime,
        keyed: bool,
        runner: str,
        language: str | None = None,
    ):
        self.request_key = request_key
        # the language its invoice is written in (the customer's then), and the day the
        # invoice's first periods start: kept, so every resumption asks for the same one
        self.language = language
        self.started_at = at
        # which run of the request carries it on now: a request that fails leaves an
        # attempt a later run (its retry) resumed meanwhile to that run
        self.runner = runner
        self.keyed = keyed  # the request key is the client's Idempotency-Key
        self.request_hash = request_hash
        self.customer_id = customer_id
        self.currency = currency
        self.priced = priced
        self.promo = promo  # {"code", "discount"}: reserved with this start
        self.number = 1
        self.status = "placing"
        self.since = at
        self.order_id: UUID | None = None
        self.reason: str | None = None

    @property
    def invoice_key(self) -> str:
        """The key billing issues this attempt's invoice with (`order:<key>` at first)."""
        key = f"order:{self.request_key}"
        return key if self.number == 1 else f"{key}#{self.number}"

    @event("Resumed")
    def resume(self, at: datetime, runner: str) -> None:
        self.since = at
        self.runner = runner

    @event("Placed")
    def placed(self, order_id: UUID, invoice_id: UUID) -> None:
        self.status = "placed"
        self.order_id = order_id

    @event("Abandoned")
    def abandon(self, reason: str) -> None:
        self.status = "abandoned"
        self.reason = reason

    @event("InvoiceVoided")
    def invoice_voided(self) -> None:
        self.status = "voided"

    @event("Restarted")
    def restart(
        self,
        priced: list[dict],
        promo: dict | None,
        at: datetime,
        runner: str,
        language: str | None = None,
    ) -> None:
        self.language = language
        self.started_at = at
        self.runner = runner
        self.number += 1
        self.priced = priced
        self.promo = promo
        self.status = "placing"
        self.since = at
        self.reason = None


class ProjectTerms(KeyedIndex):
    """Local copy of a project's renewal and dunning days (from the customers service's
    ProjectCreated / ProjectUpdated); None: the system default."""

    id_namespace = _NS
    id_prefix = "project-terms"
    key_fields = ("project_id",)

    @event("Recorded")
    def __init__(
        self,
        project_id: UUID,
        renew_days_before: int | None,
        suspend_after_days: int | None,
        terminate_after_days: int | None,
    ):
        self.project_id = project_id
        self.renew_days_before = renew_days_before
        self.suspend_after_days = suspend_after_days
        self.terminate_after_days = terminate_after_days

    @event("Changed")
    def change(
        self,
        renew_days_before: int | None,
        suspend_after_days: int | None,
        terminate_after_days: int | None,
    ) -> None:
        self.renew_days_before = renew_days_before
        self.suspend_after_days = suspend_after_days
        self.terminate_after_days = terminate_after_days


class CustomerLanguage(KeyedIndex):
    """The language a customer reads, as the customers service published it
    (CustomerRegistered, then CustomerUpdated when it changes): the language the lines of
    its next invoices are written in."""

    id_namespace = _NS
    id_prefix = "customer-language"
    key_fields = ("customer_id",)

    @event("Recorded")
    def __init__(self, customer_id: UUID, language: str):
        self.customer_id = customer_id
        self.language = language

    @event("Changed")
    def change(self, language: str) -> None:
        self.language = language


class Service(Aggregate):
    """What a customer has from an order: pending until the order's invoice is paid."""

    @event("Created")
    def __init__(
        self,
        customer_id: UUID,
        order_id: UUID,
        product_id: UUID,
        name: str,
        billing_cycle: str,
        price: int,
        currency: str,
        provisioning: dict,
        project_id: UUID | None = None,
        addons: list[dict] | None = None,
        names: dict | None = None,
    ):
        self.customer_id = customer_id
        self.order_id = order_id
        # the product's name in each language when ordered (its renewals' lines are
        # written with it); {} for a service ordered before names were kept
        self.names = names or {}
        self.project_id = project_id  # the product's: its renewal and dunning days apply
        # chosen add-ons, priced when ordered: [{id, name, names?, price}], renewed with it
        self.addons = addons or []
        self.product_id = product_id
        self.name = name
        self.billing_cycle = billing_cycle
        self.price = price
        self.currency = currency
        self.status = "pending"
        self.next_due_date: str | None = None
        self.renewal_invoice_id: UUID | None = None
        self.suspended_for: str | None = None
        # kind and url from the product; state: waiting (until paid), requested, done, failed
        self.provisioning = dict(
            provisioning, state="waiting", attempts=0, next_attempt_at=None, outcome=None
        )

    @event("ProvisioningRequested")
    def request_provisioning(self, at: datetime) -> None:
        self.provisioning.update(state="requested", next_attempt_at=at)

    @event("Provisioned")
    def provisioned(self, outcome: str, by: str) -> None:
        self.provisioning.update(state="done", outcome=outcome, next_attempt_at=None)

    @event("ProvisioningAttemptFailed")
    def provisioning_attempt_failed(self, error: str, next_attempt_at: datetime | None) -> None:
        self.provisioning["attempts"] += 1
        self.provisioning.update(
            outcome=error,
            next_attempt_at=next_attempt_at,
            state="requested" if next_attempt_at else "failed",
        )

    def activate(self, next_due_date: str, reason: str) -> None:
        if self.status != "pending":
            raise DomainError(f"a {self.status} service cannot be activated")
        self._activated(
            next_due_date=next_due_date,
            reason=reason,
            customer_id=self.customer_id,
            product_id=self.product_id,
        )

    @event("Activated")
    def _activated(
        self, next_due_date: str, reason: str, customer_id: UUID, product_id: UUID
    ) -> None:
        self.status = "active"
        self.next_due_date = next_due_date

    def check_status(self, *allowed: str) -> None:
        if self.status not in allowed:
            raise LifecycleError(f"This service is {self.status}.")

    def suspend(self, reason: str, why: str) -> None:
        """`why`: staff, overdue or abuse; paying an overdue invoice lifts only `overdue`."""
        self.check_status("active")
        self._suspended(reason=reason, why=why, customer_id=self.customer_id)

    @event("Suspended")
    def _suspended(self, reason: str, why: str, customer_id: UUID | None = None) -> None:
        # the customer rides along, so that whoever is told of it knows whose service it is
        self.status = "suspended"
        self.suspended_for = why

    def unsuspend(self, reason: str) -> None:
        self.check_status("suspended")
        self._unsuspended(reason=reason, customer_id=self.customer_id)

    @event("Unsuspended")
    def _unsuspended(self, reason: str, customer_id: UUID | None = None) -> None:
        self.status = "active"
        self.suspended_for = None

    def terminate(self, reason: str) -> None:
        self.check_status("active", "suspended", "pending")
        self._terminated(reason=reason, customer_id=self.customer_id, product_id=self.product_id)

    @event("Terminated")
    def _terminated(self, reason: str, customer_id: UUID, product_id: UUID) -> None:
        self.status = "terminated"

    def cancel(self, reason: str) -> None:
        """The customer's own request: no more renewals; the service ends now."""
        self.check_status("pending", "active", "suspended")
        self._cancelled(reason=reason, customer_id=self.customer_id, product_id=self.product_id)

    @event("Cancelled")
    def _cancelled(self, reason: str, customer_id: UUID, product_id: UUID) -> None:
        self.status = "cancelled"

    @event("RenewalInvoiced")
    def renewal_invoiced(self, invoice_id: UUID, period_from: str) -> None:
        self.renewal_invoice_id = invoice_id

    @event("Renewed")
    def renew(self, invoice_id: UUID, next_due_date: str) -> None:
        self.next_due_date = next_due_date
        self.renewal_invoice_id = None


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has fewer days."""
    import calendar

    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
