"""The affiliate program for clients: `GET /api/v1/client/affiliate`.

The customers service keeps each customer's referral code and whom it referred (number
and registration date only); billing keeps the commissions (its `commissions` list of the
referrer). `affiliate_of` is what the route and the /affiliate page both show.
"""

from __future__ import annotations

from gateway.api.common import Page
from gateway.http import Call, route
from gateway.schemas import AffiliateAnswer
from services.infra.settings import settings

# the path of a referral link: /r/<code> (a page: it remembers the code, then the order form)
REFERRAL_PATH = "/r/"


def referral_link(code: str) -> str:
    return settings().public_url.rstrip("/") + REFERRAL_PATH + code


def affiliate_of(
    services, customer_id: str, referred_page: int, commissions_page: int, page_size: int
) -> dict:
    """The customer's code and link, the customers it referred (a page of them) and its
    commissions (a page of them, newest first), each with the referred customer's
    number instead of any id of another customer's."""
    commissions = services.billing.list(
        "commissions", customer_id, None, commissions_page, page_size
    )
    referred_ids = sorted({c["referred_id"] for c in commissions["items"]})
    own = services.customers.affiliate(customer_id, referred_page, page_size, referred_ids)
    numbers = own["numbers"]
    return {
        "code": own["code"],
        "link": referral_link(own["code"]),
        "referred": own["referred"],
        "commissions": dict(
            commissions,
            items=[
                {
                    "id": c["id"],
                    "referred_number": numbers.get(c["referred_id"]),
                    "program": c["program"],
                    "amount": c["amount"],
                    "status": c["status"],
                    "earned_at": c["earned_at"],
                    "matures_at": c["matures_at"],
                }
                for c in commissions["items"]
            ],
        ),
    }


class AffiliateRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    @route(
        "GET",
        "/api/v1/client/affiliate",
        response=AffiliateAnswer,
        query=Page,
        client=("billing",),
        tags=("client",),
        summary=(
            "your referral code and link, the customers you referred (number and registration"
            " date) and your commissions with their maturity; `page`, `page_size` page both"
        ),
    )
    def client_affiliate(self, call: Call):
        q = call.query
        return affiliate_of(call.services, call.customer_id, q["page"], q["page"], q["page_size"])
