"""Password hashing (argon2id) and generated passwords.

argon2id with a configuration of OWASP's Password Storage Cheat Sheet
(m=19 MiB, t=2, p=1: the fastest here of its equivalent options). Hashes carry
their parameters, so older hashes keep verifying if these change. Hashing runs in
a real OS thread (eventlet's tpool) so that one login never stalls every other
green thread.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
PARAMETERS = {
    "type": "argon2id",
    "time_cost": _hasher.time_cost,
    "memory_cost_kib": _hasher.memory_cost,
    "parallelism": _hasher.parallelism,
}
# verified against when the username is unknown, so timing does not tell
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def _offload(fn, *args):
    from eventlet import patcher, tpool

    if patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args)
    return fn(*args)


def hash_password(password: str) -> str:
    return _offload(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return _offload(verify)


def generate_password() -> str:
    """A strong random password, 20 characters from a URL-safe alphabet (about 120 bits)."""
    return secrets.token_urlsafe(15)
