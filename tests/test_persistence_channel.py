"""persistence._channel: parked rows wait while the store writes, and expire once it stalls."""

from __future__ import annotations

import asyncio
import time

from persistence._channel import Channel
from tests.strategies.records import record


class TestParkedRowExpiry:
    """A parked row past put_timeout is dropped only when the store has stopped writing."""

    def test_kept_while_the_store_writes_dropped_once_it_stalls(self) -> None:
        """Rows whose wait is over stay parked while rows were written within put_timeout, and
        are dropped as queue_full once the store has written nothing for put_timeout."""

        async def body() -> None:
            loop = asyncio.get_running_loop()
            channel = Channel("t", "t", capacity=1, put_timeout=60)
            late = [record(transition_id=f"late{i}") for i in range(2)]
            for item in late:
                channel.submit()
                channel.overflow.append((loop.time() - 1, item))  # waited past its deadline
            channel.last_written_at = time.monotonic()  # ... but the store just wrote rows
            channel._expire(loop)
            assert [item for _, item in channel.overflow] == late
            assert sum(channel.drops.values()) == 0
            channel.last_written_at = time.monotonic() - 61  # quiet for longer than put_timeout
            channel._expire(loop)
            assert not channel.overflow
            assert channel.drops == {"queue_full": 2}
            assert channel.processed == channel.submitted == 2
            if channel._expiry is not None:
                channel._expiry.cancel()

        asyncio.run(body())

    def test_writes_refresh_the_progress_clock(self) -> None:
        """Settling written rows records when the store last wrote; drops alone do not."""
        channel = Channel("t", "t", capacity=10, put_timeout=5)
        channel.submit()
        channel.settle(1, drops={"store_rejected": 1})
        assert channel.last_written_at is None
        before = time.monotonic()
        channel.submit()
        channel.settle(1, written=1)
        assert channel.last_written_at is not None
        assert channel.last_written_at >= before
