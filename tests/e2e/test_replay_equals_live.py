"""After everything else the suite did to the shared stack, replaying each service's
history gives its live state: every read model row, the events each model skipped, every
aggregate against its snapshots (`hostledger audit verify-replay`, DESIGN.md: event flow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = Path(sys.executable).parent / "hostledger"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.after_everything
def test_replaying_every_service_history_gives_the_live_state(stack):
    stack.register_customer()  # a history even when this test runs alone
    done = subprocess.run(
        [str(COMMAND), "audit", "verify-replay"],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    differences = [line for line in done.stdout.splitlines() if line.startswith("DIFFERENCE")]
    assert differences == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify-replay: replaying the history gives the live state" in done.stdout
    # every service was looked at, its models and its aggregates
    for service in ("customers", "billing", "orders", "helpdesk", "mailgateway"):
        assert f"{service} aggregates:" in done.stdout, done.stdout
    assert "billing.ledger: compared at position" in done.stdout
    # the run's own figures, for whoever reads the test log
    print(done.stdout[done.stdout.index("service ") :])
