"""persistence._channel: parked rows wait while writes finish, and expire once one is stuck."""

from __future__ import annotations

import asyncio
import time

from persistence._channel import Channel, Item, WriteTicket, finished
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


class TestQueue:
    """The bounded deque: take_ready keeps order and limit; awaited puts wait for room."""

    def test_take_ready_keeps_order_takes_at_most_limit_then_parked_rows(self) -> None:
        """Queued rows come out oldest first, at most `limit`, then parked ones, in order."""
        channel = Channel("t", "t", capacity=3, put_timeout=60)
        rows = [record(transition_id=f"r{i}") for i in range(5)]
        for row in rows[:3]:
            channel.put(row)
        assert channel.full()
        channel.overflow.extend((0.0, row) for row in rows[3:])
        batch: list[Item] = []
        channel.take_ready(batch, 2)
        assert batch == rows[:2]
        assert channel.ready_count() == 3
        channel.take_ready(batch, 10)
        assert batch == rows
        assert channel.ready_count() == 0

    def test_a_waiting_put_gets_room_once_rows_are_taken_else_times_out(self) -> None:
        """wait_for_room() returns True as soon as take_ready() frees a place, and False after
        its timeout while the queue stays full."""

        async def body() -> None:
            channel = Channel("t", "t", capacity=1, put_timeout=60)
            channel.put(record(transition_id="first"))
            assert not await channel.wait_for_room(0.01)  # nobody takes: times out
            waiting = asyncio.ensure_future(channel.wait_for_room(60))
            await asyncio.sleep(0)
            assert not waiting.done()
            channel.take_ready([], 1)
            assert await asyncio.wait_for(waiting, 5)
            assert not channel._room_waiters

        asyncio.run(body())

    def test_notify_wakes_the_waiter_only_once_enough_rows_are_ready(self) -> None:
        """A batcher waiting for 3 rows is woken by the third put, not before."""

        async def body() -> None:
            channel = Channel("t", "t", capacity=10, put_timeout=60)
            waiting = asyncio.ensure_future(channel.wait_for_rows(3, None))
            await asyncio.sleep(0)
            channel.put(record(transition_id="a"))
            channel.put(record(transition_id="b"))
            await asyncio.sleep(0)
            assert not waiting.done()
            channel.put(record(transition_id="c"))
            await asyncio.wait_for(waiting, 5)
            assert channel.ready_count() == 3

        asyncio.run(body())

    def test_put_on_loop_counts_wakes_and_calls_the_backlog_hook(self) -> None:
        """put_on_loop() is submit() + put(): counted as submitted (with submit()'s rows from
        other threads), a waiting batcher woken by its row, on_backlog called once
        backlog_rows are queued and not before."""
        calls: list[int] = []

        async def body() -> None:
            channel = Channel("t", "t", capacity=10, put_timeout=60)
            channel.on_backlog = lambda: calls.append(channel.ready_count())
            channel.backlog_rows = 3
            waiting = asyncio.ensure_future(channel.wait_for_rows(1, None))
            await asyncio.sleep(0)
            channel.put_on_loop(record(transition_id="a"))
            await asyncio.wait_for(waiting, 5)
            channel.put_on_loop(record(transition_id="b"))
            assert calls == []
            channel.put_on_loop(record(transition_id="c"))
            assert calls == [3]
            await asyncio.to_thread(channel.submit, 2)  # another thread's rows add up
            assert channel.submitted == 5
            assert channel.ready_count() == 3

        asyncio.run(body())
