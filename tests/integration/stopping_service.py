"""A nameko service for tests/integration/test_shutdown_grace.py: an RPC that takes as
long as it is told to, run by `nameko run` with hostledger's stop (services/infra/shutdown.py)."""

import eventlet
from nameko.rpc import rpc

from services.infra import shutdown  # noqa: F401 - installs the graceful stop


class StoppingService:
    name = "stoppingtest"

    @rpc
    def sleep(self, seconds: float) -> float:
        print(f"sleeping {seconds}", flush=True)  # the test waits for this line
        eventlet.sleep(seconds)
        return seconds
