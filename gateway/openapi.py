"""The OpenAPI 3 document, generated from the routes and their marshmallow schemas.

A route whose URL takes one of a few names (`<any(orders,services):name>`) is one path
per name when another route has the same shape (`/api/v1/staff/{kind}` and
`/api/v1/staff/{name}` would be ambiguous): every list and action has its own path.
"""

from __future__ import annotations

import itertools
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gateway.schemas import ErrorSchema

_CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")
_PARAMETER = re.compile(r"<(?:([a-z]+)(?:\(([^)]*)\))?:)?([a-z_]+)>")
_ANY = re.compile(r"<any\(([^)]*)\):([a-z_]+)>")


def _shape(url: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", _CONVERTER.sub(r"{\1}", url))


def _choices(arguments: str) -> list[str]:
    return [a.strip().strip("'\"") for a in arguments.split(",")]


def _urls(url: str, ambiguous: bool) -> list[tuple[str, str]]:
    """`(url, operation id suffix)` of each path a route is documented under."""
    anys = _ANY.findall(url)
    if not ambiguous or not anys:
        return [(url, "")]
    out = []
    for values in itertools.product(*(_choices(arguments) for arguments, _ in anys)):
        concrete, it = url, iter(values)
        concrete = _ANY.sub(lambda _m, it=it: next(it), concrete)
        out.append((concrete, "_" + "_".join(v.replace("-", "_") for v in values)))
    return out


def _path_parameter(converter: str, arguments: str, name: str) -> dict:
    schema: dict = {"type": "string"}
    if converter == "uuid":
        schema["format"] = "uuid"
    elif converter == "int":
        schema = {"type": "integer"}
    elif converter == "any":
        schema["enum"] = [a.strip().strip("'\"") for a in arguments.split(",")]
    return {"name": name, "in": "path", "required": True, "schema": schema}


ERROR_STATUSES = {
    "400": "validation_error: the body, query or a field is wrong (see `fields`)",
    "401": "unauthorized / invalid_credentials / password_required",
    "403": "forbidden: your role or kind of account may not do this",
    "404": "not_found (also for another customer's objects)",
    "405": "method_not_allowed",
    "409": "conflict",
    "413": "too_large",
    "415": "unsupported_type",
    "429": "rate_limited",
}


def build(routes) -> dict:
    spec = APISpec(
        title="hostledger",
        version="1",
        openapi_version="3.0.3",
        info={"description": "Billing, customers and helpdesk for hosting providers."},
        plugins=[MarshmallowPlugin()],
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    paths: dict[str, dict] = {}
    shapes: dict[tuple[str, str], int] = {}
    for r in routes:
        shapes[(_shape(r.url), r.method)] = shapes.get((_shape(r.url), r.method), 0) + 1
    documented = [
        (r, url, suffix)
        for r in routes
        for url, suffix in _urls(r.url, shapes[(_shape(r.url), r.method)] > 1)
    ]
    for r, url, suffix in sorted(documented, key=lambda d: (d[1], d[0].method)):
        path = _CONVERTER.sub(r"{\1}", url)
        operation: dict = {
            "operationId": r.method_name + suffix,
            "summary": r.summary or r.method_name.replace("_", " "),
            "tags": list(r.tags),
            "responses": {
                str(r.status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": r.response_schema}}
                    if r.response_schema
                    else {},
                }
            },
        }
        parameters = [
            _path_parameter(converter, arguments, name)
            for converter, arguments, name in _PARAMETER.findall(url)
        ]
        if r.query_schema is not None:
            parameters.append({"in": "query", "schema": r.query_schema})
        if parameters:
            operation["parameters"] = parameters
        if r.body_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": r.body_schema}},
            }
            if getattr(r, "files", False):
                # the same fields as form fields (nested ones as JSON text), plus `files` parts
                operation["requestBody"]["content"]["multipart/form-data"] = {
                    "schema": r.body_schema
                }
        if not r.public:
            operation["security"] = [{"bearer": []}]
            roles = ", ".join(r.roles or ()) or "none"
            who = f"staff roles: {roles}" + ("; clients" if r.client else "")
            operation["description"] = f"Who may call: {who}."
        # machine-readable, for clients and for the role tests
        operation["x-staff-roles"] = sorted(r.roles or ())
        operation["x-clients"] = sorted(r.client) if isinstance(r.client, tuple) else bool(r.client)
        for status, text in ERROR_STATUSES.items():
            operation["responses"].setdefault(
                status,
                {"description": text, "content": {"application/json": {"schema": "Error"}}},
            )
        paths.setdefault(path, {})[r.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
