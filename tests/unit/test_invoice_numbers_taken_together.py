"""A batch of invoices takes its numbers of the series in one event, one after another,
and the series goes on from the last of them."""

from __future__ import annotations

from uuid import uuid4

from services.billing.domain import CustomerInvoices, InvoiceSeries


def test_numbers_taken_together_follow_on_without_gaps():
    series = InvoiceSeries(project_key="default", prefix="")
    assert series.take() == "000001"
    assert series.take_many(3) == ["000002", "000003", "000004"]
    assert series.take() == "000005"
    kinds = [type(e).__name__ for e in series.collect_events()]
    assert kinds == ["Started", "NumberTaken", "NumbersTaken", "NumberTaken"]


def test_a_prefixed_series_and_a_batch_in_the_customers_index():
    series = InvoiceSeries(project_key="1f2e", prefix="1F2E-")
    assert series.take_many(2) == ["1F2E-000001", "1F2E-000002"]
    index = CustomerInvoices(customer_id=uuid4(), invoice_ids=[])
    ids = [uuid4(), uuid4()]
    index.add(ids[0])
    index.add_many([*ids[1:], uuid4()])
    assert index.invoice_ids[:2] == ids and len(index.invoice_ids) == 3
