"""Order routes: the catalog, the order form, products, promo codes, services."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts import fields as f
from contracts import orders as orders_contract
from contracts.errors import ValidationFailed
from gateway.api.common import ALL_STAFF, Page, PageQuery, jsonable, paged, str_or_none
from gateway.http import Call, route
from gateway.schemas import (
    ClientOrderAnswer,
    ClientOrderRequest,
    OrderAnswer,
    OrderList,
    OrderRequest,
    ProductList,
    ProductRequest,
    ProductSchema,
    Promo,
    PromoDetail,
    PromoList,
    RenewalAnswer,
    ServiceList,
    ServiceSchema,
)
from services.infra.context import Actor


class ProvisionedNote(Schema):
    note = f.Body(load_default="", validate=validate.Length(max=1000))


class ServiceReason(Schema):
    reason = f.Body(required=True, validate=validate.Length(min=1, max=500))


SERVICE_CHANGES = ("activated", "suspended", "unsuspended", "terminated", "cancelled")


class ServiceChange(Schema):
    """One step of a service's lifecycle, with the reason recorded for it."""

    event = f.Text(validate=validate.OneOf(SERVICE_CHANGES))
    at = fields.DateTime()
    reason = f.Text()
    # a suspension's cause: staff, overdue or abuse
    why = f.Text()


class StaffServiceAnswer(ServiceSchema):
    """A service for staff: its invoices (the order's, then each renewal's), the unpaid
    renewal invoice if any, and its lifecycle with the reasons given."""

    invoice_ids = fields.List(fields.UUID())
    renewal_invoice_id = fields.UUID(allow_none=True)
    history = fields.List(fields.Nested(ServiceChange))


ORDER_STATUSES = ("pending", "paid")
SERVICE_STATUSES = ("pending", "active", "suspended", "terminated", "cancelled")
STATUSES = {"orders": ORDER_STATUSES, "services": SERVICE_STATUSES}


# who creates and changes promo codes (every staff role reads them)
PROMO_ROLES = ("admin", "billing")


class PromoListQuery(orders_contract.PromoFilters):
    """The promo code filters with the one page rule of every list."""

    page = f.Page()
    page_size = f.PageSize()


class ProductListQuery(Page):
    currency = f.Currency(load_default=None)


class CatalogQuery(ProductListQuery):
    language = f.Text(load_default="en", validate=validate.OneOf(["en", "ru", "fr"]))


class ClientOrderListQuery(Page):
    """`status`: an order's (pending, paid) or a service's (pending, active, suspended,
    terminated, cancelled), as the list shows it."""

    status = f.Text(
        load_default=None, validate=validate.OneOf(sorted(set(ORDER_STATUSES + SERVICE_STATUSES)))
    )


class OrderListQuery(ClientOrderListQuery, PageQuery):
    """`product_id`: services of that product only (not for orders)."""

    product_id = fields.UUID(load_default=None)


class OrderRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    # -- catalog and orders -------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/catalog",
        query=CatalogQuery,
        response=ProductList,
        tags=("orders",),
        summary="products on sale",
    )
    def catalog(self, call: Call):
        items = call.services.orders.catalog(call.query["language"], True, call.query["currency"])
        return paged(items, call.query)

    @route(
        "POST",
        "/api/v1/orders",
        idempotent="service",
        body=OrderRequest,
        response=OrderAnswer,
        status=201,
        tags=("orders",),
        summary="order as a new or an existing customer",
    )
    def place_order(self, call: Call):
        """A new e-mail creates the customer (credentials shown once); an existing one needs
        its password. Items are priced from the catalog and checked before anything is
        created, so a bad item leaves no customer behind.

        With an Idempotency-Key the same request answers the same order again, without
        the credentials (they are shown once, and mailed); it also finishes an order whose
        customer was made by that request when the order itself did not get placed."""
        order, customer_id, credentials = order_as_visitor(
            call.services, call.body, call.idempotency_key, call.address
        )
        return _order_answer(order, customer_id, credentials)

    @route(
        "POST",
        "/api/v1/client/orders",
        idempotent="service",
        body=ClientOrderRequest,
        response=ClientOrderAnswer,
        status=201,
        client=("services",),
        tags=("client",),
        summary="order as the logged-in client",
    )
    def place_client_order(self, call: Call):
        """The customer's own details are not asked again: the items are priced from the
        catalog in the customer's currency and the invoice is issued as for the order
        form. A client's user needs the `services` (or `full`) permission. With an
        Idempotency-Key the same request answers the same order again; the same key with
        another body is a 409."""
        return order_as_client(call.services, call.customer_id, call.body, call.idempotency_key)

    @route(
        "POST",
        "/api/v1/client/services/<uuid:service_id>/renew",
        idempotent=True,
        response=RenewalAnswer,
        client=("services",),
        tags=("client",),
        summary="an early renewal invoice for the service's next period",
    )
    def renew_service(self, call: Call):
        """The renewal invoice of the service's next period, issued now rather than by the
        scheduler; paying it moves the next due date on by one billing cycle. Asked again
        while that invoice is unpaid, the same invoice is answered (`issued` false), never
        a second one. 409 for a service that is not active or suspended (pending,
        cancelled, terminated)."""
        return call.services.orders.renew_early(call.customer_id, str(call.path["service_id"]))

    @route(
        "GET",
        "/api/v1/staff/products",
        response=ProductList,
        roles=ALL_STAFF,
        query=ProductListQuery,
        tags=("orders",),
        summary="the catalog, on sale or not",
    )
    def list_products(self, call: Call):
        items = call.services.orders.catalog(None, False, call.query["currency"])
        return paged(items, call.query)

    @route(
        "POST",
        "/api/v1/staff/products",
        idempotent=True,
        response=ProductSchema,
        body=ProductRequest,
        status=201,
        roles=("admin",),
        tags=("orders",),
        summary="add a product",
    )
    def create_product(self, call: Call):
        return call.services.orders.create_product(_product_payload(call.body))

    @route(
        "GET",
        "/api/v1/staff/products/<uuid:product_id>",
        response=ProductSchema,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="one product",
    )
    def get_product(self, call: Call):
        return call.services.orders.get_product(str(call.path["product_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/products/<uuid:product_id>",
        response=ProductSchema,
        body=ProductRequest,
        partial=True,
        roles=("admin",),
        tags=("orders",),
        summary="change a product",
    )
    def change_product(self, call: Call):
        return call.services.orders.change_product(
            str(call.path["product_id"]), _product_payload(call.body)
        )

    @route(
        "POST",
        "/api/v1/staff/promo-codes",
        idempotent=True,
        response=Promo,
        body=orders_contract.CreatePromo,
        status=201,
        roles=PROMO_ROLES,
        tags=("orders",),
        summary="a promo code",
    )
    def create_promo(self, call: Call):
        return call.services.orders.create_promo(jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/promo-codes",
        response=PromoList,
        query=PromoListQuery,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="promo codes, newest first (`state`: active, expired, used_up, deactivated;"
        " `code`: a part of the code)",
    )
    def list_promos(self, call: Call):
        q = call.query
        filters = {"state": q["state"], "code": q["code"]}
        return call.services.orders.list_promos(filters, q["page"], q["page_size"])

    @route(
        "GET",
        "/api/v1/staff/promo-codes/<uuid:promo_id>",
        response=PromoDetail,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="one promo code, its uses, the orders placed with it and its history",
    )
    def get_promo(self, call: Call):
        return call.services.orders.get_promo(str(call.path["promo_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/promo-codes/<uuid:promo_id>",
        response=Promo,
        body=orders_contract.ChangePromo,
        partial=True,
        roles=PROMO_ROLES,
        tags=("orders",),
        summary="change a promo code's discount, products, expiry or limit (not its code)",
    )
    def change_promo(self, call: Call):
        return call.services.orders.change_promo(str(call.path["promo_id"]), jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/promo-codes/<uuid:promo_id>/<any(deactivate,activate):action>",
        response=Promo,
        roles=PROMO_ROLES,
        tags=("orders",),
        summary="`deactivate` a promo code (refused at order time from then on; kept, since"
        " orders name it) or `activate` it again",
    )
    def set_promo_active(self, call: Call):
        active = call.path["action"] == "activate"
        return call.services.orders.set_promo_active(str(call.path["promo_id"]), active)

    @route(
        "POST",
        "/api/v1/client/services/<uuid:service_id>/cancel",
        response=ServiceSchema,
        body=ServiceReason,
        client=("services",),
        tags=("client",),
        summary="cancel one of your services",
    )
    def cancel_service(self, call: Call):
        return call.services.orders.cancel_service(
            call.customer_id, str(call.path["service_id"]), call.body
        )

    @route(
        "GET",
        "/api/v1/staff/provisioning",
        response=ServiceList,
        query=Page,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="services waiting to be set up by hand",
    )
    def provisioning_tasks(self, call: Call):
        return call.services.orders.provisioning_tasks(call.query["page"], call.query["page_size"])

    @route(
        "POST",
        "/api/v1/staff/services/<uuid:service_id>/provisioned",
        response=ServiceSchema,
        body=ProvisionedNote,
        roles=("admin", "support"),
        tags=("orders",),
        summary="record that a service was set up by hand",
    )
    def mark_provisioned(self, call: Call):
        return call.services.orders.mark_provisioned(str(call.path["service_id"]), call.body)

    @route(
        "POST",
        "/api/v1/staff/services/<uuid:service_id>/<any(suspend,unsuspend,terminate):action>",
        response=ServiceSchema,
        body=ServiceReason,
        roles=("admin", "support", "billing"),
        tags=("orders",),
        summary="suspend, unsuspend or terminate a service by hand",
    )
    def change_service(self, call: Call):
        return call.services.orders.change_service(
            str(call.path["service_id"]), call.path["action"], call.body
        )

    @route(
        "GET",
        "/api/v1/staff/services/<uuid:service_id>",
        response=StaffServiceAnswer,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="one service, with its invoices and the reasons of its lifecycle",
    )
    def staff_service(self, call: Call):
        return call.services.orders.staff_service(str(call.path["service_id"]))

    @route(
        "GET",
        "/api/v1/staff/<any(orders,services):name>",
        response={"orders": OrderList, "services": ServiceList},
        query=OrderListQuery,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="orders or services (`status`: their own)",
    )
    def staff_order_list(self, call: Call):
        return _order_list(
            call, str_or_none(call.query["customer_id"]), str_or_none(call.query["product_id"])
        )

    @route(
        "GET",
        "/api/v1/client/<any(orders,services):name>",
        response={"orders": OrderList, "services": ServiceList},
        query=ClientOrderListQuery,
        client=("services",),
        tags=("client",),
        summary="your orders or services (`status`: their own)",
    )
    def client_order_list(self, call: Call):
        return _order_list(call, call.customer_id)


def order_as_client(services, customer_id: str, body: dict, key: str | None) -> dict:
    """Place `{"items", "promo_code"?}` for a logged-in customer, in its currency; `key`
    the caller-bound Idempotency-Key (or None). The order with its invoice."""
    customer = services.customers.get_customer(customer_id)
    items = jsonable({"items": body["items"], "promo_code": body.get("promo_code")})
    request = dict(items, customer_id=str(customer_id))
    return services.orders.place_order(customer_id, customer["currency"], items, key, request)


# what the order form takes about the person beyond what registering a customer takes
REFERRAL_FIELDS = ("referral_source", "referral_code")


def order_as_visitor(services, body: dict, key: str | None, address: str | None):
    """The order form: `{"customer", "items", "promo_code"?}` from someone not logged in.
    A new e-mail creates the customer (its credentials answered once, and mailed), with
    how it heard of us (`referral_source`) and who referred it (`referral_code`: another
    customer's code, a 400 naming `customer.referral_code` when there is no such code);
    an existing one needs its password (401 password_required / invalid_credentials).
    Items are priced from the catalog and checked before anything is created. `key`: the
    caller-bound Idempotency-Key, which also finishes an order whose customer was made
    by that request when the order itself did not get placed. `(order, customer_id,
    credentials or None)`."""
    person = jsonable(body["customer"])
    for name in REFERRAL_FIELDS:  # a new account keeps them; an existing one is as it is
        if not person.get(name):
            person.pop(name, None)
    # limited per address and per e-mail: the form makes accounts and sends mail
    services.customers.order_form_attempt(person["email"], address)
    items = {"items": body["items"], "promo_code": body.get("promo_code")}
    # what identifies the request: the password stays out of the (stored) hash
    request = jsonable(dict(items, customer={k: v for k, v in person.items() if k != "password"}))
    if key:
        earlier = services.orders.order_for_key(key, request)
        if earlier is not None:
            return earlier, earlier["customer_id"], None
    made = services.customers.registration_for(f"order:{key}", person) if key else None
    existing = made or services.customers.customer_for_order(
        person["email"], person.get("password"), address
    )
    currency = existing["currency"] if existing else "EUR"
    services.orders.price_items(currency, items)
    credentials = None
    if existing is None:
        try:
            # the credentials mail is recorded with the account and follows from there
            created = services.customers.register_customer(
                dict(person, registration_ip=address),
                f"order:{key}" if key else None,
                "order",
            )
        except ValidationFailed as exc:
            # the customer's fields are `customer.<field>` in this body
            fields = {f"customer.{name}": texts for name, texts in exc.fields.items()}
            raise ValidationFailed(exc.message, fields) from None
        customer_id, credentials = created["id"], created.get("credentials")
    else:
        customer_id = existing["id"]
    services.act_as(Actor("client", customer_id))
    order = services.orders.place_order(customer_id, currency, items, key, request)
    return order, customer_id, credentials


def _order_list(call: Call, customer_id: str | None, product_id: str | None = None) -> dict:
    q, name = call.query, call.path["name"]
    if q["status"] is not None and q["status"] not in STATUSES[name]:
        message = f"One of: {', '.join(STATUSES[name])}."
        raise ValidationFailed(f"Not a status of {name}. {message}", {"status": [message]})
    if product_id is not None and name != "services":
        message = "Only services are listed by product."
        raise ValidationFailed(message, {"product_id": [message]})
    return call.services.orders.list(
        name, customer_id, q["page"], q["page_size"], q["status"], product_id
    )


def _order_answer(order: dict, customer_id: str, credentials: dict | None) -> dict:
    answer = {
        "order_id": order["id"],
        "customer_id": customer_id,
        "invoice_id": order["invoice_id"],
    }
    if credentials:
        answer["credentials"] = credentials
    return answer


def _product_payload(body: dict) -> dict:
    """A product request as the orders service takes it (texts and prices per key)."""
    out = {}
    for key in ("name", "description"):
        if key in body and body[key] is not None:
            out[key] = body[key] if isinstance(body[key], dict) else {"en": body[key]}
    if "prices" in body:
        out["prices"] = body["prices"]
    if body.get("setup_fee") is not None:
        out["setup_fee"] = body["setup_fee"]
    if body.get("provisioning") is not None:
        out["provisioning"] = body["provisioning"]
    if body.get("addons") is not None:
        out["addons"] = [
            dict(
                {k: a[k] for k in ("id", "prices") if k in a},
                setup_fee=a.get("setup_fee") or {},
                **(
                    {"name": a["name"] if isinstance(a["name"], dict) else {"en": a["name"]}}
                    if "name" in a
                    else {}
                ),
            )
            for a in body["addons"]
        ]
    for key in ("project_id", "on_sale"):
        if key in body:
            out[key] = body[key]
    return jsonable(out)
