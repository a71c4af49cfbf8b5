"""Through the gateway: the buyer an invoice names (the legal name, following staff's
corrections for the invoices issued after them only), no invoice for a deleted customer
(staff's, an order's, a renewal's, added funds), a deleted customer's invoices voided
from billing's own index even while the invoice list lacks one, and a void published as
InvoiceVoided, which cancels the pending services of the order it was for."""

import json
import uuid

import pytest

PASSWORD = "void client password 1"


def _eur(amount: int) -> dict:
    return {"amount": amount, "currency": "EUR"}


def _project(stack) -> dict:
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={
            "name": f"Voids {uuid.uuid4().hex[:6]}",
            "sender_email": "billing@voids.example",
        },
    )
    assert r.status_code == 201, r.text
    project = r.json()
    _billing_heard(stack, "ProjectCreated", project["id"])
    return project


def _billing_heard(stack, event_type: str, aggregate_id: str) -> None:
    """Wait until billing applied the customers service's last `event_type` of that id."""
    published = [
        e
        for e in stack.published("customers")
        if e["type"] == event_type and e["aggregate_id"] == aggregate_id
    ]
    position = published[-1]["position"]
    with stack.rpc() as rpc:
        stack.wait_until(
            lambda: rpc.billing.consumer_stats()["customers"]["position"] >= position,
            what=f"billing to apply {event_type}",
        )


def _customer(stack, **fields) -> dict:
    # a country no other test of the shared stack taxes, unless one is given
    customer = stack.register_customer(**{"country": "BE", "password": PASSWORD, **fields})
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", f"/api/v1/staff/customers/{customer['id']}/account", stack.admin_token
            ).status_code
            == 200
        ),
        what="the personal account",
    )
    return customer


def _issue(stack, customer_id: str, amount: int = 1000):
    return stack.http(
        "POST",
        "/api/v1/staff/invoices",
        stack.admin_token,
        json={
            "customer_id": customer_id,
            "lines": [{"description": "Hosting plan", "unit_price": _eur(amount)}],
        },
    )


def _invoice(stack, customer_id: str, amount: int = 1000) -> dict:
    r = _issue(stack, customer_id, amount)
    assert r.status_code == 201, r.text
    return r.json()


