"""Run one operation from N green threads and time it.

Each green thread gets its own operation (own connection, own HTTP session) from a
factory; they share a budget of operations or of seconds. Durations come from
`time.perf_counter`. Under eventlet's monkey-patching, database and HTTP calls yield
to the other green threads while they wait, so N green threads keep N requests in
flight; CPU-bound work must go to real threads (eventlet's tpool) to run in parallel.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import eventlet


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100), linear between the closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": _round(percentile(ms, 50)),
        "p90_ms": _round(percentile(ms, 90)),
        "p99_ms": _round(percentile(ms, 99)),
        "max_ms": _round(max(ms) if ms else None),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Result:
    concurrency: int
    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float | None = None  # of this process, when the caller measured it

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        return {
            "concurrency": self.concurrency,
            "ops": self.ops,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 2),
            "latency": distribution_ms(self.latencies),
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else None,
            "cpu_ms_per_op": (
                round(self.cpu_seconds * 1000 / self.ops, 1)
                if self.cpu_seconds is not None and self.ops
                else None
            ),
        }


Factory = Callable[[contextlib.ExitStack], Callable[[], object]]


def drive(
    factory: Factory,
    concurrency: int,
    total: int | None = None,
    seconds: float | None = None,
    warmup: int = 0,
    before_measure: Callable[[], object] | None = None,
) -> Result:
    """`concurrency` green threads call their own op until `total` ops or `seconds` are spent.

    `warmup` ops are run first (same threads, not counted). An op that raises counts
    as an error, not as an op; the run goes on.
    """
    if total is None and seconds is None:
        raise ValueError("give total or seconds")
    with contextlib.ExitStack() as resources:
        ops = [factory(resources) for _ in range(concurrency)]
        if warmup:
            _run(ops, total=warmup, seconds=None)
        if before_measure is not None:
            before_measure()
        return _run(ops, total=total, seconds=seconds)


def _run(ops, total: int | None, seconds: float | None) -> Result:
    result = Result(concurrency=len(ops))
    tickets = itertools.count()
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else None

    def worker(op):
        while True:
            if total is not None and next(tickets) >= total:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            t0 = time.perf_counter()
            try:
                op()
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                eventlet.sleep(0.01)
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.ops += 1

    pool = eventlet.GreenPool(len(ops))
    for op in ops:
        pool.spawn(worker, op)
    pool.waitall()
    result.seconds = time.perf_counter() - start
    return result


class CpuMeter:
    """CPU seconds used by groups of processes (from /proc) and by the whole machine.

    Each source names a function that lists the group's pids at the moment it is
    called; a process that appears during the run counts in full, one that ends during
    the run is lost (a pooled database connection lives as long as its pool).
    """

    def __init__(self, sources: dict[str, Callable[[], list[int]]]):
        self.sources = sources
        self._tick = _clock_ticks()
        self._start: dict[str, dict[int, float]] = {}
        self._machine_start: tuple[float, float] = (0.0, 0.0)
        self._wall_start = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: self._sample(pids()) for name, pids in self.sources.items()}
        self._machine_start = _machine_cpu()
        self._wall_start = time.perf_counter()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self._wall_start
        busy1, total1 = _machine_cpu()
        used = {}
        for name, pids in self.sources.items():
            before = self._start[name]
            now = self._sample(pids())
            used[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())
        busy0, total0 = self._machine_start
        busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        return {
            "wall_seconds": wall,
            "process_cpu_seconds": used,
            "machine_busy_fraction": busy,
            "machine_busy_cpu_seconds": (busy1 - busy0) / self._tick,
        }

    def _sample(self, pids: list[int]) -> dict[int, float]:
        return {pid: cpu for pid in pids if (cpu := self._cpu(pid)) is not None}

    def _cpu(self, pid: int) -> float | None:
        """user + system CPU seconds of a process and its threads (None when it is gone)."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # after the command: state(0) ... utime(11) stime(12)
        return (int(fields[11]) + int(fields[12])) / self._tick


def pids_named(command: str) -> list[int]:
    """Processes whose command name (/proc/<pid>/comm) is `command`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == command:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs since boot."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def timed_list_reads(stack, path: str, filters: dict, samples: int, warmup: int) -> dict:
    """GET a staff list through the gateway one request at a time: the latency
    distribution of `samples` requests after `warmup`, and the list's `total`."""
    from urllib.parse import urlencode

    import requests

    url = f"{stack.base_url}{path}?{urlencode(filters)}"
    times: list[float] = []
    total = None
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {stack.admin_token}"
        for i in range(warmup + samples):
            t0 = time.perf_counter()
            r = session.get(url, timeout=60)
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
            total = r.json()["total"]
            if i >= warmup:
                times.append(elapsed)
    return distribution_ms(times) | {"matches": total}
