"""The audit export as a download:

    GET /api/v1/staff/audit/export?customer=<id>&format=jsonl|csv
    GET /api/v1/staff/audit/export?since=<instant>[&until=<instant>]&format=jsonl|csv

The same rows, order and encoding as `hostledger audit export` (contracts/audit_export.py),
for administrators and auditors. The body is streamed: the route records the export
(customers' `record_audit_export`), asks every service for its first page
(`audit_history` of the customer, or `audit_events` of the window) so that a service
that is away is a 503 and an unknown customer a 404 with the usual error body, and
answers; the rest is fetched page by page while the body goes out, each service's next
page asked for while its current one is written, and merged as it comes. The gateway
holds a page per service at a time, never the whole export.

Once the body has started there is no status left to change: when a service stops
answering halfway, the connection is closed before the end of the (chunked) body, so a
client sees an incomplete download, never a complete-looking short one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import eventlet
from werkzeug.wrappers import Response

from contracts import audit as contract
from contracts import audit_export as export
from contracts.errors import NotFound
from gateway.api.audit import PREFIX
from gateway.http import Call, route
from gateway.schemas import Binary
from services.infra.context import DEADLINE_HEADER
from services.infra.settings import settings

log = logging.getLogger(__name__)

ROLES = ("admin", "auditor")
# events a service answers at a time: a history's largest page, a window's
HISTORY_PAGE = contract.MAX_LIMIT + 1
WINDOW_PAGE = contract.MAX_WINDOW_LIMIT
EXPORT_FILE = Binary(*export.MEDIA_TYPES.values())


def download(call: Call) -> Response:
    query = call.query
    call.services.customers.record_audit_export(export.record_payload(query, "api"))
    customer = str(query["customer"]) if query["customer"] else None
    since = query["since"].isoformat() if query["since"] else None
    until = query["until"].isoformat() if query["until"] else None

    def ask(service: str, cursor: dict | None):
        """The service's page after `cursor`, asked for now, answered later."""
        call.services.context[DEADLINE_HEADER] = repr(time.time() + settings().rpc_timeout)
        proxy = getattr(call.services, service)
        if customer is not None:
            return proxy.audit_history.call_async("customer", customer, cursor, HISTORY_PAGE)
        return proxy.audit_events.call_async(since, until, cursor, WINDOW_PAGE)

    page_size = HISTORY_PAGE if customer is not None else WINDOW_PAGE
    asked = {service: ask(service, None) for service in contract.SERVICES}
    # every service answers its first page here, inside the request's deadline: an error
    # is still an answer of its own, not a cut body
    first = {service: reply.result() for service, reply in asked.items()}
    if customer is not None and not any(first.values()):
        raise NotFound("No such customer.")
    streams = [_pages(service, first[service], page_size, ask) for service in contract.SERVICES]
    rows = (export.row(item) for item in export.merged(streams))
    return Response(
        export.encode(rows, query["format"]),
        mimetype=export.MEDIA_TYPES[query["format"]],
        headers={"Content-Disposition": f'attachment; filename="{export.filename(query)}"'},
    )


def _pages(
    service: str, page: list[dict], size: int, ask: Callable[[str, dict | None], object]
) -> Iterator[dict]:
    """A service's events from its first page on, asking for the next page before giving
    out the current one."""
    while True:
        reply = ask(service, contract.cursor_of(page[-1])) if len(page) >= size else None
        yield from page
        if reply is None:
            return
        try:
            with eventlet.Timeout(settings().rpc_timeout):
                page = reply.result()
        except BaseException as exc:
            log.warning("an audit export was cut short: %s did not answer (%r)", service, exc)
            raise


class AuditExportRoutes:
    """Mixed into GatewayService."""

    @route(
        "GET",
        f"{PREFIX}/export",
        query=export.ExportQuery,
        response=EXPORT_FILE,
        roles=ROLES,
        tags=("audit",),
        summary="a download of every event of every service concerning a customer "
        "(`customer`), or with `since` <= occurred_at < `until` (`until` optional), in "
        "history order: JSON Lines (`format=jsonl`, the default) or CSV (`format=csv`, a "
        "header, nested values as JSON text), each event as a history page answers it; "
        "streamed; recorded as an audit export",
    )
    def audit_export(self, call: Call):
        return download(call)
