"""The generic batcher: collect a batch (full, or interval passed), write it in a thread, retry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from classifier import ErrorType, RetryPolicy, get_retry_delay
from persistence._channel import Channel, Item, finished
from persistence.settings import LoggerSettings
from persistence.stores.base import RowError, Store, StoreError, WriteResult
from statemachine._log import lazy_logger
from statemachine.records import TransitionRecord

_log = lazy_logger("persistence.logger")


_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}  # by process id: fork-safe
_POOL_LOCK = threading.Lock()
_POOL_THREADS = 32


def writer_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process-wide threads that run store writes, kept across event loops and loggers.

    asyncio.to_thread would use each loop's default executor: a new loop (asyncio.run per
    pipeline) starts new threads, and a new thread's first writes run on cold memory. A forked
    child gets a pool of its own (the parent's threads do not exist there).
    """
    pid = os.getpid()
    pool = _POOLS.get(pid)
    if pool is None:
        with _POOL_LOCK:
            pool = _POOLS.get(pid)
            if pool is None:
                pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_POOL_THREADS, thread_name_prefix="pipestate-writer"
                )
                _POOLS.clear()
                _POOLS[pid] = pool
    return pool


def retry_policy(settings: LoggerSettings) -> RetryPolicy:
    """The small backoff policy of failed flushes, from the logger settings."""
    return RetryPolicy(
        max_retries=settings.max_flush_retries,
        base_delay_seconds=settings.retry_base_delay_seconds,
        multiplier=2.0,
        max_delay_seconds=settings.retry_max_delay_seconds,
    )


def error_type_of(error: BaseException) -> ErrorType:
    """StoreError says itself whether to retry; anything else is asked of the classifier."""
    if isinstance(error, StoreError):
        return ErrorType.TRANSIENT if error.retryable else ErrorType.PERMANENT
    # Imported on the first failed write: the classifier's rule tables cost a cold start.
    from classifier.engine import classify_error

    return classify_error(error)


def drop_reason(error: BaseException) -> str:
    """The drop reason of a write given up on: store_rejected or store_unavailable."""
    permanent = error_type_of(error) not in (ErrorType.TRANSIENT, ErrorType.TIMEOUT)
    return "store_rejected" if permanent else "store_unavailable"


def retry_delay(
    error: BaseException,
    attempt: int,
    settings: LoggerSettings,
    policy: RetryPolicy,
    deadline: float | None,
) -> float | None:
    """Seconds before the next attempt, or None to give up (permanent, exhausted, stopping)."""
    if attempt >= settings.max_flush_retries:
        return None
    delay = get_retry_delay(attempt, error_type_of(error), policy)
    stopping = delay is not None and deadline is not None
    if stopping and asyncio.get_running_loop().time() + (delay or 0.0) >= (deadline or 0.0):
        return None  # stopping: a retry would outlive stop()'s timeout
    return delay


def settle_written(channel: Channel, count: int, result: WriteResult) -> None:
    """Count a written batch of `count` rows: rejected rows warned about and dropped."""
    for row_error in result.rejected:
        _log.warning(
            "metadata_row_rejected",
            table=channel.table,
            row_id=row_error.row_id,
            error=row_error.message,
        )
    rejected = len(result.rejected)
    channel.settle(count, written=count - rejected, drops={"store_rejected": rejected})


def to_rows(items: Sequence[Item]) -> tuple[list[Mapping[str, Any]], list[RowError]]:
    """Items as row dicts (records via to_row()); an item that cannot become one is rejected."""
    rows: list[Mapping[str, Any]] = []
    bad: list[RowError] = []
    for item in items:
        if isinstance(item, TransitionRecord):
            try:
                rows.append(item.to_row())
            except Exception as exc:  # a record that cannot serialise rejects itself only
                bad.append(RowError(item.transition_id, f"cannot serialise: {exc!r}"))
        elif isinstance(item, Mapping):
            rows.append(item)
        else:
            bad.append(RowError(f"<{type(item).__name__}>", "not a TransitionRecord or row"))
    return rows, bad


def with_rejected(result: WriteResult, bad: Sequence[RowError]) -> WriteResult:
    """`result` with rows rejected before the store saw them added."""
    if not bad:
        return result
    return WriteResult(written=result.written, rejected=(*result.rejected, *bad))


