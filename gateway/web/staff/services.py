"""The staff panel's services: every customer's services (by status, product and the
customer filter, paged), one service with its lifecycle and the reasons given, suspending,
unsuspending and terminating it with a reason, the orders, the services waiting to be
set up by hand (marked as set up, with a note), and the catalogue's editor (a product's
names per language, its prices per billing cycle and currency typed as a person writes
amounts, on sale or not).

The same orders-service commands as `/api/v1/staff/services...`, `/orders` and
`/provisioning`; each page allows the roles of the route it mirrors and shows an action
only to whom its route allows it. Product names come from the catalog in the page's
language; customers are named by number and name (one question each, side by side).
"""

from __future__ import annotations

from decimal import Decimal

from babel import numbers

from contracts.errors import Conflict, HostledgerError, ValidationFailed
from contracts.fields import MAX_AMOUNT
from contracts.orders import CYCLES
from gateway.web.client.finances import parse_amount
from gateway.web.i18n import LANGUAGES, N_
from gateway.web.pages import FormErrors, PageCall, page

PAGE_SIZE = 20
SERVICE_STATUSES = ("active", "pending", "suspended", "cancelled", "terminated")
ORDER_STATUSES = ("pending", "paid")
# the bounds of the routes' bodies (gateway.api.orders ServiceReason, ProvisionedNote)
REASON_MAX = 500
NOTE_MAX = 1000

LISTS = "GET /api/v1/staff/<any(orders,services):name>"
ONE = "GET /api/v1/staff/services/<uuid:service_id>"
CHANGE = "POST /api/v1/staff/services/<uuid:service_id>/<any(suspend,unsuspend,terminate):action>"
PROVISIONING = "GET /api/v1/staff/provisioning"
PROVISIONED = "POST /api/v1/staff/services/<uuid:service_id>/provisioned"
PRODUCTS = "GET /api/v1/staff/products"
PRODUCT = "GET /api/v1/staff/products/<uuid:product_id>"
CREATE_PRODUCT = "POST /api/v1/staff/products"
CHANGE_PRODUCT = "PATCH /api/v1/staff/products/<uuid:product_id>"
# empty price rows the product form offers beyond those it has
SPARE_PRICES = 2
MAX_PRICES = 30

# what each action needs the service to be
ACTIONS = {
    "suspend": ("active",),
    "unsuspend": ("suspended",),
    "terminate": ("pending", "active", "suspended"),
}
NOTICES = {
    "suspend": N_("The service is suspended."),
    "unsuspend": N_("The service is active again."),
    "terminate": N_("The service is terminated."),
    "provisioned": N_("The service is recorded as set up."),
    "created": N_("The product is added to the catalogue."),
    "saved": N_("The product is saved."),
}


def product_names(call: PageCall) -> dict[str, str]:
    """Every product's name in the page's language, by id (a service keeps the name it
    was ordered under, in English)."""
    return {p["id"]: p["name"] for p in call.services.orders.catalog(call.language, False, None)}


def customers_of(call: PageCall, items: list[dict]) -> dict[str, dict | None]:
    """The customers the `items` belong to, by id, asked side by side (None: deleted)."""
    customers = call.services.customers
    asked = {
        i: customers.get_customer.call_async(i) for i in {item["customer_id"] for item in items}
    }
    found = {}
    for customer_id, reply in asked.items():
        try:
            found[customer_id] = reply.result()
        except HostledgerError:
            found[customer_id] = None
    return found


def _chosen(call: PageCall, name: str, allowed) -> str:
    value = call.request.args.get(name, "")
    return value if value in allowed else ""


