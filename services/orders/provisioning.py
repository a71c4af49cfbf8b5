"""Provisioners: how a paid service gets set up.

`manual`: a task staff see at /api/v1/staff/provisioning and mark done.
`webhook`: a signed HTTP POST of the service to the provider's own tooling. The body is
JSON; `X-Hostledger-Timestamp` is the Unix time and `X-Hostledger-Signature` is
`v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under HOSTLEDGER_PROVISIONING_SECRET>`.
A 2xx answer is success (its body is recorded as the outcome); anything else is
retried with exponential backoff, and after MAX_ATTEMPTS the service is marked failed
for staff.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

MAX_ATTEMPTS = 8


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str, body: bytes, timestamp: str, signature: str, now: datetime, tolerance: int = 300
) -> bool:
    """What a receiver checks (the provider's tooling; also the tests)."""
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, int(timestamp)), signature)


def request(service: dict, secret: str, now: datetime) -> tuple[bytes, dict]:
    """The body and headers of the call for `service` (as `service_view` shapes it)."""
    body = json.dumps({"event": "provision", "service": service}, sort_keys=True).encode()
    timestamp = int(now.timestamp())
    return body, {
        "Content-Type": "application/json",
        "X-Hostledger-Timestamp": str(timestamp),
        "X-Hostledger-Signature": sign(secret, body, timestamp),
    }


def next_attempt(attempts_done: int, now: datetime, base_seconds: float) -> datetime | None:
    """When to try again after `attempts_done` failures; None when it is time to give up."""
    if attempts_done >= MAX_ATTEMPTS:
        return None
    return now + timedelta(seconds=min(base_seconds * 2 ** (attempts_done - 1), 3600))


def url_problem(url: str, allow_private: bool, resolve: bool = True) -> str | None:
    """Why a webhook may not be called at `url`, or None: it must be http(s), and its
    host may not be (or resolve to) a loopback, link-local, private or otherwise
    non-public address unless `allow_private` (HOSTLEDGER_PROVISIONING_ALLOW_PRIVATE)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Only http:// and https:// URLs are called."
    if not host:
        return "The URL needs a host."
    if allow_private:
        return None
    addresses = []
    try:
        addresses.append(ipaddress.ip_address(host))
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return "The host is this machine; webhooks call public addresses only."
        if resolve:
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError):
                infos = []  # not resolvable now: checked again before each call
            addresses += [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            return (
                f"The host is (or resolves to) {address}, a loopback, link-local or private "
                "address; webhooks call public addresses only."
            )
    return None
