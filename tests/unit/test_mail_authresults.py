"""Authentication-Results (RFC 8601): only our own server's verdict counts."""

from email import message_from_string

import pytest

from services.mailgateway.authresults import sender_verified

OURS = "mx.provider.example"


def _msg(*headers: str):
    text = "".join(f"Authentication-Results: {h}\n" for h in headers)
    return message_from_string(text + "From: a@b.example\n\nbody\n")


@pytest.mark.parametrize(
    "headers,verdict",
    [
        ((f"{OURS}; dmarc=pass header.from=b.example",), True),
        ((f"{OURS}; spf=fail smtp.mailfrom=b.example; dmarc=fail",), False),
        ((f"{OURS}; dkim=fail (bad signature) header.d=b.example",), False),
        ((f"{OURS}; spf=softfail smtp.mailfrom=b.example",), False),
        ((f"{OURS}; dkim=fail header.d=x.example; dkim=pass; dmarc=pass",), True),
        ((f"{OURS}; spf=pass smtp.mailfrom=b.example",), None),  # no DMARC: not enough
        ((f"{OURS}; none",), None),
        (("mx.evil.example; dmarc=pass",), None),  # someone else's claim
        (("mx.evil.example; dmarc=pass", f"{OURS.upper()}; dmarc=fail"), False),
        ((f"{OURS} 1; dmarc=fail", f"{OURS}; dmarc=pass"), False),  # the topmost of ours
        ((), None),
    ],
)
def test_only_our_servers_verdict_counts(headers, verdict):
    assert sender_verified(_msg(*headers), OURS) is verdict


def test_without_a_configured_authserv_id_nothing_is_trusted():
    assert sender_verified(_msg(f"{OURS}; dmarc=fail"), "") is None
