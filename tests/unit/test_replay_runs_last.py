"""`make test` (pytest over tests/) checks that replaying every service's history gives
its live state after everything else ran on the shared stack: the end-to-end suite and
the browser tests first, verify-replay last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPLAY = (
    "tests/e2e/test_replay_equals_live.py"
    "::test_replaying_every_service_history_gives_the_live_state"
)


def test_verify_replay_is_the_last_test_of_the_whole_suite():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids[-1] == REPLAY, ids[-3:]
    # everything that drives the shared stack comes before it
    assert any(i.startswith("tests/e2e/") for i in ids[:-1])
    assert any(i.startswith("tests/browser/") for i in ids[:-1])
