"""The web pages' catalogues: every page string is in them, translated in ru and fr,
and money, dates and numbers are written as each language writes them."""

import datetime as dt
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from werkzeug.test import EnvironBuilder

from gateway.web import i18n

WEB = Path(i18n.__file__).parent
TRANSLATED = ("ru", "fr")


def _key(context, message) -> tuple:
    msgid = message if isinstance(message, str) else message[0]
    return (context or None, msgid)


@pytest.fixture(scope="module")
def extracted() -> dict:
    """Every string of the templates and the page code, as `make messages` extracts it."""
    with (WEB / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    out = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(WEB), method_map, options_map
    ):
        out.setdefault(_key(context, message), f"{filename}:{lineno}")
    assert len(out) > 50  # the extractor did find the pages
    return out


def _catalog(language: str | None):
    path = (
        WEB / "locale" / "messages.pot"
        if language is None
        else WEB / "locale" / language / "LC_MESSAGES" / "messages.po"
    )
    with path.open("rb") as f:
        return read_po(f, locale=language)


@pytest.mark.parametrize("language", [None, "en", *TRANSLATED])
def test_every_page_string_is_in_the_catalogue(extracted, language):
    catalog = _catalog(language)
    have = {_key(m.context, m.id) for m in catalog if m.id}
    missing = {key: where for key, where in extracted.items() if key not in have}
    assert not missing, f"not in {language or 'messages.pot'} (run `make messages`): {missing}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_entry_is_translated_and_none_is_fuzzy(language):
    catalog = _catalog(language)
    assert catalog.num_plurals == {"ru": 3, "fr": 2}[language]
    empty, fuzzy = [], []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(s.strip() for s in strings) or len(strings) not in (1, catalog.num_plurals):
            empty.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert not empty, f"{language}: untranslated {empty}"
    assert not fuzzy, f"{language}: fuzzy {fuzzy}"
    # placeholders such as %(name)s are the msgid's, no more and no fewer
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check() if errors]
    assert not problems, problems


def test_a_translation_reaches_the_page():
    assert i18n.translations("fr").gettext("Log in") == "Se connecter"
    assert i18n.translations("ru").pgettext("service status", "Active") == "Активна"
    ru = i18n.translations("ru")
    forms = [ru.ngettext("and %(num)d more", "and %(num)d more", n) % {"num": n} for n in (1, 3)]
    assert forms == ["и ещё 1", "и ещё 3"]


# -- formatting --------------------------------------------------------------------------


def test_money_is_minor_units_written_per_language():
    price = {"amount": 123456, "currency": "EUR"}
    assert i18n.money(price, "en") == "€1,234.56"
    assert i18n.money(price, "fr") == "1\u202f234,56\xa0€"
    assert i18n.money(price, "ru") == "1\xa0234,56\xa0€"
    # a currency's own number of minor digits: yen have none, dinars three
    assert i18n.money({"amount": 500, "currency": "JPY"}, "en") == "¥500"
    assert i18n.money({"amount": 1500, "currency": "BHD"}, "en") == "BHD1.500"
    assert i18n.money({"amount": -1999, "currency": "USD"}, "en") == "-$19.99"


def test_dates_and_numbers_are_written_per_language():
    # a date's words never part at the end of a line
    assert i18n.date("2026-03-05", "en") == "Mar\xa05,\xa02026"
    assert i18n.date("2026-03-05", "fr") == "5\xa0mars\xa02026"
    assert i18n.date("2026-03-05T23:30:00Z", "ru") == "5\xa0мар.\xa02026\u202fг."
    moment = dt.datetime(2026, 3, 5, 23, 30, tzinfo=dt.UTC)
    assert i18n.datetime(moment, "fr") == "5\xa0mars\xa02026, 23:30\xa0UTC"
    in_paris = "2026-03-06T01:30:00+02:00"
    assert i18n.datetime(in_paris, "en") == "Mar\xa05,\xa02026, 11:30\u202fPM\xa0UTC"
    assert i18n.number(1234567, "en") == "1,234,567"
    assert i18n.number(1234567, "fr") == "1\u202f234\u202f567"
    assert i18n.date(None, "en") == "" and i18n.money(None, "en") == ""


# -- which language ------------------------------------------------------------------------


def _request(accept: str | None):
    headers = {"Accept-Language": accept} if accept else {}
    return EnvironBuilder(path="/login", headers=headers).get_request()


@pytest.mark.parametrize(
    ("setting", "accept", "language"),
    [
        ("ru", "fr-FR,fr;q=0.9", "ru"),  # the client's own setting first
        (None, "fr-CA,fr;q=0.9,en;q=0.5", "fr"),  # else the browser's
        (None, "de-DE,ru;q=0.5", "ru"),  # the first we have
        (None, "de-DE", "en"),  # none we have: English
        (None, None, "en"),
        ("de", "fr", "fr"),  # a setting we have no pages in counts as none
    ],
)
def test_the_language_is_the_clients_setting_else_the_browsers(setting, accept, language):
    assert i18n.negotiate(_request(accept), setting) == language


# -- no text a person reads is left out of the catalogue ----------------------------------

# words the pages show as they are, in every language
UNTRANSLATED_WORDS = {"hostledger"}
_TAG = re.compile(r"<!--.*?-->|<[^>]*>", __import__("re").S)
_WORD = re.compile(r"[^\W\d_]{2,}")
_READ_ATTRIBUTE = re.compile(r'\b(?:alt|title|placeholder|aria-label)="([^"]*)"')


def _template_text(source: str) -> str:
    """The template's literal HTML, each expression or tag of Jinja replaced by a blank."""
    from jinja2 import nodes

    from gateway.web.pages import templates

    tree = templates.parse(source)
    return " ".join(node.data for node in tree.find_all(nodes.TemplateData))


@pytest.mark.parametrize(
    "template",
    sorted(
        p.relative_to(WEB / "templates").as_posix() for p in (WEB / "templates").rglob("*.html")
    ),
)
def test_no_template_shows_text_outside_the_catalogue(template):
    """Text in a template is wrapped in _() (and so extracted), never written as is."""
    html = _template_text((WEB / "templates" / template).read_text())
    attributes = [value for value in _READ_ATTRIBUTE.findall(html) if _WORD.search(value)]
    text = _TAG.sub(" ", html)
    words = set(_WORD.findall(text)) - UNTRANSLATED_WORDS
    assert not words, f"{template} shows {sorted(words)} as they are: wrap them in _()"
    assert not attributes, f"{template} has attributes a person reads: {attributes}"
