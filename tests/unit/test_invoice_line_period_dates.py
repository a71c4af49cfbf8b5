"""An invoice line's period as dates programs read: `period_start` and `period_end` (ISO
dates, inclusive, both or neither, the start not after the end) in the billing contract,
kept as billing prices a line and answered on lines recorded before them as none; an
order's and a renewal's lines carry the days their words say; and the pages and the PDF
show the days of a line that has them but no words for them."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime

import pytest

from contracts import billing as contract
from contracts.errors import ValidationFailed
from gateway.web import i18n
from gateway.web.pages import templates
from services.billing import pdf
from services.billing.application import price_line
from services.billing.views import lines_view
from services.infra.rpc import load
from services.orders.application import Orders
from tests.unit.test_invoice_line_wording import _service

NBSP = "\u00a0"


def _request(**line) -> dict:
    return {
        "customer_id": str(uuid.uuid4()),
        "lines": [
            {"description": "Hosting", "unit_price": {"amount": 1000, "currency": "EUR"}},
            {"description": "Domain", "unit_price": {"amount": 500, "currency": "EUR"}, **line},
        ],
    }


def _refused(**line) -> dict:
    with pytest.raises(ValidationFailed) as caught:
        load(contract.IssueInvoice, _request(**line))
    return caught.value.fields


def test_a_line_may_give_its_periods_first_and_last_days_as_iso_dates():
    data = load(contract.IssueInvoice, _request(period_start="2027-01-05", period_end="2027-02-04"))
    assert data["lines"][1]["period_start"] == date(2027, 1, 5)
    assert data["lines"][1]["period_end"] == date(2027, 2, 4)
    # a period of one day; and a line without a period has neither
    one_day = load(
        contract.IssueInvoice, _request(period_start="2027-01-05", period_end="2027-01-05")
    )
    assert one_day["lines"][1]["period_end"] == date(2027, 1, 5)
    assert data["lines"][0]["period_start"] is None and data["lines"][0]["period_end"] is None
    # billing records them as ISO dates
    plain = contract.plain_lines(data["lines"])
    assert (plain[1]["period_start"], plain[1]["period_end"]) == ("2027-01-05", "2027-02-04")
    assert (plain[0]["period_start"], plain[0]["period_end"]) == (None, None)
    assert plain[1]["unit_price"] == 500


def test_both_days_or_neither_each_missing_one_named():
    assert _refused(period_start="2027-01-05") == {
        "lines.1.period_end": ["A period's first day needs its last day."]
    }
    assert _refused(period_end="2027-02-04") == {
        "lines.1.period_start": ["A period's last day needs its first day."]
    }
    assert list(_refused(period_start="2027-01-05", period_end=None)) == ["lines.1.period_end"]


def test_a_period_does_not_end_before_it_starts():
    assert _refused(period_start="2027-02-05", period_end="2027-02-04") == {
        "lines.1.period_end": ["A period ends on or after its first day (2027-02-05)."]
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("period_start", "2027-02-30"),
        ("period_start", "5 janv. 2027"),
        ("period_end", "2027-02-04T00:00:00+00:00"),
        ("period_end", 20270204),
    ],
)
def test_a_day_that_is_no_iso_date_is_refused_naming_it(field, value):
    days = {"period_start": "2027-01-05", "period_end": "2027-02-04", field: value}
    assert list(_refused(**days)) == [f"lines.1.{field}"]


def test_billing_keeps_the_days_as_it_prices_a_line_and_answers_none_on_old_lines():
    line = {
        "description": "VPS",
        "unit_price": 500,
        "period": "5 janv. 2027 – 4 févr. 2027",
        "period_start": "2027-01-05",
        "period_end": "2027-02-04",
    }
    priced = price_line(line, "EUR")
    assert (priced["period_start"], priced["period_end"]) == ("2027-01-05", "2027-02-04")
    assert price_line({"description": "Setup", "unit_price": 100}, "EUR")["period_start"] is None
    # a line recorded before lines had them: answered with none, the rest as it was
    old = {k: v for k, v in priced.items() if k not in ("period_start", "period_end")}
    [shown] = lines_view([old], "EUR")
    assert shown["period_start"] is None and shown["period_end"] is None
    assert shown["period"] == line["period"]
    assert shown["unit_price"] == {"amount": 500, "currency": "EUR"}
    [shown] = lines_view([priced], "EUR")
    assert (shown["period_start"], shown["period_end"]) == ("2027-01-05", "2027-02-04")


def _item() -> dict:
    return {
        "product_id": str(uuid.uuid4()),
        "name": "VPS Start",
        "names": {"en": "VPS Start", "fr": "VPS Démarrage"},
        "billing_cycle": "monthly",
        "price": 500,
        "setup_fee": 1000,
        "addons": [
            {"id": str(uuid.uuid4()), "name": "Backup", "price": 200, "setup_fee": 300},
        ],
    }


def test_an_orders_period_lines_carry_the_days_their_words_say():
    lines = Orders.invoice_lines([_item()], "EUR", "fr", date(2027, 1, 31))
    product, addon, setup, addon_setup = lines
    for line in (product, addon):
        assert (line["period_start"], line["period_end"]) == ("2027-01-31", "2027-02-27")
        assert line["period"] == f"31{NBSP}janv.{NBSP}2027 – 27{NBSP}févr.{NBSP}2027"
    # a setup fee covers no period
    for line in (setup, addon_setup):
        assert "period_start" not in line and "period_end" not in line
    # what billing is sent is what its contract takes
    loaded = load(contract.IssueInvoice, {"customer_id": str(uuid.uuid4()), "lines": lines})
    assert loaded["lines"][0]["period_end"] == date(2027, 2, 27)


def test_a_renewals_lines_carry_the_days_from_the_due_date_to_the_day_before_the_next():
    service = _service("2028-02-29", "quarterly")
    product, addon = Orders.renewal_lines(service, "en")
    for line in (product, addon):
        assert (line["period_start"], line["period_end"]) == ("2028-02-29", "2028-05-28")
        assert line["period"] == f"Feb{NBSP}29,{NBSP}2028 – May{NBSP}28,{NBSP}2028"


def _shown(line: dict, language: str) -> str:
    page = templates.from_string(
        '{% import "_invoice.html" as parts with context %}{{ parts.line_period(line) }}'
    )
    return page.render(language=language, translations=i18n.translations(language), line=line)


STAFF_LINE = {
    "description": "Hosting",
    "period": None,
    "period_start": "2027-01-05",
    "period_end": "2027-02-04",
}


def test_a_line_with_days_but_no_words_shows_its_days_in_the_readers_language():
    assert f"5{NBSP}janv.{NBSP}2027 – 4{NBSP}févr.{NBSP}2027" in _shown(STAFF_LINE, "fr")
    assert f"Jan{NBSP}5,{NBSP}2027 – Feb{NBSP}4,{NBSP}2027" in _shown(STAFF_LINE, "en")
    assert pdf.line_period(STAFF_LINE, "ru") == (
        f"5{NBSP}янв.{NBSP}2027\u202fг. – 4{NBSP}февр.{NBSP}2027\u202fг."
    )
    # the words written on a line are shown as written, its days or not
    worded = dict(STAFF_LINE, period="January 2027")
    assert "January 2027" in _shown(worded, "fr") and "janv." not in _shown(worded, "fr")
    assert pdf.line_period(worded, "fr") == "January 2027"
    # a line with neither shows no period
    bare = {"description": "Setup", "period": None, "period_start": None, "period_end": None}
    assert _shown(bare, "en").strip() == "" and pdf.line_period(bare, "en") is None


def test_the_pdf_says_the_days_of_a_staff_line():
    money = {"amount": 500, "currency": "EUR"}
    invoice = {
        "number": "INV-1",
        "issued_at": datetime(2027, 1, 5, 10, tzinfo=UTC).isoformat(),
        "due_date": "2027-01-19",
        "status": "unpaid",
        "seller": {},
        "buyer": {},
        "total": money,
        "lines": [dict(STAFF_LINE, quantity=1, unit_price=money, total=money)],
    }
    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(pdf.render(invoice, "fr"))).pages[0].extract_text()
    assert "Période : 5 janv. 2027 – 4 févr. 2027" in text.replace(NBSP, " ")
