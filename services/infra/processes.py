"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Iterable

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


# The order a whole system stops in (the test stacks, `make run`): callers before the
# services they call over RPC, so that a worker still finishing its work when its process
# is asked to stop never waits for an answer from a service already gone (it would until
# its RPC timeout, holding up its process's stop as long, up to HOSTLEDGER_SHUTDOWN_GRACE).
# The processes of one tier stop side by side; each tier is gone before the next is asked.
# Who calls whom once no request comes in (RpcProxy in services/*/service.py): the
# gateway calls every service; the mail gateway (its handlers, its mail-in child) customers
# and helpdesk; orders billing (its handlers, its renewal runs); helpdesk and billing
# customers. Not counted: the calls of customers and billing to billing and orders, made
# for a request only (which ended with the gateway), and consumers' reads of an
# upstream's log, which stop with their inbox. Against the order: customers handing a
# due mail request to the mail gateway (services/customers/background.py), which a stop
# cuts off after a moment (the request is handed over again later, and sent once).
# The mail sink takes the mail gateway's mail. deploy/compose.yaml's depends_on follow
# the same tiers.
STOP_ORDER: tuple[tuple[str, ...], ...] = (
    ("gateway",),
    ("mailgateway", "orders"),
    ("helpdesk", "billing"),
    ("customers", "mailsink"),
)


def stop_tiers(processes: Iterable[str], service_of: Callable[[str], str]) -> list[list[str]]:
    """`processes` grouped in STOP_ORDER's tiers, the first to stop first (empty tiers
    left out); `service_of` names a process's service (`orders-2` -> `orders`). A process
    of a service STOP_ORDER does not name stops with the first tier: nothing calls it."""
    tier_of = {service: i for i, tier in enumerate(STOP_ORDER) for service in tier}
    tiers: list[list[str]] = [[] for _ in STOP_ORDER]
    for process in processes:
        tiers[tier_of.get(service_of(process), 0)].append(process)
    return [tier for tier in tiers if tier]
