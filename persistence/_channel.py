"""One table's bounded queue, its overflow of rows waiting for room, and its counters."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from statemachine._log import lazy_logger
from statemachine.records import TransitionRecord

# A queued item: a record (converted to a row in the flush thread), a ready row dict, or, for a
# pipelined store, a record as its value tuple (persistence._writer_parts.record_values).
Item = TransitionRecord | Mapping[str, Any] | tuple[Any, ...]
DROP_REASONS = ("queue_full", "shutdown", "store_rejected", "store_unavailable", "invalid")
_WARN_EVERY_SECONDS = 5.0

_log = lazy_logger("persistence.logger")


class WriteTicket:
    """One write in flight: when it started, and whether the store has finished it."""

    __slots__ = ("done", "done_at", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = False  # set by the writer thread as soon as the store accepted the rows
        self.done_at = 0.0

    def finish(self) -> None:
        """The store has finished this write (called from the thread that saw it finish)."""
        self.done_at = time.monotonic()
        self.done = True


def finished(tickets: Sequence[WriteTicket], write: Callable[..., Any], *args: Any) -> Any:
    """Call write(*args) (in the writer thread); mark the tickets done if it returns."""
    result = write(*args)
    for ticket in tickets:
        ticket.finish()
    return result


class Channel:
    """Queue + overflow + counters of one table; counters are safe to bump from any thread.

    Rows emitted while the queue is full wait in `overflow` (oldest first): the caller never
    waits, the row does. A parked row is dropped as queue_full once it has waited put_timeout
    seconds while a write of this table has been in flight for put_timeout seconds: the store
    is stuck or failing. A store that keeps finishing its writes is only behind (10,000
    pipelines started at once on a busy machine), and so is a logger whose event loop has not
    yet come round to the next write; dropping audit rows then would be worse than holding them
    in memory. Every submitted row is eventually `processed`: written, rejected or dropped with
    a reason; flush() and stop() wait for processed to reach submitted.
    """

    def __init__(self, table: str, short: str, capacity: int, put_timeout: float) -> None:
        self.table = table
        self.short = short
        self.capacity = capacity
        self.put_timeout = put_timeout
        # A plain deque, bounded by full(): the loop thread alone puts and takes, so asyncio.Queue's
        # getter/putter futures and unfinished-task count were per-row work for nobody (~1 us of
        # each emit()). Waiting is per batch: wait_for_rows() (rows) and wait_for_room() (room).
        self.queue: collections.deque[Item] = collections.deque()
        self._room_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.overflow: collections.deque[tuple[float, Item]] = collections.deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        self._submitted = 0  # by submit(), any thread, under the lock
        self._loop_submitted = 0  # by put_on_loop(), the loop's thread only: no lock needed
        self.processed = 0
        self.rows_written = 0
        self.in_flight = 0
        self.drops: collections.Counter[str] = collections.Counter()
        # The writes of this table in flight (started, not yet settled), oldest first.
        self._writes: collections.deque[WriteTicket] = collections.deque()
        self._last_done = 0.0  # when the store last finished a write of this table
        self.flush_failures = 0
        self.last_flush_error: str | None = None
        self._last_warning: dict[str, float] = {}
        self.on_progress: Callable[[], None] = lambda: None
        # The batcher waiting for a fuller batch, and how many ready rows wake it.
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 0
        # A group-commit store's hook: called (loop thread) once backlog_rows are ready.
        self.on_backlog: Callable[[], None] | None = None
        self.backlog_rows = 0

    # -- counting -----------------------------------------------------------------------------

    @property
    def submitted(self) -> int:
        """Rows the logger has taken responsibility for."""
        return self._submitted + self._loop_submitted

    def submit(self, rows: int = 1) -> None:
        """Count rows the logger has taken responsibility for (one by default)."""
        with self._lock:
            self._submitted += rows

    def settle(
        self, rows: int, *, written: int = 0, drops: Mapping[str, int] | None = None
    ) -> None:
        """Count `rows` submitted rows as done: `written` landed, `drops` dropped by reason."""
        with self._lock:
            self.processed += rows
            self.rows_written += written
            for reason, count in (drops or {}).items():
                if count:
                    self.drops[reason] += count
        for reason, count in (drops or {}).items():
            if count:
                self._warn_drop(reason, count)
        self.on_progress()

    def drop_unsubmitted(self, reason: str) -> None:
        """Count a row refused before it was ever submitted (logger stopped, invalid input)."""
        with self._lock:
            self.drops[reason] += 1
        self._warn_drop(reason, 1)

    def _warn_drop(self, reason: str, count: int) -> None:
        """Warn about drops, at most once per reason every few seconds (a flood must not log)."""
        now = time.monotonic()
        last = self._last_warning.get(reason)
        if last is not None and now - last < _WARN_EVERY_SECONDS:
            return
        self._last_warning[reason] = now
        _log.warning(
            "metadata_rows_dropped",
            table=self.table,
            reason=reason,
            count=count,
            total_dropped=dict(self.drops),
        )

    def note_failure(self, error: BaseException) -> None:
        """Remember a failed flush attempt."""
        with self._lock:
            self.flush_failures += 1
            self.last_flush_error = f"{type(error).__name__}: {error}"[:1000]

    # -- waking the batcher (loop thread only) -------------------------------------------------

    def ready_count(self) -> int:
        """Rows waiting to be batched: queued plus parked."""
        return len(self.queue) + len(self.overflow)

    def full(self) -> bool:
        """True when the queue holds `capacity` rows (new rows then park or drop)."""
        return len(self.queue) >= self.capacity

    def put(self, item: Item) -> None:
        """Queue a row (the caller checked full()) and wake whoever waits for it."""
        self.queue.append(item)
        self.notify()

    def put_on_loop(self, item: Item) -> None:
        """submit() and put() in one step, on the loop's thread only (MetadataLogger.emit's
        short way): no lock, and notify() only when someone may need waking (~0.25 us less
        per emit, 202 emits per 100-step chain)."""
        self._loop_submitted += 1
        queue = self.queue
        queue.append(item)
        if self._waiter is not None or (
            self.on_backlog is not None and len(queue) + len(self.overflow) >= self.backlog_rows
        ):
            self.notify()

    def notify(self) -> None:
        """A row was queued or parked: wake the batcher once its batch can be filled."""
        if self._waiter is None and self.on_backlog is None:
            return  # the common case while a commit is being gathered: nothing to compare
        ready = len(self.queue) + len(self.overflow)
        if self._waiter is not None and ready >= self._wake_at:
            self.wake()
        if self.on_backlog is not None and ready >= self.backlog_rows:
            self.on_backlog()

    def wake(self) -> None:
        """Wake the waiting batcher now (a flush is urgent, or its interval is over)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait_with(self, waiter: asyncio.Future[None], count: int) -> None:
        """Resolve `waiter` (which other channels may share) once `count` rows are ready."""
        self._waiter, self._wake_at = waiter, min(count, self.capacity)

    def forget(self, waiter: asyncio.Future[None]) -> None:
        """Stop resolving `waiter` (its wait is over)."""
        if self._waiter is waiter:
            self._waiter = None

    async def wait_for_rows(self, count: int, timeout: float | None) -> None:  # noqa: ASYNC109
        """Return once `count` rows are ready (or the queue is full), on wake(), or on timeout.

        One future and one timer per wait, not per row: rows that trickle in one by one cost
        the producer a comparison each, never a task switch. timeout None: no timer.
        """
        wake_at = min(count, self.capacity)
        if self.ready_count() >= wake_at:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter, self._wake_at = waiter, wake_at
        timer = None if timeout is None else loop.call_later(timeout, self.wake)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiter is waiter:
                self._waiter = None

    async def wait_for_room(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the queue has room (True) or `timeout` seconds passed (False)."""
        if not self.full():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._room_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                while self.full():
                    await waiter
                    if self.full():  # another waiter took the room first
                        waiter = asyncio.get_running_loop().create_future()
                        self._room_waiters.append(waiter)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._room_waiters.remove(waiter)
        return True

    def _wake_room_waiters(self) -> None:
        """Rows left the queue: wake the awaited puts, oldest first, one per free place."""
        room = self.capacity - len(self.queue)
        while self._room_waiters and room > 0:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    # -- overflow -----------------------------------------------------------------------------

    def add_overflow(self, loop: asyncio.AbstractEventLoop, item: Item) -> None:
        """Park a row for at most put_timeout; a timer drops it as queue_full if still parked."""
        deadline = loop.time() + self.put_timeout
        self.overflow.append((deadline, item))
        if self._expiry is None:
            self._expiry = loop.call_at(deadline, self._expire, loop)

    def write_started(self) -> WriteTicket:
        """Note that a write of this table began; pass the ticket to write_ended()."""
        ticket = WriteTicket(time.monotonic())
        self._writes.append(ticket)
        return ticket

    def write_ended(self, ticket: WriteTicket) -> None:
        """Note that a write is over and settled (written, given up or cancelled)."""
        self._writes.remove(ticket)
        if ticket.done:
            self._last_done = max(self._last_done, ticket.done_at)

    def stuck_for(self) -> float:
        """Seconds the store has made no progress while a write was unfinished (0 if none is).

        Progress is the oldest unfinished write's start or the last write the store finished,
        whichever is later: a pipelined store (the writer process) with many groups in flight
        is behind, not stuck, while it keeps finishing them. A write the store has finished
        (ticket.done, set by the writer's thread) counts even before the event loop has come
        round to settle it.
        """
        progress = self._last_done
        oldest: float | None = None
        for ticket in self._writes:
            if ticket.done:
                progress = max(progress, ticket.done_at)
            elif oldest is None:
                oldest = ticket.started
        if oldest is None:
            return 0.0
        return time.monotonic() - max(oldest, progress)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop every parked row whose wait is over, if a write has been stuck as long."""
        self._expiry = None
        now = loop.time()
        stuck = self.stuck_for()
        if stuck < self.put_timeout:
            # The store is behind, not stuck (or no write has started yet): look again once
            # the oldest write in flight, or a write starting now, could have been stuck long.
            self._expiry = loop.call_at(now + self.put_timeout - stuck, self._expire, loop)
            return
        expired = 0
        while self.overflow and self.overflow[0][0] <= now:
            self.overflow.popleft()
            expired += 1
        if expired:
            self.settle(expired, drops={"queue_full": expired})
        if self.overflow:
            self._expiry = loop.call_at(self.overflow[0][0], self._expire, loop)

    def take_ready(self, batch: list[Item], limit: int) -> None:
        """Move queued rows, then parked rows, into `batch` until it holds `limit` rows."""
        queue = self.queue
        room = limit - len(batch)
        if len(queue) <= room:  # the usual case: the whole queue in one C call
            batch.extend(queue)
            queue.clear()
        else:
            popleft = queue.popleft
            batch.extend([popleft() for _ in range(room)])
        overflow = self.overflow
        while overflow and len(batch) < limit:
            batch.append(overflow.popleft()[1])
        if self._room_waiters:
            self._wake_room_waiters()

    def discard_pending(self) -> int:
        """Drop everything still queued or parked (stop timed out); return how many."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        count = len(self.overflow) + len(self.queue)
        self.overflow.clear()
        self.queue.clear()
        if count:
            self.settle(count, drops={"shutdown": count})
        return count

    # -- reporting ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Depth, capacity, utilisation and counters of this queue."""
        depth = len(self.queue)
        with self._lock:
            return {
                "table": self.table,
                "depth": depth,
                "capacity": self.capacity,
                "utilization_pct": round(100.0 * depth / self.capacity, 1),
                "waiting": len(self.overflow),
                "in_flight": self.in_flight,
                "rows_submitted": self.submitted,
                "rows_written": self.rows_written,
                "rows_dropped": sum(self.drops.values()),
                "drops_by_reason": dict(self.drops),
                "flush_failures": self.flush_failures,
                "last_flush_error": self.last_flush_error,
            }
