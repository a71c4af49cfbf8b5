"""Notification templates: the shipped ones (templates/<language>.toml) and staff's edits.

Templates are Jinja2 run in its `SandboxedEnvironment`: a template sees only the plain
values it is given (strings, numbers, dicts of them) and the `money` filter, and the
sandbox refuses attribute access to Python internals, so an edited template cannot
reach the server. Rendering is plain text: nothing is HTML-escaped.

A template staff edited renders under a budget: in a child process with at most
RENDER_SECONDS of time and RENDER_MEMORY more memory, and at most MAX_RENDERED
characters out. A template that loops a million times or renders megabytes fails
(RenderBudgetExceeded, a TemplateError): refused when saved, a failed notification
when sent, and never a stalled or swollen mail gateway.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

from babel.numbers import format_currency, get_currency_precision
from eventlet.patcher import original
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
# the budget of an edited template's rendering
RENDER_SECONDS = 2.0
RENDER_MEMORY = 256 * 1024 * 1024
MAX_RENDERED = 256 * 1024

_DIR = Path(__file__).resolve().parent / "templates"

# The forked child writes its answer with the unpatched os: eventlet's green os.write waits
# on the hub first, and the hub in the child would run the parent's other green threads
# there, writing on the database and broker sockets the child shares with the parent.
_raw_os = original("os")

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
    "deadline": "2026-12-01 18:00 UTC",
    "reset_url": "https://example.com/reset-password",
    "token": "sample-token",
    "expires_minutes": 60,
    "confirm_url": "https://example.com/settings/email/confirm",
    "expires_hours": 24,
    "new_email": "jane@example.com",
}


class RenderBudgetExceeded(TemplateError):
    """An edited template took too long, too much memory, or rendered too much."""


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
    edited: bool = False  # staff's own text: rendered under the budget


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
    """(subject, body) for `context`; raises jinja2's TemplateError (SecurityError and
    RenderBudgetExceeded among them)."""
    if template.edited and hasattr(os, "fork"):
        return _render_in_child(template, context)
    return _render(template, context)


def _render(template: Template, context: dict) -> tuple[str, str]:
    values = dict(context, language=template.language)
    subject = _compiled(template.language, template.subject).render(values)
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    body = _compiled(template.language, template.body).render(values).strip("\n") + "\n"
    return subject, body


def _render_in_child(template: Template, context: dict) -> tuple[str, str]:
    """Render in a forked child held to the budget; the parent waits cooperatively (the
    mail gateway runs under eventlet) and kills the child when the time is up."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, answer as JSON on the pipe, leave at once
        status = 0
        try:
            os.close(read_end)
            _limit_child()
            subject, body = _render(template, context)
            if len(subject) + len(body) > MAX_RENDERED:
                answer = {"error": f"The mail would be longer than {MAX_RENDERED} characters."}
            else:
                answer = {"subject": subject, "body": body}
        except MemoryError:
            answer = {"error": f"Rendering needed more than {RENDER_MEMORY >> 20} MiB."}
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            answer = {"error": f"{type(exc).__name__}: {exc}"[:500], "template_error": True}
        try:
            data = json.dumps(answer).encode()
            while data:
                data = data[_raw_os.write(write_end, data) :]
        except BaseException:  # noqa: BLE001
            status = 1
        os._exit(status)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + RENDER_SECONDS
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                raise RenderBudgetExceeded(
                    f"Rendering took longer than {RENDER_SECONDS:g} seconds."
                )
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise RenderBudgetExceeded("Rendering stopped before it finished.") from None
    if answer.get("template_error"):
        raise TemplateError(answer["error"])
    if "error" in answer:
        raise RenderBudgetExceeded(answer["error"])
    return answer["subject"], answer["body"]


def _limit_child() -> None:
    try:
        import resource

        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + RENDER_MEMORY, used + RENDER_MEMORY))
        seconds = int(RENDER_SECONDS) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    except (ImportError, OSError, ValueError):
        pass  # no such limits here: the parent's time limit still holds


def check(kind: str, language: str, subject: str, body: str) -> Template:
    """A staff member's edit, accepted only when it compiles and renders on sample values."""
    return tried(kind, language, subject, body)[0]


def tried(kind: str, language: str, subject: str, body: str) -> tuple[Template, tuple[str, str]]:
    """`check`, and what the edit gave on the sample values (subject, body)."""
    if kind not in KINDS:
        raise TemplateInvalid("kind", f"No template kind {kind!r}.")
    if language not in LANGUAGES:
        raise TemplateInvalid("language", f"No language {language!r}.")
    if kind in TICKET_KINDS and "tracking_number" not in subject:
        raise TemplateInvalid(
            "subject", "A ticket mail's subject must carry [#{{ tracking_number }}]."
        )
    template = Template(kind, language, subject, body, edited=True)
    env = _environment(language)
    for field, source in (("subject", subject), ("body", body)):
        try:
            env.parse(source)
        except TemplateError as exc:
            raise TemplateInvalid(field, f"The template does not compile: {exc}") from None
    try:
        rendered = render(template, SAMPLE_CONTEXT)
    except TemplateError as exc:
        raise TemplateInvalid("body", f"The template does not render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a staff template is a 400
        raise TemplateInvalid("body", f"The template does not render: {exc}") from None
    return template, rendered