def write_items(store: Store, table: str, items: Sequence[Item]) -> WriteResult:
    """Convert items to rows and write them (runs in a worker thread, off the event loop).

    A store with write_records(table, items) (SQLiteStore) takes the records as they are and
    builds its parameters without a dict per record; any other store gets to_row() dicts.
    """
    write_records = getattr(store, "write_records", None)
    if write_records is not None:
        result: WriteResult = write_records(table, items)
        return result
    rows, bad = to_rows(items)
    return with_rejected(store.write_batch(table, rows) if rows else WriteResult(written=0), bad)


class Batcher:
    """Feeds one channel's rows to the store: at most `workers` batches in flight at a time."""

    def __init__(
        self,
        channel: Channel,
        store: Store,
        settings: LoggerSettings,
        *,
        urgent: asyncio.Event,
        slots: asyncio.Semaphore,
        stop_deadline: Callable[[], float | None],
    ) -> None:
        self.channel = channel
        self.store = store
        self.settings = settings
        self.urgent = urgent
        self.slots = slots
        self.stop_deadline = stop_deadline
        self.policy = retry_policy(settings)
        self.tasks: set[asyncio.Task[None]] = set()
        # A store that writes a big batch as cheaply as a small one (SQLite: one transaction)
        # says how many rows it takes at most; a backlog then goes out in fewer, larger writes.
        self.max_rows = max(settings.batch_size, int(getattr(store, "max_batch_rows", 0) or 0))

    async def run(self) -> None:
        """Collect batches forever; each goes to a flush task once a worker slot is free."""
        while True:
            batch: list[Item] = []
            try:
                await self.collect(batch)
                await self.slots.acquire()
                if len(batch) < self.max_rows:  # rows that queued up while every slot was busy
                    self.channel.take_ready(batch, self.max_rows)
            except asyncio.CancelledError:
                if batch:  # rows taken off the queue but never handed to a flush
                    self.channel.settle(len(batch), drops={"shutdown": len(batch)})
                raise
            self.channel.in_flight += len(batch)
            task = asyncio.create_task(self._flush_and_release(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def collect(self, batch: list[Item]) -> None:
        """Wait for a first row, then gather until the batch is full or the interval has passed.

        A pending flush() or stop() (the urgent event, which also wakes the channel) sends a
        partial batch at once.
        """
        channel, size = self.channel, self.settings.batch_size
        channel.take_ready(batch, size)
        while not batch:
            await channel.wait_for_rows(1, None)
            channel.take_ready(batch, size)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.flush_interval_seconds
        while len(batch) < size and not self.urgent.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await channel.wait_for_rows(size - len(batch), remaining)
            channel.take_ready(batch, size)

    async def _flush_and_release(self, batch: list[Item]) -> None:
        """Flush one batch, then free its worker slot."""
        try:
            await self.flush(batch)
        finally:
            self.channel.in_flight -= len(batch)
            self.slots.release()

    async def flush(self, batch: list[Item]) -> None:
        """Write one batch; retry retryable failures with backoff; settle every row exactly once."""
        channel = self.channel
        attempt = 0
        ticket = channel.write_started()
        try:
            while True:
                try:
                    result = await asyncio.get_running_loop().run_in_executor(
                        writer_pool(),
                        finished,
                        (ticket,),
                        write_items,
                        self.store,
                        channel.table,
                        batch,
                    )
                    break
                except Exception as error:
                    channel.note_failure(error)
                    delay = self._delay(error, attempt)
                    if delay is None:
                        self._give_up(batch, error, attempt)
                        return
                    _log.info(
                        "metadata_flush_retry",
                        table=channel.table,
                        rows=len(batch),
                        attempt=attempt + 1,
                        delay_seconds=delay,
                        error=channel.last_flush_error,
                    )
                    await asyncio.sleep(delay)
                    attempt += 1
        except asyncio.CancelledError:
            channel.settle(len(batch), drops={"shutdown": len(batch)})
            raise
        finally:
            channel.write_ended(ticket)
        settle_written(channel, len(batch), result)

    def _delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds before the next attempt, or None to give up (see retry_delay)."""
        return retry_delay(error, attempt, self.settings, self.policy, self.stop_deadline())

    def _give_up(self, batch: list[Item], error: BaseException, attempts: int) -> None:
        """Drop a batch the store would not take, counted by reason, with one warning."""
        reason = drop_reason(error)
        _log.warning(
            "metadata_flush_failed",
            table=self.channel.table,
            rows=len(batch),
            attempts=attempts + 1,
            reason=reason,
            error=self.channel.last_flush_error,
        )
        self.channel.settle(len(batch), drops={reason: len(batch)})
