"""The one clock. Domain code asks `now()`; tests and replays move it.

`SystemClock` is the wall clock. `FixedClock` is for unit tests. `FileClock` adds an
offset read from a file, so a test can move the time of running service processes
(set `HOSTLEDGER_CLOCK_FILE`); it is never used unless that variable is set.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(tz=UTC)


class FixedClock:
    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class FileClock:
    """Wall clock plus an offset in seconds kept in a file (re-read when it changes)."""

    def __init__(self, path: str):
        self.path = path
        self._mtime: float | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            self._mtime, self._offset = None, timedelta(0)
        else:
            if mtime != self._mtime:
                with open(self.path) as f:
                    text = f.read().strip()
                self._offset = timedelta(seconds=float(text or 0))
                self._mtime = mtime
        return datetime.now(tz=UTC) + self._offset

    @staticmethod
    def set_offset(path: str, delta: timedelta) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(str(delta.total_seconds()))
        os.replace(tmp, path)


_clock: Clock = SystemClock()


def now() -> datetime:
    return _clock.now()


def use_clock(clock: Clock) -> Clock:
    """Install `clock` for this process; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def isoformat(at: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the API speaks it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
