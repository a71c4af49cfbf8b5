"""French typography in the pages' French catalogue: a no-break space (U+00A0) before
":", ";", "?", "!" and "»" and after "«", never a breaking or a missing one (times such
as 18:00 and HH:MM aside); Russian puts none before them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from gateway.web import i18n

LOCALE = Path(__file__).resolve().parents[2] / "gateway" / "web" / "locale"
NBSP = "\u00a0"


def _strings(language: str) -> list[tuple[str, str]]:
    with open(LOCALE / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f, locale=language)
    found = []
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        found += [(msgid, s) for s in strings if s]
    return found


def _french_faults(text: str) -> list[str]:
    faults = []
    for match in re.finditer(r"(.)([;?!»])", text):
        if match.group(1) != NBSP:
            faults.append(match.group(0))
    for match in re.finditer(r"«(.)", text):
        if match.group(1) != NBSP:
            faults.append(match.group(0))
    # a colon that ends a word or a placeholder; 18:00, HH:MM and https:// are no such
    for match in re.finditer(r"(.):(?=\s|$)", text):
        if match.group(1) != NBSP:
            faults.append(match.group(0))
    return faults


@pytest.mark.parametrize(
    "text, faults",
    [
        ("Solde : 0,00 €", [" :"]),
        ("Solde: 0,00 €", ["e:"]),
        (f"Solde{NBSP}: 0,00 €", []),
        ("Vraiment\u202f?", ["\u202f?"]),
        (f"«{NBSP}oui{NBSP}»", []),
        ("« oui »", [" »", "« "]),
        ("par exemple 18:00, HH:MM ou https://example.com", []),
    ],
)
def test_the_check_finds_what_it_should(text, faults):
    assert _french_faults(text) == faults


def test_every_french_string_has_a_no_break_space_before_its_high_punctuation():
    faults = {msgid: _french_faults(s) for msgid, s in _strings("fr")}
    assert {k: v for k, v in faults.items() if v} == {}


def test_no_russian_string_has_a_space_before_a_colon_or_a_question_mark():
    spaced = [s for _, s in _strings("ru") if re.search(r"[ \u00a0\u202f][:;?!]", s)]
    assert spaced == []


def test_a_translated_french_page_string_reads_with_its_no_break_space():
    fr = i18n.translations("fr")
    assert fr.gettext("%(field)s:") == f"%(field)s{NBSP}:"
    assert fr.gettext("Step 1: add your account to an authenticator app").startswith(
        f"Étape 1{NBSP}: "
    )


TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "web" / "templates"


def test_no_template_writes_a_colon_or_semicolon_of_its_own_after_a_translated_text():
    """A page's own ":" or ";" after a label is `pgettext("punctuation", ...)`, so French
    reads "Solde : 12,00 €" with its no-break space."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = re.sub(r'"[^"]*"', '""', line)  # text inside the strings is translated
            if re.search(r"(\}\}|%\})[:;]", code):
                found.append(f"{path.relative_to(TEMPLATES)}:{number}")
    assert found == []


def test_the_pages_punctuation_reads_as_each_language_writes_it():
    assert i18n.translations("fr").pgettext("punctuation", ":") == f"{NBSP}:"
    assert i18n.translations("fr").pgettext("punctuation", ";") == f"{NBSP};"
    assert i18n.translations("ru").pgettext("punctuation", ":") == ":"
    assert i18n.translations("en").pgettext("punctuation", ":") == ":"


def test_french_strings_write_their_apostrophes_one_way():
    """The pages' and the mails' French use the straight apostrophe throughout (l'équipe),
    never the curly one (U+2019) beside it: a word must read and be found the same on
    every page."""
    mails = [
        line
        for path in sorted(LOCALE.parents[2].glob("services/*/templates/fr.toml"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert mails, "no French mail templates found"
    curly = [s for _, s in _strings("fr") if "\u2019" in s] + [s for s in mails if "\u2019" in s]
    assert curly == []
