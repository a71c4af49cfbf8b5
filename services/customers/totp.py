"""Two-factor authentication's pure parts: TOTP codes (RFC 6238, by pyotp), the QR code
to scan (SVG, by segno), and one-time recovery codes. No I/O: the time is given.

A code is six digits for a 30-second time step (SHA-1, as every authenticator app
takes it). One is accepted for the step it was made for and the one before and after
(a phone's clock a little off, a code typed as it changed), and only for a step later
than the last one accepted (the same code, or an older one, never works twice).

Recovery codes are random (60 bits each), shown once as `xxxx-xxxx-xxxx`; only their
SHA-256 is kept, as for the session tokens and reset links: they are high-entropy
secrets, not passwords a person chose.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno

DIGITS = 6
PERIOD = 30  # seconds per time step
ALGORITHM = "SHA1"
# steps either side of the current one that are accepted
DRIFT = 1
RECOVERY_CODES = 10
# recovery codes' letters: no 0/o, 1/l/i to misread
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 12
_SPACES = re.compile(r"[\s\-]+")
_CODE = re.compile(rf"^[0-9]{{{DIGITS}}}$")


def new_secret() -> str:
    """A new shared secret: 32 base32 letters (160 bits, RFC 4226's recommendation)."""
    return pyotp.random_base32(32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)


def step_at(at: datetime) -> int:
    """The time step an instant falls in."""
    return int(at.timestamp()) // PERIOD


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at `at`."""
    return _totp(secret).generate_otp(step_at(at))


def looks_like_code(text: str | None) -> bool:
    """Six digits (spaces and dashes between them allowed), as an app shows a code."""
    return bool(text) and bool(_CODE.match(_SPACES.sub("", text)))


def matching_step(secret: str, code: str | None, at: datetime, after: int = 0) -> int | None:
    """The time step `code` was made for, within DRIFT steps of `at` and later than the
    step `after` (the last one accepted), or None: wrong, too old or used already."""
    if not looks_like_code(code):
        return None
    typed = _SPACES.sub("", code)
    totp, now = _totp(secret), step_at(at)
    found = None
    for step in range(now - DRIFT, now + DRIFT + 1):
        # every candidate is compared (in constant time), whichever matches
        if hmac.compare_digest(totp.generate_otp(step), typed) and step > after:
            found = step if found is None else found
    return found


def grouped(secret: str) -> str:
    """The secret in groups of four letters, as a person types it into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// address an app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_code(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI (dark on white, with its quiet zone,
    so that it scans on a dark page too)."""
    return segno.make(uri, error="m").svg_data_uri(
        scale=5, border=4, dark="#000", light="#fff", omit_charset=True
    )


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """`count` different recovery codes, `xxxx-xxxx-xxxx`."""
    codes: list[str] = []
    while len(codes) < count:
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        code = "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4))
        if code not in codes:
            codes.append(code)
    return codes


def recovery_hash(code: str) -> str:
    """What is kept of a recovery code: the SHA-256 of it as typed in any case, with or
    without its dashes and spaces."""
    normal = _SPACES.sub("", code or "").lower()
    return hashlib.sha256(b"hostledger-recovery:" + normal.encode()).hexdigest()
