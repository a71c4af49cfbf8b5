"""The API reference in Markdown, generated from the OpenAPI document: every route there is.

    python -m gateway.reference > docs/api-reference.md

The document is built in-process from the gateway's routes (as `/api/v1/openapi.json`
is), so the reference lists exactly the routes that exist; a unit test fails when the
committed docs/api-reference.md differs from what this writes.
"""

from __future__ import annotations

import sys

from gateway import openapi

METHODS = ("get", "post", "put", "patch", "delete")


def routes() -> list:
    """The gateway's routes, without a running stack."""
    from nameko.containers import ServiceContainer

    from gateway.http import Route
    from gateway.service import GatewayService

    container = ServiceContainer(GatewayService, {"AMQP_URI": "memory://"})
    return [e for e in container.entrypoints if isinstance(e, Route)]


def document() -> dict:
    return openapi.build(routes())


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


def _who(operation: dict) -> str:
    if not operation.get("security"):
        return "public"
    who = []
    roles = operation.get("x-staff-roles") or []
    if roles:
        who.append("staff: " + ", ".join(roles))
    clients = operation.get("x-clients")
    if clients is True:
        who.append("clients")
    elif clients:
        who.append("clients with " + " or ".join(clients) + " (or full)")
    return "; ".join(who) or "nobody"


def _resolve(doc: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref:
        return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _body_fields(doc: dict, operation: dict) -> str:
    content = (operation.get("requestBody") or {}).get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    if not media:
        return "-"
    schema = _resolve(doc, media["schema"])
    required = set(schema.get("required") or ())
    names = [f"`{n}`" + ("*" if n in required else "") for n in schema.get("properties", {})]
    if "multipart/form-data" in content:
        names.append("files (multipart)")
    return ", ".join(names) or "-"


def _parameters(operation: dict, where: str) -> list[dict]:
    return [p for p in operation.get("parameters", []) if p.get("in") == where]


def markdown(doc: dict) -> str:
    lines = [
        "# API reference",
        "",
        "Every route of the HTTP gateway, generated from its OpenAPI document "
        "(`python -m gateway.reference > docs/api-reference.md`; the live document is "
        "`GET /api/v1/openapi.json`). The rules every route follows are in the README. "
        "Body fields marked * are required; *Idempotency-Key*: the route takes the header "
        "(the same key and request answer the first answer again).",
        "",
        "| method | path | who | what | query parameters | body fields | Idempotency-Key |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    count = 0
    for path, operations in sorted(doc["paths"].items()):
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            count += 1
            query = ", ".join(f"`{p['name']}`" for p in _parameters(operation, "query"))
            idempotent = any(
                p.get("name") == "Idempotency-Key" for p in _parameters(operation, "header")
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        method.upper(),
                        f"`{path}`",
                        _cell(_who(operation)),
                        _cell(operation.get("summary", "")),
                        query or "-",
                        _body_fields(doc, operation),
                        "yes" if idempotent else "-",
                    ]
                )
                + " |"
            )
    lines += ["", f"{count} operations.", ""]
    lines += [
        "## Errors",
        "",
        'Every error answers `{"error": {"code", "message", "fields"}}` (`fields` is `{}` '
        "when no field is at fault). The statuses and codes any route may answer:",
        "",
        "| status | code: meaning |",
        "| --- | --- |",
    ]
    lines += [f"| {status} | {_cell(text)} |" for status, text in openapi.ERROR_STATUSES.items()]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    sys.stdout.write(markdown(document()))


if __name__ == "__main__":
    main()
