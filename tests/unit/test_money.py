import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.infra.money import CurrencyMismatch, Money

amounts = st.integers(min_value=-(10**15), max_value=10**15)


@given(st.lists(amounts, max_size=50))
def test_sum_of_money_is_the_sum_of_minor_units(values):
    total = Money.zero("EUR")
    for v in values:
        total = total + Money(v, "EUR")
    assert total == Money(sum(values), "EUR")


@given(amounts, amounts)
def test_subtraction_undoes_addition(a, b):
    assert Money(a, "USD") + Money(b, "USD") - Money(b, "USD") == Money(a, "USD")


def test_floats_and_bad_currencies_are_refused():
    with pytest.raises(TypeError):
        Money(19.99, "EUR")
    with pytest.raises(TypeError):
        Money(True, "EUR")
    with pytest.raises(ValueError):
        Money(100, "euro")


def test_currencies_do_not_mix():
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(CurrencyMismatch):
        assert Money(1, "EUR") < Money(2, "USD")


def test_round_trip_as_the_api_speaks_it():
    assert Money.from_dict(Money(1999, "EUR").to_dict()) == Money(1999, "EUR")
    assert Money(1999, "EUR").to_dict() == {"amount": 1999, "currency": "EUR"}
