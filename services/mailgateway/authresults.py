"""What the provider's own mail server says of a message's sender (RFC 8601).

An MTA that checks SPF, DKIM and DMARC records its findings in an
`Authentication-Results` header that starts with its authserv-id:

    Authentication-Results: mx.provider.example; spf=pass smtp.mailfrom=a@b.example;
        dkim=fail header.d=b.example; dmarc=fail header.from=b.example

Only headers from our own server (HOSTLEDGER_MAIL_AUTHSERV_ID) count: anyone can write
such a header into a message, and our server removes the ones claiming its id before it
adds its own (RFC 8601, section 5), so the topmost header with our id is its verdict.
"""

from __future__ import annotations

import re
from email.message import Message

FAILED = frozenset({"fail", "softfail", "permerror"})
_RESULT = re.compile(r"(?:^|[;\s])(dmarc|spf|dkim)\s*=\s*([a-z]+)", re.IGNORECASE)
_COMMENT = re.compile(r"\([^()]*\)")


def results(msg: Message, authserv_id: str) -> dict[str, list[str]] | None:
    """{"dmarc": [...], "spf": [...], "dkim": [...]} from our server's header, or None."""
    if not authserv_id:
        return None
    for value in msg.get_all("Authentication-Results") or []:
        text = _COMMENT.sub(" ", " ".join(str(value).split()))
        served_by, _, rest = text.partition(";")
        if served_by.strip().split(" ")[0].lower() != authserv_id.lower():
            continue
        found: dict[str, list[str]] = {"dmarc": [], "spf": [], "dkim": []}
        for method, result in _RESULT.findall(";" + rest):
            found[method.lower()].append(result.lower())
        return found
    return None


def sender_verified(msg: Message, authserv_id: str) -> bool | None:
    """True: our server found DMARC passed; False: DMARC, SPF or DKIM failed (and DMARC
    did not pass); None: our server said nothing we can use."""
    found = results(msg, authserv_id)
    if found is None:
        return None
    if "pass" in found["dmarc"]:
        return True
    if FAILED & set(found["dmarc"] + found["spf"] + found["dkim"]):
        return False
    return None