def _staff_invoice(stack, invoice_id: str) -> dict:
    r = stack.http("GET", f"/api/v1/staff/invoices/{invoice_id}", stack.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def _correct(stack, customer_id: str, **changes) -> None:
    r = stack.http(
        "PATCH", f"/api/v1/staff/customers/{customer_id}", stack.admin_token, json=changes
    )
    assert r.status_code == 200, r.text
    _billing_heard(stack, "CustomerUpdated", customer_id)


def _delete(stack, customer_id: str) -> None:
    r = stack.http(
        "DELETE", f"/api/v1/staff/customers/{customer_id}?confirm=true", stack.admin_token
    )
    assert r.status_code in (200, 204), r.text


def _published_billing(stack, event_type: str, **payload) -> list[dict]:
    return [
        e
        for e in stack.published("billing")
        if e["type"] == event_type and all(e["payload"].get(k) == v for k, v in payload.items())
    ]


def _parked(stack, event_type: str) -> list[dict]:
    r = stack.http(
        "GET", "/api/v1/staff/parked-events", stack.admin_token, params={"page_size": 200}
    )
    assert r.status_code == 200, r.text
    return [p for p in r.json()["items"] if p["type"] == event_type]


# -- the buyer ------------------------------------------------------------------------------


def test_the_buyer_is_the_legal_name_and_corrections_reach_only_later_invoices(stack):
    project = _project(stack)
    # the project's own tax rule for buyers in Luxembourg: a corrected country taxes the
    # invoices issued after the correction, not the ones before
    r = stack.http(
        "POST",
        "/api/v1/staff/tax-rules",
        stack.admin_token,
        json={
            "name": "TVA LU",
            "country": "LU",
            "project_id": project["id"],
            "rate": "17",
            "inclusive": False,
        },
    )
    assert r.status_code == 201, r.text
    customer = _customer(
        stack,
        kind="company",
        company_name="Legal Name SARL",
        contact_person="Jeanne Contact",
        project_id=project["id"],
    )
    # the display name staff give it in their lists is not the buyer's name
    _correct(stack, customer["id"], name="Shown In Lists")
    first = _invoice(stack, customer["id"])
    assert first["buyer"]["legal_name"] == "Legal Name SARL"
    assert "name" not in first["buyer"]
    assert first["buyer"]["contact_person"] == "Jeanne Contact"
    assert first["tax"] is None

    # staff correct what it registered with: the next invoice names the buyer so
    new_email = f"corrected-{uuid.uuid4().hex[:8]}@example.com"
    _correct(
        stack,
        customer["id"],
        email=new_email,
        country="LU",
        company_name="Right Name SA",
        contact_person="Paul Right",
        reason="the client sent the registration papers",
    )
    second = _invoice(stack, customer["id"])
    buyer = second["buyer"]
    assert (buyer["legal_name"], buyer["company_name"]) == ("Right Name SA", "Right Name SA")
    assert (buyer["email"], buyer["country"], buyer["contact_person"]) == (
        new_email,
        "LU",
        "Paul Right",
    )
    assert second["tax"]["name"] == "TVA LU" and second["total"] == _eur(1170)

    # an individual after all: named by its contact person, and by no company
    _correct(stack, customer["id"], kind="individual", reason="a person, not a firm")
    third = _invoice(stack, customer["id"])
    assert third["buyer"]["legal_name"] == "Paul Right"
    assert third["buyer"]["company_name"] is None and third["buyer"]["kind"] == "individual"

    # issued invoices keep the buyer they were issued to, paid or not
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": first["total"],
            "method": "bank_transfer",
            "reference": f"BUY-{uuid.uuid4().hex[:8]}",
            "invoice_id": first["id"],
        },
    )
    assert r.status_code == 201, r.text
    kept = _staff_invoice(stack, first["id"])
    assert kept["status"] == "paid" and kept["buyer"] == first["buyer"]
    assert _staff_invoice(stack, second["id"])["buyer"] == second["buyer"]
    token = stack.login(customer["username"], PASSWORD)
    mine = stack.http("GET", f"/api/v1/client/invoices/{first['id']}", token).json()
    assert mine["buyer"]["legal_name"] == "Legal Name SARL"
    pdf = stack.http("GET", f"/api/v1/staff/invoices/{third['id']}/pdf", stack.admin_token)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


# -- a deleted customer -----------------------------------------------------------------------


def test_a_deleted_customer_is_issued_no_invoice_and_no_number_is_taken(stack):
    project = _project(stack)
    customer = _customer(stack, project_id=project["id"])
    other = _customer(stack, project_id=project["id"])
    before = _invoice(stack, customer["id"])
    _delete(stack, customer["id"])

    # at once, whether billing heard of the deletion yet or not
    r = _issue(stack, customer["id"])
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict" and "deleted" in error["message"]
    assert list(error["fields"]) == ["customer_id"]
    with stack.rpc() as rpc:
        lines = [{"description": "Next month", "unit_price": _eur(500)}]
        for purpose in ("renewal", "order"):
            with pytest.raises(Exception) as refused:
                rpc.billing.issue_invoice(
                    {"customer_id": customer["id"], "lines": lines},
                    f"{purpose}:{uuid.uuid4()}",
                    purpose,
                )
            assert type(refused.value).__name__ == "Conflict", refused.value
        with pytest.raises(Exception) as refused:
            rpc.billing.add_funds_invoice(customer["id"], "EUR", {"amount": _eur(2500)}, None)
        assert type(refused.value).__name__ == "Conflict", refused.value
    # a customer that never was: 400 naming the field
    r = _issue(stack, str(uuid.uuid4()))
    assert r.status_code == 400 and "customer_id" in r.json()["error"]["fields"], r.text

    # nothing was issued, and the project's series went on from the last number
    after = _invoice(stack, other["id"])
    assert int(after["number"].split("-")[-1]) == int(before["number"].split("-")[-1]) + 1
    issued = _published_billing(stack, "InvoiceIssued", customer_id=customer["id"])
    assert [e["payload"]["invoice_id"] for e in issued] == [before["id"]]


