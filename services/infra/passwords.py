"""Password hashing (argon2id) and generated passwords.

argon2id with a configuration of OWASP's Password Storage Cheat Sheet
(m=19 MiB, t=2, p=1: the fastest here of its equivalent options). Hashes carry
their parameters, so older hashes keep verifying if these change. Hashing runs in
a real OS thread (eventlet's tpool) so that one login never stalls every other
green thread.

The test suite's stacks alone set HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES=1: argon2id at
the least cost it allows (TEST_PARAMETERS), as the suite hashes thousands of passwords;
tests/unit/test_password_hashing.py checks that nothing else does.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.infra.settings import Settings, settings

PARAMETERS = {"type": "argon2id", "time_cost": 2, "memory_cost_kib": 19456, "parallelism": 1}
TEST_PARAMETERS = {"type": "argon2id", "time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}


def parameters(cfg: Settings) -> dict:
    """The argon2id parameters new hashes get under `cfg`."""
    return TEST_PARAMETERS if cfg.test_cheap_password_hashes else PARAMETERS


@functools.cache
def _hasher_with(time_cost: int, memory_cost_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism)


def hasher(cfg: Settings) -> PasswordHasher:
    p = parameters(cfg)
    return _hasher_with(p["time_cost"], p["memory_cost_kib"], p["parallelism"])


@functools.cache
def _dummy_hash(h: PasswordHasher) -> str:
    """Verified against when the username is unknown, so timing does not tell."""
    return h.hash("not a password of anyone")


def _offload(fn, *args):
    from eventlet import patcher, tpool

    if patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args)
    return fn(*args)


def hash_password(password: str) -> str:
    return _offload(hasher(settings()).hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    h = hasher(settings())
    dummy = _dummy_hash(h)

    def verify() -> bool:
        try:
            return h.verify(password_hash or dummy, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return _offload(verify)


def generate_password() -> str:
    """A strong random password, 20 characters from a URL-safe alphabet (about 120 bits)."""
    return secrets.token_urlsafe(15)
