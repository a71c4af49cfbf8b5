"""Staff change tax rules and affiliate programs: a rule's rate, name and validity (ended
by setting `valid_to`), a program's percentage and whether it is active; each change is
recorded with who made it, and only the roles of each route may make it."""

import json
import uuid

from services.billing.domain import TaxTable

TAX_TABLE = TaxTable.ID
FUTURE = "2099-01-01T00:00:00Z"  # the rules made here never apply to other tests' invoices


def _rule(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/tax-rules",
        stack.admin_token,
        json={
            "name": f"VAT {uuid.uuid4().hex[:6]}",
            "country": "LI",
            "rate": "8.1",
            "inclusive": False,
            "valid_from": FUTURE,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _listed_rule(stack, rule_id):
    r = stack.http("GET", "/api/v1/staff/tax-rules", stack.admin_token, params={"page_size": 200})
    return next(rule for rule in r.json()["items"] if rule["id"] == rule_id)


def test_staff_change_and_end_a_tax_rule(stack):
    rule = _rule(stack)
    member, billing = stack.staff_member("billing")
    path = f"/api/v1/staff/tax-rules/{rule['id']}"
    r = stack.http("PATCH", path, billing, json={"rate": "7.7", "name": "VAT reduced"})
    assert r.status_code == 200, r.text
    assert (r.json()["rate"], r.json()["name"], r.json()["country"]) == (
        "7.7000",
        "VAT reduced",
        "LI",
    )
    listed = _listed_rule(stack, rule["id"])
    assert (listed["rate"], listed["name"]) == ("7.7000", "VAT reduced")

    ended = stack.http("PATCH", path, billing, json={"valid_to": "2099-06-30T00:00:00Z"})
    assert ended.status_code == 200 and ended.json()["valid_to"] == "2099-06-30T00:00:00Z"
    assert _listed_rule(stack, rule["id"])["valid_to"] == "2099-06-30T00:00:00Z"
    backwards = stack.http("PATCH", path, billing, json={"valid_to": "2098-01-01T00:00:00Z"})
    assert backwards.status_code == 400 and "valid_to" in backwards.json()["error"]["fields"]
    refused = stack.http("PATCH", path, billing, json={"country": "DE"})
    assert refused.status_code == 400 and "country" in refused.json()["error"]["fields"]
    missing = stack.http("PATCH", f"/api/v1/staff/tax-rules/{uuid.uuid4()}", billing, json={})
    assert missing.status_code == 404
    _, support = stack.staff_member("support")
    assert stack.http("PATCH", path, support, json={"rate": "1"}).status_code == 403

    with stack.db("billing") as db:
        rows = db.execute(
            "SELECT state FROM billing_events WHERE originator_id = %s AND topic LIKE %s",
            (TAX_TABLE, "%TaxTable.RuleChanged"),
        ).fetchall()
    changes = [json.loads(bytes(state)) for (state,) in rows]
    mine = [c for c in changes if c["rule_id"] == rule["id"]]
    assert len(mine) == 2
    assert all(c["actor"] == {"kind": "staff", "id": member["id"]} for c in mine)


def test_admins_change_and_deactivate_an_affiliate_program(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/affiliate-programs",
        stack.admin_token,
        json={"name": f"Partners {uuid.uuid4().hex[:6]}", "percent": "10", "maturity_days": 30},
    )
    assert r.status_code == 201, r.text
    program = r.json()
    assert program["active"] is True
    path = f"/api/v1/staff/affiliate-programs/{program['id']}"
    _, billing = stack.staff_member("billing")
    assert stack.http("PATCH", path, billing, json={"active": False}).status_code == 403

    changed = stack.http(
        "PATCH", path, stack.admin_token, json={"percent": "12.5", "maturity_days": 14}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["percent"], changed.json()["maturity_days"]) == ("12.50", 14)
    off = stack.http("PATCH", path, stack.admin_token, json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    listed = stack.http(
        "GET", "/api/v1/staff/affiliate-programs", stack.admin_token, params={"page_size": 200}
    ).json()["items"]
    [mine] = [p for p in listed if p["id"] == program["id"]]
    assert (mine["active"], mine["name"], mine["percent"]) == (False, program["name"], "12.50")
    renamed = stack.http("PATCH", path, stack.admin_token, json={"name": "Other"})
    assert renamed.status_code == 400 and "name" in renamed.json()["error"]["fields"]
    missing = f"/api/v1/staff/affiliate-programs/{uuid.uuid4()}"
    assert stack.http("PATCH", missing, stack.admin_token, json={}).status_code == 404