def test_an_order_for_a_deleted_customer_is_refused_and_nothing_is_placed(stack):
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": {"en": "Void VPS"}, "prices": {"monthly": _eur(700)}},
    )
    assert product.status_code == 201, product.text
    customer = _customer(stack)
    _delete(stack, customer["id"])
    with stack.rpc() as rpc:
        with pytest.raises(Exception) as refused:
            rpc.orders.place_order(
                customer["id"],
                "EUR",
                {"items": [{"product_id": product.json()["id"], "billing_cycle": "monthly"}]},
            )
        assert type(refused.value).__name__ == "Conflict", refused.value
    placed = [
        e
        for e in stack.published("orders")
        if e["type"] == "OrderPlaced" and e["payload"].get("customer_id") == customer["id"]
    ]
    assert placed == []
    assert _published_billing(stack, "InvoiceIssued", customer_id=customer["id"]) == []


def test_an_invoice_the_list_lacks_is_voided_when_its_customer_is_deleted(stack):
    """Billing finds a deleted customer's invoices in its own index, not in the invoice
    list: one the list does not show (a projection skipped, a rebuild under way) is
    voided all the same."""
    customer = _customer(stack)
    paid = _invoice(stack, customer["id"], 400)
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": _eur(400),
            "method": "cash",
            "reference": f"DEL-{uuid.uuid4().hex[:8]}",
            "invoice_id": paid["id"],
        },
    )
    assert r.status_code == 201, r.text
    unlisted = _invoice(stack, customer["id"], 900)

    def listed():
        with stack.rpc() as rpc:
            return {i["id"] for i in rpc.billing.list("invoices", customer["id"])["items"]}

    stack.wait_until(lambda: listed() == {paid["id"], unlisted["id"]}, what="both listed")
    with stack.db("billing") as db:
        db.execute("DELETE FROM invoice_list WHERE invoice_id = %s", (uuid.UUID(unlisted["id"]),))
    assert listed() == {paid["id"]}

    _delete(stack, customer["id"])

    try:
        voided = stack.wait_until(
            lambda: (i := _staff_invoice(stack, unlisted["id"]))["status"] == "void" and i,
            what="the unlisted invoice voided",
        )
    finally:
        # the list is whole again, as its log says (the session ends by comparing them)
        with stack.rpc() as rpc:
            rpc.billing.rebuild_read_model("billing_lists")
    assert voided["void_reason"] == "customer deleted"
    assert voided["number"] == unlisted["number"]
    assert _staff_invoice(stack, paid["id"])["status"] == "paid"
    [event] = stack.wait_until(
        lambda: _published_billing(stack, "InvoiceVoided", invoice_id=unlisted["id"]),
        what="InvoiceVoided published",
    )
    assert event["payload"]["reason"] == "customer deleted"
    assert event["payload"]["customer_id"] == customer["id"]


# -- a void is published -----------------------------------------------------------------------


