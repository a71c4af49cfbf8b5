"""The catalogue editor's form, with no I/O: a product as the form shows it, the form as
posted read back into the orders service's payload, and the service's refusal put next
to the fields it concerns.

The form's fields: `name_<lang>` and `description_<lang>`; `project_id` (empty: none);
`on_sale`; price rows `price_cycle_<i>`, `price_currency_<i>`, `price_amount_<i>`
(`price_rows` of them); setup fee rows `fee_currency_<i>`, `fee_amount_<i>` (`fee_rows`);
add-ons `addon_<n>_...` (`addon_rows` of them), each with `name_<lang>`, its own price and
setup fee rows under that prefix, `id` (an existing add-on's, kept so that the orders and
services naming it keep working) and `remove`. A row left wholly blank is nothing: the
spare rows the form offers, or a price, fee or add-on someone emptied to remove it.
Amounts are typed as a person writes them in the page's language (`9,99` in French).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal

from babel import numbers

from contracts.fields import MAX_AMOUNT, currencies, text_problem
from contracts.orders import CYCLES
from gateway.web.client.finances import parse_amount
from gateway.web.i18n import LANGUAGES
from gateway.web.pages import FormErrors

# empty rows the form offers beyond those it has
SPARE_PRICES = 2
SPARE_FEES = 1
SPARE_ADDON_PRICES = 1  # an add-on that has prices already
SPARE_ADDONS = 2
# the most rows a posted form is read for
MAX_PRICES = 30
MAX_FEES = 20
MAX_ADDONS = 50  # contracts.orders.ProductFields allows 50 add-ons

Gettext = Callable[..., str]


def blank_price() -> dict:
    return {"cycle": "", "currency": "", "amount": ""}


def blank_fee() -> dict:
    return {"currency": "", "amount": ""}


def blank_addon() -> dict:
    addon = {"id": "", "remove": False, "prices": [], "fees": []}
    addon.update({f"name_{lang}": "" for lang in LANGUAGES})
    return _addon_spares(addon)


def amount_text(amount: int, currency: str, language: str) -> str:
    """Minor units as a person would type them on this page (`5,00` in French)."""
    digits = numbers.get_currency_precision(currency)
    return numbers.format_decimal(
        Decimal(amount).scaleb(-digits),
        format="0." + "0" * digits if digits else "0",
        locale=language,
    )


# -- a product as the form shows it -----------------------------------------------------------


def _price_rows(all_prices: dict | None, language: str) -> list[dict]:
    return [
        {
            "cycle": cycle,
            "currency": money["currency"],
            "amount": amount_text(money["amount"], money["currency"], language),
        }
        for cycle in CYCLES
        for money in (all_prices or {}).get(cycle, [])
    ]


def _fee_rows(fees: list[dict] | None, language: str) -> list[dict]:
    return [
        {"currency": m["currency"], "amount": amount_text(m["amount"], m["currency"], language)}
        for m in fees or []
    ]


def product_values(product: dict | None, language: str) -> dict:
    """The form's values for `product` as the orders service answers it (texts per
    language; None: a new product): `prices`, `fees` and `addons` are lists of rows, each
    add-on with its own `prices` and `fees` (with_spares adds the form's empty rows)."""
    product = product or {}
    values = {
        "on_sale": product.get("on_sale", True),
        "project_id": product.get("project_id") or "",
        "prices": _price_rows(product.get("all_prices"), language),
        "fees": _fee_rows(product.get("all_setup_fees"), language),
        "addons": [],
    }
    for lang in LANGUAGES:
        values[f"name_{lang}"] = (product.get("name") or {}).get(lang, "")
        values[f"description_{lang}"] = (product.get("description") or {}).get(lang, "")
    for addon in product.get("addons") or []:
        row = {
            "id": addon["id"],
            "remove": False,
            "prices": _price_rows(addon.get("all_prices"), language),
            "fees": _fee_rows(addon.get("all_setup_fees"), language),
        }
        row.update({f"name_{lang}": (addon.get("name") or {}).get(lang, "") for lang in LANGUAGES})
        values["addons"].append(row)
    return values


def _trimmed(rows: list[dict], blank: Callable[[dict], bool]) -> list[dict]:
    rows = list(rows)
    while rows and blank(rows[-1]):
        rows.pop()
    return rows


def _price_blank(row: dict) -> bool:
    return not (row["cycle"] or row["currency"] or row["amount"])


def _fee_blank(row: dict) -> bool:
    return not (row["currency"] or row["amount"])


def _addon_blank(row: dict) -> bool:
    return (
        not row["id"]
        and not any(row[f"name_{lang}"] for lang in LANGUAGES)
        and all(_price_blank(r) for r in row["prices"])
        and all(_fee_blank(r) for r in row["fees"])
    )


def _addon_spares(addon: dict) -> dict:
    prices = _trimmed(addon["prices"], _price_blank)
    spare = SPARE_ADDON_PRICES if prices else SPARE_PRICES
    return dict(
        addon,
        prices=prices + [blank_price() for _ in range(spare)],
        fees=_trimmed(addon["fees"], _fee_blank) + [blank_fee() for _ in range(SPARE_FEES)],
    )


def with_spares(values: dict) -> dict:
    """`values` with its trailing blank rows replaced by the spare rows the form offers
    (so a form sent back with its errors does not grow at each try)."""
    addons = _trimmed(values["addons"], _addon_blank)
    return dict(
        values,
        prices=_trimmed(values["prices"], _price_blank)
        + [blank_price() for _ in range(SPARE_PRICES)],
        fees=_trimmed(values["fees"], _fee_blank) + [blank_fee() for _ in range(SPARE_FEES)],
        addons=[_addon_spares(a) for a in addons] + [blank_addon() for _ in range(SPARE_ADDONS)],
    )


# -- the form as posted ---------------------------------------------------------------------


class _Reader:
    """The posted fields as text (stripped) with errors for what a person could not have
    typed, as PageCall.form reads them."""

    def __init__(self, form: Mapping[str, str], gettext: Gettext, errors: FormErrors):
        self.form, self.gettext, self.errors = form, gettext, errors

    def text(self, name: str, multiline: bool = False) -> str:
        """One line; or (`multiline`) several, as a browser sends a text area's (CRLF)."""
        value = (self.form.get(name) or "").strip()
        if multiline:
            value = value.replace("\r\n", "\n")
        if text_problem(value, multiline=multiline):
            self.errors.add(name, self.gettext("Use letters, digits and punctuation only."))
            return ""
        return value

    def count(self, name: str, maximum: int) -> int:
        try:
            return min(max(int(self.form.get(name) or "0"), 0), maximum)
        except ValueError:
            return 0


def _is_currency(code: str) -> bool:
    return len(code) == 3 and code in currencies()


def _read_prices(read: _Reader, prefix: str, language: str) -> tuple[list[dict], dict]:
    """(the price rows as typed, {cycle: {currency: minor units}})."""
    gettext, errors = read.gettext, read.errors
    rows, prices = [], {}
    for i in range(read.count(f"{prefix}price_rows", MAX_PRICES)):
        names = {k: f"{prefix}price_{k}_{i}" for k in ("cycle", "currency", "amount")}
        row = {k: read.text(name) for k, name in names.items()}
        row["currency"] = row["currency"].upper()
        rows.append(row)
        if _price_blank(row):
            continue
        if row["cycle"] not in CYCLES:
            errors.add(names["cycle"], gettext("Choose a billing cycle."))
        if not _is_currency(row["currency"]):
            errors.add(
                names["currency"], gettext("Write a currency's three-letter code, like EUR.")
            )
            continue
        minor = parse_amount(row["amount"], row["currency"], language)
        if minor is None or minor > MAX_AMOUNT:
            errors.add(names["amount"], gettext("Write the price as an amount, like 9.99."))
        elif row["cycle"] in CYCLES:
            by_currency = prices.setdefault(row["cycle"], {})
            if row["currency"] in by_currency:
                errors.add(
                    names["currency"],
                    gettext("This cycle has a price in this currency already."),
                )
            by_currency[row["currency"]] = minor
    return rows, prices


def _read_fees(read: _Reader, prefix: str, language: str) -> tuple[list[dict], dict]:
    """(the setup fee rows as typed, {currency: minor units})."""
    gettext, errors = read.gettext, read.errors
    rows, fees = [], {}
    for i in range(read.count(f"{prefix}fee_rows", MAX_FEES)):
        names = {k: f"{prefix}fee_{k}_{i}" for k in ("currency", "amount")}
        row = {k: read.text(name) for k, name in names.items()}
        row["currency"] = row["currency"].upper()
        rows.append(row)
        if _fee_blank(row):
            continue
        if not _is_currency(row["currency"]):
            errors.add(
                names["currency"], gettext("Write a currency's three-letter code, like EUR.")
            )
            continue
        minor = parse_amount(row["amount"], row["currency"], language)
        if minor is None or minor > MAX_AMOUNT:
            errors.add(names["amount"], gettext("Write the fee as an amount, like 9.99."))
        elif row["currency"] in fees:
            errors.add(names["currency"], gettext("There is a setup fee in this currency already."))
        else:
            fees[row["currency"]] = minor
    return rows, fees


def _read_addon(
    read: _Reader, n: int, language: str, addon_ids: Collection[str]
) -> tuple[dict, dict | None]:
    """(the add-on's row as typed, what the service is sent: None when the row is blank
    or marked to be removed). An id that is none of the product's add-ons' is dropped:
    the add-on is a new one."""
    prefix = f"addon_{n}_"
    posted_id = (read.form.get(f"{prefix}id") or "").strip()
    row = {
        "id": posted_id if posted_id in addon_ids else "",
        "remove": read.form.get(f"{prefix}remove") == "1",
    }
    own = _Reader(read.form, read.gettext, FormErrors())
    row.update({f"name_{lang}": own.text(f"{prefix}name_{lang}") for lang in LANGUAGES})
    row["prices"], prices = _read_prices(own, prefix, language)
    row["fees"], fees = _read_fees(own, prefix, language)
    emptied = not own.errors and _addon_blank(dict(row, id=""))
    if row["remove"] or emptied:
        return row, None
    for name, problems in own.errors.items():
        read.errors.setdefault(name, []).extend(problems)
    gettext = read.gettext
    if not row["name_en"] and f"{prefix}name_en" not in own.errors:
        read.errors.add(f"{prefix}name_en", gettext("Give the add-on a name in English at least."))
    if not prices and not own.errors:
        read.errors.add(f"{prefix}price_amount_0", gettext("Give the add-on at least one price."))
    sent = {
        "name": {lang: row[f"name_{lang}"] for lang in LANGUAGES if row[f"name_{lang}"]},
        "prices": prices,
        "setup_fee": fees,
    }
    if row["id"]:
        sent["id"] = row["id"]
    return row, sent


def parse_product(
    form: Mapping[str, str],
    language: str,
    gettext: Gettext,
    addon_ids: Collection[str] = (),
    project_ids: Collection[str] = (),
) -> tuple[dict, dict, FormErrors]:
    """The product form as posted: (its values to show again, with spare rows; the orders
    service's payload, whole: names, descriptions, prices, setup fee, project, on sale
    and every add-on; errors next to the fields). `addon_ids` are the product's add-ons
    (the ids a form may keep), `project_ids` the projects it may name. Each add-on sent
    is one the form's `addon_<n>` rows: `values["addons"][n]["sent"]` is its place in the
    payload's `addons` (None: not sent)."""
    errors = FormErrors()
    read = _Reader(form, gettext, errors)
    values: dict = {}
    for lang in LANGUAGES:
        values[f"name_{lang}"] = read.text(f"name_{lang}")
    for lang in LANGUAGES:
        values[f"description_{lang}"] = read.text(f"description_{lang}", multiline=True)
    values["on_sale"] = form.get("on_sale") == "1"
    if not values["name_en"] and "name_en" not in errors:
        errors.add("name_en", gettext("Give the product a name in English at least."))

    values["project_id"] = read.text("project_id")
    if values["project_id"] and values["project_id"] not in project_ids:
        errors.add("project_id", gettext("Choose a project from the list."))

    values["prices"], prices = _read_prices(read, "", language)
    if not prices and not errors:
        errors.add("price_amount_0", gettext("Give at least one price."))
    values["fees"], fees = _read_fees(read, "", language)

    values["addons"], addons = [], []
    for n in range(read.count("addon_rows", MAX_ADDONS)):
        row, sent = _read_addon(read, n, language, addon_ids)
        row["sent"] = None
        if sent is not None:
            row["sent"] = len(addons)
            addons.append(sent)
        values["addons"].append(row)

    payload = {
        "name": {lang: values[f"name_{lang}"] for lang in LANGUAGES if values[f"name_{lang}"]},
        "description": {
            lang: values[f"description_{lang}"]
            for lang in LANGUAGES
            if values[f"description_{lang}"]
        },
        "prices": prices,
        "setup_fee": fees,
        "project_id": values["project_id"] or None,
        "on_sale": values["on_sale"],
        "addons": addons,
    }
    return values, payload, errors


# -- the service's refusal, next to its fields --------------------------------------------


def _money_field(path: list[str], prefix: str, rows: dict) -> str | None:
    """The form field of a `prices...` or `setup_fee...` path under `prefix`."""
    kind, rest = path[0], path[1:]
    if kind == "prices":
        price_rows = rows["prices"]
        if len(rest) >= 2:
            for i, row in enumerate(price_rows):
                if (row["cycle"], row["currency"]) == (rest[0], rest[1]):
                    return f"{prefix}price_amount_{i}"
        if rest:
            for i, row in enumerate(price_rows):
                if row["cycle"] == rest[0]:
                    return f"{prefix}price_cycle_{i}"
        return f"{prefix}price_amount_0"
    if kind == "setup_fee":
        if rest:
            for i, row in enumerate(rows["fees"]):
                if row["currency"] == rest[0]:
                    return f"{prefix}fee_amount_{i}"
        return f"{prefix}fee_amount_0"
    return None


def _field_of(path: list[str], prefix: str, rows: dict) -> str | None:
    if path[0] in ("name", "description") and len(path) > 1 and path[1] in LANGUAGES:
        return f"{prefix}{path[0]}_{path[1]}"
    if path[0] in ("name", "description"):
        return f"{prefix}{path[0]}_en"
    return _money_field(path, prefix, rows)


def form_fields(service_fields: Mapping[str, list], values: dict) -> dict[str, list]:
    """The orders service's field errors (`prices.monthly.EUR`, `addons.1.name.fr`,
    `setup_fee.USD`...) renamed to the form fields they concern, by `values` as
    parse_product read the form; what no field shows keeps its name (it is said under
    the form)."""
    out: dict[str, list] = {}
    for name, problems in service_fields.items():
        path = str(name).split(".")
        field = None
        if path[0] == "addons" and len(path) > 1 and path[1].isdigit():
            sent = int(path[1])
            for n, row in enumerate(values.get("addons") or []):
                if row.get("sent") == sent:
                    prefix = f"addon_{n}_"
                    field = _field_of(path[2:], prefix, row) if len(path) > 2 else None
                    field = field or f"{prefix}name_en"
                    break
        elif path[0] in ("project_id", "on_sale"):
            field = path[0]
        else:
            field = _field_of(path, "", values)
        out.setdefault(field or str(name), []).extend(
            problems if isinstance(problems, list) else [problems]
        )
    return out
