"""The staff panel's catalogue: the products (names in the page's language, prices, setup
fees, project and add-ons), and the editor of one: names and descriptions per language,
prices per billing cycle and currency, a setup fee per currency, the project (brand) it
is sold under, on sale or not, and its add-ons, each with its names, prices and setup
fee (an add-on keeps its id when changed, so the orders and services that name it keep
working; removing one leaves them as they are). Amounts are typed as a person writes
them (gateway.web.staff.product_form reads the form).

The same orders-service commands as `/api/v1/staff/products`; reading is for every staff
role, changing for the roles of the route it mirrors: the others see the product as a
page to read, without a form.
"""

from __future__ import annotations

from contracts.errors import ValidationFailed
from contracts.orders import CYCLES
from gateway.web.i18n import LANGUAGES, N_
from gateway.web.pages import FormErrors, PageCall, page
from gateway.web.staff.product_form import form_fields, parse_product, product_values, with_spares

PAGE_SIZE = 20
PRODUCTS = "GET /api/v1/staff/products"
PRODUCT = "GET /api/v1/staff/products/<uuid:product_id>"
CREATE_PRODUCT = "POST /api/v1/staff/products"
CHANGE_PRODUCT = "PATCH /api/v1/staff/products/<uuid:product_id>"
# the projects a product may be sold under (the first page of them: a provider has few)
PROJECTS_SHOWN = 200

NOTICES = {
    "created": N_("The product is added to the catalogue."),
    "saved": N_("The product is saved."),
}


def _projects(call: PageCall, product: dict | None = None) -> dict[str, str]:
    """Every project's name by id; a product's own project among them even when it is not
    on the page of projects asked for."""
    listing = call.services.customers.list_kind("project", 1, PROJECTS_SHOWN)
    names = {p["id"]: p["name"] for p in listing["items"]}
    if product and product.get("project_id") and product["project_id"] not in names:
        names[product["project_id"]] = product["project_id"]
    return names


class StaffProductPages:
    """Mixed into GatewayService."""

    @page("GET", "/staff/products", staff=PRODUCTS)
    def web_staff_products(self, call: PageCall):
        s = call.services
        pending = s.customers.list_kind.call_async("project", 1, PROJECTS_SHOWN)
        products = s.orders.catalog(call.language, False, None)
        number, size = call.page_args(PAGE_SIZE)
        listing = {
            "items": products[(number - 1) * size : number * size],
            "total": len(products),
            "page": number,
            "page_size": size,
        }
        projects = {p["id"]: p["name"] for p in pending.result()["items"]}
        return call.render("staff/products.html", products=listing, projects=projects)

    @page("GET", "/staff/products/new", staff=CREATE_PRODUCT)
    def web_staff_product_new(self, call: PageCall):
        values = product_values(None, call.language)
        return _product_form(call, None, values, FormErrors(), _projects(call))

    @page("POST", "/staff/products/new", staff=CREATE_PRODUCT)
    def web_staff_product_create(self, call: PageCall):
        projects = _projects(call)
        values, payload, errors = _posted(call, None, projects)
        if not errors:
            try:
                product = call.services.orders.create_product(payload)
            except ValidationFailed as exc:
                errors = _product_errors(call, exc, values)
            else:
                return call.redirect(f"/staff/products/{product['id']}", done="created")
        return _product_form(call, None, values, errors, projects, status=400)

    @page("GET", "/staff/products/<uuid:product_id>", staff=PRODUCT)
    def web_staff_product(self, call: PageCall):
        product = call.services.orders.get_product(str(call.path["product_id"]))
        notice = NOTICES.get(call.request.args.get("done", ""))
        return _product_form(
            call,
            product,
            product_values(product, call.language),
            FormErrors(),
            _projects(call, product),
            notice=call.gettext(notice) if notice else None,
        )

    @page("POST", "/staff/products/<uuid:product_id>", staff=CHANGE_PRODUCT)
    def web_staff_product_change(self, call: PageCall):
        product_id = str(call.path["product_id"])
        product = call.services.orders.get_product(product_id)
        projects = _projects(call, product)
        values, payload, errors = _posted(call, product, projects)
        if not errors:
            try:
                call.services.orders.change_product(product_id, payload)
            except ValidationFailed as exc:
                errors = _product_errors(call, exc, values)
            else:
                return call.redirect(f"/staff/products/{product_id}", done="saved")
        return _product_form(call, product, values, errors, projects, status=400)


def _posted(call: PageCall, product: dict | None, projects: dict) -> tuple:
    return parse_product(
        call.request.form,
        call.language,
        call.gettext,
        addon_ids={a["id"] for a in (product or {}).get("addons") or []},
        project_ids=projects,
    )


def _product_errors(call: PageCall, exc: ValidationFailed, values: dict) -> FormErrors:
    """The orders service's refusal, each problem next to the field it concerns (an
    add-on's next to that add-on's own field); the rest under the form."""
    return call.service_errors(ValidationFailed(exc.message, form_fields(exc.fields, values)))


def _product_form(
    call: PageCall,
    product: dict | None,
    values: dict,
    errors: FormErrors,
    projects: dict[str, str],
    notice: str | None = None,
    status: int = 200,
):
    editable = call.can(CHANGE_PRODUCT if product else CREATE_PRODUCT)
    return call.render(
        "staff/products_edit.html",
        status=status,
        product=product,
        values=with_spares(values) if editable else values,
        errors=errors,
        notice=notice,
        languages=LANGUAGES,
        cycles=CYCLES,
        project_options=sorted(projects.items(), key=lambda pair: pair[1].casefold()),
        projects=projects,
        editable=editable,
    )
