"""Notification templates: the shipped ones (templates/<language>.toml) and staff's edits.

Templates are Jinja2 run in its `SandboxedEnvironment`: a template sees only the plain
values it is given (strings, numbers, dicts of them) and the `money` filter, and the
sandbox refuses attribute access to Python internals, so an edited template cannot
reach the server. Rendering is plain text: nothing is HTML-escaped.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

from babel.numbers import format_currency, get_currency_precision
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from contracts.mail import TEMPLATE_KINDS, TEMPLATE_LANGUAGES, TICKET_TEMPLATE_KINDS

# which templates there are is part of the contract (the gateway's routes name them)
LANGUAGES = TEMPLATE_LANGUAGES
KINDS = TEMPLATE_KINDS
# Kinds whose subject must carry the ticket's [#tracking] so that replies find the ticket.
TICKET_KINDS = TICKET_TEMPLATE_KINDS
MAX_SUBJECT = 250
MAX_BODY = 20000

_DIR = Path(__file__).resolve().parent / "templates"

# What a staff member's edited template is tried on before it is accepted.
SAMPLE_CONTEXT = {
    "customer_name": "Jane Doe",
    "company": "Hosting",
    "language": "en",
    "number": "INV-2026-000001",
    "invoice_number": "INV-2026-000001",
    "total": 1999,
    "amount": 1999,
    "currency": "EUR",
    "due_date": "2026-12-01",
    "method": "card",
    "service_id": "00000000-0000-0000-0000-000000000000",
    "reason": "overdue invoice",
    "username": "jane",
    "password": "sample-password",
    "tracking_number": "123456",
    "ticket_subject": "Sample subject",
    "message": "Sample message.",
    "author": "Support",
    "reset_url": "https://example.com/reset-password",
    "token": "sample-token",
    "expires_minutes": 60,
}


class TemplateInvalid(ValueError):
    """An edited template does not compile or does not render; `field` names the part."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Template:
    kind: str
    language: str
    subject: str
    body: str


@cache
def shipped() -> dict[tuple[str, str], Template]:
    """The templates that come with hostledger, by (kind, language)."""
    out = {}
    for language in LANGUAGES:
        data = tomllib.loads((_DIR / f"{language}.toml").read_text(encoding="utf-8"))
        for kind in KINDS:
            entry = data[kind]
            out[kind, language] = Template(kind, language, entry["subject"], entry["body"])
    return out


def _money(amount, currency: str, language: str = "en") -> str:
    digits = get_currency_precision(currency)
    return format_currency(Decimal(int(amount)).scaleb(-digits), currency, locale=language)


@cache
def _environment(language: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True
    )
    env.filters["money"] = lambda amount, currency: _money(amount, currency, language)
    return env


@lru_cache(maxsize=256)
def _compiled(language: str, source: str):
    return _environment(language).from_string(source)


def render(template: Template, context: dict) -> tuple[str, str]:
    """(subject, body) for `context`; raises jinja2's TemplateError (SecurityError among them)."""
    values = dict(context, language=template.language)
    subject = _compiled(template.language, template.subject).render(values)
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    body = _compiled(template.language, template.body).render(values).strip("\n") + "\n"
    return subject, body


def check(kind: str, language: str, subject: str, body: str) -> Template:
    """A staff member's edit, accepted only when it compiles and renders on sample values."""
    if kind not in KINDS:
        raise TemplateInvalid("kind", f"No template kind {kind!r}.")
    if language not in LANGUAGES:
        raise TemplateInvalid("language", f"No language {language!r}.")
    if kind in TICKET_KINDS and "tracking_number" not in subject:
        raise TemplateInvalid(
            "subject", "A ticket mail's subject must carry [#{{ tracking_number }}]."
        )
    template = Template(kind, language, subject, body)
    env = _environment(language)
    for field, source in (("subject", subject), ("body", body)):
        try:
            env.parse(source)
        except TemplateError as exc:
            raise TemplateInvalid(field, f"The template does not compile: {exc}") from None
    try:
        render(template, SAMPLE_CONTEXT)
    except TemplateError as exc:
        raise TemplateInvalid("body", f"The template does not render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a staff template is a 400
        raise TemplateInvalid("body", f"The template does not render: {exc}") from None
    return template
