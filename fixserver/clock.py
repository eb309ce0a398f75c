"""The one place that reads the time.

Everything else in the system takes ``now_ns`` as an argument (sans-I/O session, engine, risk),
so replay, tests and the live system run the same code. Transports and the application ask a
:class:`Clock` for ``now_ns`` once per wake-up and pass it down.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Supplies the current time as integer nanoseconds since the Unix epoch (UTC)."""

    def now_ns(self) -> int: ...


class SystemClock:
    """Wall-clock UTC time. FIX SendingTime (52) is UTC, so this is not a monotonic clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        """Return nanoseconds since the Unix epoch."""
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to: for tests and deterministic replay."""

    __slots__ = ("_now_ns",)

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """Return the current (manually set) time."""
        return self._now_ns

    def advance(self, delta_ns: int) -> int:
        """Move forward by ``delta_ns`` (must be >= 0) and return the new time."""
        if delta_ns < 0:
            raise ValueError("a clock does not run backwards")
        self._now_ns += delta_ns
        return self._now_ns

    def set(self, now_ns: int) -> None:
        """Jump to ``now_ns`` (tests of day rollover)."""
        self._now_ns = now_ns
