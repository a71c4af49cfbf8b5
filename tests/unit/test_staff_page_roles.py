"""The staff panel lets in exactly whom the API lets in: every page under /staff/ but
the doors (logging in, a forgotten password, coming back from a client's area) is for
staff, and names a declared route for its roles; every `can("...")` in a template and
every section of the menu names a declared route too (a typo would fail at a request)."""

import re
from pathlib import Path

from gateway.http import ROUTE_ROLES
from gateway.service import GatewayService
from gateway.web.pages import Page

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "web" / "templates"
# the pages before a staff session exists, or that end one
DOORS = {
    "/staff",
    "/staff/login",
    "/staff/login/code",
    "/staff/logout",
    "/staff/forgot-password",
    "/staff/reset-password",
    "/staff/return",
}


def _pages():
    for name in dir(GatewayService):
        for entry in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            if isinstance(entry, Page):
                yield name, entry


def test_every_staff_page_is_for_staff_and_names_a_declared_route():
    staff_pages = [(n, e) for n, e in _pages() if e.url.startswith("/staff")]
    assert staff_pages
    for name, entry in staff_pages:
        if entry.url in DOORS:
            assert not entry.staff, f"{name}: {entry.url} must open without a staff session"
            continue
        assert entry.staff, f"{name}: {entry.method} {entry.url} does not ask for staff"
        if isinstance(entry.staff, str):
            assert entry.staff in ROUTE_ROLES, f"{name}: no route {entry.staff!r}"
            assert ROUTE_ROLES[entry.staff], f"{name}: {entry.staff!r} is no staff route"


def test_every_role_check_in_the_templates_names_a_declared_route():
    # the routes exist once GatewayService is imported (above)
    assert ROUTE_ROLES
    named = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        named += [(template.name, spec) for spec in re.findall(r"can\(['\"]([^'\"]+)['\"]\)", text)]
        if template.name == "_layout.html" and template.parent.name == "staff":
            named += [
                (template.name, spec) for spec in re.findall(r'"((?:GET|POST) /api/[^"]+)"', text)
            ]
    assert named
    for where, spec in named:
        assert spec in ROUTE_ROLES, f"{where}: can({spec!r}) names no route"
