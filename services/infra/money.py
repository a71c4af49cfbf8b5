"""Money: an integer count of minor units and an ISO 4217 currency code. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money amount must be an integer of minor units, not {self.amount!r}")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code, not {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {other!r}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def to_dict(self) -> dict:
        return {"amount": self.amount, "currency": self.currency}

    @classmethod
    def from_dict(cls, data: dict) -> Money:
        return cls(data["amount"], data["currency"])


def percentage_of(money: Money, percent) -> Money:
    """`percent` % of `money`, rounded once to the minor unit, half away from zero.

    `percent` is a Decimal or a decimal string ("12.5"), never a float.
    """
    from decimal import ROUND_HALF_UP, Decimal

    if isinstance(percent, float):
        raise TypeError("give the percentage as a Decimal or a string, not a float")
    exact = Decimal(money.amount) * Decimal(percent) / Decimal(100)
    return Money(int(exact.to_integral_value(rounding=ROUND_HALF_UP)), money.currency)


def discounted(price: Money, kind: str, percent=None, amount: Money | None = None) -> Money:
    """The discount on `price`: a percentage of it, or a fixed amount, never more than it.

    The rule stated once: the discount is rounded to the minor unit, half away from
    zero, and the price after discount is `price - discount`, never below zero.
    """
    if kind == "percentage":
        discount = percentage_of(price, percent)
    elif kind == "fixed":
        if amount is None:
            raise ValueError("a fixed discount needs an amount")
        discount = amount
    else:
        raise ValueError(f"unknown discount kind {kind!r}")
    if discount.currency != price.currency:
        raise CurrencyMismatch(f"a {discount.currency} discount on a {price.currency} price")
    if discount.amount < 0:
        raise ValueError("a discount cannot be negative")
    return min(discount, price) if price.amount >= 0 else Money.zero(price.currency)