class StaffServicePages:
    """Mixed into GatewayService."""

    @page("GET", "/staff/services", staff=LISTS)
    def web_staff_services(self, call: PageCall):
        status = _chosen(call, "status", SERVICE_STATUSES)
        names = product_names(call)
        product = _chosen(call, "product", names)
        number, size = call.page_args(PAGE_SIZE)
        services = call.services.orders.list(
            "services", call.customer_filter(), number, size, status or None, product or None
        )
        query = {k: v for k, v in (("status", status), ("product", product)) if v}
        return call.render(
            "staff/services.html",
            services=services,
            customers=customers_of(call, services["items"]),
            names=names,
            products=sorted(names.items(), key=lambda pair: pair[1].casefold()),
            statuses=SERVICE_STATUSES,
            chosen=status,
            product=product,
            query=query,
        )

    @page("GET", "/staff/services/<uuid:service_id>", staff=ONE)
    def web_staff_service(self, call: PageCall):
        notice = NOTICES.get(call.request.args.get("done", ""))
        return _detail(call, "", FormErrors(), notice=call.gettext(notice) if notice else None)

    @page(
        "POST",
        "/staff/services/<uuid:service_id>/<any(suspend,unsuspend,terminate):action>",
        staff=CHANGE,
    )
    def web_staff_service_change(self, call: PageCall):
        values, errors = call.form("reason")
        reason = values["reason"]
        if not reason and "reason" not in errors:
            errors.add("reason", call.gettext("Say why: it is kept with the service's history."))
        elif len(reason) > REASON_MAX:
            errors.add("reason", call.gettext("At most %(max)d characters.", max=REASON_MAX))
        if errors:
            return _detail(call, reason, errors, status=400)
        service_id, action = str(call.path["service_id"]), call.path["action"]
        try:
            call.services.orders.change_service(service_id, action, {"reason": reason})
        except Conflict:
            errors.add("_form", call.gettext("The service's status does not allow this now."))
            return _detail(call, reason, errors, status=409)
        return call.redirect(f"/staff/services/{service_id}", done=action)

    @page("GET", "/staff/orders", staff=LISTS)
    def web_staff_orders(self, call: PageCall):
        status = _chosen(call, "status", ORDER_STATUSES)
        number, size = call.page_args(PAGE_SIZE)
        s = call.services
        pending = s.orders.list.call_async(
            "orders", call.customer_filter(), number, size, status or None
        )
        names = product_names(call)
        orders = pending.result()
        return call.render(
            "staff/services_orders.html",
            orders=orders,
            customers=customers_of(call, orders["items"]),
            names=names,
            statuses=ORDER_STATUSES,
            chosen=status,
            query={"status": status} if status else {},
        )

    @page("GET", "/staff/provisioning", staff=PROVISIONING)
    def web_staff_provisioning(self, call: PageCall):
        notice = NOTICES.get(call.request.args.get("done", ""))
        return _provisioning(call, notice=call.gettext(notice) if notice else None)

    @page("POST", "/staff/provisioning/<uuid:service_id>", staff=PROVISIONED)
    def web_staff_provisioned(self, call: PageCall):
        values, errors = call.form("note")
        if len(values["note"]) > NOTE_MAX:
            errors.add("_form", call.gettext("At most %(max)d characters.", max=NOTE_MAX))
        if errors:
            return _provisioning(call, errors=errors, status=400)
        service_id = str(call.path["service_id"])
        try:
            call.services.orders.mark_provisioned(service_id, {"note": values["note"]})
        except Conflict:
            errors.add("_form", call.gettext("This service is not waiting to be set up."))
            return _provisioning(call, errors=errors, status=409)
        return call.redirect("/staff/provisioning", done="provisioned")

    @page("GET", "/staff/products", staff=PRODUCTS)
    def web_staff_products(self, call: PageCall):
        products = call.services.orders.catalog(call.language, False, None)
        number, size = call.page_args(PAGE_SIZE)
        listing = {
            "items": products[(number - 1) * size : number * size],
            "total": len(products),
            "page": number,
            "page_size": size,
        }
        return call.render("staff/products.html", products=listing)

    @page("GET", "/staff/products/new", staff=CREATE_PRODUCT)
    def web_staff_product_new(self, call: PageCall):
        return _product_form(call, None, _product_values(None, call.language), FormErrors())

    @page("POST", "/staff/products/new", staff=CREATE_PRODUCT)
    def web_staff_product_create(self, call: PageCall):
        values, payload, errors = _posted_product(call)
        if not errors:
            try:
                product = call.services.orders.create_product(payload)
            except ValidationFailed as exc:
                errors = _product_errors(call, exc, errors)
            else:
                return call.redirect(f"/staff/products/{product['id']}", done="created")
        return _product_form(call, None, values, errors, status=400)

    @page("GET", "/staff/products/<uuid:product_id>", staff=PRODUCT)
    def web_staff_product(self, call: PageCall):
        product = call.services.orders.get_product(str(call.path["product_id"]))
        notice = NOTICES.get(call.request.args.get("done", ""))
        return _product_form(
            call,
            product,
            _product_values(product, call.language),
            FormErrors(),
            notice=call.gettext(notice) if notice else None,
        )

    @page("POST", "/staff/products/<uuid:product_id>", staff=CHANGE_PRODUCT)
    def web_staff_product_change(self, call: PageCall):
        product_id = str(call.path["product_id"])
        product = call.services.orders.get_product(product_id)
        values, payload, errors = _posted_product(call)
        if not errors:
            try:
                call.services.orders.change_product(product_id, payload)
            except ValidationFailed as exc:
                errors = _product_errors(call, exc, errors)
            else:
                return call.redirect(f"/staff/products/{product_id}", done="saved")
        return _product_form(call, product, values, errors, status=400)


