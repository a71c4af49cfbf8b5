"""The staff panel's first page: what waits for someone, each count linking to its list.

Tickets waiting for an answer per department, unpaid and overdue invoices, services to
set up by hand, held mail, parked events and failed refunds; each shown to the roles
whose route may read its list (the same `can` rule as every page). The services are
asked side by side, each count one small query (a read model's count); the helpdesk
answers every department's waiting tickets in one call.
"""

from __future__ import annotations

from nameko.exceptions import MethodNotFound

from gateway.web.pages import STAFF_HOME_URL, PageCall, page

# ticket statuses that wait for staff: new ones, and those the client answered
WAITING = ("open", "customer_reply")
PARKED_SERVICES = ("customers", "billing", "orders", "helpdesk", "mailgateway")

TICKETS = "GET /api/v1/staff/tickets"
INVOICES = "GET /api/v1/staff/<any(invoices,payments,expenses,commissions):name>"
REFUNDS = "GET /api/v1/staff/refunds"
PROVISIONING = "GET /api/v1/staff/provisioning"
HELD = "GET /api/v1/staff/mail/held"
PARKED = "GET /api/v1/staff/parked-events"


class StaffDashboardPages:
    """Mixed into GatewayService."""

    @page("GET", STAFF_HOME_URL, staff=True)
    def web_staff_dashboard(self, call: PageCall):
        s = call.services
        pending: dict = {}
        if call.can(TICKETS):
            pending["departments"] = s.helpdesk.departments.call_async()
            pending["waiting"] = s.helpdesk.ticket_counts.call_async(list(WAITING))
        if call.can(INVOICES):
            pending["unpaid"] = s.billing.list.call_async("invoices", None, "unpaid", 1, 1)
            pending["overdue"] = s.billing.list.call_async("invoices", None, None, 1, 1, True)
        if call.can(REFUNDS):
            pending["refunds"] = s.billing.list.call_async("refunds", None, "failed", 1, 1)
        if call.can(PROVISIONING):
            pending["provisioning"] = s.orders.provisioning_tasks.call_async(1, 1)
        if call.can(HELD):
            pending["held"] = s.mailgateway.held_mail.call_async(1, 1)
        if call.can(PARKED):
            for name in PARKED_SERVICES:
                pending[f"parked:{name}"] = getattr(s, name).parked_events.call_async()
        answers = {}
        for name, reply in pending.items():
            try:
                answers[name] = reply.result()
            except MethodNotFound:  # a helpdesk of an earlier release, during an upgrade
                answers[name] = _waiting_one_by_one(s, answers["departments"])

        queues = None
        if "departments" in answers:
            totals = {(c["department_id"], c["status"]): c["count"] for c in answers["waiting"]}
            queues = [
                {
                    "department": d,
                    "counts": {status: totals.get((d["id"], status), 0) for status in WAITING},
                }
                for d in answers["departments"]
            ]
        parked = None
        if call.can(PARKED):
            parked = sum(len(answers[f"parked:{name}"]) for name in PARKED_SERVICES)

        def total(name):
            return answers[name]["total"] if name in answers else None

        return call.render(
            "staff/dashboard.html",
            queues=queues,
            unpaid=total("unpaid"),
            overdue=total("overdue"),
            failed_refunds=total("refunds"),
            provisioning=total("provisioning"),
            held=total("held"),
            parked=parked,
        )


def _waiting_one_by_one(s, departments: list) -> list[dict]:
    """`helpdesk.ticket_counts(WAITING)`'s answer from a helpdesk that has no such call:
    a list's total for each department and status."""
    replies = {
        (d["id"], status): s.helpdesk.staff_tickets.call_async(
            {"department_id": d["id"], "status": status}, 1, 1
        )
        for d in departments
        for status in WAITING
    }
    return [
        {"department_id": key[0], "status": key[1], "count": reply.result()["total"]}
        for key, reply in replies.items()
    ]
