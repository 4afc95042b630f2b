"""Injectable time: a monotonic clock for durations and a UTC wall clock for timestamps."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Where the state machines read time from."""

    def monotonic_ns(self) -> int:
        """Nanoseconds from a clock that never goes backwards (for durations)."""
        ...

    def now(self) -> dt.datetime:
        """The current time as a timezone-aware UTC datetime (for timestamps)."""
        ...


class SystemClock:
    """The real clocks: time.monotonic_ns and datetime.now(UTC)."""

    __slots__ = ()

    # Bound at class level so a call costs one C function, not a Python frame.
    monotonic_ns = staticmethod(time.monotonic_ns)

    now = staticmethod(functools.partial(dt.datetime.now, dt.UTC))


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to; both readings advance together (for tests)."""

    def __init__(self, start: dt.datetime | None = None, start_ns: int = 1_000_000_000) -> None:
        if start is None:
            start = dt.datetime(2025, 12, 21, 12, 0, tzinfo=dt.UTC)
        if start.utcoffset() != dt.timedelta(0):
            raise ValueError(f"'start' must be a timezone-aware UTC datetime (got {start!r}).")
        self._lock = threading.Lock()
        self._start = start
        self._start_ns = start_ns
        self._ns = start_ns

    def advance(self, *, ms: int = 0, ns: int = 0) -> None:
        """Move both clocks forward by `ms` milliseconds plus `ns` nanoseconds."""
        step = ms * 1_000_000 + ns
        if step < 0:
            raise ValueError(f"'ms'/'ns' must not move the clock backwards (got {step} ns).")
        with self._lock:
            self._ns += step

    def monotonic_ns(self) -> int:
        """The manual monotonic reading."""
        return self._ns

    def now(self) -> dt.datetime:
        """The start time plus everything advanced so far."""
        return self._start + dt.timedelta(microseconds=(self._ns - self._start_ns) // 1000)
