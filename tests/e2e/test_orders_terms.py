"""Per-project renewal and dunning days: two projects, one due date, different days."""

import uuid
from datetime import date, timedelta

from services.infra.clock import FileClock
from tests.e2e.test_orders import (
    _move_clock_to,
    _paid_order,
    _renewals,
    _scheduler_runs,
    _service,
    _two_more_runs,
)


def _project(stack, **terms):
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={
            "name": f"Brand {uuid.uuid4().hex[:6]}",
            "sender_email": "billing@brand.example",
            **terms,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _terms_in_orders(stack, project_id):
    with stack.db("orders") as conn:
        row = conn.execute(
            "SELECT renew_days_before, suspend_after_days, terminate_after_days"
            " FROM project_terms WHERE project_id = %s",
            (project_id,),
        ).fetchone()
    return row


def _active_service_in(stack, project_id):
    _, order = _paid_order(stack, "terms", project_id=project_id)
    service = stack.wait_until(
        lambda: (s := _service(stack, order["customer_id"])) and s["status"] == "active" and s,
        what="active",
    )
    assert service["project_id"] == project_id
    return order["customer_id"], date.fromisoformat(service["next_due_date"])


def test_staff_set_and_change_a_projects_days(stack):
    project = _project(stack, renew_days_before=14)
    assert project["renew_days_before"] == 14 and project["suspend_after_days"] is None
    base = f"/api/v1/staff/projects/{project['id']}"
    r = stack.http("PATCH", base, stack.admin_token, json={"suspend_after_days": 3})
    assert r.status_code == 200, r.text
    assert (r.json()["renew_days_before"], r.json()["suspend_after_days"]) == (14, 3)
    # termination before suspension, negative days, a stranger's project: refused
    r = stack.http("PATCH", base, stack.admin_token, json={"terminate_after_days": 2})
    assert r.status_code == 400 and "terminate_after_days" in r.json()["error"]["fields"]
    r = stack.http("PATCH", base, stack.admin_token, json={"renew_days_before": -1})
    assert r.status_code == 400 and "renew_days_before" in r.json()["error"]["fields"]
    r = stack.http("PATCH", f"/api/v1/staff/projects/{uuid.uuid4()}", stack.admin_token, json={})
    assert r.status_code == 404
    _, support = stack.staff_member("support")
    assert stack.http("PATCH", base, support, json={"renew_days_before": 1}).status_code == 403
    # the orders service keeps its own copy of what was published
    stack.wait_until(
        lambda: _terms_in_orders(stack, project["id"]) == (14, 3, None), what="the copy"
    )
    r = stack.http("PATCH", base, stack.admin_token, json={"renew_days_before": None})
    assert r.status_code == 200 and r.json()["renew_days_before"] is None
    stack.wait_until(
        lambda: _terms_in_orders(stack, project["id"]) == (None, 3, None), what="the change"
    )


def test_two_projects_renew_and_suspend_on_their_own_days(stack):
    early = _project(stack, renew_days_before=10, suspend_after_days=2, terminate_after_days=4)
    late = _project(stack)  # the defaults (7, 5, 30) at first; then its own days
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/projects/{late['id']}",
        stack.admin_token,
        json={"renew_days_before": 3, "suspend_after_days": 8, "terminate_after_days": 20},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: _terms_in_orders(stack, late["id"]) == (3, 8, 20), what="the late terms"
    )
    stack.wait_until(lambda: _terms_in_orders(stack, early["id"]), what="the early terms")
    a, due = _active_service_in(stack, early["id"])
    b, due_b = _active_service_in(stack, late["id"])
    assert due == due_b

    def status(customer_id):
        return _service(stack, customer_id)["status"]

    try:
        _move_clock_to(stack, due - timedelta(days=9))  # within 10 days, not within 3 (or 7)
        runs = _scheduler_runs(stack)
        stack.wait_until(lambda: _renewals(stack, a), what="the early renewal")
        _two_more_runs(stack, runs)  # a whole run on this day left b alone
        stack.wait_projected("billing")
        assert _renewals(stack, b) == []
        _move_clock_to(stack, due - timedelta(days=3))
        stack.wait_until(lambda: _renewals(stack, b), what="the late renewal")
        assert len(_renewals(stack, a)) == 1

        _move_clock_to(stack, due + timedelta(days=3))  # 3 days unpaid: more than 2, not 8
        runs = _scheduler_runs(stack)
        stack.wait_until(lambda: status(a) == "suspended", what="early suspended")
        _two_more_runs(stack, runs)
        stack.wait_projected("orders")
        assert status(b) == "active"
        _move_clock_to(stack, due + timedelta(days=5))  # more than 4: terminated
        stack.wait_until(lambda: status(a) == "terminated", what="early terminated")
        assert status(b) == "active"
        _move_clock_to(stack, due + timedelta(days=9))  # more than 8
        runs = _scheduler_runs(stack)
        stack.wait_until(lambda: status(b) == "suspended", what="late suspended")
        _two_more_runs(stack, runs)
        stack.wait_projected("orders")
        assert status(b) == "suspended"  # not terminated before 20 days
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
