"""Promo codes without I/O: their state, what a change may change and how it is refused
(naming the field), deactivation refused at order time, the request schemas, and the
staff pages' own pieces (the expiry day, the amount as typed, the pages rendered in
each language)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError

from contracts.errors import ValidationFailed
from contracts.orders import ChangePromo, PromoFilters
from gateway.http import roles_of
from gateway.service import GatewayService  # noqa: F401 - declares the routes
from gateway.web import i18n
from gateway.web.client.ordering import _promo_problem
from gateway.web.pages import FormErrors, render
from gateway.web.staff import promos as pages
from services.orders.domain import PromoCode, PromoNotUsable, promo_state
from services.orders.promos import promo_changes, promo_view

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PRODUCT = str(uuid.uuid4())


def _percentage(**extra):
    fields = dict(
        code="SPRING10",
        kind="percentage",
        percent="10.00",
        amount=None,
        currency=None,
        product_ids=[],
        expires_at=None,
        max_uses=None,
    )
    fields.update(extra)
    return PromoCode(**fields)


def _fixed(**extra):
    return _percentage(kind="fixed", percent=None, amount=500, currency="EUR", **extra)


def _load(body):
    return ChangePromo().load(body, partial=True)


# -- state ----------------------------------------------------------------------------------


def test_a_code_is_deactivated_before_expired_before_used_up():
    past, future = NOW - timedelta(days=1), NOW + timedelta(days=1)
    assert promo_state(True, None, None, 0, NOW) == "active"
    assert promo_state(True, future, 3, 2, NOW) == "active"
    assert promo_state(True, future, 3, 3, NOW) == "used_up"
    assert promo_state(True, past, 3, 3, NOW) == "expired"
    assert promo_state(True, NOW, None, 0, NOW) == "expired"  # at the instant it expires
    assert promo_state(False, past, 3, 3, NOW) == "deactivated"


def test_a_deactivated_code_is_refused_and_usable_again_once_activated():
    promo = _percentage()
    promo.check_usable(NOW)
    promo.deactivate()
    assert promo.state(NOW) == "deactivated"
    with pytest.raises(PromoNotUsable, match="SPRING10 has been deactivated"):
        promo.check_usable(NOW)
    with pytest.raises(PromoNotUsable):
        promo.reserve(NOW)
    assert promo.uses == 0
    promo.activate()
    promo.reserve(NOW)
    assert promo.uses == 1 and promo_view(promo, NOW)["state"] == "active"
    types = [type(e).__name__ for e in promo.collect_events()]
    assert types == ["Created", "Deactivated", "Activated", "Used"]


def test_the_view_carries_money_and_state():
    promo = _fixed(max_uses=1)
    promo.reserve(NOW)
    view = promo_view(promo, NOW)
    assert view["amount"] == {"amount": 500, "currency": "EUR"}
    assert view["percent"] is None and view["active"] is True
    assert view["state"] == "used_up" and view["uses"] == 1


# -- what a change changes -----------------------------------------------------------------


def test_only_what_differs_is_a_change():
    promo = _percentage(max_uses=5)
    assert promo_changes(promo, _load({"percent": "10", "max_uses": 5})) == {}
    later = NOW + timedelta(days=30)
    changes = promo_changes(
        promo, _load({"percent": "15", "expires_at": later.isoformat(), "max_uses": None})
    )
    assert changes == {"percent": "15.00", "expires_at": later, "max_uses": None}
    promo.change(changes)
    assert promo.percent == "15.00" and promo.max_uses is None and promo.expires_at == later
    with pytest.raises(ValueError):
        promo.change({"code": "OTHER", "uses": 0})
    assert promo.code == "SPRING10"
    assert [type(e).__name__ for e in promo.collect_events()] == ["Created", "Changed"]


def test_a_percentage_becomes_fixed_only_with_its_amount():
    promo = _percentage()
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(promo, _load({"kind": "fixed"}))
    assert list(refused.value.fields) == ["amount"]
    changes = promo_changes(
        promo, _load({"kind": "fixed", "amount": {"amount": 700, "currency": "USD"}})
    )
    assert changes == {"kind": "fixed", "percent": None, "amount": 700, "currency": "USD"}


def test_a_fixed_code_becomes_a_percentage_and_loses_its_money():
    promo = _fixed()
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(promo, _load({"kind": "percentage"}))
    assert list(refused.value.fields) == ["percent"]
    changes = promo_changes(promo, _load({"kind": "percentage", "percent": "5"}))
    assert changes == {"kind": "percentage", "percent": "5.00", "amount": None, "currency": None}


def test_each_kind_refuses_the_others_value_naming_it():
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(_percentage(), _load({"amount": {"amount": 1, "currency": "EUR"}}))
    assert list(refused.value.fields) == ["amount"]
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(_fixed(), _load({"percent": "5"}))
    assert list(refused.value.fields) == ["percent"]
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(_fixed(), _load({"amount": None}))
    assert list(refused.value.fields) == ["amount"]


def test_money_changes_carry_amount_and_currency_together():
    promo = _fixed()
    assert promo_changes(promo, _load({"amount": {"amount": 900, "currency": "EUR"}})) == {
        "amount": 900,
        "currency": "EUR",
    }
    assert promo_changes(promo, _load({"amount": {"amount": 500, "currency": "USD"}})) == {
        "amount": 500,
        "currency": "USD",
    }


def test_the_limit_cannot_go_below_the_uses_made():
    promo = _percentage(max_uses=5)
    promo.reserve(NOW)
    promo.reserve(NOW)
    with pytest.raises(ValidationFailed) as refused:
        promo_changes(promo, _load({"max_uses": 1}))
    assert list(refused.value.fields) == ["max_uses"]
    assert promo_changes(promo, _load({"max_uses": 2})) == {"max_uses": 2}  # used up now


def test_products_are_kept_once_each_in_the_order_given():
    other = str(uuid.uuid4())
    changes = promo_changes(_percentage(), _load({"product_ids": [PRODUCT, other, PRODUCT]}))
    assert changes == {"product_ids": [PRODUCT, other]}
    promo = _percentage(product_ids=[PRODUCT])
    assert promo_changes(promo, _load({"product_ids": []})) == {"product_ids": []}


# -- the request schemas ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "OTHER"}, "code"),
        ({"percent": "0"}, "percent"),
        ({"percent": "100.01"}, "percent"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": "3"}, "max_uses"),
        ({"kind": "free"}, "kind"),
        ({"expires_at": "2026-12-31T00:00:00"}, "expires_at"),  # no time zone
        ({"amount": {"amount": -1, "currency": "EUR"}}, "amount"),
        ({"product_ids": ["not-an-id"]}, "product_ids"),
    ],
)
def test_a_bad_change_is_refused_naming_its_field(body, field):
    with pytest.raises(ValidationError) as refused:
        _load(body)
    assert field in refused.value.messages


def test_the_code_cannot_be_changed_and_says_why():
    with pytest.raises(ValidationError) as refused:
        _load({"code": "OTHER", "percent": "5"})
    assert refused.value.messages == {"code": ["The code cannot be changed: orders name it."]}


def test_the_list_filters():
    assert PromoFilters().load({}) == {"state": None, "code": None}
    assert PromoFilters().load({"state": "used_up", "code": "spr"})["state"] == "used_up"
    with pytest.raises(ValidationError) as refused:
        PromoFilters().load({"state": "gone"})
    assert "state" in refused.value.messages


def test_the_routes_allow_whom_creating_allows_and_every_role_reads():
    create = roles_of("POST /api/v1/staff/promo-codes")
    assert create == ("admin", "billing")
    assert roles_of(pages.CHANGE) == create and roles_of(pages.TURN) == create
    for reading in (pages.LIST, pages.ONE):
        assert set(roles_of(reading)) == {"admin", "support", "billing", "auditor"}


# -- the pages' own pieces ---------------------------------------------------------------------


class _Call:
    def __init__(self, language):
        self.translations = i18n.translations(language)

    def gettext(self, message, **variables):
        text = self.translations.gettext(message)
        return text % variables if variables else text


@pytest.mark.parametrize(
    ("language", "sentence"),
    [
        ("en", "This promo code is no longer valid."),
        ("ru", "Этот промокод больше не действует."),
        ("fr", "Ce code promo n'est plus valable."),
    ],
)
def test_the_order_page_says_a_deactivated_code_is_no_longer_valid(language, sentence):
    problems = ["The promo code SPRING10 has been deactivated."]
    assert _promo_problem(_Call(language), problems) == sentence
    assert _promo_problem(_Call(language), ["The promo code X has expired."]) != sentence


def test_an_expiry_is_the_end_of_the_day_chosen():
    assert pages.expiry("2026-12-31") == "2026-12-31T23:59:59+00:00"
    assert pages.expiry("") is None
    with pytest.raises(ValueError):
        pages.expiry("31/12/2026")


def test_the_form_shows_a_code_as_a_person_types_it():
    view = promo_view(_fixed(expires_at=datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC)), NOW)
    values = pages.form_values(view, "fr")
    assert values["amount"] == "5,00" and values["currency"] == "EUR"
    assert values["expires_at"] == "2027-01-31" and values["max_uses"] == ""
    values = pages.form_values(promo_view(_percentage(percent="12.50", max_uses=3), NOW), "en")
    assert values["percent"] == "12.5" and values["max_uses"] == "3"
    assert pages.form_values(None, "en")["kind"] == "percentage"


STAFF = {"kind": "staff", "staff_id": "s1", "role": "billing", "name": "Bea", "username": "bea"}


def _can(spec):
    return "billing" in roles_of(spec)


def _page(template, language, **context):
    return render(
        template,
        language,
        principal=STAFF,
        csrf_token="t",
        current_path="/staff/promo-codes",
        can=_can,
        filtered_customer=None,
        **context,
    ).get_data(as_text=True)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_list_and_the_code_page_render_in_each_language(language):
    t = i18n.translations(language)
    used_up = promo_view(_fixed(max_uses=1), NOW)
    used_up.update(uses=1, state="used_up")
    listing = {"items": [promo_view(_percentage(), NOW), used_up], "total": 2}
    html = _page(
        "staff/promos.html",
        language,
        promos=dict(listing, page=1, page_size=20),
        state="",
        code="",
        query={},
        notice=None,
    )
    assert t.gettext("Promo codes") in html and "SPRING10" in html
    assert t.pgettext("promo code", "Used up") in html
    assert i18n.money({"amount": 500, "currency": "EUR"}, language) in html

    promo = promo_view(_percentage(product_ids=[PRODUCT]), NOW)
    promo.update(
        state="deactivated",
        active=False,
        orders=[
            {
                "order_id": str(uuid.uuid4()),
                "customer_id": "c1",
                "invoice_id": str(uuid.uuid4()),
                "placed_at": "2026-12-01T10:00:00Z",
            }
        ],
        orders_total=1,
        history=[
            {
                "type": "Changed",
                "occurred_at": "2026-12-02T10:00:00Z",
                "actor": {"kind": "staff", "id": "s1"},
                "changes": {"max_uses": 3},
            }
        ],
    )
    errors = FormErrors().add("max_uses", t.gettext("Fill this in."))
    html = _page(
        "staff/promos_edit.html",
        language,
        promo=promo,
        values=pages.form_values(promo, language),
        errors=errors,
        notice=None,
        products=[(PRODUCT, "VPS")],
        customers={"c1": {"id": "c1", "number": 1042, "name": "Acme"}},
        staff={"s1": {"id": "s1", "name": "Bea"}},
    )
    assert t.gettext("Promo code %(code)s") % {"code": "SPRING10"} in html
    assert t.gettext("Activate the code again") in html
    assert t.gettext("Deactivate the code") not in html
    assert 'id="error-max_uses"' in html and "Bea" in html and "Acme" in html
    assert 'name="code"' not in html  # the code stays
    assert 'value="' + PRODUCT + '" checked' in html


def test_nameko_finds_one_service_in_the_orders_module():
    """The promo RPCs are mixed into the orders service, not a service of their own
    (`nameko run` refuses a module where it finds a class without a name)."""
    from nameko.cli.run import import_service

    from services.orders.service import OrdersService

    found = import_service("services.orders.service")
    assert OrdersService in found
    assert all(hasattr(service, "name") for service in found), found
