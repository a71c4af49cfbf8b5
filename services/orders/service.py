"""The orders service: the catalog, orders, and the services they create."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from datetime import date, timedelta
from uuid import UUID

import requests
from nameko.rpc import RpcProxy
from nameko.rpc import rpc as nameko_rpc
from nameko.timer import timer

from contracts import orders as contract
from contracts.envelope import IntegrationEvent
from contracts.errors import Conflict, HostledgerError, NotFound, ValidationFailed
from services.infra import clock, context
from services.infra.consumer import handles
from services.infra.failpoints import failpoint, failpoint_raise
from services.infra.inbox import is_transient
from services.infra.paging import page_window
from services.infra.parking import ScheduledItems
from services.infra.rpc import load, rpc
from services.infra.service import ServiceBase, catch_up_with
from services.infra.settings import settings
from services.infra.store import EventStore
from services.orders import promos, provisioning
from services.orders.application import Orders, order_view, product_view, service_view
from services.orders.audit import OrdersAuditIndex
from services.orders.readmodels import OrderLists, PromoLists

log = logging.getLogger(__name__)

APPLICATION = Orders
READ_MODELS = (OrderLists, PromoLists, OrdersAuditIndex)
LISTS = {
    "orders": ("order_list", "order_id", "placed_at", order_view),
    "services": ("service_list", "service_id", "created_at", service_view),
}


def _uuid(value, what: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


class RenewalRefused(Exception):
    """Billing refused one renewal invoice of a batch: its answer's error."""

    def __init__(self, error: dict):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class OrdersService(promos.PromoRpcs, ServiceBase):
    name = "orders"
    app = EventStore(APPLICATION, read_models=READ_MODELS)
    billing = RpcProxy("billing")
    customers = RpcProxy("customers")

    # -- catalog ------------------------------------------------------------------------------

    @rpc
    def create_product(self, payload: dict) -> dict:
        data = load(contract.ProductFields, payload)
        _check_provisioning(data)
        return product_view(self._knowing_projects(self.app.create_product, data))

    @rpc
    def change_product(self, product_id: str, payload: dict) -> dict:
        changes = load(contract.ProductFields, payload, partial=True)
        _check_provisioning(changes)
        if "addons" in changes:
            changes.update(load(contract.ProductAddons, {"addons": payload["addons"]}))
        return product_view(
            self._knowing_projects(self.app.change_product, _uuid(product_id, "product"), changes)
        )

    def _knowing_projects(self, command, *args):
        """`command`; when it names a project not heard of yet, again after catching up with
        the customers service (a project created a moment ago)."""
        try:
            return command(*args)
        except ValidationFailed as exc:
            if "project_id" not in exc.fields:
                raise
        catch_up_with(self, "customers")
        return command(*args)

    @rpc
    def get_product(self, product_id: str) -> dict:
        return product_view(self.app.product(_uuid(product_id, "product")))

    @rpc
    def unknown_products(self, product_ids: list) -> list[str]:
        """Of the ids given, those that name no product (in the order given): how another
        service checks the product ids of a request before saving anything."""
        unknown = []
        for product_id in product_ids or ():
            try:
                self.app.product(_uuid(product_id, "product"))
            except NotFound:
                unknown.append(str(product_id))
        return unknown

    @rpc
    def catalog(
        self, language: str | None = None, only_on_sale: bool = True, currency: str | None = None
    ) -> list[dict]:
        """Products (on sale only, for clients), names in `language` when given."""
        query = "SELECT product_id FROM product_list"
        if only_on_sale:
            query += " WHERE on_sale"
        with self.app.datastore.transaction() as curs:
            curs.execute(query + " ORDER BY created_at")
            ids = [r["product_id"] for r in curs.fetchall()]
        items = [product_view(self.app.repository.get(i), language, currency) for i in ids]
        if only_on_sale:  # what anyone may read: never how services are set up
            for item in items:
                item.pop("provisioning", None)
        return items

    @rpc
    def price_items(self, currency: str, payload: dict) -> list[dict]:
        """The items priced from the catalog, changing nothing: 400 naming a bad item."""
        data = load(contract.PlaceOrder, payload)
        if data.get("promo_code"):
            self.app.usable_promo(data["promo_code"], currency)
        return self.app.price_order(data["items"], currency)

    # -- orders ------------------------------------------------------------------------------

    # nameko's own @rpc, not services.infra.rpc's: placing an order keeps its own record
    # of the request (its OrderAttempt, keyed by the Idempotency-Key or the request id and
    # saved with its first events), so the same request delivered again or retried
    # resumes it, and a failed one is undone (its invoice voided) and can be sent again
    @nameko_rpc(expected_exceptions=(HostledgerError,))
    def place_order(
        self,
        customer_id: str,
        currency: str,
        payload: dict,
        idempotency_key: str | None = None,
        request: dict | None = None,
    ) -> dict:
        """Price the items from the catalog, issue the invoice (setup fees plus the first
        period) through billing, and save the order with its pending services. The same
        Idempotency-Key with the same `request` answers the first order again.

        The attempt is recorded first, so billing's invoice always belongs to a known
        attempt: when the order cannot be saved, the attempt is abandoned and billing
        voids the invoice (recorded, with the reason); a request that died on the way is
        finished the same way by `finish_order_attempts`. The same Idempotency-Key then
        places the order again, with a new invoice."""
        data = load(contract.PlaceOrder, payload)
        customer = _uuid(customer_id, "customer")
        request = request or {}
        earlier = self.app.idempotent_answer("order", idempotency_key, request)
        if earlier is not None:
            return earlier
        # without a key, the request's own id (the same when its RPC is delivered again)
        request_key = idempotency_key or (
            f"request:{getattr(context.current, 'request', None) or uuid.uuid4()}"
        )

        runner = uuid.uuid4().hex  # this run of the request
        language = self._language_of(customer)

        def begin():
            return self.app.begin_order(
                request_key,
                bool(idempotency_key),
                request,
                customer,
                currency,
                data["items"],
                data.get("promo_code"),
                runner,
                language,
            )

        attempt = begin()
        if attempt.status == "abandoned":  # its invoice is voided before it starts again
            self._withdraw(request_key, attempt.reason or "abandoned")
            attempt = begin()
        if attempt.status == "placed":
            return self._order_answer(request_key, idempotency_key, request)
        try:
            invoice = self.billing.issue_invoice(
                self.app.invoice_request(attempt), attempt.invoice_key, "order"
            )
            failpoint("orders.place_order.after_invoice")
            failpoint_raise("orders.place_order.save")
            order = self.app.place_order(
                request_key, invoice, answer=lambda o: dict(order_view(o), invoice=invoice)
            )
        except Exception as exc:
            try:
                with _undoing():
                    outcome = self._withdraw(
                        request_key, f"the order was not placed ({_why(exc)})", runner
                    )
            except Exception:
                log.warning("order attempt %s left to the recovery", request_key, exc_info=True)
                raise exc from None
            if outcome == "placed":
                # placed all the same: the same request made twice at once, or its invoice
                # paid before it could be voided
                return self._order_answer(request_key, idempotency_key, request)
            raise
        if idempotency_key:
            return self._order_answer(request_key, idempotency_key, request)
        return dict(order_view(order), invoice=invoice)

    def _language_of(self, customer_id: UUID) -> str:
        """The language the customer's order invoice is written in: as heard from the
        customers service, after catching up with it when not heard yet (a customer
        registered a moment ago, ordering now), else as it answers (a customer registered
        before this service kept languages); English when the customers service is away."""
        language = self.app.customer_language(customer_id)
        if language is None:
            with contextlib.suppress(Exception):  # the customers service away: English
                catch_up_with(self, "customers")
                language = self.app.customer_language(customer_id)
                language = language or self._asked_language(customer_id)
        return language or "en"

    def _renewal_language(self, customer_id: UUID) -> str | None:
        """The language a renewal invoice is written in: the customer's now (a change
        reaches the next invoice). A customer registered before this service kept
        languages is asked for; the customers service away, the run tries again later."""
        return self.app.customer_language(customer_id) or self._asked_language(customer_id)

    def _asked_language(self, customer_id: UUID) -> str | None:
        """The customer's language as the customers service answers it (None: no such
        customer there)."""
        try:
            return self.customers.get_customer(str(customer_id)).get("language")
        except NotFound:
            return None

    def _order_answer(self, request_key: str, idempotency_key: str | None, request: dict):
        earlier = self.app.idempotent_answer("order", idempotency_key, request)
        if earlier is not None:
            return earlier
        order = self.app.repository.get(self.app.attempt(request_key).order_id)
        return dict(order_view(order), invoice=self.billing.get_invoice(str(order.invoice_id)))

    def _withdraw(self, request_key: str, reason: str, runner: str | None = None) -> str:
        """End an order attempt that has no order: abandoned (recorded), then its invoice
        voided by billing. An invoice paid meanwhile cannot be voided: the order is placed
        after all (the payment, heard or not yet, pays it). One that another run of the
        request resumed is left to it. What became of the attempt."""
        attempt = self.app.abandon_attempt(request_key, reason, runner)
        if attempt.status != "abandoned":
            return attempt.status
        voided = self.billing.void_issued_invoice(attempt.invoice_key, attempt.reason or reason)
        if voided["status"] == "paid":
            invoice = self.billing.issue_invoice(
                self.app.invoice_request(attempt), attempt.invoice_key, "order"
            )
            self.app.place_order(
                request_key,
                invoice,
                answer=lambda o: dict(order_view(o), invoice=invoice),
                recovering=True,
            )
            return "placed"
        self.app.attempt_voided(request_key)
        return "voided"

    def finish_order_attempts(self, cfg) -> None:
        """Order attempts whose request died or gave up (still placing well past the time
        a request can take), or whose invoice could not be voided then (billing away):
        each is withdrawn now (or placed, when its invoice was paid meanwhile)."""
        cutoff = clock.now() - timedelta(seconds=3 * cfg.rpc_timeout)
        items = ScheduledItems(self.app, "scheduler:order_attempts")
        for request_key in self.app.unfinished_attempts(cutoff):
            items.run(
                request_key,
                lambda k=request_key: self._withdraw(
                    k, "the order was not placed: its request did not finish"
                ),
                type="order attempt",
            )

    @rpc
    def order_for_key(self, idempotency_key: str, request: dict) -> dict | None:
        """The order an earlier request with this Idempotency-Key placed; None when the key
        is new, 409 when it came with another request."""
        return self.app.idempotent_answer("order", idempotency_key, request)

    @rpc
    def create_promo(self, payload: dict) -> dict:
        return promos.promo_view(self.app.create_promo(load(contract.CreatePromo, payload)))

    @rpc
    def change_service(self, service_id: str, action: str, payload: dict) -> dict:
        """Staff suspend, unsuspend or terminate by hand, with a reason."""
        data = load(contract.ServiceAction, payload)
        return service_view(
            self.app.change_service(_uuid(service_id, "service"), action, data["reason"])
        )

    @timer(interval=settings().scheduler_interval)
    def run_schedule(self) -> None:
        """Renewal invoices N days before the next period, then dunning, on the injectable
        clock, with each service's project's days; then provisioning webhooks and the order
        attempts left unfinished. Several instances may run it: each
        renewal invoice is issued with an idempotency key naming the service and period,
        so billing issues it once."""
        cfg = settings()
        today = clock.now().date()
        jobs = (
            ("renewals", lambda: self.renew(today, cfg)),
            ("dunning", lambda: self._dunning(today, cfg)),
            ("provisioning", lambda: self._provision_by_webhook(cfg)),
            ("order attempts", lambda: self.finish_order_attempts(cfg)),
        )
        for job, run in jobs:
            # one job that cannot run now (billing or the database away) does not hold
            # up the others; an item that keeps failing is parked by the job itself
            try:
                run()
            except Exception:
                log.exception("the %s job failed this time; the next run tries again", job)

    def _dunning(self, today: date, cfg) -> int:
        items = ScheduledItems(self.app, "scheduler:dunning")
        return self.app.dunning(
            today, cfg.suspend_after_days, cfg.terminate_after_days, items=items
        )

    @rpc
    def run_renewals(self) -> dict:
        """Run the renewal and dunning pass now, as the timer does (after downtime, say),
        and answer what it did: renewal invoices recorded, services suspended or
        terminated, seconds taken."""
        cfg = settings()
        today = clock.now().date()
        started = time.perf_counter()
        invoices = self.renew(today, cfg)
        renewed = time.perf_counter()
        dunned = self._dunning(today, cfg)
        return {
            "renewal_invoices": invoices,
            "renewal_seconds": round(renewed - started, 3),
            "dunned": dunned,
            "dunning_seconds": round(time.perf_counter() - renewed, 3),
        }

    def renew(self, today: date, cfg) -> int:
        """Issue the renewal invoices due by `today`: candidates from the read model a page
        at a time; each batch of `scheduler_batch` services (as their aggregates say) is
        invoiced by billing in one request and one save (`issue_invoices`), and its
        invoices recorded here in one save. How many invoices were recorded here.

        A crash between billing's save and this service's leaves the services without
        their invoice here: the next run asks again with the same keys
        (`renewal:<service>:<due date>`) and billing answers the invoices it issued."""
        recorded = 0
        batch = max(1, cfg.scheduler_batch)
        # a service whose renewal invoice keeps being refused is parked (staff see it in
        # the parked events and retry it) and the others are invoiced
        items = ScheduledItems(self.app, "scheduler:renewals")
        for page in self.app.renewal_candidates(today, cfg.renew_days_before, limit=batch * 10):
            for start in range(0, len(page), batch):
                ids = [i for i in page[start : start + batch] if not items.parked(str(i))]
                services = [
                    s
                    for s in self._services_to_renew(ids, today, cfg, items)
                    if not items.parked(f"{s.id}:{s.next_due_date}")
                ]
                if not services:
                    continue
                requests = []
                for s in services:
                    payload, key = self._renewal_payload(s, today)
                    requests.append({"payload": payload, "idempotency_key": key})
                try:
                    answers = self.billing.issue_invoices(requests, "renewal")
                except Exception as exc:
                    if is_transient(exc):
                        raise  # billing away: the next run tries again
                    # the batch as a whole was refused: each alone says which one
                    answers = [self._renew_alone(r, items) for r in requests]
                # a crash here leaves billing's invoices unrecorded: the next run's
                # requests carry the same keys and are answered those invoices
                failpoint("orders.renew.after_invoices")
                issued = []
                for s, answer in zip(services, answers, strict=True):
                    key = f"{s.id}:{s.next_due_date}"
                    if answer is None:
                        continue
                    if "error" in answer:
                        items.failed(key, RenewalRefused(answer["error"]), "renewal")
                        continue
                    items.succeeded(key)
                    issued.append((s, answer["invoice"]))
                recorded += self.app.record_renewal_invoices(issued)
        return recorded

    def _services_to_renew(self, ids, today: date, cfg, items) -> list:
        """These services' aggregates, those still waiting for their renewal invoice; one
        that cannot be read is parked and the others go on."""
        try:
            return self.app.to_renew(ids, today, cfg.renew_days_before)
        except Exception as exc:
            if is_transient(exc):
                raise
        found = []
        for service_id in ids:
            found += items.run(
                str(service_id),
                lambda i=service_id: self.app.to_renew([i], today, cfg.renew_days_before),
                "renewal",
                default=[],
            )
        return found

    def _renew_alone(self, request: dict, items) -> dict | None:
        try:
            [answer] = self.billing.issue_invoices([request], "renewal")
        except Exception as exc:
            if is_transient(exc):
                raise
            return {"error": {"code": type(exc).__name__, "message": str(exc)}}
        return answer

    def _renewal_payload(self, s, today: date) -> tuple[dict, str]:
        return (
            {
                "customer_id": str(s.customer_id),
                # in the customer's language now: a change reaches the next invoice
                "lines": self.app.renewal_lines(s, self._renewal_language(s.customer_id)),
                "due_days": max(0, (date.fromisoformat(s.next_due_date) - today).days),
            },
            f"renewal:{s.id}:{s.next_due_date}",
        )

    def _renewal_request(self, s, today: date):
        payload, key = self._renewal_payload(s, today)
        return self.billing.issue_invoice.call_async(payload, key, "renewal")

    def _provision_by_webhook(self, cfg) -> None:
        items = ScheduledItems(self.app, "scheduler:provisioning")
        for service in self.app.provisioning_tasks("webhook", due_by=clock.now()):
            items.run(
                str(service.id),
                lambda service=service: self._provision_one(service, cfg),
                type="provisioning",
            )

    def _provision_one(self, service, cfg) -> None:
        if not cfg.provisioning_secret:
            ok, outcome = False, "HOSTLEDGER_PROVISIONING_SECRET is not set: nothing is sent"
        elif problem := provisioning.url_problem(
            service.provisioning["url"], cfg.provisioning_allow_private
        ):
            ok, outcome = False, f"not called: {problem}"
        else:
            body, headers = provisioning.request(
                service_view(service), cfg.provisioning_secret, clock.now()
            )
            try:
                answer = requests.post(
                    service.provisioning["url"], data=body, headers=headers, timeout=10
                )
                ok = 200 <= answer.status_code < 300
                outcome = f"HTTP {answer.status_code}: {answer.text[:500]}"
            except requests.RequestException as exc:
                ok, outcome = False, f"{type(exc).__name__}: {exc}"
        try:
            self.app.record_provisioning(
                service.id, ok, outcome, "webhook", cfg.provisioning_backoff
            )
        except Conflict:
            return  # another instance recorded it meanwhile

    @rpc
    def cancel_service(self, customer_id: str, service_id: str, payload: dict) -> dict:
        """A client cancels one of its services (404 for another customer's)."""
        data = load(contract.ServiceAction, payload)
        return service_view(
            self.app.cancel_service(
                _uuid(customer_id, "service"), _uuid(service_id, "service"), data["reason"]
            )
        )

    @rpc
    def client_service(self, customer_id: str, service_id: str) -> dict:
        """One of a customer's services as it is now (404 for another customer's), with
        `invoice_ids` (its order's invoice, then each renewal's, oldest first) and
        `renewal_invoice_id` (the invoice of its next period, while unpaid)."""
        s = self.app.get_service(_uuid(service_id, "service"), _uuid(customer_id, "service"))
        return dict(
            service_view(s),
            renewal_invoice_id=str(s.renewal_invoice_id) if s.renewal_invoice_id else None,
            invoice_ids=self.app.service_invoice_ids(s),
        )

    @rpc
    def staff_service(self, service_id: str) -> dict:
        """Any customer's service as it is now, for staff: as `client_service` answers it,
        with `history`, its lifecycle with each change's reason, oldest first."""
        s = self.app.get_service(_uuid(service_id, "service"))
        return dict(
            service_view(s),
            renewal_invoice_id=str(s.renewal_invoice_id) if s.renewal_invoice_id else None,
            invoice_ids=self.app.service_invoice_ids(s),
            history=self.app.service_history(s),
        )

    @rpc
    def renew_early(self, customer_id: str, service_id: str) -> dict:
        """A client renews an active or suspended service before the scheduler would: the
        renewal invoice of its next period, issued now (with the scheduler's own key, so
        billing issues one per period whoever asks first) and recorded on the service.
        While that invoice is unpaid, asking again answers it, not a second one. 409 for a
        service that is not active or suspended, or whose renewal invoice was cancelled or
        voided.
        `{"service", "invoice", "issued"}` (`issued`: by this request)."""
        customer = _uuid(customer_id, "service")
        s = self.app.renewable(customer, _uuid(service_id, "service"))
        issued = False
        if s.renewal_invoice_id is None:
            period = s.next_due_date
            invoice = self._renewal_request(s, clock.now().date()).result()
            issued = self.app.record_renewal_invoice(s.id, invoice, period)
            s = self.app.get_service(s.id)
            if s.renewal_invoice_id is None or str(s.renewal_invoice_id) == invoice["id"]:
                # recorded now (or paid already: the next period started)
                return {"service": service_view(s), "invoice": invoice, "issued": issued}
        invoice = self.billing.get_invoice(str(s.renewal_invoice_id))
        if invoice["status"] in ("cancelled", "void"):
            done = "voided" if invoice["status"] == "void" else "cancelled"
            message = (
                f"The renewal invoice {invoice['number']} of this service was {done}; "
                "ask support to renew it."
            )
            raise Conflict(message, {"status": [message]})
        return {"service": service_view(s), "invoice": invoice, "issued": issued}

    @rpc
    def provisioning_tasks(self, page: int = 1, page_size: int = 50) -> dict:
        """A page of the services waiting for staff to set them up by hand, newest first
        (as every list)."""
        limit, offset = page_window(page, page_size)
        where = "provisioning_state = 'requested' AND provisioning_kind = 'manual'"
        with self.app.datastore.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM service_list WHERE {where}")
            total = curs.fetchone()["n"]
            curs.execute(
                f"SELECT service_id FROM service_list WHERE {where}"
                " ORDER BY provision_next_at DESC, service_id DESC LIMIT %s OFFSET %s",
                [limit, offset],
            )
            ids = [r["service_id"] for r in curs.fetchall()]
        return {
            "items": [service_view(self.app.repository.get(i)) for i in ids],
            "total": total,
            "page": page,
            "page_size": page_size,
        }

    @rpc
    def mark_provisioned(self, service_id: str, payload: dict) -> dict:
        data = load(contract.Provisioned, payload)
        actor = context.current.actor
        return service_view(
            self.app.record_provisioning(
                _uuid(service_id, "service"),
                True,
                data["note"] or "done by hand",
                actor.header() if actor else "staff",
            )
        )

    @handles("customers", "ProjectCreated")
    def project_created(self, event: IntegrationEvent) -> None:
        """Keep the new project's renewal and dunning days for the scheduler."""
        self.app.record_project_terms(event.payload["project_id"], event.payload)

    @handles("customers", "ProjectUpdated")
    def project_updated(self, event: IntegrationEvent) -> None:
        self.app.record_project_terms(event.payload["project_id"], event.payload)

    @handles("customers", "CustomerRegistered", batch=True)
    def customer_registered(self, event: IntegrationEvent) -> None:
        """Keep the language the new customer reads: its invoices are written in it."""
        p = event.payload
        self.app.record_customer_language(p["customer_id"], p["language"])

    @handles("customers", "CustomerUpdated", batch=True)
    def customer_updated(self, event: IntegrationEvent) -> None:
        """A customer's new language: its next invoices are written in it (issued ones
        stay as they were written)."""
        language = event.payload["changes"].get("language")
        if isinstance(language, str):
            self.app.record_customer_language(event.payload["customer_id"], language)

    @handles("customers", "CustomerDeleted")
    def customer_deleted(self, event: IntegrationEvent) -> None:
        """A deleted customer keeps no pending service (nor, when its deletion was forced,
        a running one), recorded as done by whoever deleted it."""
        context.current.actor = context.Actor.from_dict(event.actor)
        context.current.on_behalf_of = context.Actor.from_dict(event.on_behalf_of)
        self.app.customer_deleted(event.payload["customer_id"])

    @handles("customers", "CustomerErased")
    def erase_personal_data(self, event: IntegrationEvent) -> None:
        """A deleted customer's personal data is erased here too: its key is destroyed
        (services.infra.personal_data), recorded as done by whoever erased it."""
        context.current.actor = context.Actor.from_dict(event.actor)
        context.current.on_behalf_of = context.Actor.from_dict(event.on_behalf_of)
        self.app.erase_personal_data(event.payload["customer_id"], event.payload["reason"])

    @handles("billing", "InvoicePaid", batch=True)
    def activate_paid(self, event: IntegrationEvent) -> None:
        """Paying an order's invoice activates its services (a payment heard before its
        order was saved waits for it)."""
        self.app.invoice_paid(event.payload["invoice_id"], event.payload.get("purpose"))

    @handles("billing", "InvoiceVoided", batch=True)
    def cancel_voided_order(self, event: IntegrationEvent) -> None:
        """An order's invoice voided (by staff, or as its customer was deleted) cancels the
        order's pending services, recorded as done by whoever voided it."""
        context.current.actor = context.Actor.from_dict(event.actor)
        context.current.on_behalf_of = context.Actor.from_dict(event.on_behalf_of)
        self.app.invoice_voided(event.payload["invoice_id"])

    @handles("helpdesk", "ServicesSuspensionRequested")
    def suspend_for_abuse(self, event: IntegrationEvent) -> None:
        """The helpdesk's abuse action: every active service of the customer is suspended
        with the request's reason, recorded as done by whoever acted in the helpdesk."""
        context.current.actor = context.Actor.from_dict(event.actor)
        context.current.on_behalf_of = context.Actor.from_dict(event.on_behalf_of)
        self.app.suspend_customer(
            event.payload["customer_id"], event.payload["reason"], why="abuse"
        )

    @rpc
    def list(
        self,
        name: str,
        customer_id: str | None = None,
        page: int = 1,
        page_size: int = 50,
        status: str | None = None,
        product_id: str | None = None,
    ) -> dict:
        """Orders or services, newest first; `status` one of theirs (as the list shows);
        `product_id`: services of that product only."""
        if name not in LISTS:
            raise ValidationFailed(f"There is no list {name!r}.")
        limit, offset = page_window(page, page_size)
        table, key, at, view = LISTS[name]
        where, params = ["true"], []
        if customer_id is not None:
            where.append("customer_id = %s")
            params.append(_uuid(customer_id, "customer"))
        if status is not None:
            where.append("status = %s")
            params.append(str(status))
        if product_id is not None:
            if name != "services":
                raise ValidationFailed("Only services are listed by product.")
            where.append("product_id = %s")
            params.append(_uuid(product_id, "product"))
        clause = " AND ".join(where)
        with self.app.datastore.transaction() as curs:
            curs.execute(f"SELECT count(*) AS n FROM {table} WHERE {clause}", params)
            total = curs.fetchone()["n"]
            curs.execute(
                f"SELECT {key} AS id FROM {table} WHERE {clause} ORDER BY {at} DESC"
                " LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            ids = [r["id"] for r in curs.fetchall()]
        return {
            "items": [view(self.app.repository.get(i)) for i in ids],
            "total": total,
            "page": page,
            "page_size": page_size,
        }


@contextlib.contextmanager
def _undoing():
    """Undo what a failed request did (its order attempt abandoned) even once its caller
    stopped waiting: a request past its deadline changes nothing, and this is how."""
    deadline = getattr(context.current, "deadline", None)
    context.current.deadline = None
    try:
        yield
    finally:
        context.current.deadline = deadline


def _why(exc: Exception) -> str:
    """An error's kind and message, short, for a recorded reason."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _check_provisioning(data: dict) -> None:
    """A webhook's URL: http(s), and a public host unless the setting allows others."""
    setup = data.get("provisioning") or {}
    if setup.get("kind") == "webhook" and setup.get("url"):
        problem = provisioning.url_problem(setup["url"], settings().provisioning_allow_private)
        if problem:
            raise ValidationFailed(
                f"The provisioning URL is refused: {problem}", {"provisioning.url": [problem]}
            )
