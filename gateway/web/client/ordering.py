"""Ordering on the web: a logged-in client at /order, a visitor at /order/new.

Both start from the catalog in the page's language: each product with its billing cycles
and add-ons, added to an order (the cart). The cart lives in the address itself
(`?cart=<product>:<cycle>:<addon>,<addon>`, one per item), so it survives a reload, the
back button and a browser without JavaScript, and nothing is kept on the server until
the order is placed.

- /order (the `services` permission): the cart, then /order/review (the summary and a
  promo code), then placing it (`orders.place_order` as `POST /api/v1/client/orders`
  does) opens the order's invoice at /invoices/<id>.
- /order/new (anyone): the cart, then /order/new/checkout (the summary and the
  customer's details: e-mail, kind, name, country, how they heard of us, a referral code
  and a promo code), placed as `POST /api/v1/orders` does. A new e-mail makes the account:
  its login and password are shown once on the answer (and mailed); an e-mail that has
  an account is asked to log in first (/login?next=/order). The referral code is the
  referring customer's: a referral link (/r/<code>) followed in this browser fills it in.

A form carries a key of its own (`attempt`), sent as the order's Idempotency-Key: sent
twice (a double click, a reload of the answer), it places one order.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from babel import Locale
from marshmallow import ValidationError

from contracts.errors import (
    Conflict,
    PasswordRequired,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from contracts.fields import countries
from contracts.orders import CYCLES
from gateway.api.orders import order_as_client, order_as_visitor
from gateway.schemas import OrderRequest
from gateway.web.client.affiliate import referral_code_of
from gateway.web.pages import FormErrors, PageCall, page

PERMISSIONS = ("services",)
CART_MAX = 10
# the currency of a new customer's account (as the order form's route has it)
VISITOR_CURRENCY = "EUR"
KINDS = ("individual", "company", "sole_proprietor")
CUSTOMER_FIELDS = (
    "email",
    "kind",
    "contact_person",
    "company_name",
    "country",
    "referral_source",
    "referral_code",
    "promo_code",
)
LIMITS = {
    "email": 254,
    "contact_person": 200,
    "company_name": 200,
    "referral_source": 200,
    "referral_code": 32,
    "promo_code": 100,
}


# -- the cart, in the address -----------------------------------------------------------------


def _is_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def parse_cart(values: list[str]) -> list[dict]:
    """The cart's items as the address carries them; what is malformed is left out."""
    items = []
    for value in values[:CART_MAX]:
        parts = value.split(":")
        if len(parts) not in (2, 3) or not _is_id(parts[0]) or parts[1] not in CYCLES:
            continue
        addons = [a for a in (parts[2].split(",") if len(parts) == 3 else []) if a]
        if not all(_is_id(a) for a in addons) or len(addons) != len(set(addons)):
            continue
        items.append({"product_id": parts[0], "billing_cycle": parts[1], "addons": addons})
    return items


def cart_value(item: dict) -> str:
    value = f"{item['product_id']}:{item['billing_cycle']}"
    return value + (":" + ",".join(item["addons"]) if item["addons"] else "")


def cart_query(items: list[dict], **extra) -> str:
    pairs = [("cart", cart_value(i)) for i in items]
    pairs += [(k, v) for k, v in extra.items() if v]
    return urlencode(pairs)


def catalog(call: PageCall, currency: str) -> list[dict]:
    """The products on sale in the page's language, each with the cycles it has a price
    for in `currency` (`cycles`: [(cycle, price)]) and its add-ons likewise."""
    products = []
    for p in call.services.orders.catalog(call.language, True, currency):
        cycles = [
            (c, p["prices"][c])
            for c in CYCLES
            if c in p["prices"] and p["prices"][c]["currency"] == currency
        ]
        if not cycles:
            continue
        addons = [
            dict(
                a,
                cycles=[
                    (c, a["prices"][c])
                    for c in CYCLES
                    if c in a["prices"] and a["prices"][c]["currency"] == currency
                ],
            )
            for a in p["addons"]
        ]
        products.append(dict(p, cycles=cycles, addons=[a for a in addons if a["cycles"]]))
    return products


