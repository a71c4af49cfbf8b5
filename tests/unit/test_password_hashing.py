"""Passwords are hashed with argon2id at OWASP's cost everywhere but in the test suite's
stacks, which ask for the cheapest hashes by a setting of their own."""

from argon2 import PasswordHasher, extract_parameters

from services.infra import passwords
from services.infra.settings import Settings


def _made_with(password_hash: str) -> dict:
    p = extract_parameters(password_hash)
    return {
        "type": p.type.name.lower(),
        "time_cost": p.time_cost,
        "memory_cost_kib": p.memory_cost,
        "parallelism": p.parallelism,
    }


def test_production_hashes_have_owasps_parameters():
    assert passwords.PARAMETERS == {
        "type": "argon2id",
        "time_cost": 2,
        "memory_cost_kib": 19456,
        "parallelism": 1,
    }
    production = Settings.from_env({})
    assert production.test_cheap_password_hashes is False
    h = passwords.hasher(production)
    assert isinstance(h, PasswordHasher)
    made = h.hash("a password")
    assert made.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert _made_with(made) == {**passwords.PARAMETERS, "type": "id"}


def test_only_the_test_setting_makes_cheap_hashes():
    for value in ("", "0", "no", "false"):
        cfg = Settings.from_env({"HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES": value})
        assert passwords.parameters(cfg) is passwords.PARAMETERS
    cheap = Settings.from_env({"HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES": "1"})
    assert passwords.parameters(cheap) == passwords.TEST_PARAMETERS
    made = passwords.hasher(cheap).hash("a password")
    assert made.startswith("$argon2id$v=19$m=8,t=1,p=1$")


def test_hashes_of_either_cost_verify_under_both():
    production = passwords.hasher(Settings.from_env({}))
    cheap = passwords.hasher(Settings.from_env({"HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES": "1"}))
    assert cheap.verify(production.hash("pw"), "pw")
    assert production.verify(cheap.hash("pw"), "pw")


def test_this_process_hashes_at_production_cost():
    """The unit tests' own process is not one of the stacks: no cheap setting here."""
    made = passwords.hash_password("a password")
    assert made.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(made, "a password")
    assert not passwords.verify_password(made, "another")
    assert not passwords.verify_password(None, "a password")
