"""`deploy/preflight.sh browser`: the browser tests' Chromium, installed when missing."""

import os
import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"


def _ensure_chromium(chromium: str, apt_works: bool) -> subprocess.CompletedProcess:
    """ensure_chromium with apt_install replaced by a stub that says what it would do."""
    stub = 'apt_install() { echo "would install $*"; return ' + ("0" if apt_works else "1") + "; }"
    return subprocess.run(
        ["bash", "-c", f'source "$0"; {stub}; ensure_chromium', str(DEPLOY / "preflight.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "HOSTLEDGER_CHROMIUM": chromium},
        check=False,
    )


def test_a_chromium_that_is_there_is_left_alone():
    result = _ensure_chromium("/bin/sh", apt_works=True)
    assert result.returncode == 0 and "would install" not in result.stdout


def test_a_missing_chromium_is_installed_from_debian(tmp_path):
    missing = str(tmp_path / "chromium")
    result = _ensure_chromium(missing, apt_works=False)
    assert result.returncode != 0
    assert "would install chromium" in result.stdout
    assert "sudo apt-get install -y chromium" in result.stderr
