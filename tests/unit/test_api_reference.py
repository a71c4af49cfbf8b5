"""docs/api-reference.md is what the generator writes from the routes that exist now, and
the gateway's routes keep the rules the reference promises."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gateway import reference
from gateway.service import GatewayService

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api-reference.md"
REGENERATE = "python -m gateway.reference > docs/api-reference.md"


@pytest.fixture(scope="module")
def routes():
    return reference.routes()


@pytest.fixture(scope="module")
def document(routes):
    from gateway import openapi

    return openapi.build(routes)


def test_the_committed_reference_is_what_the_generator_writes_now(document):
    written = reference.markdown(document)
    assert REFERENCE.read_text(encoding="utf-8") == written, (
        f"docs/api-reference.md is out of date: run `{REGENERATE}`"
    )


def test_the_reference_has_a_row_for_every_operation_and_route(routes, document):
    text = reference.markdown(document)
    rows = [line for line in text.splitlines() if re.match(r"^\| [A-Z]+ \| `/", line)]
    operations = [(m, p) for p, ops in document["paths"].items() for m in ops]
    assert len(rows) == len(operations)
    for route in routes:
        shape = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", route.url)
        pattern = re.escape(shape).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[a-z_]+\}", r"[^/`]+", pattern)
        listed = re.compile(rf"^\| {route.method} \| `{pattern}` \|")
        assert any(listed.match(row) for row in rows), f"{route.method} {route.url} not listed"


def test_the_readme_links_the_reference():
    assert "docs/api-reference.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_a_route_whose_service_keeps_the_key_passes_it_on(routes):
    """`idempotent="service"`: the route hands the caller-bound key to the command."""
    kept = [r for r in routes if r.idempotent == "service"]
    assert kept
    for route in kept:
        source = inspect.getsource(getattr(GatewayService, route.method_name))
        assert "call.idempotency_key" in source, f"{route.method} {route.url} drops the key"
        assert 'headers.get("Idempotency-Key")' not in source


def test_only_the_gateway_core_reads_the_idempotency_key_header():
    for path in (ROOT / "gateway" / "api").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert 'Idempotency-Key")' not in text and "Idempotency-Key')" not in text, path


def test_the_gateway_takes_mail_template_names_from_the_contracts():
    for path in (ROOT / "gateway").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) services\.mailgateway", text, re.M), path
