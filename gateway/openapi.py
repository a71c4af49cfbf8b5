"""The OpenAPI 3 document, generated from the routes and their marshmallow schemas.

A route whose URL takes one of a few names (`<any(orders,services):name>`) is one path
per name when another route has the same shape (`/api/v1/staff/{kind}` and
`/api/v1/staff/{name}` would be ambiguous): every list and action has its own path.
A route's `response` may be one schema, `{name: schema}` (one per path it is documented
under: each list its own answer), or a `Binary` (a file, not JSON). Numeric bounds are
numbers (a Decimal bound of a field is written as a number, not as text).
"""

from __future__ import annotations

import decimal
import itertools
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gateway.schemas import Binary, ErrorSchema, HealthSchema

_CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")
_PARAMETER = re.compile(r"<(?:([a-z]+)(?:\(([^)]*)\))?:)?([a-z_]+)>")
_ANY = re.compile(r"<any\(([^)]*)\):([a-z_]+)>")


def _shape(url: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", _CONVERTER.sub(r"{\1}", url))


def _choices(arguments: str) -> list[str]:
    return [a.strip().strip("'\"") for a in arguments.split(",")]


def _urls(url: str, ambiguous: bool) -> list[tuple[str, tuple[str, ...]]]:
    """`(url, the names filled in)` of each path a route is documented under."""
    anys = _ANY.findall(url)
    if not ambiguous or not anys:
        return [(url, ())]
    out = []
    for values in itertools.product(*(_choices(arguments) for arguments, _ in anys)):
        concrete, it = url, iter(values)
        concrete = _ANY.sub(lambda _m, it=it: next(it), concrete)
        out.append((concrete, values))
    return out


def _number(value):
    """A Decimal as a JSON number (an integer when it is one)."""
    return int(value) if value == value.to_integral_value() else float(value)


_NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "default")


def _numeric_bounds(_converter, field, ret: dict, **_kwargs) -> dict:
    """Bounds and defaults of a number field as JSON numbers, never as text: apispec
    writes them through the field, and a Decimal field (`as_string`) writes text."""
    if ret.get("type") not in ("number", "integer"):
        return {}
    return {
        k: _number(decimal.Decimal(str(ret[k])))
        for k in _NUMERIC_KEYWORDS
        if isinstance(ret.get(k), str | decimal.Decimal)
    }


def _name_resolver():
    """A component name per schema class: its name without `Schema`, made unique by its
    module when two classes share a name (the gateway's Money and the contracts')."""
    taken: dict[str, type] = {}

    def resolve(schema) -> str:
        cls = schema if isinstance(schema, type) else type(schema)
        name = cls.__name__.removesuffix("Schema") or cls.__name__
        if taken.setdefault(name, cls) is not cls:
            module = cls.__module__.rsplit(".", 1)[-1].title()
            name = f"{module}{name}"
            taken.setdefault(name, cls)
        return name

    return resolve


def _content(schema) -> dict:
    """The `content` of an answer: JSON by its schema, or a file of the given types."""
    if isinstance(schema, Binary):
        return {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in schema.media_types
        }
    return {"application/json": {"schema": schema}}


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
    "401": "unauthorized / invalid_credentials / password_required / two_factor_required",
    "403": "forbidden: your role or kind of account may not do this / "
    "two_factor_setup_required: two-factor authentication is mandatory for staff and "
    "yours is not set up (until it is, only `/api/v1/auth/*`, `/api/v1/me` and "
    "`/api/v1/staff/account*` answer)",
    "404": "not_found (also for another customer's objects)",
    "405": "method_not_allowed",
    "409": "conflict",
    "413": "too_large",
    "415": "unsupported_type",
    "429": "rate_limited",
    "503": "unavailable: a service is down or did not answer in time (Retry-After)",
}
# on every route that creates something or moves money (API.md)
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "The same key with the same request answers the first answer again "
    "(nothing is done twice); with another request, 409. Keys belong to the caller.",
}
# answers of a route besides its success and the errors: `/health` is 503 with its own
# body when a service does not answer
OTHER_ANSWERS = {"health": {"503": HealthSchema}}


def build(routes) -> dict:
    spec = APISpec(
        title="hostledger",
        version="1",
        openapi_version="3.0.3",
        info={"description": "Billing, customers and helpdesk for hosting providers."},
        plugins=[MarshmallowPlugin(schema_name_resolver=_name_resolver())],
    )
    spec.plugins[0].converter.add_attribute_function(_numeric_bounds)
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    paths: dict[str, dict] = {}
    shapes: dict[tuple[str, str], int] = {}
    for r in routes:
        shapes[(_shape(r.url), r.method)] = shapes.get((_shape(r.url), r.method), 0) + 1
    documented = [
        (r, url, names)
        for r in routes
        for url, names in _urls(
            r.url,
            shapes[(_shape(r.url), r.method)] > 1 or isinstance(r.response_schema, dict),
        )
    ]
    for r, url, names in sorted(documented, key=lambda d: (d[1], d[0].method)):
        path = _CONVERTER.sub(r"{\1}", url)
        response = r.response_schema
        if isinstance(response, dict):
            response = response["/".join(names)]
        success: dict = {"description": "OK"}
        if r.status != 204:
            if response is None:
                raise ValueError(f"{r.method} {r.url} documents no answer (response=...)")
            success["content"] = _content(response)
        operation: dict = {
            "operationId": r.method_name + "".join("_" + n.replace("-", "_") for n in names),
            "summary": r.summary or r.method_name.replace("_", " "),
            "tags": list(r.tags),
            "responses": {str(r.status): success},
        }
        for status, schema in OTHER_ANSWERS.get(r.method_name, {}).items():
            operation["responses"][status] = {
                "description": "see the body",
                "content": {"application/json": {"schema": schema}},
            }
        parameters = [
            _path_parameter(converter, arguments, name)
            for converter, arguments, name in _PARAMETER.findall(url)
        ]
        if r.query_schema is not None:
            parameters.append({"in": "query", "schema": r.query_schema})
        if getattr(r, "idempotent", False):
            parameters.append(IDEMPOTENCY_PARAMETER)
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
