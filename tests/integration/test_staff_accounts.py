"""Staff accounts on the real database: the last administrator stays, login attempts are
counted atomically."""

import eventlet
import pytest

from contracts.errors import Conflict, InvalidCredentials, RateLimited
from services.customers.readmodels import Directory
from services.infra.context import Actor, acting
from services.infra.readmodels import Follower


def _admins(customers, n):
    follower = Follower(customers, Directory())
    members = []
    with acting(Actor("system", "test")):
        for i in range(n):
            member, _ = customers.register_staff(
                username=f"admin{i}", name=f"Admin {i}", role="admin", password="p" * 12
            )
            members.append(member)
    follower.catch_up()
    return members, follower


def test_the_last_active_administrator_can_be_neither_disabled_nor_demoted(customers):
    (first, second), _ = _admins(customers, 2)
    with acting(Actor("staff", str(first.id))):
        customers.disable_staff(second.id)
        with pytest.raises(Conflict):
            customers.disable_staff(first.id)
        with pytest.raises(Conflict) as refused:
            customers.edit_staff(first.id, {"role": "support"})
        assert "role" in refused.value.fields
        assert customers.edit_staff(first.id, {"name": "Still Admin"}).name == "Still Admin"
    assert customers.get_staff(first.id).role == "admin"
    assert customers.get_staff(first.id).active is True
    with pytest.raises(InvalidCredentials):
        customers.login("admin1", "p" * 12, "192.0.2.1")
    # the change is an event with its actor
    events = list(customers.repository.event_store.get(second.id))
    assert type(events[-1]).__name__ == "Disabled"
    assert events[-1].actor == {"kind": "staff", "id": str(first.id)}


def test_concurrent_wrong_passwords_never_pass_the_limit(customers):
    _admins(customers, 1)

    def attempt(_):
        try:
            customers.login("admin0", "wrong password", "192.0.2.9")
        except InvalidCredentials:
            return 401
        except RateLimited as exc:
            assert exc.retry_after > 0
            return 429
        return 200

    pool = eventlet.GreenPool(30)
    codes = sorted(pool.imap(attempt, range(30)))
    assert codes == [401] * 10 + [429] * 20
    with customers.datastore.transaction() as curs:
        curs.execute("SELECT failures FROM login_attempts WHERE key LIKE 'pair:%'")
        assert [r["failures"] for r in curs.fetchall()] == [10]
