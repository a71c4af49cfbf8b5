"""The affiliate program in the client area: /affiliate (the referral link and code, the
customers referred, the commissions), and /r/<code>, where a referral link leads.

/affiliate shows what `GET /api/v1/client/affiliate` answers (`affiliate_of`), with the
permission `billing`. /r/<code> remembers a known code for REFERRAL_DAYS in the cookie
`hostledger_referral` and goes on to the public order form (/order/new), which sends it
as `customer.referral_code` of the order: `referral_code_of(request)` reads it there.
"""

from __future__ import annotations

import re

from contracts.errors import ValidationFailed
from gateway.api.affiliate import affiliate_of
from gateway.web.pages import PageCall, page, served_over_https

REFERRAL_COOKIE = "hostledger_referral"
REFERRAL_DAYS = 30
ORDER_FORM = "/order/new"
PAGE_SIZE = 20
_CODE = re.compile(r"^[A-Za-z0-9-]{4,32}$")


def referral_code_of(request) -> str | None:
    """The referral code a referral link left in this browser, if any (the order form
    sends it as `customer.referral_code`; the customers service checks it)."""
    code = request.cookies.get(REFERRAL_COOKIE) or ""
    return code if _CODE.match(code) else None


def _page_number(call: PageCall, name: str) -> int:
    try:
        number = int(call.request.args.get(name, "1"))
    except ValueError:
        return 1
    return number if 1 <= number <= 10_000 else 1


class AffiliatePages:
    """Mixed into GatewayService."""

    @page("GET", "/affiliate", client=True, permissions=("billing",))
    def web_affiliate(self, call: PageCall):
        referred_page = _page_number(call, "referred_page")
        commissions_page = _page_number(call, "commissions_page")
        summary = affiliate_of(
            call.services, call.customer_id, referred_page, commissions_page, PAGE_SIZE
        )
        return call.render(
            "client/affiliate.html",
            affiliate=summary,
            referred_page=referred_page,
            commissions_page=commissions_page,
            days=REFERRAL_DAYS,
        )

    @page("GET", "/r/<code>")
    def web_referral_link(self, call: PageCall):
        """A referral link: a known code is remembered, and the order form opens either way."""
        code = str(call.path.get("code", "")).strip().upper()
        known = False
        if _CODE.match(code):
            try:
                call.services.customers.resolve_referral_code(code)
                known = True
            except ValidationFailed:
                pass
        response = call.redirect(ORDER_FORM)
        if known:
            response.set_cookie(
                REFERRAL_COOKIE,
                code,
                max_age=REFERRAL_DAYS * 24 * 3600,
                path="/",
                secure=served_over_https(),
                httponly=True,
                samesite="Lax",
            )
        return response
