"""The client's dashboard: balance, services and their next due dates, unpaid invoices,
open tickets. Each panel needs its permission (`billing`, `services`, `support`), as
its API route does; a client's user sees only the panels it may.
"""

from __future__ import annotations

from gateway.web.pages import HOME_URL, PageCall, page
from services.infra import clock

# rows per panel; the panel says how many there are in all
ROWS = 5
# services a client is still concerned with, in the order the panel shows them
LIVE_SERVICES = ("suspended", "active", "pending")


class DashboardPages:
    """Mixed into GatewayService."""

    @page("GET", HOME_URL, client=True)
    def web_dashboard(self, call: PageCall):
        customer_id, s = call.customer_id, call.services
        # the services answer at once, side by side (nameko RPC replies are awaited below)
        pending = {}
        if call.may("billing"):
            pending["account"] = s.billing.get_account.call_async(
                customer_id, call.customer["currency"], None, 1, 1
            )
            pending["invoices"] = s.billing.list.call_async(
                "invoices", customer_id, "unpaid", 1, ROWS
            )
        if call.may("services"):
            for status in LIVE_SERVICES:
                pending[status] = s.orders.list.call_async("services", customer_id, 1, ROWS, status)
        if call.may("support"):
            pending["tickets"] = s.helpdesk.client_tickets.call_async(customer_id, "open", 1, ROWS)
        answers = {name: reply.result() for name, reply in pending.items()}
        services = None
        if call.may("services"):
            services = {"items": [], "total": 0}
            for status in LIVE_SERVICES:
                services["items"] += answers[status]["items"]
                services["total"] += answers[status]["total"]
            services["items"] = services["items"][:ROWS]
        return call.render(
            "client/dashboard.html",
            account=answers.get("account"),
            invoices=answers.get("invoices"),
            services=services,
            tickets=answers.get("tickets"),
            today=clock.now().date().isoformat(),
        )
