"""Paying online, without services: where the processor may send a client back, the
outcome added to that address, what a person types as an amount, and which Stripe
events count as money."""

import pytest

from gateway.web.client.finances import parse_amount
from services.billing.checkout import on_site, with_outcome
from services.billing.processors import Stripe

SITE = "https://panel.example.com"


@pytest.mark.parametrize(
    ("url", "site", "ok"),
    [
        ("https://panel.example.com/invoices/1", SITE, True),
        ("https://PANEL.example.com:443/invoices/1?x=1", SITE, True),
        ("https://panel.example.com", SITE, True),
        ("http://panel.example.com/invoices/1", SITE, False),
        ("https://panel.example.com.evil.example/invoices/1", SITE, False),
        ("https://evil.example/?https://panel.example.com/", SITE, False),
        ("https://user@panel.example.com/invoices/1", SITE, False),
        ("https://panel.example.com:8443/invoices/1", SITE, False),
        ("https://panel.example.com/billing/invoices/1", SITE + "/billing", True),
        ("https://panel.example.com/billingx/invoices/1", SITE + "/billing", False),
        ("https://panel.example.com/other", SITE + "/billing", False),
        ("http://127.0.0.1:8000/invoices/1", "http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8001/invoices/1", "http://127.0.0.1:8000", False),
        ("http://127.0.0.1:99999/x", "http://127.0.0.1:8000", False),
        ("javascript:alert(1)", SITE, False),
        ("/invoices/1", SITE, False),
    ],
)
def test_the_processor_sends_back_only_to_a_page_of_this_site(url, site, ok):
    assert on_site(url, site) is ok


def test_the_outcome_is_added_to_the_return_address():
    assert with_outcome(SITE + "/invoices/1", "success") == SITE + "/invoices/1?checkout=success"
    assert (
        with_outcome(SITE + "/invoices/1?a=b&checkout=cancel#top", "success")
        == SITE + "/invoices/1?a=b&checkout=success"
    )


@pytest.mark.parametrize(
    ("text", "currency", "language", "minor"),
    [
        ("25", "EUR", "en", 2500),
        ("25.5", "EUR", "en", 2550),
        ("25,50", "EUR", "fr", 2550),
        ("25.50", "EUR", "fr", 2550),
        ("1 234,56", "EUR", "fr", 123456),
        ("1\u202f234,56", "EUR", "ru", 123456),
        ("1,234.56", "USD", "en", 123456),
        ("500", "JPY", "en", 500),
        ("25.555", "EUR", "en", None),
        ("5.5", "JPY", "en", None),
        ("-5", "EUR", "en", None),
        ("abc", "EUR", "ru", None),
        ("", "EUR", "en", None),
        ("NaN", "EUR", "en", None),
    ],
)
def test_an_amount_as_a_person_types_it(text, currency, language, minor):
    assert parse_amount(text, currency, language) == minor


def _session_event(kind="checkout.session.completed", **changes):
    obj = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "amount_total": 2500,
        "currency": "eur",
        "payment_status": "paid",
        "payment_intent": "pi_1",
        "client_reference_id": "inv-1",
        "metadata": {"invoice_id": "inv-1", "customer_id": "c-1"},
    }
    obj.update(changes)
    return {"id": "evt_1", "type": kind, "data": {"object": obj}}


def test_a_completed_checkout_session_is_money_for_its_invoice():
    paid = Stripe("whsec_x").payment(_session_event())
    assert (paid.reference, paid.amount, paid.currency, paid.invoice_id) == (
        "pi_1",
        2500,
        "EUR",
        "inv-1",
    )
    # the invoice named only as client_reference_id
    paid = Stripe("whsec_x").payment(_session_event(metadata={}))
    assert paid.invoice_id == "inv-1"


def test_a_session_whose_payment_is_still_on_its_way_is_not_money_yet():
    stripe = Stripe("whsec_x")
    assert stripe.payment(_session_event(payment_status="unpaid")) is None
    later = _session_event("checkout.session.async_payment_succeeded")
    assert stripe.payment(later).amount == 2500
    assert stripe.payment(_session_event("checkout.session.expired")) is None


def test_only_a_processor_with_its_api_key_opens_payment_pages():
    assert Stripe("whsec_x", "sk").takes_checkout and not Stripe("whsec_x").takes_checkout