def priced_rows(products: list[dict], items: list[dict], currency: str):
    """Each cart item priced from the catalog as shown (names in the page's language),
    and the total to pay now before taxes and discounts; items no longer on sale (or
    whose cycle or add-on is gone) are left out and counted."""
    by_id = {p["id"]: p for p in products}
    rows, kept, dropped, total = [], [], 0, 0
    for item in items:
        product = by_id.get(item["product_id"])
        prices = dict(product["cycles"]) if product else {}
        if item["billing_cycle"] not in prices:
            dropped += 1
            continue
        addons, ok = [], True
        for addon_id in item["addons"]:
            addon = next((a for a in product["addons"] if a["id"] == addon_id), None)
            addon_prices = dict(addon["cycles"]) if addon else {}
            if item["billing_cycle"] not in addon_prices:
                ok = False
                break
            addons.append(
                {
                    "name": addon["name"],
                    "price": addon_prices[item["billing_cycle"]],
                    "setup_fee": addon["setup_fee"],
                }
            )
        if not ok:
            dropped += 1
            continue
        period = prices[item["billing_cycle"]]["amount"] + sum(a["price"]["amount"] for a in addons)
        setup = (product["setup_fee"]["amount"] if product["setup_fee"] else 0) + sum(
            a["setup_fee"]["amount"] for a in addons if a["setup_fee"]
        )
        total += period + setup
        kept.append(item)
        rows.append(
            {
                "item": item,
                "name": product["name"],
                "cycle": item["billing_cycle"],
                "price": prices[item["billing_cycle"]],
                "addons": addons,
                "period": {"amount": period, "currency": currency},
                "setup": {"amount": setup, "currency": currency},
                "due_now": {"amount": period + setup, "currency": currency},
            }
        )
    for n, row in enumerate(rows):
        row["remove_query"] = cart_query(kept[:n] + kept[n + 1 :])
    return rows, kept, dropped, {"amount": total, "currency": currency}


def _added(call: PageCall, products: list[dict], items: list[dict], errors: FormErrors):
    """The item that `?product=&cycle=&addon=` asks to add, checked against the catalog
    (None, with an error, when it cannot be added)."""
    args = call.request.args
    product = next((p for p in products if p["id"] == args.get("product")), None)
    if product is None:
        errors.add("_form", call.gettext("This product is not on sale any more."))
        return None
    cycle = args.get("cycle", "")
    if cycle not in dict(product["cycles"]):
        errors.add(f"cycle-{product['id']}", call.gettext("Choose one of the billing cycles."))
        return None
    addons = []
    for addon_id in dict.fromkeys(args.getlist("addon")):
        addon = next((a for a in product["addons"] if a["id"] == addon_id), None)
        if addon is None:
            errors.add("_form", call.gettext("This add-on is not offered any more."))
            return None
        if cycle not in dict(addon["cycles"]):
            errors.add(
                f"cycle-{product['id']}",
                call.gettext(
                    "The add-on %(addon)s is not offered with this billing cycle.",
                    addon=addon["name"],
                ),
            )
            return None
        addons.append(addon_id)
    if len(items) >= CART_MAX:
        errors.add("_form", call.gettext("At most %(max)d items in one order.", max=CART_MAX))
        return None
    return {"product_id": product["id"], "billing_cycle": cycle, "addons": addons}


def _catalog_page(call: PageCall, template: str, base: str, next_step: str, currency: str):
    """The catalog and the cart (GET): adds an item when asked (then back to the cart's
    own address), or shows them."""
    products = catalog(call, currency)
    items = parse_cart(call.request.args.getlist("cart"))
    errors = FormErrors()
    if call.request.args.get("product"):
        item = _added(call, products, items, errors)
        if item is not None:
            return call.redirect(f"{base}?{cart_query([*items, item])}#cart")
    rows, kept, dropped, total = priced_rows(products, items, currency)
    return call.render(
        template,
        status=400 if errors else 200,
        products=products,
        rows=rows,
        cart=[cart_value(i) for i in kept],
        dropped=dropped,
        total=total,
        errors=errors,
        base=base,
        next_step=next_step,
    )


def _service_errors(call: PageCall, exc: ValidationFailed, errors: FormErrors, rows) -> None:
    """A refusal of the orders or customers service next to the field it names: an item
    that cannot be ordered is named by its product."""
    for name, problems in (exc.fields or {}).items():
        name = str(name).removeprefix("customer.")
        if name.startswith("items."):
            index = name.split(".")[1]
            row = rows[int(index)] if index.isdigit() and int(index) < len(rows) else None
            errors.add(
                "_form",
                call.gettext(
                    "%(product)s cannot be ordered like this any more.", product=row["name"]
                )
                if row
                else call.gettext("An item of the order cannot be ordered any more."),
            )
        elif name == "promo_code":
            errors.add("promo_code", _promo_problem(call, problems))
        elif name == "referral_code":
            errors.add("referral_code", call.gettext("There is no such referral code."))
        else:
            field = name.split(".")[0]
            one = ValidationFailed(exc.message, {field: problems})
            call.service_errors(one, errors)


