"""statemachine.clock: the manual clock moves only when told, both readings together."""

from __future__ import annotations

import datetime as dt

import pytest

from statemachine.clock import ManualClock


class TestManualClock:
    """advance() moves both readings by exactly what it is given."""

    def test_milliseconds_alone(self) -> None:
        """advance(ms=n) moves the monotonic reading by n million ns and the wall clock by n ms."""
        clock = ManualClock()
        ns, now = clock.monotonic_ns(), clock.now()
        clock.advance(ms=7)
        assert clock.monotonic_ns() - ns == 7 * 1_000_000
        assert clock.now() - now == dt.timedelta(milliseconds=7)

    def test_nanoseconds_alone(self) -> None:
        """advance(ns=n) moves the monotonic reading by exactly n ns."""
        clock = ManualClock()
        ns = clock.monotonic_ns()
        clock.advance(ns=3)
        assert clock.monotonic_ns() - ns == 3

    def test_both_add_up(self) -> None:
        """Milliseconds and nanoseconds given together add up."""
        clock = ManualClock(start_ns=5)
        clock.advance(ms=2, ns=1500)
        assert clock.monotonic_ns() == 5 + 2_000_000 + 1500
        assert clock.now() - ManualClock().now() == dt.timedelta(microseconds=2001)

    def test_no_argument_moves_nothing(self) -> None:
        """advance() with no argument leaves both readings where they were."""
        clock = ManualClock()
        ns, now = clock.monotonic_ns(), clock.now()
        clock.advance()
        assert (clock.monotonic_ns(), clock.now()) == (ns, now)

    def test_backwards_refused(self) -> None:
        """A negative total step is refused and the clock does not move."""
        clock = ManualClock()
        ns = clock.monotonic_ns()
        with pytest.raises(ValueError, match="must not move the clock backwards"):
            clock.advance(ms=-1)
        clock.advance(ms=1, ns=-1_000_000)
        assert clock.monotonic_ns() == ns

    def test_start_must_be_utc(self) -> None:
        """A start time that is not UTC is refused; the default start is a UTC time."""
        with pytest.raises(ValueError, match="'start' must be a timezone-aware UTC"):
            ManualClock(start=dt.datetime(2025, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))))
        assert ManualClock().now().utcoffset() == dt.timedelta(0)
        start = dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.UTC)
        assert ManualClock(start=start).now() == start
