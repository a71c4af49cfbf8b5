"""The staff catalogue editor's form read back, without services: names, prices, setup
fees, the project and add-ons become the orders service's payload; blank spare rows are
nothing; an add-on keeps its id, is removed when ticked or emptied; each mistake is
named by the field it concerns, and so is each of the service's refusals (an add-on's
next to that add-on's own row, whatever rows before it were left out)."""

from __future__ import annotations

import uuid

from gateway.web.staff.product_form import (
    SPARE_ADDONS,
    SPARE_FEES,
    SPARE_PRICES,
    form_fields,
    parse_product,
    product_values,
    with_spares,
)

PROJECT = str(uuid.uuid4())
BACKUPS = str(uuid.uuid4())
EXTRA_IP = str(uuid.uuid4())


def _gettext(message: str, **variables) -> str:
    return message % variables if variables else message


def _prices(prefix: str, rows: list[tuple[str, str, str]]) -> dict:
    form = {f"{prefix}price_rows": str(len(rows))}
    for i, (cycle, currency, amount) in enumerate(rows):
        form[f"{prefix}price_cycle_{i}"] = cycle
        form[f"{prefix}price_currency_{i}"] = currency
        form[f"{prefix}price_amount_{i}"] = amount
    return form


def _fees(prefix: str, rows: list[tuple[str, str]]) -> dict:
    form = {f"{prefix}fee_rows": str(len(rows))}
    for i, (currency, amount) in enumerate(rows):
        form[f"{prefix}fee_currency_{i}"] = currency
        form[f"{prefix}fee_amount_{i}"] = amount
    return form


def _addon(n: int, name: str = "", prices=(), fees=(), addon_id: str = "", remove=False):
    prefix = f"addon_{n}_"
    form = {f"{prefix}id": addon_id, f"{prefix}name_en": name}
    form.update(_prices(prefix, [*prices, ("", "", "")]))
    form.update(_fees(prefix, [*fees, ("", "")]))
    if remove:
        form[f"{prefix}remove"] = "1"
    return form


def _form(*addons: dict, **fields) -> dict:
    form = {
        "name_en": "VPS",
        "name_fr": "Serveur",
        "description_en": "",
        "on_sale": "1",
        "project_id": "",
        **_prices("", [("monthly", "EUR", "5"), ("", "", "")]),
        **_fees("", [("", "")]),
        "addon_rows": str(len(addons)),
    }
    for addon in addons:
        form.update(addon)
    form.update(fields)
    return form


def _parse(form: dict, language: str = "en", addon_ids=(), project_ids=(PROJECT,)):
    return parse_product(form, language, _gettext, addon_ids, project_ids)


def test_a_product_with_a_setup_fee_a_project_and_two_add_ons():
    form = _form(
        _addon(
            0, "Backups", [("monthly", "eur", "1,50"), ("annually", "EUR", "15")], [("EUR", "2")]
        ),
        _addon(1, "Extra IP", [("monthly", "EUR", "3")]),
        _addon(2),  # a spare left blank
        project_id=PROJECT,
        **_fees("", [("EUR", "10,00"), ("usd", "12"), ("", "")]),
    )
    values, payload, errors = _parse(form, language="fr")
    assert errors == {}
    assert payload == {
        "name": {"en": "VPS", "fr": "Serveur"},
        "description": {},
        "prices": {"monthly": {"EUR": 500}},
        "setup_fee": {"EUR": 1000, "USD": 1200},
        "project_id": PROJECT,
        "on_sale": True,
        "addons": [
            {
                "name": {"en": "Backups"},
                "prices": {"monthly": {"EUR": 150}, "annually": {"EUR": 1500}},
                "setup_fee": {"EUR": 200},
            },
            {"name": {"en": "Extra IP"}, "prices": {"monthly": {"EUR": 300}}, "setup_fee": {}},
        ],
    }
    assert [a["sent"] for a in values["addons"]] == [0, 1, None]


def test_no_project_and_not_on_sale():
    form = _form()
    del form["on_sale"]
    _, payload, errors = _parse(form)
    assert errors == {}
    assert payload["project_id"] is None and payload["on_sale"] is False
    assert payload["addons"] == [] and payload["setup_fee"] == {}


