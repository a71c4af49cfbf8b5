"""How an invoice line of an order or a renewal reads, in the customer's language: the
product's (and add-on's) name in it, the billing cycle in words, the setup fee, and the
period the line covers as a date range written with Babel (CLDR) in that language.

A table per language, as the invoice PDF's labels (services/billing/pdf.py); an unknown
language reads English. French puts a no-break space (U+00A0) before ":"."""

from __future__ import annotations

from datetime import date, timedelta

from babel.dates import format_date

from services.orders.domain import CYCLES, add_months

LANGUAGES = ("en", "ru", "fr")

WORDS = {
    "en": {
        "cycles": {
            "monthly": "monthly",
            "quarterly": "quarterly",
            "semiannually": "every six months",
            "annually": "annually",
            "biennially": "every two years",
            "triennially": "every three years",
        },
        "product": "{product} ({cycle})",
        "addon": "{product}: {addon} ({cycle})",
        "setup": "{product}: setup fee",
        "addon_setup": "{product}: {addon}: setup fee",
    },
    "ru": {
        "cycles": {
            "monthly": "ежемесячно",
            "quarterly": "ежеквартально",
            "semiannually": "раз в полгода",
            "annually": "ежегодно",
            "biennially": "раз в два года",
            "triennially": "раз в три года",
        },
        "product": "{product} ({cycle})",
        "addon": "{product}: {addon} ({cycle})",
        "setup": "{product}: плата за подключение",
        "addon_setup": "{product}: {addon}: плата за подключение",
    },
    "fr": {
        "cycles": {
            "monthly": "mensuel",
            "quarterly": "trimestriel",
            "semiannually": "semestriel",
            "annually": "annuel",
            "biennially": "tous les deux ans",
            "triennially": "tous les trois ans",
        },
        "product": "{product} ({cycle})",
        "addon": "{product}\u00a0: {addon} ({cycle})",
        "setup": "{product}\u00a0: frais d'installation",
        "addon_setup": "{product}\u00a0: {addon}\u00a0: frais d'installation",
    },
}


def language_of(language: str | None) -> str:
    """`language` when lines can be written in it, else English."""
    return language if language in WORDS else "en"


def name_in(names: dict | None, language: str, fallback: str) -> str:
    """A name in `language`, else in English, else `fallback` (what was kept before names
    were kept per language)."""
    names = names or {}
    return names.get(language) or names.get("en") or fallback


def period_end(start: date, cycle: str) -> date:
    """The last day of the period of one `cycle` that starts on `start`: the day before
    the next due date (as a renewal sets it: services.orders.domain.add_months)."""
    return add_months(start, CYCLES[cycle]) - timedelta(days=1)


def period_text(start: date, end: date, language: str) -> str:
    """`5 janv. 2027 - 4 févr. 2027`, an en dash between the days, each day whole (no
    line break inside one)."""

    def day(d: date) -> str:
        return format_date(d, format="medium", locale=language).replace(" ", "\u00a0")

    return f"{day(start)} – {day(end)}"


def period_fields(start: date, end: date, language: str) -> dict:
    """A period line's period: as words in `language` (`period`) and its first and last
    days as ISO dates (`period_start`, `period_end`, inclusive) for programs."""
    return {
        "period": period_text(start, end, language),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
    }


def describe(kind: str, language: str, product: str, cycle: str = "", addon: str = "") -> str:
    """A line's description: `kind` one of product, addon, setup, addon_setup."""
    words = WORDS[language_of(language)]
    return words[kind].format(product=product, addon=addon, cycle=words["cycles"].get(cycle, cycle))