def _promo_problem(call: PageCall, problems) -> str:
    text = " ".join(problems) if isinstance(problems, list) else str(problems)
    if "deactivated" in text:
        return call.gettext("This promo code is no longer valid.")
    if "expired" in text:
        return call.gettext("This promo code has expired.")
    if "used up" in text:
        return call.gettext("This promo code has been used up.")
    if " is for orders in " in text:
        return call.gettext("This promo code is for orders in another currency.")
    return call.gettext("There is no such promo code.")


def _attempt(call: PageCall) -> str:
    """The form's own key (made when it is shown): a new one when it is not a key."""
    value = call.request.form.get("attempt", "")
    return value if _is_id(value) else str(uuid.uuid4())


class OrderingPages:
    """Mixed into GatewayService."""

    # -- a logged-in client ---------------------------------------------------------------

    @page("GET", "/order", client=True, permissions=PERMISSIONS)
    def web_order(self, call: PageCall):
        return _catalog_page(
            call, "client/order.html", "/order", "/order/review", call.customer["currency"]
        )

    @page("GET", "/order/review", client=True, permissions=PERMISSIONS)
    def web_order_review(self, call: PageCall):
        items = parse_cart(call.request.args.getlist("cart"))
        if not items:
            return call.redirect("/order")
        return _review(call, items, {"promo_code": ""}, FormErrors())

    @page("POST", "/order", client=True, permissions=PERMISSIONS)
    def web_order_place(self, call: PageCall):
        items = parse_cart(call.request.form.getlist("cart"))
        values, errors = call.form("promo_code")
        if len(values["promo_code"]) > LIMITS["promo_code"]:
            errors.add("promo_code", call.gettext("There is no such promo code."))
        if not items:
            return call.redirect("/order")
        if errors:
            return _review(call, items, values, errors, status=400)
        key = f"client:{call.customer_id}|web-order:{_attempt(call)}"
        body = {"items": items, "promo_code": values["promo_code"] or None}
        try:
            order = order_as_client(call.services, call.customer_id, body, key)
        except ValidationFailed as exc:
            rows = _review_rows(call, items)
            _service_errors(call, exc, errors, rows)
            return _review(call, items, values, errors, status=400)
        except Conflict:
            errors.add("_form", call.gettext("The order could not be placed now; try again."))
            return _review(call, items, values, errors, status=409)
        return call.redirect(f"/invoices/{order['invoice_id']}")

    # -- a visitor: the public order form -------------------------------------------------

    @page("GET", "/order/new")
    def web_public_order(self, call: PageCall):
        if _logged_in(call):
            query = call.request.query_string.decode("utf-8", "replace")
            return call.redirect("/order" + ("?" + query if query else ""))
        return _catalog_page(
            call, "client/order_new.html", "/order/new", "/order/new/checkout", VISITOR_CURRENCY
        )

    @page("GET", "/order/new/checkout")
    def web_public_checkout(self, call: PageCall):
        items = parse_cart(call.request.args.getlist("cart"))
        if not items:
            return call.redirect("/order/new")
        values = {name: "" for name in CUSTOMER_FIELDS}
        values["kind"] = "individual"
        # a referral link (/r/<code>) followed in this browser leaves its code
        values["referral_code"] = referral_code_of(call.request) or ""
        return _checkout(call, items, values, FormErrors())

    @page("POST", "/order/new")
    def web_public_order_place(self, call: PageCall):
        items = parse_cart(call.request.form.getlist("cart"))
        if not items:
            return call.redirect("/order/new")
        values, errors = call.form(*CUSTOMER_FIELDS)
        _check_customer(call, values, errors)
        if errors:
            return _checkout(call, items, values, errors, status=400)
        person = {
            "email": values["email"],
            "kind": values["kind"],
            "contact_person": values["contact_person"],
            "country": values["country"],
            "company_name": values["company_name"] or None,
            "language": call.language,
            "referral_source": values["referral_source"] or None,
            "referral_code": values["referral_code"] or None,
        }
        try:
            body = OrderRequest().load(
                {"customer": person, "items": items, "promo_code": values["promo_code"] or None}
            )
        except ValidationError as err:
            fields = {
                str(k): v
                for k, v in (err.messages if isinstance(err.messages, dict) else {}).items()
            }
            flat = {}
            for name, problems in fields.items():
                if name == "customer" and isinstance(problems, dict):
                    flat.update({f"customer.{k}": v for k, v in problems.items()})
                else:
                    flat[name] = problems
            _service_errors(
                call,
                ValidationFailed("", flat),
                errors,
                _review_rows(call, items, VISITOR_CURRENCY),
            )
            return _checkout(call, items, values, errors, status=400)
        key = f"public|web-order:{_attempt(call)}"
        try:
            order, _customer_id, credentials = order_as_visitor(
                call.services, body, key, call.address
            )
        except PasswordRequired:
            errors.add(
                "email",
                call.gettext("This e-mail already has an account: log in first to order with it."),
            )
            return _checkout(call, items, values, errors, status=400, log_in_first=True)
        except Unauthorized:
            errors.add("email", call.gettext("This e-mail cannot be used to order here."))
            return _checkout(call, items, values, errors, status=400)
        except RateLimited:
            errors.add(
                "_form", call.gettext("Too many orders from here just now. Try again later.")
            )
            return _checkout(call, items, values, errors, status=429)
        except ValidationFailed as exc:
            _service_errors(call, exc, errors, _review_rows(call, items, VISITOR_CURRENCY))
            return _checkout(call, items, values, errors, status=400)
        except Conflict as exc:
            if "email" in (exc.fields or {}):
                errors.add("email", call.gettext("This e-mail cannot be used: choose another one."))
            else:
                errors.add("_form", call.gettext("The order could not be placed now; try again."))
            return _checkout(call, items, values, errors, status=409)
        invoice = order.get("invoice") or call.services.billing.get_invoice(order["invoice_id"])
        return call.render(
            "client/order_done.html",
            credentials=credentials,
            email=values["email"],
            invoice=invoice,
        )


