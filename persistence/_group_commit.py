"""Group commit for local stores: one flush worker commits whatever is queued, in every table.

A local store (SQLiteStore, the outbox file) writes a batch of any size in about the time of one
transaction, so waiting for a full batch or a timer only widens the window in which a crash
loses rows. The committer instead takes every row that is ready in the three queues as soon as
the previous commit is done and writes them in one call (one transaction where the store
offers write_many). Under light load each row is committed within about a commit's time;
under load rows pile up behind the running commit and the next one takes them all, up to
METADATA_LOG_BATCH_SIZE (or the store's larger max_batch_rows) per table, so batches grow by
themselves as in a database's group commit. Retries, backoff and drop counting are the
Batcher's (persistence._batcher).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from classifier import ErrorType, get_retry_delay
from persistence._batcher import (
    error_type_of,
    retry_policy,
    to_rows,
    with_rejected,
    write_items,
    writer_pool,
)
from persistence._channel import Channel, Item, finished
from persistence.settings import LoggerSettings
from persistence.stores.base import Store, WriteResult
from statemachine._log import lazy_logger

_log = lazy_logger("persistence.logger")

Group = list[tuple[Channel, list[Item]]]
# How long the committer lets a burst gather after its first row (PostgreSQL's commit_delay):
# it bounds the latency a lone row pays and, measured on the 100-step chain, cuts the commits
# (and the CPU per row) several-fold while a pipeline emits continuously.
COMMIT_DELAY_SECONDS = 0.001


def write_group(store: Store, parts: Sequence[tuple[str, Sequence[Item]]]) -> list[WriteResult]:
    """Write each table's items, in one transaction where the store has write_many (a thread).

    write_many(parts) takes the items as they are from a store with write_records (SQLite),
    else row dicts; a store without it gets one write per table.
    """
    write_many = getattr(store, "write_many", None)
    if write_many is None:
        return [write_items(store, table, items) for table, items in parts]
    if getattr(store, "write_records", None) is not None:
        results: list[WriteResult] = write_many(parts)
        return results
    converted = [(table, *to_rows(items)) for table, items in parts]
    written: list[WriteResult] = write_many([(table, rows) for table, rows, _ in converted])
    return [
        with_rejected(result, bad) for result, (_, _, bad) in zip(written, converted, strict=True)
    ]


class GroupCommitter:
    """The one flush worker of a group-commit store: feeds all channels, one write at a time."""

    def __init__(
        self,
        channels: Sequence[Channel],
        store: Store,
        settings: LoggerSettings,
        *,
        stop_deadline: Callable[[], float | None],
    ) -> None:
        self.channels = tuple(channels)
        self.store = store
        self.settings = settings
        self.stop_deadline = stop_deadline
        self.policy = retry_policy(settings)
        self.tasks: set[asyncio.Task[Any]] = set()  # stop() cancels what is in flight
        # METADATA_LOG_BATCH_SIZE is the largest batch per table and commit, unless the store
        # writes more as cheaply (SQLite's max_batch_rows): then a backlog drains in fewer
        # commits and never outgrows put_timeout (measured in benchmarks/persistence.py).
        hint = int(getattr(store, "max_batch_rows", 0) or 0)
        self.max_rows = max(settings.batch_size, hint)
        self.delay = min(COMMIT_DELAY_SECONDS, settings.flush_interval_seconds)

    async def run(self) -> None:
        """Forever: wait for a first row in any queue, take everything ready, write it."""
        while True:
            group: Group = []
            try:
                await self._wait_for_rows()
                if not any(c.ready_count() >= self.max_rows for c in self.channels):
                    # Commit delay: rows of the same burst that arrive within a millisecond
                    # share this commit (each commit rewrites its index pages to the WAL).
                    await asyncio.sleep(self.delay)
                for channel in self.channels:
                    batch: list[Item] = []
                    channel.take_ready(batch, self.max_rows)
                    if batch:
                        group.append((channel, batch))
                        channel.in_flight += len(batch)
            except asyncio.CancelledError:
                self._settle_all(group, "shutdown")
                raise
            if not group:  # woken by flush() or stop() with nothing queued
                continue
            task = asyncio.create_task(self._flush(group))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            try:
                await asyncio.shield(task)  # one commit at a time: the next takes the backlog
            except asyncio.CancelledError:
                task.cancel()
                raise

    async def _wait_for_rows(self) -> None:
        """Return once any channel has a row ready (one shared future, no timer)."""
        if any(channel.ready_count() for channel in self.channels):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for channel in self.channels:
            channel.wait_with(waiter, 1)
        try:
            await waiter
        finally:
            for channel in self.channels:
                channel.forget(waiter)

    async def _flush(self, group: Group) -> None:
        """Write one group; retry retryable failures with backoff; settle every row once."""
        parts = [(channel.table, batch) for channel, batch in group]
        attempt = 0
        writes = [(channel, channel.write_started()) for channel, _ in group]
        tickets = [ticket for _, ticket in writes]
        try:
            while True:
                try:
                    results = await asyncio.get_running_loop().run_in_executor(
                        writer_pool(), finished, tickets, write_group, self.store, parts
                    )
                    break
                except Exception as error:
                    for channel, _ in group:
                        channel.note_failure(error)
                    delay = self._delay(error, attempt)
                    if delay is None:
                        self._give_up(group, error, attempt)
                        return
                    _log.info(
                        "metadata_flush_retry",
                        tables=[channel.table for channel, _ in group],
                        rows=sum(len(batch) for _, batch in group),
                        attempt=attempt + 1,
                        delay_seconds=delay,
                        error=group[0][0].last_flush_error,
                    )
                    await asyncio.sleep(delay)
                    attempt += 1
        except asyncio.CancelledError:
            self._settle_all(group, "shutdown")
            raise
        finally:
            for channel, ticket in writes:
                channel.write_ended(ticket)
        for (channel, batch), result in zip(group, results, strict=True):
            channel.in_flight -= len(batch)
            for row_error in result.rejected:
                _log.warning(
                    "metadata_row_rejected",
                    table=channel.table,
                    row_id=row_error.row_id,
                    error=row_error.message,
                )
            rejected = len(result.rejected)
            channel.settle(
                len(batch), written=len(batch) - rejected, drops={"store_rejected": rejected}
            )

    def _settle_all(self, group: Group, reason: str) -> None:
        """Count every row of a group as dropped for `reason` (a cancelled or failed write)."""
        for channel, batch in group:
            channel.in_flight -= len(batch)
            channel.settle(len(batch), drops={reason: len(batch)})
        group.clear()

    def _delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds before the next attempt, or None to give up (permanent, exhausted, stopping)."""
        if attempt >= self.settings.max_flush_retries:
            return None
        delay = get_retry_delay(attempt, error_type_of(error), self.policy)
        deadline = self.stop_deadline()
        stopping = delay is not None and deadline is not None
        if stopping and asyncio.get_running_loop().time() + (delay or 0.0) >= (deadline or 0.0):
            return None  # stopping: a retry would outlive stop()'s timeout
        return delay

    def _give_up(self, group: Group, error: BaseException, attempts: int) -> None:
        """Drop a group the store would not take, counted by reason, with one warning."""
        permanent = error_type_of(error) not in (ErrorType.TRANSIENT, ErrorType.TIMEOUT)
        reason = "store_rejected" if permanent else "store_unavailable"
        _log.warning(
            "metadata_flush_failed",
            tables=[channel.table for channel, _ in group],
            rows=sum(len(batch) for _, batch in group),
            attempts=attempts + 1,
            reason=reason,
            error=group[0][0].last_flush_error,
        )
        self._settle_all(group, reason)
