"""Orders: the catalog, orders, and the services they create."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import orders as contract
from contracts.errors import Conflict, NotFound, ValidationFailed
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat
from services.orders.domain import (
    CYCLES,
    InvoiceOrder,
    LifecycleError,
    NotOnSale,
    Order,
    Product,
    PromoCode,
    PromoNotUsable,
    RenewalLink,
    Service,
    add_months,
)
from services.orders.provisioning import next_attempt

LANGUAGES = ("en", "ru", "fr")


class Orders(HostledgerApplication):
    name = "orders"
    service = "orders"
    publications = {
        Order.Placed: contract.OrderPlaced,
        Service.Activated: contract.ServiceActivated,
        Service.Suspended: contract.ServiceSuspended,
        Service.Unsuspended: contract.ServiceUnsuspended,
        Service.Terminated: contract.ServiceTerminated,
        Service.Cancelled: contract.ServiceCancelled,
    }

    # -- catalog ----------------------------------------------------------------------------

    def create_product(self, data: dict) -> Product:
        product = Product(
            name=data["name"],
            description=data.get("description") or {},
            prices=data["prices"],
            setup_fee=data.get("setup_fee") or {},
            project_id=data.get("project_id"),
            on_sale=data.get("on_sale", True),
            provisioning=data.get("provisioning") or {"kind": "manual", "url": None},
        )
        self.save(product)
        return product

    def change_product(self, product_id: UUID, changes: dict) -> Product:
        product = self.product(product_id)
        if changes:
            product.change(changes)
            self.save(product)
        return product

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
        promo = PromoCode(
            code=data["code"].upper(),
            kind=data["kind"],
            percent=str(data["percent"]) if data.get("percent") is not None else None,
            amount=data.get("amount"),
            currency=data.get("currency"),
            product_ids=[str(p) for p in data.get("product_ids") or []],
            expires_at=data.get("expires_at"),
            max_uses=data.get("max_uses"),
        )
        try:
            self.save(promo)
        except IntegrityError:
            raise Conflict("This promo code exists.", {"code": ["Taken."]}) from None
        return promo

    def usable_promo(self, code: str) -> PromoCode:
        """The promo code, if it can be used now; 400 naming `promo_code` otherwise."""
        try:
            promo = self.repository.get(PromoCode.id_for(code))
        except AggregateNotFoundError:
            raise ValidationFailed("Unknown promo code.", {"promo_code": ["Unknown."]}) from None
        try:
            promo.check_usable(clock.now())
        except PromoNotUsable as exc:
            raise ValidationFailed(str(exc), {"promo_code": [str(exc)]}) from None
        return promo

    def reserve_promo(self, code: str) -> PromoCode:
        """Count one use now (released if the order then fails); never more than max_uses."""

        def attempt() -> PromoCode:
            promo = self.usable_promo(code)
            promo.reserve(clock.now())
            self.save(promo)
            return promo

        for _ in range(20):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("The promo code is in heavy use; try again.")

    def release_promo(self, code: str) -> None:
        for _ in range(20):
            promo = self.repository.get(PromoCode.id_for(code))
            promo.release()
            try:
                self.save(promo)
                return
            except IntegrityError:
                continue

    # -- orders -------------------------------------------------------------------------------

    def price_order(self, items: list[dict], currency: str) -> list[dict]:
        """Each item priced from the catalog (never from the request); 400 naming the item."""
        priced, errors = [], {}
        for n, item in enumerate(items):
            try:
                product = self.product(item["product_id"])
                price = product.price(item["billing_cycle"], currency)
            except (NotFound, NotOnSale) as exc:
                errors[f"items.{n}"] = [str(exc)]
                continue
            priced.append(
                {
                    "product_id": str(product.id),
                    "name": product.name.get("en") or next(iter(product.name.values())),
                    "billing_cycle": item["billing_cycle"],
                    "price": price,
                    "setup_fee": product.setup_fee.get(currency, 0),
                    "provisioning": dict(product.provisioning),
                }
            )
        if errors:
            raise ValidationFailed("Some items cannot be ordered.", errors)
        return priced

    @staticmethod
    def invoice_lines(priced: list[dict]) -> list[dict]:
        lines = []
        for item in priced:
            lines.append(
                {
                    "description": f"{item['name']} ({item['billing_cycle']})",
                    "product_id": item["product_id"],
                    "unit_price": item["price"],
                    "period": item["billing_cycle"],
                }
            )
            if item["setup_fee"]:
                lines.append(
                    {
                        "description": f"{item['name']}: setup",
                        "product_id": item["product_id"],
                        "unit_price": item["setup_fee"],
                    }
                )
        return lines

    def place_order(
        self, customer_id: UUID, priced: list[dict], currency: str, invoice: dict
    ) -> Order:
        """The order and its pending services, saved together."""
        order = Order(
            customer_id=customer_id,
            items=priced,
            currency=currency,
            invoice_id=UUID(invoice["id"]),
            total=invoice["total"]["amount"],
            placed_at=clock.now(),
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
            )
            for i in priced
        ]
        link = InvoiceOrder(
            invoice_id=order.invoice_id, order_id=order.id, service_ids=[s.id for s in services]
        )
        self.save(order, link, *services)
        return order

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

    def cancel_service(self, customer_id: UUID, service_id: UUID, reason: str) -> Service:
        service = self.get_service(service_id, customer_id)
        try:
            service.cancel(reason=reason)
        except LifecycleError as exc:
            raise Conflict(str(exc)) from None
        self.save(service)
        return service

    def suspend_customer(self, customer_id: UUID, reason: str, why: str) -> int:
        """Suspend every active service of a customer (abuse, penalty points)."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT service_id FROM service_list WHERE customer_id = %s AND status = 'active'",
                (customer_id,),
            )
            services = [self.repository.get(r["service_id"]) for r in curs.fetchall()]
        for s in services:
            s.suspend(reason=reason, why=why)
        self.save(*services)
        return len(services)

    def renewals_due(self, today: date, days_before: int) -> list[Service]:
        """Active or suspended services whose next period starts within `days_before` days
        and have no renewal invoice yet."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT service_id FROM service_list WHERE status IN ('active', 'suspended')"
                " AND next_due_date <= %s ORDER BY next_due_date LIMIT 1000",
                (today + timedelta(days=days_before),),
            )
            ids = [r["service_id"] for r in curs.fetchall()]
        services = [self.repository.get(i) for i in ids]
        return [s for s in services if s.renewal_invoice_id is None and s.status != "terminated"]

    def record_renewal_invoice(self, service_id: UUID, invoice: dict, period_from: str) -> bool:
        service = self.get_service(service_id)
        if service.renewal_invoice_id is not None:
            return False  # another instance recorded it (the invoice itself is the same)
        service.renewal_invoiced(invoice_id=UUID(invoice["id"]), period_from=period_from)
        link = RenewalLink(
            invoice_id=UUID(invoice["id"]), service_id=service.id, period_from=period_from
        )
        try:
            self.save(service, link)
        except IntegrityError:
            return False
        return True

    def dunning(self, today: date, suspend_after: int, terminate_after: int) -> int:
        """Unpaid past due: suspend after `suspend_after` days, terminate after
        `terminate_after` days; how many services changed."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT service_id FROM service_list WHERE status IN ('active', 'suspended')"
                " AND next_due_date < %s ORDER BY next_due_date LIMIT 1000",
                (today - timedelta(days=min(suspend_after, terminate_after)),),
            )
            ids = [r["service_id"] for r in curs.fetchall()]
        changed = 0
        for service_id in ids:
            s = self.repository.get(service_id)
            if s.renewal_invoice_id is None:
                continue  # not invoiced yet, or paid: nothing is overdue
            late = (today - date.fromisoformat(s.next_due_date)).days
            if late > terminate_after and s.status in ("active", "suspended"):
                s.terminate(reason=f"unpaid {late} days after the due date")
            elif late > suspend_after and s.status == "active":
                s.suspend(reason=f"unpaid {late} days after the due date", why="overdue")
            else:
                continue
            try:
                self.save(s)
                changed += 1
            except IntegrityError:
                continue  # another instance changed it meanwhile
        return changed

    def invoice_paid(self, invoice_id: UUID) -> int:
        """Activate the services of the order this invoice belongs to, or renew the service
        a renewal invoice was for (lifting a suspension for non-payment); how many."""
        try:
            link = self.repository.get(InvoiceOrder.id_for(invoice_id))
        except AggregateNotFoundError:
            return self._renewal_paid(invoice_id)
        order = self.repository.get(link.order_id)
        if order.status == "paid":
            return 0
        today = clock.now().date()
        services = [self.repository.get(i) for i in link.service_ids]
        now = clock.now()
        order.mark_paid(at=now)
        for s in services:
            if s.status == "pending":
                due = add_months(today, CYCLES[s.billing_cycle]).isoformat()
                s.activate(next_due_date=due, reason="invoice paid")
                s.request_provisioning(at=now)
        self.save(order, *services)
        return len(services)

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
        return [self.repository.get(i) for i in ids]

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

    def _renewal_paid(self, invoice_id: UUID) -> int:
        try:
            link = self.repository.get(RenewalLink.id_for(invoice_id))
        except AggregateNotFoundError:
            return 0  # not an order's nor a renewal's invoice (added funds, manual ...)
        s = self.repository.get(link.service_id)
        if s.renewal_invoice_id != invoice_id or s.status == "terminated":
            return 0
        due = date.fromisoformat(s.next_due_date)
        s.renew(
            invoice_id=invoice_id,
            next_due_date=add_months(due, CYCLES[s.billing_cycle]).isoformat(),
        )
        if s.status == "suspended" and s.suspended_for == "overdue":
            s.unsuspend(reason="the overdue invoice was paid")
        self.save(s)
        return 1


def product_view(p: Product, language: str | None = None, currency: str | None = None) -> dict:
    """`prices` and `setup_fee` as money in `currency` (the product's first currency when
    not given, or when it has no price in it); `all_prices` in every currency."""

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
        "all_prices": {
            cycle: [{"amount": a, "currency": c} for c, a in sorted(by_cur.items())]
            for cycle, by_cur in p.prices.items()
        },
        "project_id": str(p.project_id) if p.project_id else None,
        "on_sale": p.on_sale,
        "provisioning": dict(p.provisioning),
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
        "status": s.status,
        "next_due_date": s.next_due_date,
        "provisioning": {
            "kind": s.provisioning["kind"],
            "state": s.provisioning["state"],
            "attempts": s.provisioning["attempts"],
            "outcome": s.provisioning["outcome"],
        },
    }


def order_view(o: Order) -> dict:
    return {
        "id": str(o.id),
        "customer_id": str(o.customer_id),
        "status": o.status,
        "invoice_id": str(o.invoice_id),
        "items": o.items,
        "total": {"amount": o.total, "currency": o.currency},
        "placed_at": isoformat(o.placed_at),
    }
