"""A read model rebuilt from scratch has the same rows as the one fed live."""

from services.customers.readmodels import CustomerList
from services.infra.readmodels import Follower


def _rows(app):
    with app.datastore.transaction() as curs:
        curs.execute("SELECT * FROM customer_list ORDER BY number")
        return curs.fetchall()


def test_rebuild_gives_the_same_rows(customers):
    follower = Follower(customers, CustomerList())
    for i in range(12):
        customers.register_customer(
            {
                "kind": "company" if i % 2 else "individual",
                "email": f"r{i}@example.com",
                "country": "FR",
                "contact_person": f"Person {i}",
                "company_name": f"Co {i}" if i % 2 else None,
                "language": "fr",
                "password": "x" * 12,
            }
        )
        if i == 5:
            follower.catch_up()  # half fed live, half later
    follower.catch_up()
    live = _rows(customers)
    assert len(live) == 12
    assert {r["name"] for r in live} >= {"Co 1", "Person 0"}

    with customers.datastore.transaction(commit=True) as curs:
        curs.execute("UPDATE customer_list SET name = 'corrupted'")
    replayed = follower.rebuild()
    assert replayed == customers.recorder.max_notification_id()
    assert _rows(customers) == live


def test_follower_does_not_apply_an_event_twice(customers):
    follower = Follower(customers, CustomerList())
    customers.register_customer(
        {
            "kind": "individual",
            "email": "once@example.com",
            "country": "DE",
            "contact_person": "Once",
            "password": "y" * 12,
        }
    )
    assert follower.catch_up() == 3
    assert follower.catch_up() == 0
    assert len(_rows(customers)) == 1
