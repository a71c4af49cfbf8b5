"""An auditor changes nothing: every write route of the gateway's route table (each
declared POST, PUT, PATCH and DELETE, not a sample) answers 403 to an auditor's session,
before it reads the body, and nothing the auditor did appears in any history. What stays
open to an auditor is its own login (logging out, two-factor authentication, its own
password, language and notifications) and the public routes anyone may call without a
session (logging in, a password reset, a guest's order, a processor's webhook)."""

from __future__ import annotations

import re
import uuid

from gateway.http import ROUTE_ROLES
from gateway.service import GatewayService
from tests.e2e.test_audit_history_kinds import _indexed
from tests.staff_api import history

# an auditor's own login and account: the only staff write routes open to it
OWN_LOGIN = {
    "PATCH /api/v1/staff/account",
    "POST /api/v1/auth/2fa/confirm",
    "POST /api/v1/auth/2fa/disable",
    "POST /api/v1/auth/2fa/enrol",
    "POST /api/v1/auth/logout",
    "POST /api/v1/staff/account/password",
}
_VALUE = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def _declared() -> dict[str, dict]:
    """Every route of the gateway: "METHOD /url" -> its options."""
    found = {}
    for name in dir(GatewayService):
        options = getattr(getattr(GatewayService, name), "route_options", None)
        if options is not None:
            method, url, kwargs = options
            found[f"{method} {url}"] = kwargs
    assert set(found) == set(ROUTE_ROLES)  # the route table is what the class declares
    return found


def _path(url: str) -> str:
    """The url with a value for each of its variables (an unknown object's id)."""

    def value(match: re.Match) -> str:
        converter, arguments = match.group(1), match.group(2)
        if converter == "uuid":
            return str(uuid.uuid4())
        if converter == "int":
            return "1"
        if converter == "any":
            return arguments.split(",")[0].strip()
        return "stripe"

    return _VALUE.sub(value, url)


def test_every_write_route_refuses_an_auditor(stack):
    routes = _declared()
    writes = sorted(spec for spec in routes if spec.split(" ")[0] not in ("GET", "HEAD"))
    public = {
        spec
        for spec in writes
        if routes[spec].get("roles") is None and not routes[spec].get("client")
    }
    refused_by_role = [spec for spec in writes if spec not in public and spec not in OWN_LOGIN]
    assert len(refused_by_role) >= 70, len(refused_by_role)  # the whole table, not a sample
    # the own-login routes are all an auditor's role opens among the staff write routes
    opened = {spec for spec in writes if "auditor" in (routes[spec].get("roles") or ())}
    assert opened == OWN_LOGIN, sorted(opened ^ OWN_LOGIN)

    auditor_member, auditor = stack.staff_member("auditor")
    me = stack.http("GET", "/api/v1/me", auditor).json()
    assert me["role"] == "auditor" and not me.get("two_factor_setup_required"), me
    path = f"staff/{auditor_member['id']}"
    before = stack.wait_until(lambda: _indexed(stack, path), what="the auditor's history")

    answers = {}
    for spec in refused_by_role:
        method, url = spec.split(" ", 1)
        r = stack.http(method, _path(url), auditor, json={})
        answers[spec] = (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else "")
    wrong = {spec: answer for spec, answer in answers.items() if answer != (403, "forbidden")}
    assert not wrong, wrong

    # the session still works (no route ended it), and the auditor did nothing: its
    # history (its account's events and everything it did) is what it was
    assert stack.http("GET", "/api/v1/me", auditor).status_code == 200
    after = history(stack, path)
    assert [(i["service"], i["position"]) for i in after] == [
        (i["service"], i["position"]) for i in before
    ]
