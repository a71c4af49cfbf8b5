"""The affiliate program through the API: a client's referral code and link, customers who
register with the code (by the order form or by staff) recorded as referred and listed to
the referrer with number and date only, an unknown code refused naming the field,
affiliate programs referenced by id, and the commission a referred customer's payment
earns shown with its maturity."""

import re
import uuid

import requests

from tests.e2e.test_billing import _customer_with_account, _invoice, _pay_in

CODE = re.compile(r"^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}$")


def _affiliate(stack, token, **params) -> dict:
    r = stack.http("GET", "/api/v1/client/affiliate", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _product(stack) -> str:
    r = stack.http(
        "POST",
        "/api/v1/staff/products",
        stack.admin_token,
        json={"name": "Referral VPS", "prices": {"monthly": {"amount": 700, "currency": "EUR"}}},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _order(stack, product_id: str, email: str, **customer):
    body = {
        "customer": {
            "email": email,
            "kind": "individual",
            "contact_person": "Referred Person",
            "country": "BE",
            **customer,
        },
        "items": [{"product_id": product_id, "billing_cycle": "monthly"}],
    }
    return stack.http("POST", "/api/v1/orders", json=body)


def test_a_client_has_one_stable_referral_code_and_link(stack):
    referrer, token = _customer_with_account(stack)
    first = _affiliate(stack, token)
    assert CODE.match(first["code"]), first
    assert first["link"] == f"{stack.base_url}/r/{first['code']}"
    assert first["referred"] == {"items": [], "total": 0, "page": 1, "page_size": 50}
    assert first["commissions"]["items"] == [] and first["commissions"]["total"] == 0
    assert _affiliate(stack, token)["code"] == first["code"]  # made once, then kept
    _, other_token = _customer_with_account(stack)
    assert _affiliate(stack, other_token)["code"] != first["code"]
    # the link remembers the code in the browser and opens the order form
    r = stack.http("GET", f"/r/{first['code'].lower()}", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/order/new"
    cookie = next(h for h in r.raw.headers.getlist("Set-Cookie") if "hostledger_referral=" in h)
    assert f"hostledger_referral={first['code']}" in cookie and "HttpOnly" in cookie
    r = stack.http("GET", "/r/ZZZZZZZZ", allow_redirects=False)
    assert r.status_code == 303 and "hostledger_referral" not in r.headers.get("Set-Cookie", "")
    # a client's user needs the billing permission, like the commissions list
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": f"helper-{uuid.uuid4().hex[:6]}",
            "email": "helper@example.com",
            "name": "Helper",
            "permissions": ["support"],
            "password": "helper password 1",
        },
    )
    assert r.status_code == 201, r.text
    helper = stack.login(r.json()["username"], "helper password 1")
    assert stack.http("GET", "/api/v1/client/affiliate", helper).status_code == 403
    assert referrer["id"]


def test_customers_registering_with_the_code_are_listed_with_number_and_date_only(stack):
    referrer, token = _customer_with_account(stack)
    code = _affiliate(stack, token)["code"]
    product = _product(stack)

    # by the order form, the code typed in lower case with a dash
    email = f"ref-{uuid.uuid4().hex[:8]}@example.com"
    r = _order(stack, product, email, referral_code=f"{code[:4].lower()}-{code[4:].lower()}")
    assert r.status_code == 201, r.text
    ordered = r.json()["customer_id"]
    # by staff
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "company",
            "company_name": "Referred GmbH",
            "contact_person": "Ref Erred",
            "email": f"ref-{uuid.uuid4().hex[:8]}@example.com",
            "country": "BE",
            "referral_code": code,
        },
    )
    assert r.status_code == 201, r.text
    registered = r.json()
    assert registered["referrer_id"] == referrer["id"]
    assert registered["referral_source"] == f"referral code {code}"
    # and one who came without it
    assert _order(stack, product, f"plain-{uuid.uuid4().hex[:8]}@example.com").status_code == 201

    customers = [
        stack.http("GET", f"/api/v1/staff/customers/{cid}", stack.admin_token).json()
        for cid in (ordered, registered["id"])
    ]
    assert all(c["referrer_id"] == referrer["id"] for c in customers)
    expected = sorted((c["number"], c["registered_at"]) for c in customers)

    def listed():
        answer = _affiliate(stack, token)["referred"]
        return answer if answer["total"] == 2 else None

    referred = stack.wait_until(listed, what="the referred customers listed")
    assert all(set(row) == {"number", "registered_at"} for row in referred["items"])
    got = sorted((row["number"], row["registered_at"]) for row in referred["items"])
    assert [n for n, _ in got] == [n for n, _ in expected]
    assert [_same_instant(a, b) for (_, a), (_, b) in zip(got, expected, strict=True)] == [
        True,
        True,
    ]
    # paged like every list, newest first
    page = _affiliate(stack, token, page=2, page_size=1)["referred"]
    assert page["total"] == 2 and page["page"] == 2 and len(page["items"]) == 1
    assert page["items"][0]["number"] == min(n for n, _ in expected)
    # nothing personal reaches the referrer
    text = stack.http("GET", "/api/v1/client/affiliate", token).text
    assert "Referred GmbH" not in text and "Referred Person" not in text
    assert ordered not in text and registered["id"] not in text


