"""Billing's discount book: a discount as the customers service publishes it prices a line
as the customers service's own answer did; its validity is read at the invoice's time;
the book's start keeps only what is later than what it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from services.billing.application import price_line
from services.billing.discounts import (
    changed_statement,
    discount_entry,
    given_statement,
    groups_statement,
    seed_statements,
    valid_at,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _given(**extra) -> dict:
    """A DiscountGiven payload as the contract loads it."""
    payload = {
        "discount_id": uuid4(),
        "name": "Loyal",
        "kind": "fixed",
        "percent": None,
        "amount": 125,
        "currency": "EUR",
        "customer_id": uuid4(),
        "group_id": None,
        "product_ids": [],
        "valid_from": None,
        "valid_to": None,
    }
    payload.update(extra)
    return payload


def test_a_published_discount_prices_a_line_as_the_customers_answer_did():
    product = uuid4()
    given = _given(product_ids=[product])
    entry = discount_entry(given)
    view = {
        "id": str(given["discount_id"]),
        "name": "Loyal",
        "kind": "fixed",
        "percent": None,
        "amount": {"amount": 125, "currency": "EUR"},
        "customer_id": str(given["customer_id"]),
        "group_id": None,
        "product_ids": [str(product)],
        "valid_from": None,
        "valid_to": None,
    }
    assert entry == view
    assert discount_entry(view) == view  # the customers service's discount_view, seeded
    line = {"description": "VPS", "product_id": str(product), "unit_price": 500, "quantity": 1}
    assert price_line(line, "EUR", [entry]) == price_line(line, "EUR", [view])
    assert price_line(line, "EUR", [entry])["total"] == 375
    other = dict(line, product_id=str(uuid4()))
    assert price_line(other, "EUR", [entry])["total"] == 500


def test_a_percentage_keeps_its_percent_as_text():
    entry = discount_entry(_given(kind="percentage", percent="12.5", amount=None, currency=None))
    assert entry["percent"] == "12.5" and entry["amount"] is None
    line = {"description": "VPS", "product_id": None, "unit_price": 1000}
    assert price_line(line, "EUR", [entry])["total"] == 875


def test_validity_is_read_at_the_invoices_time():
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)
    entry = discount_entry(_given(valid_from=start, valid_to=end))
    assert entry["valid_from"].startswith("2026-12-01")
    assert valid_at(entry, NOW)
    assert not valid_at(entry, datetime(2026, 11, 30, tzinfo=UTC))
    assert not valid_at(entry, end)  # ended at `valid_to`
    assert valid_at(discount_entry(_given()), NOW)  # no bounds


def test_rows_are_replaced_only_by_a_later_version():
    given = _given()
    sql, params = given_statement(given, version=3, position=41)
    assert "discount_book.version < excluded.version" in sql
    assert params[-1] == 3 and params[3] == 41
    sql, params = changed_statement(given["discount_id"], {"valid_to": NOW}, version=4)
    assert "version < %s" in sql and params[-1] == 4 and '"valid_to": "2026-12-04' in params[0]
    sql, params = groups_statement(uuid4(), [str(uuid4())], version=7)
    assert "customer_groups.version < excluded.version" in sql and params[-1] == 7


def test_the_start_keeps_every_discount_and_group_and_marks_the_book_started():
    book = {
        "discounts": [dict(discount_entry(_given()), version=2)],
        "groups": [{"customer_id": str(uuid4()), "group_ids": [str(uuid4())], "version": 5}],
    }
    statements = seed_statements(book, NOW)
    assert len(statements) == 3
    assert "discount_book_start" in statements[-1][0]
    assert seed_statements({"discounts": [], "groups": []}, NOW)[0][0].startswith(
        "INSERT INTO discount_book_start"
    )
