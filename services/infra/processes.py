"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1

# looked up once, here: a `preexec_fn` runs between fork and exec, where loading a library
# could wait for a lock another thread of the parent held at the fork
try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _on_parent_death(sig: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(sig))


def die_with_parent() -> None:
    """Use as `preexec_fn`: in the child, SIGTERM when the parent dies, however it dies
    (Linux; elsewhere it does nothing), so no child is left behind. (The signal comes
    when the parent *thread* that started the child ends: start children from a thread
    that lives as long as they should.)"""
    _on_parent_death(signal.SIGTERM)


def dies_with_this_process(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for children of this process: `sig` when this process dies, and at
    once when it died while the child was starting. SIGKILL for children whose graceful
    stop could hang, when nothing is left to stop them gracefully for (test stacks)."""
    parent = os.getpid()

    def preexec() -> None:
        _on_parent_death(sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec
