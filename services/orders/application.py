"""Orders: the catalog, orders, and the services they create."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import orders as contract
from contracts.errors import Conflict, NotFound, ValidationFailed
from contracts.fields import invalid
from services.infra import clock
from services.infra.application import HostledgerApplication, request_hash
from services.infra.clock import isoformat
from services.infra.domain import IdempotencyKey
from services.infra.personal_data import SUBJECT, PersonalFields
from services.orders import wording
from services.orders.domain import (
    CYCLES,
    CustomerLanguage,
    CustomerServices,
    InvoiceOrder,
    LifecycleError,
    NotOnSale,
    Order,
    OrderAttempt,
    Product,
    ProjectTerms,
    PromoCode,
    PromoNotUsable,
    RenewalLink,
    Service,
    UnknownAddon,
    add_months,
)
from services.orders.provisioning import next_attempt

LANGUAGES = ("en", "ru", "fr")
RETRIES = 20
# what a client may renew early (an ended or unpaid new service has no next period)
RENEWABLE = ("active", "suspended")
# the reason recorded on an order's pending services when billing voids its invoice
INVOICE_VOIDED = "the order's invoice was voided"

# the order attempts not ended yet (placing, or abandoned with their invoice to void):
# written in the same transaction as the attempt's events, so never behind them
ATTEMPTS_TABLE = """
CREATE TABLE IF NOT EXISTS order_attempts_open (
    attempt_id uuid PRIMARY KEY,
    request_key text NOT NULL,
    status text NOT NULL,
    since timestamptz NOT NULL
)
"""


def _attempt_open(attempt: OrderAttempt) -> tuple:
    return (
        "INSERT INTO order_attempts_open (attempt_id, request_key, status, since)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (attempt_id) DO UPDATE"
        " SET status = EXCLUDED.status, since = EXCLUDED.since",
        (attempt.id, attempt.request_key, attempt.status, attempt.since),
    )


def _attempt_closed(attempt: OrderAttempt) -> tuple:
    return ("DELETE FROM order_attempts_open WHERE attempt_id = %s", (attempt.id,))


def _with_ids(addons: list[dict] | None) -> list[dict]:
    """Add-ons as a product keeps them: each with an id (kept when given)."""
    return [
        {
            "id": str(a.get("id") or uuid.uuid4()),
            "name": dict(a["name"]),
            "prices": a["prices"],
            "setup_fee": a.get("setup_fee") or {},
        }
        for a in addons or []
    ]


def _text(texts: dict) -> str:
    return texts.get("en") or next(iter(texts.values()), "")


# why a customer's service was suspended, unsuspended, terminated or cancelled, as staff
# (or the client) put it: sealed with the customer's key (services/infra/personal_data.py)
_REASON = PersonalFields.fields("reason")
PERSONAL = PersonalFields(
    {
        "Service.Suspended": _REASON,
        "Service.Unsuspended": _REASON,
        "Service.Terminated": _REASON,
        "Service.Cancelled": _REASON,
    }
)


class Orders(HostledgerApplication):
    name = "orders"
    service = "orders"
    personal = PERSONAL
    publications = {
        Order.Placed: contract.OrderPlaced,
        Service.Activated: contract.ServiceActivated,
        Service.Suspended: contract.ServiceSuspended,
        Service.Unsuspended: contract.ServiceUnsuspended,
        Service.Terminated: contract.ServiceTerminated,
        Service.Cancelled: contract.ServiceCancelled,
    }
    schema_statements = (ATTEMPTS_TABLE,)

    # -- catalog ----------------------------------------------------------------------------

    def create_product(self, data: dict) -> Product:
        self._check_project(data.get("project_id"))
        product = Product(
            name=data["name"],
            description=data.get("description") or {},
            prices=data["prices"],
            setup_fee=data.get("setup_fee") or {},
            project_id=data.get("project_id"),
            on_sale=data.get("on_sale", True),
            provisioning=data.get("provisioning") or {"kind": "manual", "url": None},
            addons=_with_ids(data.get("addons")),
        )
        self.save(product)
        return product

    def change_product(self, product_id: UUID, changes: dict) -> Product:
        """Only the fields given change; `addons` replaces the list (ids sent are kept)."""
        product = self.product(product_id)
        self._check_project(changes.get("project_id"))
        if "addons" in changes:
            changes = dict(changes, addons=_with_ids(changes["addons"]))
        if changes:
            product.change(changes)
            self.save(product)
        return product

    def _check_project(self, project_id: UUID | None) -> None:
        """A project a product names must exist (this service keeps every project's terms)."""
        if project_id is None:
            return
        try:
            self.repository.get(ProjectTerms.id_for(project_id))
        except AggregateNotFoundError:
            raise invalid("project_id", "No such project.") from None

    def product(self, product_id: UUID) -> Product:
        try:
            product = self.repository.get(product_id)
        except AggregateNotFoundError:
            product = None
        if not isinstance(product, Product):
            raise NotFound("No such product.")
        return product

    # -- promo codes ---------------------------------------------------------------------------

    def create_promo(self, data: dict) -> PromoCode:
        for i, product_id in enumerate(data.get("product_ids") or ()):
            try:
                self.product(product_id)
            except NotFound:
                raise invalid(f"product_ids.{i}", "No such product.") from None
        promo = PromoCode(
            code=data["code"].upper(),
            kind=data["kind"],
            percent=str(data["percent"]) if data.get("percent") is not None else None,
            amount=data["amount"]["amount"] if data.get("amount") else None,
            currency=data["amount"]["currency"] if data.get("amount") else None,
            product_ids=[str(p) for p in data.get("product_ids") or []],
            expires_at=data.get("expires_at"),
            max_uses=data.get("max_uses"),
        )
        try:
            self.save(promo)
        except IntegrityError:
            raise Conflict("This promo code exists.", {"code": ["Taken."]}) from None
        return promo

    def usable_promo(self, code: str, currency: str | None = None) -> PromoCode:
        """The promo code, if it can be used now (a fixed one: on an order in its currency);
        400 naming `promo_code` otherwise."""
        try:
            promo = self.repository.get(PromoCode.id_for(code))
        except AggregateNotFoundError:
            raise ValidationFailed("Unknown promo code.", {"promo_code": ["Unknown."]}) from None
        try:
            promo.check_usable(clock.now())
        except PromoNotUsable as exc:
            raise ValidationFailed(str(exc), {"promo_code": [str(exc)]}) from None
        if currency is not None and promo.currency is not None and promo.currency != currency:
            message = f"The promo code {promo.code} is for orders in {promo.currency}."
            raise ValidationFailed(message, {"promo_code": [message]})
        return promo

    # -- orders -------------------------------------------------------------------------------

    def price_order(self, items: list[dict], currency: str) -> list[dict]:
        """Each item and its add-ons priced from the catalog (never from the request); 400
        naming the item (`items.<n>`) or the add-on (`items.<n>.addons.<m>`)."""
        priced, errors = [], {}
        for n, item in enumerate(items):
            try:
                product = self.product(item["product_id"])
                price = product.price(item["billing_cycle"], currency)
            except (NotFound, NotOnSale) as exc:
                errors[f"items.{n}"] = [str(exc)]
                continue
            addons, seen = [], set()
            for m, addon_id in enumerate(item.get("addons") or []):
                try:
                    if str(addon_id) in seen:
                        raise UnknownAddon(f"The add-on {addon_id} is chosen twice.")
                    seen.add(str(addon_id))
                    addon = product.addon(addon_id)
                    addon_price = product.addon_price(addon_id, item["billing_cycle"], currency)
                except UnknownAddon as exc:
                    errors[f"items.{n}.addons.{m}"] = [str(exc)]
                    continue
                addons.append(
                    {
                        "id": addon["id"],
                        "name": _text(addon["name"]),
                        "names": dict(addon["name"]),
                        "price": addon_price,
                        "setup_fee": addon["setup_fee"].get(currency, 0),
                    }
                )
            priced.append(
                {
                    "product_id": str(product.id),
                    "name": _text(product.name),
                    "names": dict(product.name),
                    "billing_cycle": item["billing_cycle"],
                    "price": price,
                    "setup_fee": product.setup_fee.get(currency, 0),
                    "provisioning": dict(product.provisioning),
                    "project_id": str(product.project_id) if product.project_id else None,
                    "addons": addons,
                }
            )
        if errors:
            raise ValidationFailed("Some items cannot be ordered.", errors)
        return priced

    @staticmethod
    def invoice_lines(
        priced: list[dict], currency: str, language: str | None = "en", starts: date | None = None
    ) -> list[dict]:
        """The first invoice: per item its first period, then each add-on's, then setup fees
        (unit prices as money in the order's currency), written in `language` (the
        customer's; English when lines cannot be written in it). A period line's `period`
        is the period it covers, one cycle from `starts` (the order's day), as words, and
        `period_start`, `period_end` its first and last days (ISO dates)."""
        language = wording.language_of(language)

        def money(amount: int) -> dict:
            return {"amount": amount, "currency": currency}

        lines = []
        for item in priced:
            cycle = item["billing_cycle"]
            product = wording.name_in(item.get("names"), language, item["name"])
            period: dict = {"period": None}
            if starts is not None:
                period = wording.period_fields(starts, wording.period_end(starts, cycle), language)
            addons = [
                (a, wording.name_in(a.get("names"), language, a["name"]))
                for a in item.get("addons") or []
            ]
            lines.append(
                {
                    "description": wording.describe("product", language, product, cycle),
                    "product_id": item["product_id"],
                    "unit_price": money(item["price"]),
                    **period,
                }
            )
            for addon, name in addons:
                lines.append(
                    {
                        "description": wording.describe("addon", language, product, cycle, name),
                        "product_id": item["product_id"],
                        "unit_price": money(addon["price"]),
                        **period,
                    }
                )
            if item["setup_fee"]:
                lines.append(
                    {
                        "description": wording.describe("setup", language, product),
                        "product_id": item["product_id"],
                        "unit_price": money(item["setup_fee"]),
                    }
                )
            for addon, name in addons:
                if addon["setup_fee"]:
                    lines.append(
                        {
                            "description": wording.describe(
                                "addon_setup", language, product, addon=name
                            ),
                            "product_id": item["product_id"],
                            "unit_price": money(addon["setup_fee"]),
                        }
                    )
        return lines

    @staticmethod
    def renewal_lines(service: Service, language: str | None = "en") -> list[dict]:
        """The next period of a service and of each of its add-ons, at the prices ordered,
        written in `language` (the customer's now): `period` is the period it covers, from
        the current due date to the day before the next, as words, and `period_start`,
        `period_end` its first and last days (ISO dates)."""
        language = wording.language_of(language)
        cycle = service.billing_cycle
        start = date.fromisoformat(service.next_due_date)
        period = wording.period_fields(start, wording.period_end(start, cycle), language)
        product = wording.name_in(getattr(service, "names", None), language, service.name)

        def money(amount: int) -> dict:
            return {"amount": amount, "currency": service.currency}

        lines = [
            {
                "description": wording.describe("product", language, product, cycle),
                "product_id": str(service.product_id),
                "unit_price": money(service.price),
                **period,
            }
        ]
        for addon in service.addons:
            name = wording.name_in(addon.get("names"), language, addon["name"])
            lines.append(
                {
                    "description": wording.describe("addon", language, product, cycle, name),
                    "product_id": str(service.product_id),
                    "unit_price": money(addon["price"]),
                    **period,
                }
            )
        return lines

    # -- placing an order: an attempt recorded first, then billing's invoice, then the order --

    def begin_order(
        self,
        request_key: str,
        keyed: bool,
        request: dict,
        customer_id: UUID,
        currency: str,
        items: list[dict],
        promo_code: str | None,
        runner: str,
        language: str | None = None,
    ) -> OrderAttempt:
        """The attempt to place this order, saved before billing is asked for an invoice:
        started (the items priced now, a promo code's use counted in the same save),
        resumed (still placing: a request that failed or is still running), or started
        again after its invoice was voided. A placed or abandoned one is answered as it
        is (the caller answers the order, or voids the invoice first). `keyed`: the
        request key is the client's Idempotency-Key; `runner`: this run of the request
        (it carries the attempt on from now); `language`: the customer's, which the
        invoice is written in (kept with the attempt, as its prices are). 409 when it came
        with another request."""
        wanted = request_hash(request)
        for _ in range(RETRIES):
            try:
                attempt = self.repository.get(OrderAttempt.id_for(request_key))
            except AggregateNotFoundError:
                attempt = None
            now = clock.now()
            if attempt is not None and attempt.request_hash != wanted:
                raise Conflict(
                    "This Idempotency-Key was used with a different request.",
                    {"Idempotency-Key": ["Already used for another request."]},
                )
            changed: list = []
            if attempt is None:
                priced = self.price_order(items, currency)
                promo = self._reserve_promo(promo_code, currency, now, changed)
                attempt = OrderAttempt(
                    request_key=request_key,
                    request_hash=wanted,
                    customer_id=customer_id,
                    currency=currency,
                    priced=priced,
                    promo=promo,
                    at=now,
                    keyed=keyed,
                    runner=runner,
                    language=language,
                )
            elif attempt.status == "placing":
                attempt.resume(at=now, runner=runner)
            elif attempt.status == "voided":
                priced = self.price_order(items, currency)
                promo = self._reserve_promo(promo_code, currency, now, changed)
                attempt.restart(
                    priced=priced, promo=promo, at=now, runner=runner, language=language
                )
            else:
                return attempt  # placed, or abandoned with its invoice still to void
            try:
                self.save(attempt, *changed, also=[_attempt_open(attempt)])
            except IntegrityError:
                continue  # another request or the recovery changed it meanwhile
            return attempt
        raise Conflict("This order is being changed by someone else; try again.")

    def _reserve_promo(self, code: str | None, currency: str, now, changed: list) -> dict | None:
        if not code:
            return None
        promo = self.usable_promo(code, currency)
        try:
            promo.reserve(now)
        except PromoNotUsable as exc:
            raise ValidationFailed(str(exc), {"promo_code": [str(exc)]}) from None
        changed.append(promo)
        return {"code": promo.code, "discount": promo.as_discount()}

    def attempt(self, request_key: str) -> OrderAttempt:
        return self.repository.get(OrderAttempt.id_for(request_key))

    @staticmethod
    def invoice_request(attempt: OrderAttempt) -> dict:
        """What billing is asked to issue for this attempt: always the same for one
        attempt number, so a resumed attempt gets the invoice issued before."""
        return {
            "customer_id": str(attempt.customer_id),
            "lines": Orders.invoice_lines(
                attempt.priced,
                attempt.currency,
                attempt.language or "en",
                attempt.started_at.date(),
            ),
            "extra_discounts": [attempt.promo["discount"]] if attempt.promo else [],
        }

    def place_order(
        self, request_key: str, invoice: dict, answer=None, recovering: bool = False
    ) -> Order:
        """The order and its pending services, saved with the attempt's end (`placed`), the
        customer's service index and, for a keyed request, `answer(order)` as the key's
        first answer. A payment heard before (InvoiceOrder waiting) pays it at once. The
        order of an attempt placed already is answered as it is. `recovering`: an
        abandoned attempt whose invoice was paid before it could be voided is placed too;
        otherwise an abandoned one is a 409 (it took too long and was withdrawn)."""
        for _ in range(RETRIES):
            attempt = self.attempt(request_key)
            if attempt.status == "placed":
                return self.repository.get(attempt.order_id)
            if attempt.status != "placing" and not (recovering and attempt.status == "abandoned"):
                raise Conflict(
                    "This order took too long and was withdrawn (its invoice voided); "
                    "send it again."
                )
            changed = self._order_of(attempt, invoice, answer)
            try:
                self.save(*changed, also=[_attempt_closed(attempt)])
            except IntegrityError:
                continue  # a payment, another order of the customer or the recovery, meanwhile
            return changed[0]
        raise Conflict("This customer's orders are being changed by someone else; try again.")

    def _order_of(self, attempt: OrderAttempt, invoice: dict, answer) -> list:
        """The order, what it changes, and the attempt marked placed (the order first)."""
        customer_id, currency, now = attempt.customer_id, attempt.currency, clock.now()
        order = Order(
            customer_id=customer_id,
            items=attempt.priced,
            currency=currency,
            invoice_id=UUID(invoice["id"]),
            total=invoice["total"]["amount"],
            placed_at=now,
        )
        services = [
            Service(
                customer_id=customer_id,
                order_id=order.id,
                product_id=UUID(i["product_id"]),
                name=i["name"],
                billing_cycle=i["billing_cycle"],
                price=i["price"],
                currency=currency,
                provisioning=i["provisioning"],
                project_id=UUID(i["project_id"]) if i.get("project_id") else None,
                addons=[
                    {"id": a["id"], "name": a["name"], "names": a.get("names"), "price": a["price"]}
                    for a in i.get("addons") or []
                ],
                names=i.get("names"),
            )
            for i in attempt.priced
        ]
        service_ids = [s.id for s in services]
        try:
            link = self.repository.get(InvoiceOrder.id_for(order.invoice_id))
        except AggregateNotFoundError:
            link = InvoiceOrder(
                invoice_id=order.invoice_id, order_id=order.id, service_ids=service_ids
            )
        else:
            if link.order_id is not None:
                raise Conflict("This invoice belongs to another order.")
            link.attach(order_id=order.id, service_ids=service_ids)
            self._activate(order, services, now)  # paid before the order was saved
        index = self._customer_services(customer_id)
        index.add(service_ids=service_ids)
        attempt.placed(order_id=order.id, invoice_id=order.invoice_id)
        record = None
        if attempt.keyed and answer is not None:
            record = IdempotencyKey(
                scope="order",
                key=attempt.request_key,
                request_hash=attempt.request_hash,
                answer=answer(order),
            )
            # sealed with the key of the order's customer (its invoice shows its e-mail)
            for pending in record.pending_events:
                object.__setattr__(pending, SUBJECT, customer_id)
        return [order, link, *services, index, attempt, record]

    def abandon_attempt(
        self, request_key: str, reason: str, runner: str | None = None
    ) -> OrderAttempt:
        """End a placing attempt without an order (its promo code's use given back in the
        same save); its invoice is then voided (`attempt_voided`). A placed, abandoned or
        voided attempt is answered as it is, and so is one that another run of the
        request than `runner` carries on now (None: the recovery, whoever carries it)."""
        for _ in range(RETRIES):
            attempt = self.attempt(request_key)
            if attempt.status != "placing" or runner not in (None, attempt.runner):
                return attempt
            attempt.abandon(reason=reason[:500])
            promo = None
            if attempt.promo:
                promo = self.repository.get(PromoCode.id_for(attempt.promo["code"]))
                promo.release()
            try:
                self.save(attempt, promo, also=[_attempt_open(attempt)])
            except IntegrityError:
                continue
            return attempt
        raise Conflict("This order is being changed by someone else; try again.")

    def attempt_voided(self, request_key: str) -> None:
        """Billing voided the abandoned attempt's invoice (or made sure none is issued)."""
        for _ in range(RETRIES):
            attempt = self.attempt(request_key)
            if attempt.status != "abandoned":
                return
            attempt.invoice_voided()
            try:
                self.save(attempt, also=[_attempt_closed(attempt)])
            except IntegrityError:
                continue
            return

    def unfinished_attempts(self, placing_since, limit: int = 100) -> list[str]:
        """The request keys of attempts abandoned with their invoice not voided yet, and of
        those still placing since before `placing_since` (their request died or gave up):
        recorded in the same transaction as the attempts, never behind them."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT request_key FROM order_attempts_open"
                " WHERE status = 'abandoned' OR since < %s ORDER BY since LIMIT %s",
                (placing_since, limit),
            )
            return [r["request_key"] for r in curs.fetchall()]

    def _customer_services(self, customer_id: UUID) -> CustomerServices:
        """The customer's service index; a new one (not saved yet) when there is none."""
        try:
            return self.repository.get(CustomerServices.id_for(customer_id))
        except AggregateNotFoundError:
            pass
        # services made before the index existed are listed only by the read model, which
        # has long projected them: the new index starts with them
        older = []
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('service_list') IS NOT NULL AS listed")
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT service_id FROM service_list WHERE customer_id = %s"
                    " ORDER BY created_at, service_id",
                    (customer_id,),
                )
                older = [r["service_id"] for r in curs.fetchall()]
        return CustomerServices(customer_id=customer_id, service_ids=older)

    @staticmethod
    def _activate(order: Order, services: list[Service], now) -> None:
        """The order's invoice is paid: the order is paid and its pending services start."""
        today = now.date()
        order.mark_paid(at=now)
        for s in services:
            if s.status == "pending":
                due = add_months(today, CYCLES[s.billing_cycle]).isoformat()
                s.activate(next_due_date=due, reason="invoice paid")
                s.request_provisioning(at=now)

    # -- lifecycle -----------------------------------------------------------------------------

    def get_service(self, service_id: UUID, customer_id: UUID | None = None) -> Service:
        try:
            service = self.repository.get(service_id)
        except AggregateNotFoundError:
            service = None
        if not isinstance(service, Service) or (
            customer_id is not None and service.customer_id != customer_id
        ):
            raise NotFound("No such service.")
        return service

    def change_service(self, service_id: UUID, action: str, reason: str) -> Service:
        """Staff suspend, unsuspend or terminate by hand (409 when the state forbids it)."""
        service = self.get_service(service_id)
        try:
            if action == "suspend":
                service.suspend(reason=reason, why="staff")
            elif action == "unsuspend":
                service.unsuspend(reason=reason)
            elif action == "terminate":
                service.terminate(reason=reason)
            else:
                raise ValidationFailed(f"Unknown action {action!r}.")
        except LifecycleError as exc:
            raise Conflict(str(exc)) from None
        self.save(service)
        return service

    def renewable(self, customer_id: UUID, service_id: UUID) -> Service:
        """The customer's service, when it may be renewed early (active or suspended); 409
        naming its status otherwise, 404 for another customer's."""
        service = self.get_service(service_id, customer_id)
        if service.status not in RENEWABLE or service.next_due_date is None:
            raise Conflict(
                f"This service is {service.status}: only an active or suspended service "
                "can be renewed.",
                {"status": [f"The service is {service.status}."]},
            )
        return service

    def service_invoice_ids(self, service: Service) -> list[str]:
        """The invoices of a service, oldest first: its order's, then each renewal's (as
        its events recorded them)."""
        ids = []
        try:
            order = self.repository.get(service.order_id)
        except AggregateNotFoundError:
            order = None
        if isinstance(order, Order):
            ids.append(str(order.invoice_id))
        for e in self.repository.event_store.get(service.id):
            if isinstance(e, Service.RenewalInvoiced) and str(e.invoice_id) not in ids:
                ids.append(str(e.invoice_id))
        return ids

    def cancel_service(self, customer_id: UUID, service_id: UUID, reason: str) -> Service:
        service = self.get_service(service_id, customer_id)
        try:
            service.cancel(reason=reason)
        except LifecycleError as exc:
            raise Conflict(str(exc)) from None
        self.save(service)
        return service

    def suspend_customer(self, customer_id: UUID, reason: str, why: str) -> int:
        """Suspend every active service of a customer (abuse, penalty points), in one save;
        how many. Services already suspended, ended or still pending are left as they are,
        so applying the same request again changes nothing. The services are found through
        the customer's index in the event store (never through a list that may lag)."""
        index = self._customer_services(customer_id)
        services = [self.repository.get(i) for i in index.service_ids]
        services = [s for s in services if s.status == "active"]
        for s in services:
            s.suspend(reason=reason, why=why)
        if services:
            self.save(*services)
        return len(services)

    def customer_deleted(self, customer_id: UUID) -> int:
        """The customer was deleted: its pending services are cancelled (nothing is to be
        invoiced or set up for a customer that is gone) and, where staff forced the
        deletion past its active or suspended services, those are terminated; how many
        changed, in one save. Hearing it again changes nothing. Found through the
        customer's index in the event store, never through a list that may lag."""
        index = self._customer_services(customer_id)
        changed = []
        for s in (self.repository.get(i) for i in index.service_ids):
            if s.status == "pending":
                s.cancel(reason="the customer was deleted")
            elif s.status in ("active", "suspended"):
                s.terminate(reason="the customer was deleted")
            else:
                continue
            changed.append(s)
        if changed:
            self.save(*changed)
        return len(changed)

    def service_history(self, service: Service) -> list[dict]:
        """The service's lifecycle as its events recorded it, oldest first: `{"event",
        "at", "reason", "why"?}` for each activation, suspension, unsuspension,
        termination and cancellation (who did it is in the audit history)."""
        kinds = {
            Service.Activated: "activated",
            Service.Suspended: "suspended",
            Service.Unsuspended: "unsuspended",
            Service.Terminated: "terminated",
            Service.Cancelled: "cancelled",
        }
        history = []
        for e in self.repository.event_store.get(service.id):
            kind = kinds.get(type(e))
            if kind is not None:
                entry = {"event": kind, "at": isoformat(e.timestamp), "reason": e.reason}
                if kind == "suspended":
                    entry["why"] = e.why
                history.append(entry)
        return history

    # -- customers' languages (a copy of the customers service's) ------------------------------

    def record_customer_language(self, customer_id: UUID, language: str) -> None:
        """Keep the language a customer reads, as the customers service published it (at its
        registration, and each time it changes): its next invoices' lines are written in
        it. Hearing the same again changes nothing."""
        try:
            known = self.repository.get(CustomerLanguage.id_for(customer_id))
        except AggregateNotFoundError:
            self.save(CustomerLanguage(customer_id=customer_id, language=language))
            return
        if known.language != language:
            known.change(language=language)
            self.save(known)

    def customer_language(self, customer_id: UUID) -> str | None:
        """The language a customer reads as heard here; None when not heard of yet."""
        try:
            return self.repository.get(CustomerLanguage.id_for(customer_id)).language
        except AggregateNotFoundError:
            return None

    # -- project terms (a copy of the customers service's) -------------------------------------

    def record_project_terms(self, project_id: UUID, terms: dict) -> None:
        """Keep a project's renewal and dunning days as the customers service published them."""
        values = {
            k: terms.get(k)
            for k in ("renew_days_before", "suspend_after_days", "terminate_after_days")
        }
        try:
            known = self.repository.get(ProjectTerms.id_for(project_id))
        except AggregateNotFoundError:
            self.save(ProjectTerms(project_id=project_id, **values))
            return
        if any(getattr(known, k) != v for k, v in values.items()):
            known.change(**values)
            self.save(known)

    # -- renewals and dunning, in pages of the read model -------------------------------------

    def renewal_candidates(
        self, today: date, default_days: int, limit: int = 500
    ) -> Iterator[list[UUID]]:
        """Pages of active or suspended services, not yet invoiced for their next period,
        whose due date is within their project's renewal days (`default_days` when the
        project has none); oldest due first. The read model may lag: callers check the
        aggregate (and billing's idempotency key makes a second invoice impossible)."""
        after: tuple = (date.min, UUID(int=0))
        while True:
            with self.datastore.transaction() as curs:
                curs.execute(
                    "SELECT s.service_id, s.next_due_date FROM service_list s"
                    " LEFT JOIN project_terms t ON t.project_id = s.project_id"
                    " WHERE s.renewal_invoice_id IS NULL AND s.status IN ('active', 'suspended')"
                    " AND (s.next_due_date, s.service_id) > (%s, %s)"
                    " AND s.next_due_date <= %s::date + COALESCE(t.renew_days_before, %s)"
                    # the widest window of all: bounds the index range scanned
                    " AND s.next_due_date <= %s::date + GREATEST(%s,"
                    " (SELECT max(renew_days_before) FROM project_terms))"
                    " ORDER BY s.next_due_date, s.service_id LIMIT %s",
                    (*after, today, default_days, today, default_days, limit),
                )
                rows = curs.fetchall()
            if not rows:
                return
            yield [r["service_id"] for r in rows]
            if len(rows) < limit:
                return
            after = (rows[-1]["next_due_date"], rows[-1]["service_id"])

    def to_renew(self, service_ids: list[UUID], today: date, default_days: int) -> list[Service]:
        """Those of these services still waiting for their renewal invoice and due within
        their project's renewal days, as the aggregates (not the lists) say."""
        services = [self.repository.get(i) for i in service_ids]
        days: dict = {}  # each project's renewal days, read once

        def window(s: Service) -> int:
            if s.project_id not in days:
                days[s.project_id] = self._days(s, "renew_days_before", default_days)
            return days[s.project_id]

        return [
            s
            for s in services
            if s.renewal_invoice_id is None
            and s.status in ("active", "suspended")
            and s.next_due_date is not None
            and date.fromisoformat(s.next_due_date) <= today + timedelta(days=window(s))
        ]

    def record_renewal_invoices(self, issued: list[tuple[Service, dict]]) -> int:
        """Record each service's renewal invoice (as loaded before the invoices were issued),
        all in one save; when another instance got to one of them first, one by one. How
        many were recorded here."""
        objs = []
        periods = [service.next_due_date for service, _ in issued]
        for service, invoice in issued:
            service.renewal_invoiced(
                invoice_id=UUID(invoice["id"]), period_from=service.next_due_date
            )
            objs += [
                service,
                RenewalLink(
                    invoice_id=UUID(invoice["id"]),
                    service_id=service.id,
                    period_from=service.next_due_date,
                ),
            ]
        if not objs:
            return 0
        try:
            self.save(*objs)
            return len(issued)
        except IntegrityError:
            pass
        return sum(
            self.record_renewal_invoice(service.id, invoice, period)
            for (service, invoice), period in zip(issued, periods, strict=True)
        )

    def record_renewal_invoice(self, service_id: UUID, invoice: dict, period_from: str) -> bool:
        """Record one renewal invoice on its service; one paid before it was recorded (its
        payment waiting in the link) renews the service at once."""
        invoice_id = UUID(invoice["id"])
        for _ in range(RETRIES):
            service = self.get_service(service_id)
            if service.renewal_invoice_id is not None or service.next_due_date != period_from:
                return False  # another instance recorded it (the invoice itself is the same)
            service.renewal_invoiced(invoice_id=invoice_id, period_from=period_from)
            try:
                link = self.repository.get(RenewalLink.id_for(invoice_id))
            except AggregateNotFoundError:
                link = RenewalLink(
                    invoice_id=invoice_id, service_id=service.id, period_from=period_from
                )
            else:
                if link.service_id is not None:
                    return False
                link.attach(service_id=service.id, period_from=period_from)
                self._renew_paid(service, invoice_id)
            try:
                self.save(service, link)
            except IntegrityError:
                continue
            return True
        return False

    def _terms(self, project_id: UUID | None) -> ProjectTerms | None:
        """A project's renewal and dunning days as recorded here (None: the defaults)."""
        if project_id is None:
            return None
        try:
            return self.repository.get(ProjectTerms.id_for(project_id))
        except AggregateNotFoundError:
            return None

    def _days(self, s: Service, name: str, default: int) -> int:
        value = getattr(self._terms(s.project_id), name, None)
        return default if value is None else value

    def dunning(
        self, today: date, suspend_after: int, terminate_after: int, limit: int = 500, items=None
    ) -> int:
        """Unpaid past due: suspend after the project's suspension days, terminate after its
        termination days (`suspend_after` / `terminate_after` when it has none), in pages
        of the read model, each page saved at once; how many services changed. `items`
        (parking.ScheduledItems): a service that cannot be decided on is parked there and
        the others go on."""
        from services.infra.parking import ScheduledItems

        items = items or ScheduledItems(self, "scheduler:dunning")
        after: tuple = (date.min, UUID(int=0))
        changed = 0
        while True:
            with self.datastore.transaction() as curs:
                curs.execute(
                    "SELECT service_id, next_due_date, suspend_after, terminate_after FROM ("
                    " SELECT s.service_id, s.next_due_date, s.status,"
                    " COALESCE(t.suspend_after_days, %s) AS suspend_after,"
                    " COALESCE(t.terminate_after_days, %s) AS terminate_after"
                    " FROM service_list s LEFT JOIN project_terms t ON t.project_id = s.project_id"
                    " WHERE s.renewal_invoice_id IS NOT NULL"
                    " AND s.status IN ('active', 'suspended')"
                    " AND (s.next_due_date, s.service_id) > (%s, %s)) c"
                    " WHERE next_due_date < %s::date - terminate_after"
                    " OR (status = 'active' AND next_due_date < %s::date - suspend_after)"
                    " ORDER BY next_due_date, service_id LIMIT %s",
                    (suspend_after, terminate_after, *after, today, today, limit),
                )
                rows = curs.fetchall()
            if not rows:
                return changed
            decided = []
            for row in rows:

                def decide(row=row):
                    # the list only finds candidates: the service and its project's days
                    # are read from the event store
                    s = self.repository.get(row["service_id"])
                    terms = (
                        self._days(s, "suspend_after_days", suspend_after),
                        self._days(s, "terminate_after_days", terminate_after),
                    )
                    return (s, *terms) if self._dun(s, today, *terms) else None

                found = items.run(str(row["service_id"]), decide, type="dunning")
                if found is not None:
                    decided.append(found)
            changed += self._save_dunned(decided, today)
            if len(rows) < limit:
                return changed
            after = (rows[-1]["next_due_date"], rows[-1]["service_id"])

    @staticmethod
    def _dun(s: Service, today: date, suspend_after: int, terminate_after: int) -> bool:
        if s.renewal_invoice_id is None or s.status not in ("active", "suspended"):
            return False  # not invoiced yet, or paid: nothing is overdue
        late = (today - date.fromisoformat(s.next_due_date)).days
        if late > terminate_after:
            s.terminate(reason=f"unpaid {late} days after the due date")
        elif late > suspend_after and s.status == "active":
            s.suspend(reason=f"unpaid {late} days after the due date", why="overdue")
        else:
            return False
        return True

    def _save_dunned(self, decided: list[tuple[Service, int, int]], today: date) -> int:
        """Save the page's changes at once; when one of them changed meanwhile (another
        instance, a payment), each alone, decided again on its fresh state."""
        if not decided:
            return 0
        try:
            self.save(*(s for s, _, _ in decided))
            return len(decided)
        except IntegrityError:
            pass
        saved = 0
        for stale, suspend_after, terminate_after in decided:
            fresh = self.repository.get(stale.id)
            if not self._dun(fresh, today, suspend_after, terminate_after):
                continue
            try:
                self.save(fresh)
            except IntegrityError:
                continue
            saved += 1
        return saved

    def invoice_paid(self, invoice_id: UUID, purpose: str | None = None) -> int:
        """Activate the services of the order this invoice belongs to, or renew the service
        a renewal invoice was for (lifting a suspension for non-payment); how many. An
        order's or a renewal's invoice paid before this service recorded what it is for
        (`purpose` says which it is) is kept waiting, and applied when it is recorded."""
        now = clock.now()
        try:
            link = self.repository.get(InvoiceOrder.id_for(invoice_id))
        except AggregateNotFoundError:
            link = None
        if link is None:
            try:
                renewal = self.repository.get(RenewalLink.id_for(invoice_id))
            except AggregateNotFoundError:
                renewal = None
            if renewal is not None:
                return self._renewal_paid(renewal)
            if purpose == "order":
                self.save(InvoiceOrder.payment_waiting(invoice_id, now))
            elif purpose == "renewal":
                self.save(RenewalLink.payment_waiting(invoice_id, now))
            # else not an order's nor a renewal's invoice (added funds, manual ...)
            return 0
        if link.order_id is None:
            return 0  # already waiting for its order
        order = self.repository.get(link.order_id)
        if order.status == "paid":
            return 0
        services = [self.repository.get(i) for i in link.service_ids]
        self._activate(order, services, now)
        self.save(order, *services)
        return len(services)

    def invoice_voided(self, invoice_id: UUID) -> int:
        """An order's invoice was voided: it will never be paid, so the order's pending
        services are cancelled, as when its customer is deleted; how many, in one save.
        The order is found through the invoice's index (never a list that may lag); any
        other invoice (a renewal's, added funds ...) changes nothing here, and hearing it
        again changes nothing more."""
        try:
            link = self.repository.get(InvoiceOrder.id_for(invoice_id))
        except AggregateNotFoundError:
            return 0
        services = [self.repository.get(i) for i in link.service_ids]
        pending = [s for s in services if s.status == "pending"]
        for s in pending:
            s.cancel(reason=INVOICE_VOIDED)
        if pending:
            self.save(*pending)
        return len(pending)

    # -- provisioning ------------------------------------------------------------------------

    def provisioning_tasks(self, kind: str, due_by=None) -> list[Service]:
        """Services waiting for `kind` provisioning (webhook ones only when due by `due_by`)."""
        query = (
            "SELECT service_id FROM service_list WHERE provisioning_state = 'requested'"
            " AND provisioning_kind = %s"
        )
        params: list = [kind]
        if due_by is not None:
            query += " AND provision_next_at <= %s"
            params.append(due_by)
        with self.datastore.transaction() as curs:
            curs.execute(query + " ORDER BY provision_next_at LIMIT 200", params)
            ids = [r["service_id"] for r in curs.fetchall()]
        # the list only finds candidates (it may lag a provisioning already recorded):
        # each service says itself whether it still waits
        services = [self.repository.get(i) for i in ids]
        return [
            s
            for s in services
            if s.provisioning["state"] == "requested"
            and s.provisioning["kind"] == kind
            and (
                due_by is None
                or s.provisioning["next_attempt_at"] is None
                or s.provisioning["next_attempt_at"] <= due_by
            )
        ]

    def record_provisioning(
        self, service_id: UUID, ok: bool, outcome: str, by: str, base_seconds: float = 5.0
    ) -> Service:
        service = self.get_service(service_id)
        if service.provisioning["state"] not in ("requested", "failed"):
            raise Conflict(f"This service's provisioning is {service.provisioning['state']}.")
        if ok:
            service.provisioned(outcome=outcome[:2000], by=by)
        else:
            done = service.provisioning["attempts"] + 1
            service.provisioning_attempt_failed(
                error=outcome[:2000], next_attempt_at=next_attempt(done, clock.now(), base_seconds)
            )
        self.save(service)
        return service

    def _renewal_paid(self, link: RenewalLink) -> int:
        if link.service_id is None:
            return 0  # already waiting for its service
        s = self.repository.get(link.service_id)
        if not self._renew_paid(s, link.invoice_id):
            return 0
        self.save(s)
        return 1

    @staticmethod
    def _renew_paid(s: Service, invoice_id: UUID) -> bool:
        """The service's renewal invoice is paid: the next period starts (a suspension for
        non-payment is lifted). False when that invoice is not the service's renewal."""
        if s.renewal_invoice_id != invoice_id or s.status == "terminated":
            return False
        due = date.fromisoformat(s.next_due_date)
        s.renew(
            invoice_id=invoice_id,
            next_due_date=add_months(due, CYCLES[s.billing_cycle]).isoformat(),
        )
        if s.status == "suspended" and s.suspended_for == "overdue":
            s.unsuspend(reason="the overdue invoice was paid")
        return True


def product_view(p: Product, language: str | None = None, currency: str | None = None) -> dict:
    """`prices` and `setup_fee` as money in `currency` (the product's first currency when
    not given, or when it has no price in it); `all_prices` and `all_setup_fees` in every
    currency."""

    def pick(texts: dict) -> str | dict:
        if language is None:
            return dict(texts)
        return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")

    currencies = sorted({c for by_cur in p.prices.values() for c in by_cur})
    shown = currency if currency in currencies else (currencies[0] if currencies else None)
    return {
        "id": str(p.id),
        "name": pick(p.name),
        "description": pick(p.description),
        "prices": {
            cycle: {"amount": by_cur[shown], "currency": shown}
            for cycle, by_cur in p.prices.items()
            if shown in by_cur
        },
        "setup_fee": {"amount": p.setup_fee.get(shown, 0), "currency": shown},
        "all_setup_fees": [{"amount": a, "currency": c} for c, a in sorted(p.setup_fee.items())],
        "all_prices": {
            cycle: [{"amount": a, "currency": c} for c, a in sorted(by_cur.items())]
            for cycle, by_cur in p.prices.items()
        },
        "project_id": str(p.project_id) if p.project_id else None,
        "on_sale": p.on_sale,
        "provisioning": dict(p.provisioning),
        "addons": [
            {
                "id": a["id"],
                "name": pick(a["name"]),
                "prices": {
                    cycle: {"amount": by_cur[shown], "currency": shown}
                    for cycle, by_cur in a["prices"].items()
                    if shown in by_cur
                },
                "setup_fee": {"amount": a["setup_fee"].get(shown, 0), "currency": shown},
                "all_setup_fees": [
                    {"amount": x, "currency": c} for c, x in sorted(a["setup_fee"].items())
                ],
                "all_prices": {
                    cycle: [{"amount": x, "currency": c} for c, x in sorted(by_cur.items())]
                    for cycle, by_cur in a["prices"].items()
                },
            }
            for a in p.addons
        ],
        "version": p.version,
    }


