"""persistence._channel: parked rows wait while writes finish, and expire once one is stuck."""

from __future__ import annotations

import asyncio
import time

from persistence._channel import Channel, WriteTicket, finished
from tests.strategies.records import record


class TestParkedRowExpiry:
    """A parked row past put_timeout is dropped only when a write has been stuck as long."""

    def test_kept_while_writes_finish_dropped_once_one_is_stuck(self) -> None:
        """Rows whose wait is over stay parked while no write is stuck (none started yet, or
        the one in flight is young), and are dropped as queue_full once a write has been in
        flight for put_timeout."""

        async def body() -> None:
            loop = asyncio.get_running_loop()
            channel = Channel("t", "t", capacity=1, put_timeout=60)
            late = [record(transition_id=f"late{i}") for i in range(2)]
            for item in late:
                channel.submit()
                channel.overflow.append((loop.time() - 1, item))  # waited past its deadline
            channel._expire(loop)  # no write has started: the logger is behind, not the store
            assert [item for _, item in channel.overflow] == late
            started = channel.write_started()
            channel._expire(loop)  # a write in flight for less than put_timeout
            assert [item for _, item in channel.overflow] == late
            assert sum(channel.drops.values()) == 0
            channel.write_ended(started)
            channel._writes.append(WriteTicket(time.monotonic() - 61))  # stuck for over 60 s
            channel._expire(loop)
            assert not channel.overflow
            assert channel.drops == {"queue_full": 2}
            assert channel.processed == channel.submitted == 2
            if channel._expiry is not None:
                channel._expiry.cancel()

        asyncio.run(body())

    def test_stuck_for_measures_the_oldest_unfinished_write(self) -> None:
        """stuck_for() is 0 with no write in flight, the oldest unfinished write's age
        otherwise, and a write the store finished stops counting before it is settled."""
        channel = Channel("t", "t", capacity=10, put_timeout=5)
        assert channel.stuck_for() == 0.0
        first = channel.write_started()
        second = channel.write_started()
        channel.write_ended(second)
        assert channel.stuck_for() >= time.monotonic() - first.started - 0.001
        assert finished([first], lambda x: x + 1, 1) == 2  # the writer thread's wrapper
        assert channel.stuck_for() == 0.0
        channel.write_ended(first)
        assert channel.stuck_for() == 0.0


class TestPipelinedProgress:
    """Many writes in flight (the writer process) are behind, not stuck, while some finish."""

    def test_recent_progress_resets_the_stuck_clock(self) -> None:
        """An old unfinished write after a recently finished one counts from that finish; with
        no finish since it started, from its own start."""
        channel = Channel("t", "t", capacity=1, put_timeout=60)
        old = WriteTicket(time.monotonic() - 120)
        queued = WriteTicket(time.monotonic() - 100)
        channel._writes.extend([old, queued])
        assert channel.stuck_for() >= 100  # nothing finished: stuck since `queued` started
        old.finish()  # the store just finished the oldest group
        assert channel.stuck_for() < 60
        channel.write_ended(old)
        assert channel.stuck_for() < 60  # the finish is remembered after it was settled
        queued.finish()
        assert channel.stuck_for() == 0.0
