"""The order pages' cart, kept in the address: what it takes, and how it is priced from
the catalog as the page shows it (no services)."""

import uuid

from gateway.web.client.ordering import CART_MAX, cart_query, cart_value, parse_cart, priced_rows

PRODUCT = str(uuid.uuid4())
ADDON = str(uuid.uuid4())


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


CATALOG = [
    {
        "id": PRODUCT,
        "name": "Serveur",
        "cycles": [("monthly", _eur(1200)), ("annually", _eur(12000))],
        "setup_fee": _eur(900),
        "addons": [
            {
                "id": ADDON,
                "name": "Sauvegardes",
                "cycles": [("monthly", _eur(300))],
                "setup_fee": _eur(100),
            }
        ],
    }
]


def test_the_cart_takes_only_well_formed_items():
    good = f"{PRODUCT}:monthly:{ADDON}"
    items = parse_cart(
        [
            good,
            f"{PRODUCT}:annually",
            "not-an-id:monthly",
            f"{PRODUCT}:weekly",
            f"{PRODUCT}:monthly:not-an-id",
            f"{PRODUCT}:monthly:{ADDON},{ADDON}",
            f"{PRODUCT}:monthly:{ADDON}:extra",
            "",
        ]
    )
    assert items == [
        {"product_id": PRODUCT, "billing_cycle": "monthly", "addons": [ADDON]},
        {"product_id": PRODUCT, "billing_cycle": "annually", "addons": []},
    ]
    assert [cart_value(i) for i in items] == [good, f"{PRODUCT}:annually"]
    assert len(parse_cart([good] * (CART_MAX + 5))) == CART_MAX
    assert cart_query(items, promo_code="") == (
        f"cart={PRODUCT}%3Amonthly%3A{ADDON}&cart={PRODUCT}%3Aannually"
    )


def test_the_cart_is_priced_from_the_catalog_and_leaves_out_what_is_gone():
    items = parse_cart(
        [
            f"{PRODUCT}:monthly:{ADDON}",
            f"{PRODUCT}:annually:{ADDON}",  # the add-on has no annual price
            f"{uuid.uuid4()}:monthly",  # no longer on sale
            f"{PRODUCT}:annually",
        ]
    )
    rows, kept, dropped, total = priced_rows(CATALOG, items, "EUR")
    assert dropped == 2
    assert [cart_value(i) for i in kept] == [f"{PRODUCT}:monthly:{ADDON}", f"{PRODUCT}:annually"]
    first, second = rows
    assert first["period"] == _eur(1500) and first["setup"] == _eur(1000)
    assert first["due_now"] == _eur(2500)
    assert [a["name"] for a in first["addons"]] == ["Sauvegardes"]
    assert second["period"] == _eur(12000) and second["setup"] == _eur(900)
    assert total == _eur(2500 + 12900)
    # removing an item leaves the others
    assert first["remove_query"] == cart_query([kept[1]])
    assert second["remove_query"] == cart_query([kept[0]])
