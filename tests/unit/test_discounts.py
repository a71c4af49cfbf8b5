"""Discount arithmetic: rounding happens once, by a stated rule, and totals add up."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.infra.money import CurrencyMismatch, Money, discounted, percentage_of

prices = st.integers(min_value=0, max_value=10**12).map(lambda a: Money(a, "EUR"))
percents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)


@given(prices, percents)
def test_discount_is_never_more_than_the_price_nor_negative(price, percent):
    d = discounted(price, "percentage", percent=percent)
    assert Money.zero("EUR") <= d <= price
    assert (price - d).amount >= 0


@given(prices, percents)
def test_percentage_rounds_half_away_from_zero_once(price, percent):
    d = percentage_of(price, percent)
    exact = Decimal(price.amount) * percent / 100
    assert abs(Decimal(d.amount) - exact) <= Decimal("0.5")
    if exact - int(exact) == Decimal("0.5"):
        assert d.amount == int(exact) + 1


@given(prices)
def test_hundred_percent_is_the_whole_price(price):
    assert discounted(price, "percentage", percent="100") == price


@given(prices, st.integers(min_value=0, max_value=10**12))
def test_fixed_discount_is_capped_at_the_price(price, amount):
    d = discounted(price, "fixed", amount=Money(amount, "EUR"))
    assert d == Money(min(amount, price.amount), "EUR")


@given(st.lists(prices, min_size=1, max_size=20), percents)
def test_line_discounts_add_up_to_the_invoice_discount_within_rounding(lines, percent):
    per_line = sum(discounted(p, "percentage", percent=percent).amount for p in lines)
    whole = Decimal(sum(p.amount for p in lines)) * percent / 100
    assert abs(Decimal(per_line) - whole) <= Decimal(len(lines)) / 2


def test_examples():
    assert percentage_of(Money(1999, "EUR"), "10") == Money(200, "EUR")  # 199.9 -> 200
    assert percentage_of(Money(1005, "EUR"), "10") == Money(101, "EUR")  # 100.5 -> 101
    assert percentage_of(Money(1004, "EUR"), "10") == Money(100, "EUR")


def test_floats_and_mixed_currencies_are_refused():
    with pytest.raises(TypeError):
        percentage_of(Money(100, "EUR"), 12.5)
    with pytest.raises(CurrencyMismatch):
        discounted(Money(100, "EUR"), "fixed", amount=Money(10, "USD"))
    with pytest.raises(ValueError):
        discounted(Money(100, "EUR"), "bonus")
