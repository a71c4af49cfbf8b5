"""Languages of the web pages: which one a request gets, its catalogue, and how money,
dates and numbers are written in it (Babel, CLDR data).

The catalogues are `locale/<language>/LC_MESSAGES/messages.po`, kept in the repository;
`make install` compiles each into its `.mo` beside it. Update them with `make messages`
(extract the strings of the templates and the page code, merge them into each `.po`).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from werkzeug.wrappers import Request

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
# the first is the language of the page strings themselves and the last resort
LANGUAGES = ("en", "ru", "fr")
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "fr": "Français"}


def N_(message: str) -> str:
    """Marks a string for the catalogue where it is defined; it is translated where shown."""
    return message


def negotiate(request: Request, preferred: str | None = None) -> str:
    """The page language: the person's own setting when it is one we have, else the
    browser's Accept-Language, else English."""
    if preferred in LANGUAGES:
        return preferred
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


@cache
def translations(language: str) -> Translations:
    """The compiled catalogue of `language`. Without its .mo (the install step did not
    run) the .po is compiled in memory, so pages never fall back to English silently."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as f:
            return Translations(f, domain=DOMAIN)
    log.warning("%s is missing or older than its .po: `make install` compiles it", mo)
    with po.open("rb") as f:
        catalog = read_po(f, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


# -- formatting: money is integer minor units and an ISO 4217 code; times are UTC ---------


def money(value: dict | None, language: str) -> str:
    """`{"amount": 123456, "currency": "EUR"}` as `1 234,56 €` (fr), `€1,234.56` (en)."""
    if not value:
        return ""
    currency = value["currency"]
    digits = numbers.get_currency_precision(currency)
    amount = Decimal(int(value["amount"])).scaleb(-digits)
    return numbers.format_currency(amount, currency, locale=language)


def number(value: int | Decimal, language: str) -> str:
    return numbers.format_decimal(value, locale=language)


def _date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value[:10])


def _datetime(value: str | dt.datetime) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def date(value: str | dt.date | None, language: str, format: str = "medium") -> str:
    """A calendar date (an ISO date, or the date of an ISO timestamp) in `language`."""
    if not value:
        return ""
    return _unbroken(dates.format_date(_date(value), format=format, locale=language))


def datetime(value: str | dt.datetime | None, language: str) -> str:
    """An instant as the date (medium) and the time (short) in `language`'s order, in UTC
    and saying so (the client has no time zone setting yet)."""
    if not value:
        return ""
    moment = _datetime(value).astimezone(dt.UTC)
    pattern = dates.get_datetime_format("medium", locale=language).replace("'", "")
    time_text = dates.format_time(moment, format="short", tzinfo=dt.UTC, locale=language)
    date_text = dates.format_date(moment.date(), format="medium", locale=language)
    return pattern.format(_unbroken(time_text), _unbroken(date_text)) + "\u00a0UTC"


def _unbroken(text: str) -> str:
    """A date or a time is never split across lines ("5 mars / 2026")."""
    return text.replace(" ", "\u00a0")