def _amount_text(amount: int, currency: str, language: str) -> str:
    """Minor units as a person would type them on this page (`5,00` in French)."""
    digits = numbers.get_currency_precision(currency)
    return numbers.format_decimal(
        Decimal(amount).scaleb(-digits),
        format="0." + "0" * digits if digits else "0",
        locale=language,
    )


def _product_values(product: dict | None, language: str) -> dict:
    """The product form's fields: `name_<lang>`, `description_<lang>`, `on_sale`, and
    `prices`: rows of {"cycle", "currency", "amount"} (text as shown), spares after them."""
    values = {"on_sale": True if product is None else product["on_sale"], "prices": []}
    for lang in LANGUAGES:
        values[f"name_{lang}"] = (product or {}).get("name", {}).get(lang, "")
        values[f"description_{lang}"] = ((product or {}).get("description") or {}).get(lang, "")
    for cycle in CYCLES:
        for money in ((product or {}).get("all_prices") or {}).get(cycle, []):
            values["prices"].append(
                {
                    "cycle": cycle,
                    "currency": money["currency"],
                    "amount": _amount_text(money["amount"], money["currency"], language),
                }
            )
    values["prices"] += [{"cycle": "", "currency": "", "amount": ""}] * SPARE_PRICES
    return values


def _posted_product(call: PageCall) -> tuple[dict, dict, FormErrors]:
    """The product form as posted: (its values to show again, the orders service's
    payload, errors next to the fields). A price row left wholly blank is no price."""
    try:
        rows = min(max(int(call.request.form.get("price_rows", "0")), 0), MAX_PRICES)
    except ValueError:
        rows = 0
    names = [f"{k}_{lang}" for k in ("name", "description") for lang in LANGUAGES]
    for i in range(rows):
        names += [f"price_cycle_{i}", f"price_currency_{i}", f"price_amount_{i}"]
    values, errors = call.form(*names)
    values["on_sale"] = call.request.form.get("on_sale") == "1"
    if not values["name_en"] and "name_en" not in errors:
        errors.add("name_en", call.gettext("Give the product a name in English at least."))
    prices: dict = {}
    values["prices"] = []
    for i in range(rows):
        cycle, amount = values[f"price_cycle_{i}"], values[f"price_amount_{i}"]
        currency = values[f"price_currency_{i}"].upper()
        values["prices"].append({"cycle": cycle, "currency": currency, "amount": amount})
        if not (cycle or currency or amount):
            continue
        if cycle not in CYCLES:
            errors.add(f"price_cycle_{i}", call.gettext("Choose a billing cycle."))
        if not (len(currency) == 3 and currency.isalpha()):
            errors.add(f"price_currency_{i}", call.gettext("A currency's three-letter code."))
            continue
        minor = parse_amount(amount, currency, call.language)
        if minor is None or minor > MAX_AMOUNT:
            errors.add(
                f"price_amount_{i}", call.gettext("Write the price as an amount, like 9.99.")
            )
        elif cycle in CYCLES:
            if currency in prices.setdefault(cycle, {}):
                errors.add(
                    f"price_currency_{i}",
                    call.gettext("This cycle has a price in this currency already."),
                )
            prices[cycle][currency] = minor
    if not prices and not errors:
        errors.add("price_amount_0", call.gettext("Give at least one price."))
    values["prices"] += [{"cycle": "", "currency": "", "amount": ""}] * SPARE_PRICES
    payload = {
        "name": {lang: values[f"name_{lang}"] for lang in LANGUAGES if values[f"name_{lang}"]},
        "description": {
            lang: values[f"description_{lang}"]
            for lang in LANGUAGES
            if values[f"description_{lang}"]
        },
        "prices": prices,
        "on_sale": values["on_sale"],
    }
    return values, payload, errors


