"""Named crash points, for tests that prove recovery (`HOSTLEDGER_FAILPOINTS=relay.after_publish`).

Inactive unless the variable names them; then the process exits at once, as a crash would.
"""

from __future__ import annotations

import logging
import os

from services.infra.settings import settings

log = logging.getLogger(__name__)


def failpoint(name: str) -> None:
    if name in settings().failpoints:
        log.error("failpoint %s reached: exiting as a crash would", name)
        logging.shutdown()
        os._exit(70)


class InjectedFault(RuntimeError):
    """Raised at a failpoint named `<name>=raise`: the code there fails as a bug would."""


def failpoint_raise(name: str) -> None:
    if f"{name}=raise" in settings().failpoints:
        raise InjectedFault(f"failpoint {name} raised")
