"""The staff panel at `/staff/`: one mixin per topic, composed here for GatewayService.

Every page is declared with `staff=`: True for any staff member, or the API route
(`"METHOD /api/v1/staff/..."`) whose roles it allows, so a page and its route always let
the same roles in; templates show an action only when `can("METHOD /api/v1/...")`.
Lists take the customer filter (`call.customer_filter()`): `?customer=<id>` on any staff
page sets it, the bar at the top names that customer and clears it.
"""

from __future__ import annotations

from gateway.web.staff.accounts import StaffAccountPages
from gateway.web.staff.auth import StaffAuthPages
from gateway.web.staff.billing import StaffBillingPages
from gateway.web.staff.customers import StaffCustomerPages
from gateway.web.staff.dashboard import StaffDashboardPages
from gateway.web.staff.directory import StaffDirectoryPages
from gateway.web.staff.helpdesk import StaffHelpdeskPages
from gateway.web.staff.history import StaffHistoryPages
from gateway.web.staff.mail import StaffMailPages
from gateway.web.staff.messages import StaffMessagePages
from gateway.web.staff.products import StaffProductPages
from gateway.web.staff.promos import StaffPromoPages
from gateway.web.staff.services import StaffServicePages
from gateway.web.staff.system import StaffSystemPages


class StaffPages(
    StaffAuthPages,
    StaffBillingPages,
    StaffCustomerPages,
    StaffDashboardPages,
    StaffHelpdeskPages,
    StaffHistoryPages,
    StaffMailPages,
    StaffMessagePages,
    StaffAccountPages,
    StaffSystemPages,
    StaffServicePages,
    StaffProductPages,
    StaffDirectoryPages,
    StaffPromoPages,
):
    """Every page of the staff panel (the templates are in templates/staff/)."""
