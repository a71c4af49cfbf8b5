"""How billing documents (invoices, credit notes) show their amounts: Money objects."""

from __future__ import annotations


def money(amount: int, currency: str) -> dict:
    return {"amount": amount, "currency": currency}


def lines_view(lines: list[dict], currency: str) -> list[dict]:
    """A document's lines with every amount as Money (the discount's too), and the days
    a line covers (`period_start`, `period_end`: none on lines recorded before they were)."""
    return [
        dict(
            line,
            period_start=line.get("period_start"),
            period_end=line.get("period_end"),
            unit_price=money(line["unit_price"], currency),
            total=money(line["total"], currency),
            discount=dict(line["discount"], amount=money(line["discount"]["amount"], currency))
            if line.get("discount")
            else None,
        )
        for line in lines
    ]


def tax_view(tax: dict | None, currency: str) -> dict | None:
    return dict(tax, amount=money(tax["amount"], currency)) if tax else None
