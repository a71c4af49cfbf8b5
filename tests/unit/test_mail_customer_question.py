"""The mail gateway's question about a notice's customer: one RPC to the customers service,
or the two of before while a customers service of an earlier release runs (an upgrade)."""

from __future__ import annotations

import pytest
from nameko.exceptions import MethodNotFound

from contracts.errors import NotFound
from services.mailgateway.service import MailGatewayService

CUSTOMER = {"id": "c1", "email": "ann@example.com", "language": "fr"}
SETTINGS = {"invoice_issued": False}


class _Customers:
    """The customers service's RPCs as the mail gateway's proxy calls them, each call
    noted; `release` "earlier" has no get_customer_and_notification_settings."""

    def __init__(self, release: str = "this", known: bool = True):
        self.release, self.known = release, known
        self.calls: list[str] = []

    def _answer(self, method: str, answer):
        self.calls.append(method)
        if not self.known:
            raise NotFound("No such customer.")
        return answer

    def get_customer_and_notification_settings(self, customer_id):
        if self.release == "earlier":
            self.calls.append("get_customer_and_notification_settings")
            raise MethodNotFound("get_customer_and_notification_settings")
        return self._answer(
            "get_customer_and_notification_settings",
            {"customer": CUSTOMER, "notification_settings": SETTINGS},
        )

    def get_customer(self, customer_id):
        return self._answer("get_customer", CUSTOMER)

    def get_notification_settings(self, customer_id):
        return self._answer("get_notification_settings", SETTINGS)


class _Service:
    def __init__(self, customers):
        self.customers = customers

    ask = MailGatewayService._ask_customer


def test_one_question_answers_the_customer_and_its_settings():
    customers = _Customers()
    assert _Service(customers).ask("c1") == (CUSTOMER, SETTINGS)
    assert customers.calls == ["get_customer_and_notification_settings"]


@pytest.mark.parametrize("release", ["this", "earlier"])
def test_a_customer_gone_is_none_and_none(release):
    customers = _Customers(release, known=False)
    assert _Service(customers).ask("c1") == (None, None)


def test_a_customers_service_of_an_earlier_release_is_asked_the_two_questions():
    customers = _Customers("earlier")
    assert _Service(customers).ask("c1") == (CUSTOMER, SETTINGS)
    assert customers.calls == [
        "get_customer_and_notification_settings",
        "get_customer",
        "get_notification_settings",
    ]
