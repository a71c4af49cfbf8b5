"""A batch of invoices issued in one save (the renewal run's): numbers of the series taken
one after another without gaps, each invoice the one a single request with its key
gets, an invoice that cannot be issued answered as an error in its place without
using a number, and a lost race issuing the whole batch again with the next numbers."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from contracts.errors import NotFound
from services.billing.batches import issue_invoices
from services.billing.domain import InvoiceSeries

LINE = [{"description": "Hosting, next month", "unit_price": 1000}]
TEN_PERCENT = {
    "id": str(uuid4()),
    "name": "Loyal",
    "kind": "percentage",
    "percent": "10",
    "amount": None,
    "product_ids": [],
}


def _customer(billing):
    customer_id = uuid4()
    billing.open_account(
        customer_id, "EUR", {"kind": "individual", "contact_person": "Rita Renew", "country": "DE"}
    )
    return customer_id


def _item(customer_id, key=None, discounts=()):
    request = {"customer_id": str(customer_id), "lines": LINE, "due_days": 3}
    return {
        "customer_id": customer_id,
        "currency": "EUR",
        "lines": LINE,
        "due_days": 3,
        "discounts": list(discounts),
        "idempotency_key": key,
        "request": request,
    }


def _last(billing) -> int:
    return billing.repository.get(InvoiceSeries.id_for("default")).last


def test_a_batch_takes_consecutive_numbers_and_answers_each_key_once(billing):
    first, deleted = _customer(billing), _customer(billing)
    billing.issue_invoice(deleted, "EUR", LINE, purpose="manual")
    billing.customer_deleted(deleted, "customer deleted")
    before = _last(billing)
    key = f"renewal:{uuid4()}:2027-01-01"
    items = [
        _item(first, key, [TEN_PERCENT]),
        _item(deleted, f"renewal:{uuid4()}:2027-01-01"),
        NotFound("No such customer."),
        _item(_customer(billing), f"renewal:{uuid4()}:2027-01-01"),
        _item(first, key, [TEN_PERCENT]),  # the same key twice in one batch
    ]
    answers = issue_invoices(billing, items, "renewal")
    assert [next(iter(a)) for a in answers] == ["invoice", "error", "error", "invoice", "invoice"]
    assert answers[1]["error"]["code"] == "conflict"
    assert answers[2]["error"]["code"] == "not_found"
    numbers = [int(answers[n]["invoice"]["number"]) for n in (0, 3)]
    assert numbers == [before + 1, before + 2] and _last(billing) == before + 2
    assert answers[4] == answers[0]
    assert answers[0]["invoice"]["total"]["amount"] == 900
    assert answers[0]["invoice"]["purpose"] == "renewal"

    # asked again, alone or in a batch: the same invoice, no number taken
    again = issue_invoices(billing, [items[0]], "renewal")
    assert again[0] == answers[0]
    alone = billing.issue_invoice(
        first,
        "EUR",
        LINE,
        purpose="renewal",
        due_days=3,
        discounts=[TEN_PERCENT],
        idempotency_key=key,
        request=items[0]["request"],
    )
    assert alone == answers[0]["invoice"]
    assert _last(billing) == before + 2


def test_a_lost_race_issues_the_batch_again_with_the_next_numbers(billing, monkeypatch):
    customers = [_customer(billing) for _ in range(3)]
    billing.issue_invoice(customers[0], "EUR", LINE, purpose="manual")
    before = _last(billing)
    save = billing.save
    raced = []

    def save_once_too_late(*objs, **kwargs):
        if not raced:
            # another instance takes the next number meanwhile: this save loses the race
            series = billing.repository.get(InvoiceSeries.id_for("default"))
            raced.append(series.take())
            save(series)
            with pytest.raises(IntegrityError):
                save(*objs, **kwargs)
            raise IntegrityError("the series moved on")
        return save(*objs, **kwargs)

    monkeypatch.setattr(billing, "save", save_once_too_late)
    answers = issue_invoices(
        billing, [_item(c, f"renewal:{uuid4()}:2027-02-01") for c in customers], "renewal"
    )
    monkeypatch.undo()
    numbers = [int(a["invoice"]["number"]) for a in answers]
    assert raced == [f"{before + 1:06d}"]  # the other instance's
    assert numbers == [before + 2, before + 3, before + 4]
    assert _last(billing) == before + 4


def test_a_renewal_asked_again_with_another_request_is_answered_its_period_s_invoice(billing):
    """A renewal's key names its service and period: a run after a crash between billing's
    save and the orders service's asks again on another day (another due_days) or after
    the customer changed its language (other lines); it gets the invoice issued for that
    period, no second one. Any other invoice's key sent with another request is a 409."""
    customer = _customer(billing)
    key = f"renewal:{uuid4()}:2027-03-01"
    [first] = issue_invoices(billing, [_item(customer, key)], "renewal")
    before = _last(billing)

    later = _item(customer, key)
    later["due_days"], later["request"] = 1, {**later["request"], "due_days": 1}
    french = _item(customer, key)
    french["lines"] = [{"description": "Hébergement, mois suivant", "unit_price": 1000}]
    french["request"] = {**french["request"], "lines": french["lines"]}
    assert issue_invoices(billing, [later, french], "renewal") == [first, first]
    alone = billing.issue_invoice(
        customer,
        "EUR",
        french["lines"],
        purpose="renewal",
        idempotency_key=key,
        request=french["request"],
    )
    assert alone == first["invoice"] and _last(billing) == before

    order_key = f"order:{uuid4()}"
    issue_invoices(billing, [_item(customer, order_key)], "order")
    changed = _item(customer, order_key)
    changed["request"] = {**changed["request"], "due_days": 1}
    [refused] = issue_invoices(billing, [changed], "order")
    assert refused["error"]["code"] == "conflict"
    assert "Idempotency-Key" in refused["error"]["fields"]