def test_an_add_on_keeps_its_id_and_one_removed_or_emptied_is_not_sent():
    form = _form(
        _addon(0, "Backups", [("monthly", "EUR", "1")], addon_id=BACKUPS, remove=True),
        _addon(1, "", addon_id=EXTRA_IP),  # emptied: removed too
        _addon(2, "Extra disk", [("monthly", "EUR", "4")], addon_id=str(uuid.uuid4())),
        _addon(3, "Monitoring", [("monthly", "EUR", "2")], addon_id=BACKUPS),
    )
    values, payload, errors = _parse(form, addon_ids={BACKUPS, EXTRA_IP})
    assert errors == {}
    # an id that is none of the product's add-ons' is a new add-on
    assert [a.get("id") for a in payload["addons"]] == [None, BACKUPS]
    assert [a["name"]["en"] for a in payload["addons"]] == ["Extra disk", "Monitoring"]
    assert [a["sent"] for a in values["addons"]] == [None, None, 0, 1]
    assert values["addons"][0]["remove"] is True


def test_a_removed_add_on_is_not_checked():
    form = _form(_addon(0, "", [("monthly", "EUR", "lots")], addon_id=BACKUPS, remove=True))
    _, payload, errors = _parse(form, addon_ids={BACKUPS})
    assert errors == {} and payload["addons"] == []


def test_each_mistake_is_named_by_its_own_field():
    form = _form(
        _addon(0, "Backups", [("monthly", "EUR", "1")]),
        _addon(1, "Extra IP", [("monthly", "EUR", "1"), ("annually", "EUR", "ten")]),
        _addon(2, "", [("monthly", "EUR", "1")]),
        _addon(3, "Disk", [], [("EUR", "1")]),
        _addon(4, "Monitor", [("monthly", "ABC", "1"), ("weekly", "EUR", "1")]),
        project_id=str(uuid.uuid4()),
        **_fees("", [("EUR", "1"), ("EUR", "2"), ("USD", "-3")]),
    )
    _, _, errors = _parse(form)
    assert errors == {
        "addon_1_price_amount_1": ["Write the price as an amount, like 9.99."],
        "addon_2_name_en": ["Give the add-on a name in English at least."],
        "addon_3_price_amount_0": ["Give the add-on at least one price."],
        "addon_4_price_currency_0": ["Write a currency's three-letter code, like EUR."],
        "addon_4_price_cycle_1": ["Choose a billing cycle."],
        "fee_currency_1": ["There is a setup fee in this currency already."],
        "fee_amount_2": ["Write the fee as an amount, like 9.99."],
        "project_id": ["Choose a project from the list."],
    }


def test_a_description_keeps_its_lines():
    form = _form(
        description_en="Ten mailboxes.\r\nSpam filtering.\r\n", description_fr="Une\rligne"
    )
    _, payload, errors = _parse(form)
    assert payload["description"]["en"] == "Ten mailboxes.\nSpam filtering."
    # a lone carriage return is no line a browser sends
    assert errors == {"description_fr": ["Use letters, digits and punctuation only."]}
    _, _, errors = _parse(_form(name_en="Two\r\nlines"))
    assert errors == {"name_en": ["Use letters, digits and punctuation only."]}


def test_the_product_needs_a_name_and_a_price_and_text_a_person_could_type():
    _, _, errors = _parse(_form(name_en="", **_prices("", [("", "", "")])))
    assert errors == {"name_en": ["Give the product a name in English at least."]}
    _, _, errors = _parse(_form(**_prices("", [("", "", "")])))
    assert errors == {"price_amount_0": ["Give at least one price."]}
    _, _, errors = _parse(_form(_addon(0, "Back\x00ups", [("monthly", "EUR", "1")])))
    assert errors == {"addon_0_name_en": ["Use letters, digits and punctuation only."]}


