"""The gateway's HTTP metrics: requests by route and status, with their latency.

A route is labelled by its template as declared (`/api/v1/staff/customers/{customer_id}`),
never by the path asked for, so that the number of series stays that of the routes;
a request that matched no route is labelled `(unmatched)`.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

from services.infra.metrics import LATENCY_BUCKETS

UNMATCHED = "(unmatched)"

REQUESTS = Counter(
    "hostledger_http_requests_total",
    "HTTP requests the gateway answered, by method, route template and status.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "hostledger_http_request_duration_seconds",
    "Time the gateway took to answer an HTTP request (until its body starts), by method"
    " and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# werkzeug's placeholders: <name>, <converter:name>, <converter(args):name>
_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(url: str | None) -> str:
    """`/x/<int:parked_id>` -> `/x/{parked_id}`; None (no route matched) -> (unmatched)."""
    if not url:
        return UNMATCHED
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", url)


def observe(method: str, url: str | None, status: int, seconds: float) -> None:
    """Count one answered request (a method no route takes is counted as OTHER)."""
    method = method if method in _METHODS else "OTHER"
    route = route_template(url)
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(seconds)