def _order(stack) -> dict:
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": {"en": "Voided VPS"}, "prices": {"monthly": _eur(600)}},
    )
    assert product.status_code == 201, product.text
    item = {"product_id": product.json()["id"], "billing_cycle": "monthly"}
    r = stack.http(
        "POST",
        "/api/v1/orders",
        json={
            "customer": {
                "email": f"voided-{uuid.uuid4().hex[:8]}@example.com",
                "kind": "individual",
                "contact_person": "Vera Voided",
                "country": "BE",
            },
            "items": [item, item],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _services(stack, customer_id: str, count: int) -> list[dict]:
    def listed():
        r = stack.http(
            "GET",
            "/api/v1/staff/services",
            stack.admin_token,
            params={"customer_id": customer_id},
        )
        items = r.json()["items"]
        return len(items) == count and items

    return stack.wait_until(listed, what="the services listed")


def _service(stack, service_id: str) -> dict:
    r = stack.http("GET", f"/api/v1/staff/services/{service_id}", stack.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def test_voiding_an_orders_invoice_publishes_it_and_cancels_the_pending_services(stack):
    order = _order(stack)
    services = _services(stack, order["customer_id"], 2)
    assert {s["status"] for s in services} == {"pending"}
    member, billing = stack.staff_member("billing")

    r = stack.http(
        "POST",
        f"/api/v1/staff/invoices/{order['invoice_id']}/void",
        billing,
        json={"reason": "the client ordered by mistake"},
    )
    assert r.status_code == 200 and r.json()["status"] == "void", r.text

    [event] = stack.wait_until(
        lambda: _published_billing(stack, "InvoiceVoided", invoice_id=order["invoice_id"]),
        what="InvoiceVoided published",
    )
    assert event["payload"]["purpose"] == "order"
    assert event["payload"]["reason"] == "the client ordered by mistake"
    assert event["payload"]["customer_id"] == order["customer_id"]
    assert event["actor"] == {"kind": "staff", "id": member["id"]}

    for listed in services:
        cancelled = stack.wait_until(
            lambda s=listed: (x := _service(stack, s["id"]))["status"] == "cancelled" and x,
            what="the pending service cancelled",
        )
        assert [(h["event"], h["reason"]) for h in cancelled["history"]] == [
            ("cancelled", "the order's invoice was voided")
        ]
    # recorded as done by whoever voided the invoice
    with stack.db("orders") as db:
        rows = db.execute(
            "SELECT state FROM orders_events WHERE originator_id = %s AND topic LIKE %s",
            (uuid.UUID(services[0]["id"]), "%Service.Cancelled"),
        ).fetchall()
    [(state,)] = rows
    assert json.loads(bytes(state))["actor"] == {"kind": "staff", "id": member["id"]}
    # the staff list shows them cancelled too
    stack.wait_until(
        lambda: {s["status"] for s in _services(stack, order["customer_id"], 2)} == {"cancelled"},
        what="the services listed as cancelled",
    )
    assert _parked(stack, "InvoiceVoided") == []


def test_a_manual_invoice_voided_changes_no_service_and_parks_nothing(stack):
    customer = _customer(stack)
    invoice = _invoice(stack, customer["id"])
    r = stack.http(
        "POST",
        f"/api/v1/staff/invoices/{invoice['id']}/void",
        stack.admin_token,
        json={"reason": "issued twice"},
    )
    assert r.status_code == 200, r.text
    [event] = stack.wait_until(
        lambda: _published_billing(stack, "InvoiceVoided", invoice_id=invoice["id"]),
        what="InvoiceVoided published",
    )
    assert event["payload"]["purpose"] == "manual"
    position = event["position"]
    with stack.rpc() as rpc:
        stack.wait_until(
            lambda: rpc.orders.consumer_stats()["billing"]["position"] >= position,
            what="orders to apply it",
        )
    assert _parked(stack, "InvoiceVoided") == []


def test_a_service_whose_renewal_invoice_was_voided_is_not_renewed_early_again(stack):
    customer = _customer(stack)
    token = stack.login(customer["username"], PASSWORD)
    product = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": {"en": "Renewed VPS"}, "prices": {"monthly": _eur(800)}},
    )
    assert product.status_code == 201, product.text
    r = stack.http(
        "POST",
        "/api/v1/client/orders",
        token,
        json={"items": [{"product_id": product.json()["id"], "billing_cycle": "monthly"}]},
    )
    assert r.status_code == 201, r.text
    invoice = r.json()["invoice"]
    r = stack.http(
        "POST",
        "/api/v1/staff/payments",
        stack.admin_token,
        json={
            "customer_id": customer["id"],
            "amount": invoice["total"],
            "method": "bank_transfer",
            "reference": f"REN-{uuid.uuid4().hex[:8]}",
            "invoice_id": invoice["id"],
        },
    )
    assert r.status_code == 201, r.text
    [service] = stack.wait_until(
        lambda: [
            s
            for s in stack.http("GET", "/api/v1/client/services", token).json()["items"]
            if s["status"] == "active"
        ],
        what="the service active",
    )
    renew = f"/api/v1/client/services/{service['id']}/renew"
    r = stack.http("POST", renew, token)
    assert r.status_code == 200, r.text
    renewal = r.json()["invoice"]
    r = stack.http(
        "POST",
        f"/api/v1/staff/invoices/{renewal['id']}/void",
        stack.admin_token,
        json={"reason": "renewal price to be agreed"},
    )
    assert r.status_code == 200, r.text

    r = stack.http("POST", renew, token)
    assert r.status_code == 409, r.text
    assert "voided" in r.json()["error"]["message"]
    assert _service(stack, service["id"])["status"] == "active"