def _logged_in(call: PageCall) -> bool:
    return call.principal is not None and call.principal["kind"] == "client"


def _review_rows(call: PageCall, items: list[dict], currency: str | None = None) -> list[dict]:
    currency = currency or call.customer["currency"]
    rows, *_ = priced_rows(catalog(call, currency), items, currency)
    return rows


def _summary(call: PageCall, items: list[dict], currency: str, errors: FormErrors):
    """The cart priced from the catalog; items that cannot be ordered any more are said."""
    products = catalog(call, currency)
    rows, kept, dropped, total = priced_rows(products, items, currency)
    if dropped:
        errors.add(
            "_form",
            call.ngettext(
                "%(num)d item cannot be ordered any more and was left out.",
                "%(num)d items cannot be ordered any more and were left out.",
                dropped,
            ),
        )
    return rows, kept, total


def _review(call: PageCall, items, values: dict, errors: FormErrors, status: int = 200):
    rows, kept, total = _summary(call, items, call.customer["currency"], errors)
    return call.render(
        "client/order_review.html",
        status=status,
        rows=rows,
        cart=[cart_value(i) for i in kept],
        back=f"/order?{cart_query(kept)}",
        total=total,
        values=values,
        errors=errors,
        attempt=_attempt(call),
    )


def _country_names(language: str) -> list[tuple[str, str]]:
    names = Locale.parse(language).territories
    return sorted(((c, names.get(c, c)) for c in countries()), key=lambda pair: pair[1])


def _check_customer(call: PageCall, values: dict, errors: FormErrors) -> None:
    """The person's details, in the page's language, before any service sees them."""
    if not values["email"] and "email" not in errors:
        errors.add("email", call.gettext("Enter your e-mail address."))
    elif "email" not in errors and (
        "@" not in values["email"] or " " in values["email"] or values["email"].endswith("@")
    ):
        errors.add("email", call.gettext("This is not a valid e-mail address."))
    if values["kind"] not in KINDS:
        errors.add("kind", call.gettext("Choose who orders."))
    if not values["contact_person"] and "contact_person" not in errors:
        errors.add("contact_person", call.gettext("Enter the name of the contact person."))
    if values["kind"] in ("company", "sole_proprietor") and not values["company_name"]:
        if "company_name" not in errors:
            errors.add("company_name", call.gettext("Enter the name of the company."))
    if values["country"] not in countries():
        errors.add("country", call.gettext("Choose your country."))
    for name, most in LIMITS.items():
        if name not in errors and len(values[name]) > most:
            errors.add(name, call.gettext("At most %(max)d characters.", max=most))


def _checkout(
    call: PageCall,
    items,
    values: dict,
    errors: FormErrors,
    status: int = 200,
    log_in_first: bool = False,
):
    rows, kept, total = _summary(call, items, VISITOR_CURRENCY, errors)
    return call.render(
        "client/order_checkout.html",
        status=status,
        rows=rows,
        cart=[cart_value(i) for i in kept],
        back=f"/order/new?{cart_query(kept)}",
        total=total,
        values=values,
        errors=errors,
        attempt=_attempt(call),
        kinds=[
            ("individual", call.gettext("A private person")),
            ("company", call.gettext("A company")),
            ("sole_proprietor", call.gettext("A sole proprietor")),
        ],
        countries=_country_names(call.language),
        log_in_first=log_in_first,
    )
