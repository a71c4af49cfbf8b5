"""The staff panel's services: every customer's services (by status, product and the
customer filter, paged), one service with its lifecycle and the reasons given, suspending,
unsuspending and terminating it with a reason, the orders, and the services waiting to be
set up by hand (marked as set up, with a note). The catalogue is gateway.web.staff.products.

The same orders-service commands as `/api/v1/staff/services...`, `/orders` and
`/provisioning`; each page allows the roles of the route it mirrors and shows an action
only to whom its route allows it. Product names come from the catalog in the page's
language; customers are named by number and name (one question each, side by side).
"""

from __future__ import annotations

from contracts.errors import Conflict, HostledgerError
from gateway.web.i18n import N_
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