def service_view(s: Service) -> dict:
    return {
        "id": str(s.id),
        "customer_id": str(s.customer_id),
        "order_id": str(s.order_id),
        "product_id": str(s.product_id),
        "name": s.name,
        "billing_cycle": s.billing_cycle,
        "price": {"amount": s.price, "currency": s.currency},
        "addons": [
            {
                "id": a["id"],
                "name": a["name"],
                "price": {"amount": a["price"], "currency": s.currency},
            }
            for a in s.addons
        ],
        "project_id": str(s.project_id) if s.project_id else None,
        "status": s.status,
        "next_due_date": s.next_due_date,
        "provisioning": {
            "kind": s.provisioning["kind"],
            "state": s.provisioning["state"],
            "attempts": s.provisioning["attempts"],
            "outcome": s.provisioning["outcome"],
        },
    }


def order_item_view(item: dict, currency: str) -> dict:
    """An ordered item as priced then, every amount as money (never how it is set up)."""

    def money(amount) -> dict:
        return {"amount": amount or 0, "currency": currency}

    return {
        "product_id": item["product_id"],
        "name": item["name"],
        "billing_cycle": item["billing_cycle"],
        "price": money(item["price"]),
        "setup_fee": money(item.get("setup_fee")),
        "project_id": item.get("project_id"),
        "addons": [
            {
                "id": a["id"],
                "name": a["name"],
                "price": money(a["price"]),
                "setup_fee": money(a.get("setup_fee")),
            }
            for a in item.get("addons") or []
        ],
    }


def order_view(o: Order) -> dict:
    return {
        "id": str(o.id),
        "customer_id": str(o.customer_id),
        "status": o.status,
        "invoice_id": str(o.invoice_id),
        "items": [order_item_view(i, o.currency) for i in o.items],
        "total": {"amount": o.total, "currency": o.currency},
        "placed_at": isoformat(o.placed_at),
    }
