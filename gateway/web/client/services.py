"""A client's services: the list (by status, paged), one service in detail with its
invoices, renewing it early and cancelling it (a confirmation step with a reason).

The same orders-service commands as `/api/v1/client/services...` (`list`,
`client_service`, `renew_early`, `cancel_service`), with the permission `services`; a
service's invoices are read from billing only for a user that may see invoices
(`billing`). An invoice opens at /invoices/<id>.
"""

from __future__ import annotations

from contracts.errors import Conflict
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page

PERMISSIONS = ("services",)
PAGE_SIZE = 20
STATUSES = ("active", "pending", "suspended", "cancelled", "terminated")
RENEWABLE = ("active", "suspended")
CANCELLABLE = ("pending", "active", "suspended")
# the bound of contracts.orders.ServiceAction
REASON_MAX = 500
# the most invoices the detail page reads (the newest)
INVOICES_SHOWN = 12

NOTICES = {
    "renewed": N_("The renewal invoice of the next period is issued."),
    "renewal_unpaid": N_(
        "The renewal invoice of the next period was issued already: it waits for payment."
    ),
    "cancelled": N_("The service is cancelled."),
}


def catalog_names(call: PageCall) -> tuple[dict[str, str], dict[str, str]]:
    """Every product's name and every add-on's, in the page's language, by id (a service
    keeps the names it was ordered under, in English)."""
    products = call.services.orders.catalog(call.language, False, None)
    addons = {a["id"]: a["name"] for p in products for a in p["addons"]}
    return {p["id"]: p["name"] for p in products}, addons


class ServicePages:
    """Mixed into GatewayService."""

    @page("GET", "/services", client=True, permissions=PERMISSIONS)
    def web_services(self, call: PageCall):
        status = call.request.args.get("status", "")
        status = status if status in STATUSES else ""
        number, size = call.page_args(PAGE_SIZE)
        orders = call.services.orders
        pending = orders.list.call_async("services", call.customer_id, number, size, status or None)
        names, addon_names = catalog_names(call)
        return call.render(
            "client/services.html",
            addon_names=addon_names,
            services=pending.result(),
            chosen=status,
            statuses=STATUSES,
            names=names,
        )

    @page("GET", "/services/<uuid:service_id>", client=True, permissions=PERMISSIONS)
    def web_service(self, call: PageCall):
        notice = NOTICES.get(call.request.args.get("done", ""))
        return _detail(call, notice=call.gettext(notice) if notice else None)

    @page("POST", "/services/<uuid:service_id>/renew", client=True, permissions=PERMISSIONS)
    def web_service_renew(self, call: PageCall):
        service_id = str(call.path["service_id"])
        try:
            renewal = call.services.orders.renew_early(call.customer_id, service_id)
        except Conflict as exc:
            if "renewal invoice" in exc.message:  # staff cancelled the next period's invoice
                message = call.gettext(
                    "The renewal invoice of this service was cancelled: ask support to renew it."
                )
            else:
                message = call.gettext(
                    "Only an active or suspended service can be renewed; this one cannot "
                    "be renewed now."
                )
            return _detail(call, errors=FormErrors().add("_form", message), status=409)
        done = "renewed" if renewal["issued"] else "renewal_unpaid"
        return call.redirect(f"/services/{service_id}", done=done)

    @page("GET", "/services/<uuid:service_id>/cancel", client=True, permissions=PERMISSIONS)
    def web_service_cancel_page(self, call: PageCall):
        return _cancel_form(call, "", FormErrors())

    @page("POST", "/services/<uuid:service_id>/cancel", client=True, permissions=PERMISSIONS)
    def web_service_cancel(self, call: PageCall):
        values, errors = call.form("reason")
        reason = values["reason"]
        if not reason and "reason" not in errors:
            errors.add("reason", call.gettext("Say why you cancel the service."))
        elif len(reason) > REASON_MAX:
            errors.add("reason", call.gettext("At most %(max)d characters.", max=REASON_MAX))
        if errors:
            return _cancel_form(call, reason, errors, status=400)
        service_id = str(call.path["service_id"])
        try:
            call.services.orders.cancel_service(call.customer_id, service_id, {"reason": reason})
        except Conflict:
            errors.add("_form", call.gettext("This service cannot be cancelled any more."))
            return _cancel_form(call, reason, errors, status=409)
        return call.redirect(f"/services/{service_id}", done="cancelled")


def _detail(call: PageCall, notice: str | None = None, errors=None, status: int = 200):
    service_id = str(call.path["service_id"])
    service = call.services.orders.client_service(call.customer_id, service_id)
    invoices = None
    if call.may("billing"):
        billing = call.services.billing
        wanted = list(reversed(service["invoice_ids"]))[:INVOICES_SHOWN]
        replies = [billing.get_invoice.call_async(i, call.customer_id) for i in wanted]
        invoices = [reply.result() for reply in replies]
    names, addon_names = catalog_names(call)
    return call.render(
        "client/services_detail.html",
        addon_names=addon_names,
        status=status,
        service=service,
        product_name=names.get(service["product_id"], service["name"]),
        invoices=invoices,
        renewable=service["status"] in RENEWABLE,
        cancellable=service["status"] in CANCELLABLE,
        notice=notice,
        errors=errors or FormErrors(),
    )


def _cancel_form(call: PageCall, reason: str, errors: FormErrors, status: int = 200):
    service_id = str(call.path["service_id"])
    service = call.services.orders.client_service(call.customer_id, service_id)
    if service["status"] not in CANCELLABLE and not errors:
        errors.add("_form", call.gettext("This service cannot be cancelled any more."))
    names, _addons = catalog_names(call)
    return call.render(
        "client/services_cancel.html",
        status=status,
        service=service,
        product_name=names.get(service["product_id"], service["name"]),
        cancellable=service["status"] in CANCELLABLE,
        reason=reason,
        errors=errors,
        maximum=REASON_MAX,
    )
