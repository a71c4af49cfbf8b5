"""The tax rule: computed once on the subtotal, rounded half away from zero."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.billing.tax import invoice_totals, tax_amount

subtotals = st.integers(min_value=0, max_value=10**12)
rates = st.decimals(min_value=0, max_value=50, places=2)


@given(subtotals, rates)
def test_exclusive_tax_is_the_rounded_rate_of_the_subtotal(subtotal, rate):
    tax = tax_amount(subtotal, rate, inclusive=False)
    assert abs(Decimal(tax) - Decimal(subtotal) * rate / 100) <= Decimal("0.5")
    _, total = invoice_totals(subtotal, {"name": "VAT", "rate": str(rate), "inclusive": False})
    assert total == subtotal + tax


@given(subtotals, rates)
def test_inclusive_tax_is_inside_the_subtotal(subtotal, rate):
    tax = tax_amount(subtotal, rate, inclusive=True)
    net = subtotal - tax
    assert 0 <= tax <= subtotal
    # the net plus tax at that rate gives the subtotal back, within rounding
    assert abs(Decimal(net) * (100 + rate) / 100 - subtotal) <= (100 + rate) / 100
    info, total = invoice_totals(subtotal, {"name": "VAT", "rate": str(rate), "inclusive": True})
    assert total == subtotal and info["amount"] == tax


def test_examples():
    assert tax_amount(1999, "20", inclusive=False) == 400  # 399.8
    assert tax_amount(1200, "20", inclusive=True) == 200  # net 1000
    assert tax_amount(1005, "10", inclusive=False) == 101  # 100.5 rounds up
    assert invoice_totals(1000, None) == (None, 1000)
