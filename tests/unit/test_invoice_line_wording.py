"""An order's and a renewal's invoice lines, written in the customer's language: the
product's and the add-on's names in it, the billing cycle in words, the setup fee, and
the period each line covers as a date range (services/orders/wording.py); and how the
invoice PDF shows a line's period once, old lines included (services/billing/pdf.py)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime

import pytest

from services.billing import pdf
from services.orders.application import Orders
from services.orders.domain import OrderAttempt, Service

NBSP = "\u00a0"
PRODUCT = str(uuid.uuid4())
NAMES = {"en": "VPS Start", "ru": "VPS Старт", "fr": "VPS Démarrage"}
BACKUP = {"en": "Backup", "ru": "Резервная копия", "fr": "Sauvegarde"}


def _item(cycle="monthly", names=NAMES, addon_names=BACKUP, setup=1000, addon_setup=300):
    return {
        "product_id": PRODUCT,
        "name": "VPS Start",
        **({"names": names} if names is not None else {}),
        "billing_cycle": cycle,
        "price": 500,
        "setup_fee": setup,
        "addons": [
            {
                "id": str(uuid.uuid4()),
                "name": "Backup",
                **({"names": addon_names} if addon_names is not None else {}),
                "price": 200,
                "setup_fee": addon_setup,
            }
        ],
    }


def _nb(text: str) -> str:
    """Test texts are written with "~" for a no-break space."""
    return text.replace("~", NBSP)


CYCLE_WORDS = {
    "en": {
        "monthly": "monthly",
        "quarterly": "quarterly",
        "semiannually": "every six months",
        "annually": "annually",
        "biennially": "every two years",
        "triennially": "every three years",
    },
    "ru": {
        "monthly": "ежемесячно",
        "quarterly": "ежеквартально",
        "semiannually": "раз в полгода",
        "annually": "ежегодно",
        "biennially": "раз в два года",
        "triennially": "раз в три года",
    },
    "fr": {
        "monthly": "mensuel",
        "quarterly": "trimestriel",
        "semiannually": "semestriel",
        "annually": "annuel",
        "biennially": "tous les deux ans",
        "triennially": "tous les trois ans",
    },
}

# one cycle from 5 January 2027 ends the day before the next due date
LAST_DAYS = {
    "monthly": date(2027, 2, 4),
    "quarterly": date(2027, 4, 4),
    "semiannually": date(2027, 7, 4),
    "annually": date(2028, 1, 4),
    "biennially": date(2029, 1, 4),
    "triennially": date(2030, 1, 4),
}
PERIOD_TEXTS = {
    "en": "Jan~5,~2027 – {}",
    "ru": "5~янв.~2027\u202fг. – {}",
    "fr": "5~janv.~2027 – {}",
}
LAST_DAY_TEXTS = {
    "en": {
        "monthly": "Feb~4,~2027",
        "quarterly": "Apr~4,~2027",
        "semiannually": "Jul~4,~2027",
        "annually": "Jan~4,~2028",
        "biennially": "Jan~4,~2029",
        "triennially": "Jan~4,~2030",
    },
    "ru": {
        "monthly": "4~февр.~2027\u202fг.",
        "quarterly": "4~апр.~2027\u202fг.",
        "semiannually": "4~июл.~2027\u202fг.",
        "annually": "4~янв.~2028\u202fг.",
        "biennially": "4~янв.~2029\u202fг.",
        "triennially": "4~янв.~2030\u202fг.",
    },
    "fr": {
        "monthly": "4~févr.~2027",
        "quarterly": "4~avr.~2027",
        "semiannually": "4~juil.~2027",
        "annually": "4~janv.~2028",
        "biennially": "4~janv.~2029",
        "triennially": "4~janv.~2030",
    },
}


@pytest.mark.parametrize("language", ["en", "ru", "fr"])
@pytest.mark.parametrize("cycle", list(LAST_DAYS))
def test_each_cycle_is_said_in_words_with_the_period_it_covers(language, cycle):
    lines = Orders.invoice_lines(
        [_item(cycle, setup=0, addon_setup=0)], "EUR", language, date(2027, 1, 5)
    )
    product, addon = lines
    words = CYCLE_WORDS[language][cycle]
    assert product["description"] == f"{NAMES[language]} ({words})"
    sep = "~:" if language == "fr" else ":"
    assert addon["description"] == _nb(f"{NAMES[language]}{sep} {BACKUP[language]} ({words})")
    period = _nb(PERIOD_TEXTS[language].format(LAST_DAY_TEXTS[language][cycle]))
    assert product["period"] == addon["period"] == period
    # the cycle is said once: in the description, never as the period
    assert words not in product["period"]


def test_setup_fees_are_said_in_the_customers_language():
    for language, setup, addon_setup in (
        ("en", "VPS Start: setup fee", "VPS Start: Backup: setup fee"),
        (
            "ru",
            "VPS Старт: плата за подключение",
            "VPS Старт: Резервная копия: плата за подключение",
        ),
        (
            "fr",
            "VPS Démarrage~: frais d'installation",
            "VPS Démarrage~: Sauvegarde~: frais d'installation",
        ),
    ):
        lines = Orders.invoice_lines([_item()], "EUR", language, date(2027, 1, 5))
        assert [line["unit_price"]["amount"] for line in lines] == [500, 200, 1000, 300]
        assert [line["description"] for line in lines[2:]] == [_nb(setup), _nb(addon_setup)]
        # a setup fee covers no period
        assert [line.get("period") for line in lines[2:]] == [None, None]


@pytest.mark.parametrize("language", ["de", None, ""])
def test_a_language_lines_cannot_be_written_in_reads_english(language):
    [line, *_] = Orders.invoice_lines([_item()], "EUR", language, date(2027, 1, 5))
    assert line["description"] == "VPS Start (monthly)"
    assert line["period"] == _nb("Jan~5,~2027 – Feb~4,~2027")


def test_a_name_missing_in_the_language_falls_back_to_english_then_to_the_kept_name():
    lines = Orders.invoice_lines(
        [_item(names={"en": "VPS Start"}, addon_names=None)], "EUR", "fr", date(2027, 1, 5)
    )
    assert lines[0]["description"] == "VPS Start (mensuel)"
    assert lines[1]["description"] == _nb("VPS Start~: Backup (mensuel)")
    # an attempt priced before names were kept per language
    [line, *_] = Orders.invoice_lines([_item(names=None)], "EUR", "ru", date(2027, 1, 5))
    assert line["description"] == "VPS Start (ежемесячно)"


def _service(due: str, cycle="monthly", names=NAMES, addon_names=BACKUP) -> Service:
    s = Service(
        customer_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        product_id=uuid.UUID(PRODUCT),
        name="VPS Start",
        billing_cycle=cycle,
        price=500,
        currency="EUR",
        provisioning={"kind": "manual", "url": None},
        addons=[{"id": "a", "name": "Backup", "names": addon_names, "price": 200}],
        names=names,
    )
    s.activate(next_due_date=due, reason="paid")
    return s


@pytest.mark.parametrize(
    ("due", "cycle", "language", "description", "period"),
    [
        # a month end: the next due date is the shorter month's last day (add_months)
        ("2027-01-31", "monthly", "fr", "VPS Démarrage (mensuel)", "31~janv.~2027 – 27~févr.~2027"),
        ("2027-01-31", "monthly", "en", "VPS Start (monthly)", "Jan~31,~2027 – Feb~27,~2027"),
        (
            "2026-12-31",
            "monthly",
            "ru",
            "VPS Старт (ежемесячно)",
            "31~дек.~2026\u202fг. – 30~янв.~2027\u202fг.",
        ),
        (
            "2026-11-30",
            "quarterly",
            "fr",
            "VPS Démarrage (trimestriel)",
            "30~nov.~2026 – 27~févr.~2027",
        ),
        ("2028-02-29", "annually", "en", "VPS Start (annually)", "Feb~29,~2028 – Feb~27,~2029"),
    ],
)
def test_a_renewal_covers_the_due_date_to_the_day_before_the_next(
    due, cycle, language, description, period
):
    service = _service(due, cycle)
    product, addon = Orders.renewal_lines(service, language)
    assert product["description"] == description
    assert product["period"] == addon["period"] == _nb(period)
    assert [product["unit_price"]["amount"], addon["unit_price"]["amount"]] == [500, 200]
    assert BACKUP[language] in addon["description"]


def test_a_service_ordered_before_names_were_kept_renews_with_its_name():
    service = _service("2027-01-05", names=None, addon_names=None)
    product, addon = Orders.renewal_lines(service, "fr")
    assert product["description"] == "VPS Start (mensuel)"
    assert addon["description"] == _nb("VPS Start~: Backup (mensuel)")
    assert Orders.renewal_lines(service, None)[0]["description"] == "VPS Start (monthly)"


def _attempt(language: str | None) -> OrderAttempt:
    return OrderAttempt(
        request_key=f"k-{uuid.uuid4()}",
        request_hash="h",
        customer_id=uuid.uuid4(),
        currency="EUR",
        priced=[_item()],
        promo=None,
        at=datetime(2027, 1, 5, 23, 59, tzinfo=UTC),
        keyed=True,
        runner="r1",
        language=language,
    )


def test_an_attempt_asks_for_the_same_invoice_however_often_it_is_resumed():
    attempt = _attempt("fr")
    first = Orders.invoice_request(attempt)
    assert first["lines"][0]["description"] == "VPS Démarrage (mensuel)"
    assert first["lines"][0]["period"] == _nb("5~janv.~2027 – 4~févr.~2027")
    attempt.resume(at=datetime(2027, 1, 6, 0, 5, tzinfo=UTC), runner="r2")
    assert Orders.invoice_request(attempt) == first
    # started again after its invoice was voided: from that day, in the language then
    attempt.abandon(reason="x")
    attempt.invoice_voided()
    attempt.restart(
        priced=[_item()],
        promo=None,
        at=datetime(2027, 1, 7, tzinfo=UTC),
        runner="r3",
        language="ru",
    )
    again = Orders.invoice_request(attempt)
    assert again["lines"][0]["description"] == "VPS Старт (ежемесячно)"
    assert again["lines"][0]["period"].startswith(_nb("7~янв.~2027"))
    # an attempt recorded before languages were kept: English
    assert Orders.invoice_request(_attempt(None))["lines"][0]["description"] == (
        "VPS Start (monthly)"
    )


# -- the PDF shows a line's period once, labelled in its language --------------------------


def _invoice(lines: list[dict]) -> dict:
    money = {"amount": 500, "currency": "EUR"}
    return {
        "number": "INV-1",
        "issued_at": "2027-01-05T10:00:00+00:00",
        "due_date": "2027-01-19",
        "status": "unpaid",
        "seller": {},
        "buyer": {},
        "total": money,
        "lines": [dict(line, quantity=1, unit_price=money, total=money) for line in lines],
    }


def _text(document: bytes) -> str:
    """The PDF's text, a no-break space read as a space (fpdf2 writes the table's cells
    with plain spaces once it has broken their lines, where a no-break space never breaks
    one)."""
    from pypdf import PdfReader

    return PdfReader(io.BytesIO(document)).pages[0].extract_text().replace(NBSP, " ")


def test_the_pdf_says_the_period_once_with_french_typography():
    lines = Orders.invoice_lines([_item(setup=0, addon_setup=0)], "EUR", "fr", date(2027, 1, 5))
    text = _text(pdf.render(_invoice(lines), "fr"))
    assert "VPS Démarrage (mensuel)" in text
    # the period once per line, on one line, labelled in French with a space before ":"
    assert text.count("Période : 5 janv. 2027 – 4 févr. 2027\n") == 2
    assert "monthly" not in text and "Période:" not in text
    assert "Échéance : 19 janvier 2027" in text and "Total : 5,00 €" in text
    # the labels' no-break spaces, where fpdf2 keeps them as written
    assert pdf.labelled("Période", "x", "fr") == "Période\u00a0: x"
    assert pdf.labelled("Period", "x", "en") == "Period: x"


def test_old_lines_still_read_sensibly_in_the_pdf():
    old = [
        {"description": "VPS Start (monthly)", "period": "monthly"},  # an order's
        {"description": "VPS Start: Backup (monthly)", "period": "monthly"},
        {"description": "VPS Start (monthly)", "period": "2027-01-05"},  # a renewal's
        {"description": "Hosting", "period": "2026-12"},  # typed by staff
    ]
    text = _text(pdf.render(_invoice(old), "fr"))
    assert text.count("Période") == 2 and "(Période" not in text
    assert "Période : 5 janv. 2027\n" in text
    assert "Période : 2026-12\n" in text
    assert pdf.line_period(old[0], "en") is None
    assert pdf.line_period(old[2], "en") == "Jan 5, 2027"
