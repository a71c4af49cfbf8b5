"""Logging in to and out of the staff panel, a forgotten password, and entering a
client's area as that client and coming back.

The same steps as the client area's (gateway.web.client.auth) under `/staff/`, for
staff accounts only. Entering a client's area swaps the browser's session cookie for a
client session bound to the staff session (`customers.impersonate`): it never outlives
the staff session and ends with it; "Return to the staff panel" ends it and gives the
staff session back (`customers.end_impersonation`).
"""

from __future__ import annotations

from contracts.errors import Conflict, Unauthorized
from gateway.web.client import auth
from gateway.web.client.auth import STAFF
from gateway.web.pages import HOME_URL, STAFF_LOGIN_URL, PageCall, page

IMPERSONATE = "POST /api/v1/staff/customers/<uuid:customer_id>/impersonate"


class StaffAuthPages:
    """Mixed into GatewayService."""

    @page("GET", "/staff")
    def web_staff_root(self, call: PageCall):
        return call.redirect(STAFF.home)

    @page("GET", STAFF_LOGIN_URL)
    def web_staff_login_page(self, call: PageCall):
        return auth.login_page(call, STAFF)

    @page("POST", STAFF_LOGIN_URL)
    def web_staff_login(self, call: PageCall):
        return auth.login(call, STAFF)

    @page("GET", STAFF.code)
    def web_staff_login_code_page(self, call: PageCall):
        return auth.login_code_page(call, STAFF)

    @page("POST", STAFF.code)
    def web_staff_login_code(self, call: PageCall):
        return auth.login_code(call, STAFF)

    @page("POST", "/staff/logout")
    def web_staff_logout(self, call: PageCall):
        return auth.logout(call, STAFF)

    @page("GET", "/staff/forgot-password")
    def web_staff_forgot_password_page(self, call: PageCall):
        return auth.forgot_password_page(call, STAFF)

    @page("POST", "/staff/forgot-password")
    def web_staff_forgot_password(self, call: PageCall):
        return auth.forgot_password(call, STAFF)

    @page("GET", "/staff/reset-password")
    def web_staff_reset_password_page(self, call: PageCall):
        return auth.reset_password_page(call, STAFF)

    @page("POST", "/staff/reset-password")
    def web_staff_reset_password(self, call: PageCall):
        return auth.reset_password(call, STAFF)

    # -- the client's area, as the client ------------------------------------------------

    @page("POST", "/staff/customers/<uuid:customer_id>/impersonate", staff=IMPERSONATE)
    def web_staff_impersonate(self, call: PageCall):
        customer_id = str(call.path["customer_id"])
        session = call.services.customers.impersonate(call.staff_id, customer_id, call.token)
        call.start_session(session["token"])
        return call.redirect(HOME_URL)

    @page("POST", "/staff/return")
    def web_staff_return(self, call: PageCall):
        """From a client's area (the banner's button) back to the staff panel, at that
        customer's card."""
        principal = call.principal or {}
        if call.token is None or not principal.get("impersonator"):
            return call.redirect(STAFF.home if principal.get("kind") == "staff" else STAFF.login)
        customer_id = principal.get("customer_id")
        try:
            back = call.services.customers.end_impersonation(call.token)
        except (Unauthorized, Conflict):
            call.end_session()
            return call.redirect(STAFF.login)
        call.start_session(back["token"])
        return call.redirect(f"/staff/customers/{customer_id}" if customer_id else STAFF.home)
