"""The OpenAPI document, built from the gateway's routes without a running stack."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate
from openapi_spec_validator import validate as validate_spec

from gateway import openapi
from gateway.http import Route


@pytest.fixture(scope="module")
def routes():
    from nameko.containers import ServiceContainer

    from gateway.service import GatewayService

    container = ServiceContainer(GatewayService, {"AMQP_URI": "memory://"})
    return [e for e in container.entrypoints if isinstance(e, Route)]


@pytest.fixture(scope="module")
def document(routes):
    return openapi.build(routes)


def _operations(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_the_document_passes_the_openapi_validator(document):
    validate_spec(document)
    json.dumps(document)  # plain JSON: no Decimal, no object left


def test_numeric_bounds_are_numbers(document):
    bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in bounds:
                    assert isinstance(value, int | float), (where, key, value)
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}.{i}")

    walk(document, "")
    # the Decimal bounds that used to be written as text
    percent = document["components"]["schemas"]["AffiliateProgram"]["properties"]["percent"]
    assert percent["maximum"] == 100 and isinstance(percent["maximum"], int)


def test_a_decimal_bound_is_written_as_a_number():
    class Rate(Schema):
        rate = fields.Decimal(
            as_string=True, places=4, validate=validate.Range(min=0, max=Decimal("12.5"))
        )

    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.plugins[0].converter.add_attribute_function(openapi._numeric_bounds)
    spec.components.schema("Rate", schema=Rate)
    rate = spec.to_dict()["components"]["schemas"]["Rate"]["properties"]["rate"]
    assert rate["minimum"] == 0 and rate["maximum"] == 12.5
    assert not isinstance(rate["maximum"], str)


def test_every_operation_documents_its_success_answer(document):
    for path, method, operation in _operations(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert len(successes) == 1, (method, path)
        ((status, response),) = successes.items()
        if status == "204":
            assert not response.get("content"), (method, path)
            continue
        content = response.get("content") or {}
        assert content, f"{method} {path} documents no answer"
        for media, body in content.items():
            assert body.get("schema"), (method, path, media)


def test_no_two_paths_share_a_template(document):
    shapes: dict = {}
    for path, method, _ in _operations(document):
        shapes.setdefault((re.sub(r"\{[^}]+\}", "{}", path), method), []).append(path)
    assert not {k: v for k, v in shapes.items() if len(v) > 1}
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))


def test_each_list_has_its_own_answer(document):
    def answer(path):
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]
        return schema["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    lists = {
        "invoices": "InvoiceList",
        "payments": "PaymentList",
        "expenses": "ExpenseList",
        "commissions": "CommissionList",
        "orders": "OrderList",
        "services": "ServiceList",
    }
    for name, schema in lists.items():
        assert answer(f"/api/v1/staff/{name}") == schema
        assert answer(f"/api/v1/client/{name}") == schema
    assert answer("/api/v1/staff/customer-groups") == "GroupList"
    assert answer("/api/v1/staff/projects") == "ProjectList"
    assert answer("/api/v1/staff/discounts") == "DiscountList"


def test_files_are_documented_as_files(document):
    pdf = document["paths"]["/api/v1/client/invoices/{invoice_id}/pdf"]["get"]
    assert list(pdf["responses"]["200"]["content"]) == ["application/pdf"]
    download = document["paths"]["/api/v1/staff/tickets/{ticket_id}/attachments/{file_id}"]
    assert "application/octet-stream" in download["get"]["responses"]["200"]["content"]


def test_a_route_without_its_answer_is_refused(routes):
    bare = next(r for r in routes if r.method_name == "me")
    kept = bare.response_schema
    bare.response_schema = None
    try:
        with pytest.raises(ValueError, match="documents no answer"):
            openapi.build(routes)
    finally:
        bare.response_schema = kept


def test_answers_declare_what_the_customer_views_hold(document):
    schemas = document["components"]["schemas"]
    customer = set(schemas["Customer"]["properties"])
    assert {"phone", "address", "verified_phone", "note", "attitude", "referral_source"} <= customer
    assert {"referrer_id", "affiliate_program", "group_ids"} <= customer
    assert "permissions" in schemas["Me"]["properties"]
    # a client sees less of itself than staff do
    assert "note" not in schemas["Profile"]["properties"]
