"""Tax on an invoice: one rule, stated once.

Tax is computed once per invoice, on its subtotal (the sum of its lines after
discounts), and rounded to the minor unit half away from zero:
- exclusive rate r: tax = round(subtotal * r / 100); total = subtotal + tax;
- inclusive rate r (prices already contain the tax):
  tax = subtotal - round(subtotal * 100 / (100 + r)); total = subtotal.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def tax_amount(subtotal: int, rate: str | Decimal, inclusive: bool) -> int:
    r = Decimal(rate)
    if r < 0:
        raise ValueError("a tax rate cannot be negative")
    if inclusive:
        return subtotal - _round(Decimal(subtotal) * 100 / (100 + r))
    return _round(Decimal(subtotal) * r / 100)


def invoice_totals(subtotal: int, rule: dict | None) -> tuple[dict | None, int]:
    """(the invoice's tax line or None, its total)."""
    if rule is None:
        return None, subtotal
    amount = tax_amount(subtotal, rule["rate"], rule["inclusive"])
    tax = {
        "name": rule["name"],
        "rate": rule["rate"],
        "inclusive": rule["inclusive"],
        "amount": amount,
    }
    return tax, subtotal if rule["inclusive"] else subtotal + amount