def _product_errors(call: PageCall, exc: ValidationFailed, errors: FormErrors) -> FormErrors:
    """The orders service's refusal: a name or description per language lands next to
    its own field; the rest under the form."""
    fields = {}
    for name, problems in (exc.fields or {}).items():
        top, _dot, rest = str(name).partition(".")
        lang = rest.split(".")[0]
        fields[f"{top}_{lang}" if top in ("name", "description") and lang else top] = problems
    return call.service_errors(ValidationFailed(exc.message, fields), errors)


def _product_form(
    call: PageCall, product: dict | None, values: dict, errors, notice=None, status=200
):
    return call.render(
        "staff/products_edit.html",
        status=status,
        product=product,
        values=values,
        errors=errors,
        notice=notice,
        cycles=CYCLES,
        languages=LANGUAGES,
        editable=call.can(CHANGE_PRODUCT if product else CREATE_PRODUCT),
    )


def _detail(call: PageCall, reason: str, errors: FormErrors, notice=None, status: int = 200):
    service_id = str(call.path["service_id"])
    s = call.services
    pending = s.orders.staff_service.call_async(service_id)
    names = product_names(call)
    service = pending.result()
    [customer] = customers_of(call, [service]).values()
    invoices = None
    if call.can("GET /api/v1/staff/invoices/<uuid:invoice_id>"):
        replies = [s.billing.get_invoice.call_async(i) for i in reversed(service["invoice_ids"])]
        invoices = [reply.result() for reply in replies]
    actions = [
        name
        for name, allowed in ACTIONS.items()
        if service["status"] in allowed and call.can(CHANGE)
    ]
    return call.render(
        "staff/services_detail.html",
        status=status,
        service=service,
        owner=customer,
        product_name=names.get(service["product_id"], service["name"]),
        invoices=invoices,
        actions=actions,
        reason=reason,
        errors=errors,
        notice=notice,
        maximum=REASON_MAX,
    )


def _provisioning(call: PageCall, errors: FormErrors | None = None, notice=None, status=200):
    number, size = call.page_args(PAGE_SIZE)
    pending = call.services.orders.provisioning_tasks.call_async(number, size)
    names = product_names(call)
    tasks = pending.result()
    return call.render(
        "staff/services_provisioning.html",
        status=status,
        tasks=tasks,
        customers=customers_of(call, tasks["items"]),
        names=names,
        errors=errors or FormErrors(),
        notice=notice,
        maximum=NOTE_MAX,
    )