def _same_instant(a: str, b: str) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(
        b.replace("Z", "+00:00")
    )


def test_an_unknown_referral_code_is_refused_naming_the_field(stack):
    product = _product(stack)
    email = f"unknown-{uuid.uuid4().hex[:8]}@example.com"
    r = _order(stack, product, email, referral_code="ZZZZZZZZ")
    assert r.status_code == 400, r.text
    assert list(r.json()["error"]["fields"]) == ["customer.referral_code"]
    # nothing was made: the same e-mail orders afresh and gets a new account
    r = _order(stack, product, email)
    assert r.status_code == 201 and r.json()["credentials"], r.text
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "contact_person": "Nobody Referred",
            "email": f"unknown-{uuid.uuid4().hex[:8]}@example.com",
            "country": "BE",
            "referral_code": "not a code",
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["fields"] == {"referral_code": ["No such referral code."]}


def test_programs_are_referenced_by_id_and_commissions_show_their_maturity(stack):
    r = stack.http(
        "POST",
        "/api/v1/staff/affiliate-programs",
        stack.admin_token,
        json={"name": f"partners-{uuid.uuid4().hex[:6]}", "percent": "10", "maturity_days": 30},
    )
    assert r.status_code == 201, r.text
    program = r.json()
    programs = stack.http("GET", "/api/v1/staff/affiliate-programs", stack.admin_token).json()
    assert program["id"] in {p["id"] for p in programs["items"]}

    _referrer, referrer_token = _customer_with_account(stack)
    code = _affiliate(stack, referrer_token)["code"]
    r = stack.http(
        "POST",
        "/api/v1/staff/customers",
        stack.admin_token,
        json={
            "kind": "individual",
            "contact_person": "Paying Referred",
            "email": f"pay-{uuid.uuid4().hex[:8]}@example.com",
            "country": "BE",
            "referral_code": code,
        },
    )
    assert r.status_code == 201, r.text
    customer = r.json()
    path = f"/api/v1/staff/customers/{customer['id']}"
    admin = stack.admin_token

    # a program is named by its id; a name or an unknown id is refused, naming the field
    by_name = stack.http("PATCH", path, admin, json={"affiliate_program": program["name"]})
    assert by_name.status_code == 400
    assert list(by_name.json()["error"]["fields"]) == ["affiliate_program"]
    unknown = stack.http("PATCH", path, admin, json={"affiliate_program": str(uuid.uuid4())})
    assert unknown.json()["error"]["fields"] == {
        "affiliate_program": ["No such affiliate program."]
    }
    r = stack.http("PATCH", path, admin, json={"affiliate_program": program["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["affiliate_program"] == program["id"]
    assert stack.http("GET", path, admin).json()["affiliate_program"] == program["id"]

    # billing hears of the program, then the referred customer pays an invoice
    with stack.rpc() as rpc:
        [update] = [
            e
            for e in stack.published("customers")
            if e["type"] == "CustomerUpdated"
            and e["aggregate_id"] == customer["id"]
            and "affiliate_program" in e["payload"]["changes"]
        ]
        stack.wait_until(
            lambda: rpc.billing.consumer_stats()["customers"]["position"] >= update["position"],
            what="billing to hear of the program",
        )
    token = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/account", token).status_code == 200,
        what="the personal account",
    )
    assert _pay_in(stack, customer["id"], 2000).status_code == 201
    invoice = _invoice(stack, customer["id"], 1500)
    r = stack.http("POST", f"/api/v1/client/invoices/{invoice['id']}/pay", token)
    assert r.status_code == 200, r.text

    def commission():
        items = _affiliate(stack, referrer_token)["commissions"]["items"]
        return items[0] if items else None

    earned = stack.wait_until(commission, what="the commission")
    assert earned["amount"] == {"amount": 150, "currency": "EUR"}
    assert earned["status"] == "pending" and earned["program"] == program["name"]
    assert earned["referred_number"] == customer["number"]
    assert earned["matures_at"] > earned["earned_at"]
    assert "referred_id" not in earned and "invoice_id" not in earned


def test_the_affiliate_route_is_in_the_openapi_document(stack):
    document = requests.get(stack.base_url + "/api/v1/openapi.json", timeout=30).json()
    operation = document["paths"]["/api/v1/client/affiliate"]["get"]
    assert "200" in operation["responses"]
