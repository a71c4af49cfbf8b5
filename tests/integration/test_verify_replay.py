"""`hostledger audit verify-replay` finds what differs between the history and the live
state: a read-model row changed by hand, an event one side skipped, a snapshot that is not
what its events give. Real databases of the test's own, the command as operators run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import psycopg

from services.infra.readmodels import Follower

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]


def verify(cfg, *services) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOSTLEDGER_DB_PREFIX=cfg.db_prefix, HOSTLEDGER_DB_POOL_SIZE="1")
    return subprocess.run(
        [str(COMMAND), "audit", "verify-replay", *services],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def differences(done) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("DIFFERENCE ")]


def follow(app, service: str) -> None:
    import importlib

    for model_cls in importlib.import_module(f"services.{service}.service").READ_MODELS:
        Follower(app, model_cls()).catch_up()


def scratch_schemas(cfg, service: str) -> list[str]:
    with psycopg.connect(cfg.database.conninfo(cfg.database_name(service))) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hostledger_replay_%'"
        ).fetchall()
    return [r[0] for r in rows]


def register(customers, n: int, start: int = 0) -> list[dict]:
    return [
        customers.register_customer(
            {
                "kind": "company" if i % 2 else "individual",
                "email": f"v{i}@example.com",
                "country": "FR",
                "contact_person": f"Person {i}",
                "company_name": f"Co {i}" if i % 2 else None,
                "password": "x" * 12,
            }
        )
        for i in range(start, start + n)
    ]


def test_a_row_changed_by_hand_is_named_with_its_key_column_and_both_values(cfg, customers):
    registered = register(customers, 6)
    follow(customers, "customers")

    done = verify(cfg, "customers")
    assert done.returncode == 0, done.stdout + done.stderr
    assert differences(done) == []
    assert "customers.customer_list: compared at position" in done.stdout
    assert "replaying the history gives the live state" in done.stdout

    victim = registered[2]["id"]
    with customers.datastore.transaction(commit=True) as curs:
        curs.execute(
            "UPDATE customer_list SET email = 'forged@example.com' WHERE customer_id = %s",
            (victim,),
        )
        curs.execute(
            "DELETE FROM customer_list WHERE number = (SELECT max(number) FROM customer_list)"
        )
    done = verify(cfg, "customers")
    assert done.returncode == 1, done.stdout + done.stderr
    found = differences(done)
    assert (
        f"DIFFERENCE customers.customer_list: table customer_list [customer_id={victim}] "
        "email: live 'forged@example.com', replayed 'v2@example.com'"
    ) in found, done.stdout
    [missing] = [line for line in found if "row only replayed" in line]
    assert "customer_list [customer_id=" in missing and "email='v5@example.com'" in missing
    assert len(found) == 2, found
    assert "verify-replay: 2 differences between the history and the live state" in done.stdout
    # the summary names the service and its count
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["service", "read"])
    assert lines[header + 1].split()[0] == "customers"
    assert lines[header + 1].split()[-2] == "2"
    assert scratch_schemas(cfg, "customers") == []  # dropped, as after every run


def test_a_model_behind_the_log_is_compared_at_its_own_position(cfg, customers):
    register(customers, 2)
    follow(customers, "customers")
    register(customers, 3, start=2)  # not projected yet: the live list has the first two
    done = verify(cfg, "customers")
    assert done.returncode == 0, done.stdout + done.stderr
    assert differences(done) == []


def test_parked_events_are_compared_as_the_events_each_side_skipped(cfg, customers):
    import copy

    register(customers, 2)
    [n] = [
        n
        for n in customers.recorder.select_notifications(1, 1000)
        if n.topic.endswith(":Customer.Registered")
    ][:1]
    bad = copy.copy(customers.mapper.to_domain_event(n))
    object.__setattr__(bad, "originator_id", uuid4())
    object.__setattr__(bad, "originator_version", 1)
    object.__setattr__(bad, "contact_person", "Nul\x00")
    object.__setattr__(bad, "company_name", None)
    object.__setattr__(bad, "number", 10**9)
    customers.recorder.insert_events([customers.mapper.to_stored_event(bad)])
    position = customers.recorder.max_notification_id()
    follow(customers, "customers")  # the customer list parks it, as the replay will
    done = verify(cfg, "customers")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped event: equal" in done.stdout

    # live, staff resolved it without projecting it: still skipped on both sides
    with customers.datastore.transaction(commit=True) as curs:
        curs.execute(
            "UPDATE parked_events SET resolved_at = now(), resolution = 'resolved by staff'"
            " WHERE position = %s",
            (position,),
        )
    assert verify(cfg, "customers").returncode == 0
    # as if the live model had projected it: the replay says it could not
    with customers.datastore.transaction(commit=True) as curs:
        curs.execute("DELETE FROM parked_events WHERE position = %s", (position,))
    done = verify(cfg, "customers")
    assert done.returncode == 1
    [line] = differences(done)
    assert f"event {position} (Customer.Registered): the replay could not project it" in line
    assert "the live model did" in line


def test_a_snapshot_that_is_not_what_its_events_give_is_found(cfg, billing):
    from services.billing.domain import PersonalAccount

    customer_id = uuid4()
    billing.open_account(customer_id, "EUR", {"name": "Snap"})
    for amount in (500, 250, -100):
        billing.correct_balance(customer_id, "EUR", amount, "test")
    follow(billing, "billing")
    account = billing.account(customer_id, "EUR")
    billing.take_snapshot(account.id)

    done = verify(cfg, "billing")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of them compared with their snapshot-based load (1 snapshot): equal" in done.stdout

    # a snapshot saying more than the events: the balance the application would load
    billing.correct_balance(customer_id, "EUR", 50, "test")
    follow(billing, "billing")
    forged = billing.repository.get(account.id)
    forged.balance_amount = 99_999
    billing.snapshots.put([PersonalAccount.Snapshot.take(forged)])
    done = verify(cfg, "billing")
    assert done.returncode == 1, done.stdout + done.stderr
    found = differences(done)
    prefix = f"DIFFERENCE billing aggregates: aggregate {account.id} (PersonalAccount)"
    version = forged.version
    assert (
        f"{prefix} snapshot at version {version}: balance_amount: events 700, snapshot 99999"
    ) in found, found
    assert (
        f"{prefix} version {version}: balance_amount: events 700, snapshot-based load 99999"
    ) in found, found
    assert len(found) == 2, found


def test_a_live_model_moving_meanwhile_is_compared_where_it_stands(cfg, customers, monkeypatch):
    """The live customer list moves after each replay to its position: the check catches
    up and looks again, and on its last try holds the model still (its followers' lock)."""
    from services import audit_replay
    from services.customers.readmodels import CustomerList
    from services.infra.settings import reset_settings

    register(customers, 2)
    follow(customers, "customers")
    live = Follower(customers, CustomerList())
    moved = []
    replay_to = audit_replay.ReplayFollower.replay_to

    def replay_then_move(self, position, progress=None):
        done = replay_to(self, position, progress)
        if self.model.name == "customer_list":
            register(customers, 1, start=10 + len(moved))
            moved.append(live.catch_up())
        return done

    monkeypatch.setattr(audit_replay.ReplayFollower, "replay_to", replay_then_move)
    monkeypatch.setenv("HOSTLEDGER_DB_PREFIX", cfg.db_prefix)
    reset_settings()
    try:
        result = audit_replay.ServiceAudit("customers").run()
    finally:
        monkeypatch.undo()
        reset_settings()
    assert result.differences == 0
    # each registration is 3 events; held still, the live model could not take them
    assert moved == [3] * audit_replay.UNLOCKED_TRIES + [0]
    assert live.catch_up() == 3  # let go afterwards
    assert scratch_schemas(cfg, "customers") == []


def test_help_and_an_unknown_service(cfg):
    done = subprocess.run(
        [str(COMMAND), "audit", "verify-replay", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "usage: hostledger audit verify-replay" in done.stdout
    done = verify(cfg, "nowhere")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("hostledger: no service named 'nowhere'; one of:")


def test_a_projection_writing_outside_its_tables_stops_the_replay_and_changes_nothing(
    cfg, customers, monkeypatch
):
    import argparse

    import pytest

    import services.customers.service as customers_service
    from services import audit_replay
    from services.cli import CommandError
    from services.infra.readmodels import ReadModel
    from services.infra.settings import reset_settings

    class Leaky(ReadModel):
        name = "leaky"
        table_names = ("leaky",)
        tables = ("CREATE TABLE IF NOT EXISTS leaky (id uuid PRIMARY KEY)",)

        leak = False

        def project(self, curs, event):
            curs.execute("INSERT INTO leaky VALUES (%s)", (event.originator_id,))
            if self.leak:  # a table the model does not declare: the live one
                curs.execute(
                    "INSERT INTO request_keys (key, request_hash, claimed_at)"
                    " VALUES (%s, 'x', now())",
                    (str(uuid4()),),
                )

    register(customers, 1)
    Follower(customers, Leaky()).catch_up()
    Leaky.leak = True
    monkeypatch.setattr(customers_service, "READ_MODELS", (Leaky,))
    monkeypatch.setenv("HOSTLEDGER_DB_PREFIX", cfg.db_prefix)
    reset_settings()
    try:
        with pytest.raises(CommandError, match=r"wrote to public\.request_keys, outside its"):
            audit_replay.cmd_verify_replay(argparse.Namespace(service="customers"))
    finally:
        monkeypatch.undo()
        reset_settings()
    with customers.datastore.transaction() as curs:
        curs.execute("SELECT count(*) AS n FROM request_keys")
        assert curs.fetchone()["n"] == 0
    assert scratch_schemas(cfg, "customers") == []