def test_a_product_read_into_the_form_and_sent_back_is_the_same_product():
    product = {
        "id": str(uuid.uuid4()),
        "name": {"en": "VPS", "ru": "ВПС"},
        "description": {"en": "Fast"},
        "all_prices": {
            "monthly": [{"amount": 500, "currency": "EUR"}, {"amount": 600, "currency": "USD"}],
            "annually": [{"amount": 5000, "currency": "EUR"}],
        },
        "all_setup_fees": [{"amount": 1000, "currency": "EUR"}],
        "project_id": PROJECT,
        "on_sale": False,
        "addons": [
            {
                "id": BACKUPS,
                "name": {"en": "Backups", "fr": "Sauvegardes"},
                "all_prices": {"monthly": [{"amount": 150, "currency": "EUR"}]},
                "all_setup_fees": [{"amount": 200, "currency": "EUR"}],
            }
        ],
    }
    values = with_spares(product_values(product, "fr"))
    assert values["prices"][0] == {"cycle": "monthly", "currency": "EUR", "amount": "5,00"}
    assert len(values["prices"]) == 3 + SPARE_PRICES
    assert len(values["fees"]) == 1 + SPARE_FEES
    assert len(values["addons"]) == 1 + SPARE_ADDONS
    _, payload, errors = _parse(_posted(values), "fr", {BACKUPS})
    assert errors == {}
    assert payload == {
        "name": {"en": "VPS", "ru": "ВПС"},
        "description": {"en": "Fast"},
        "prices": {"monthly": {"EUR": 500, "USD": 600}, "annually": {"EUR": 5000}},
        "setup_fee": {"EUR": 1000},
        "project_id": PROJECT,
        "on_sale": False,
        "addons": [
            {
                "id": BACKUPS,
                "name": {"en": "Backups", "fr": "Sauvegardes"},
                "prices": {"monthly": {"EUR": 150}},
                "setup_fee": {"EUR": 200},
            }
        ],
    }


def _posted(values: dict) -> dict:
    """What a browser posts of the form showing `values`."""
    form = {k: v for k, v in values.items() if isinstance(v, str)}
    if values["on_sale"]:
        form["on_sale"] = "1"
    form.update(_prices("", [(r["cycle"], r["currency"], r["amount"]) for r in values["prices"]]))
    form.update(_fees("", [(r["currency"], r["amount"]) for r in values["fees"]]))
    form["addon_rows"] = str(len(values["addons"]))
    for n, addon in enumerate(values["addons"]):
        prefix = f"addon_{n}_"
        form.update({f"{prefix}{k}": v for k, v in addon.items() if isinstance(v, str)})
        rows = [(r["cycle"], r["currency"], r["amount"]) for r in addon["prices"]]
        form.update(_prices(prefix, rows))
        form.update(_fees(prefix, [(r["currency"], r["amount"]) for r in addon["fees"]]))
    return form


def test_a_form_sent_back_with_its_errors_does_not_grow():
    form = _form(_addon(0, "Backups", [("monthly", "EUR", "x")]), _addon(1), _addon(2))
    values, _, errors = _parse(form)
    assert errors
    once = with_spares(values)
    assert len(once["addons"]) == 1 + SPARE_ADDONS
    assert len(once["prices"]) == 1 + SPARE_PRICES
    # the add-on's row with the mistake stays; one spare after it
    assert [r["amount"] for r in once["addons"][0]["prices"]] == ["x", ""]
    again = with_spares(_parse(_posted(once))[0])
    assert len(again["addons"]) == len(once["addons"])
    assert len(again["prices"]) == len(once["prices"])


def test_the_services_refusals_land_next_to_their_fields():
    form = _form(
        _addon(0, "Gone", [("monthly", "EUR", "1")], addon_id=BACKUPS, remove=True),
        _addon(1, "Backups", [("monthly", "EUR", "1"), ("annually", "USD", "9")], [("EUR", "1")]),
        **_prices("", [("monthly", "EUR", "5"), ("annually", "EUR", "50")]),
        **_fees("", [("USD", "3")]),
    )
    values, payload, errors = _parse(form, addon_ids={BACKUPS})
    assert errors == {} and len(payload["addons"]) == 1
    refused = {
        "name.fr": ["Too long."],
        "prices.annually.EUR": ["An amount in minor units from 0 to 9999999999999."],
        "prices.quarterly": ["Not a valid cycle."],
        "setup_fee.USD": ["Too much."],
        "project_id": ["No such project."],
        # the payload's first add-on is the form's second row (the first was removed)
        "addons.0.prices.annually.USD": ["Too much."],
        "addons.0.setup_fee.EUR": ["Too much."],
        "addons.0.name.ru": ["Too long."],
        "addons.0.id": ["Not a valid UUID."],
        "addons": ["Each add-on appears once."],
    }
    assert form_fields(refused, values) == {
        "name_fr": ["Too long."],
        "price_amount_1": ["An amount in minor units from 0 to 9999999999999."],
        "price_amount_0": ["Not a valid cycle."],
        "fee_amount_0": ["Too much."],
        "project_id": ["No such project."],
        "addon_1_price_amount_1": ["Too much."],
        "addon_1_fee_amount_0": ["Too much."],
        "addon_1_name_ru": ["Too long."],
        "addon_1_name_en": ["Not a valid UUID."],
        "addons": ["Each add-on appears once."],
    }
