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
import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from persistence._batcher import (
    drop_reason,
    retry_delay,
    retry_policy,
    settle_written,
    writer_pool,
)
from persistence._channel import Channel, WriteTicket, finished
from persistence._group_send import Group, GroupSends, stream_parts
from persistence._group_write import Parts, derive_parts, write_group_derived
from persistence.settings import LoggerSettings
from persistence.stores.base import STATE_TRANSITIONS, Store, WriteResult
from statemachine._log import lazy_logger

if TYPE_CHECKING:
    from persistence._writer_parts import Streamed

_log = lazy_logger("persistence.logger")

# How long the committer lets a burst gather after its first row (PostgreSQL's commit_delay):
# it bounds the latency a lone row pays and, measured on the 100-step chain, cuts the commits
# (and the CPU per row) several-fold while a pipeline emits continuously.
COMMIT_DELAY_SECONDS = 0.001
# Groups sent to a pipelined store and not yet committed, at most (the pipe holds ~1 MiB too):
# enough that a child slowed by fsyncs or a busy CPU never makes rows wait in this process.
PIPELINED_GROUPS = 256
# Rows queued within one turn of the event loop that are sent at once, from the emit() that
# queued the last of them, instead of at the end of the turn: with a thousand pipelines one
# turn runs for 50-200 ms, and the writer child would sit idle meanwhile, then face the whole
# backlog while flush() waits (benchmarks/executor.py, 1,000 x 10 workload). 128 rather than 512:
# fewer queued tuples alive when the collector runs and fewer pages touched (same-process A/B,
# 2 x 6 runs at load ~4.5: the loop's CPU -27 and -38 ms per run; 64 gained nothing more), while
# the child, when behind, still commits several groups at once.
BACKLOG_ROWS = 128
# Transitions queued beyond this many are sent to the writer child at once, in a data frame, as
# rows of the group being gathered (persistence/_writer_stream.py): the child inserts them while
# the pipeline goes on, and the group's last frame leaves it only the last few rows and the
# COMMIT. The 100-step chain's logging overhead was mostly the wait, after its last step, for
# the child to insert the whole last group (issue 12, ninth session).
STREAM_ROWS = 32
# While a group's rows are being streamed its commit delay stretches up to this (the first
# millisecond, then the rest in one wait): the child commits streamed rows on its own whenever
# it is idle, so the group's last frame only asks for a reply, and each reply costs this
# process ~0.1 ms (the 100-step chain sent 4 groups in ~4.5 ms; now one). Never beyond
# flush_interval_seconds.
STREAMING_COMMIT_DELAY_SECONDS = 0.005


def _resolve(waiter: asyncio.Future[None]) -> None:
    """End a wait (the commit delay's timer), unless something ended it first."""
    if not waiter.done():
        waiter.set_result(None)


class GroupCommitter(GroupSends):
    """The one flush worker of a group-commit store: feeds all channels, one write at a time."""

    def __init__(
        self,
        channels: Sequence[Channel],
        store: Store,
        settings: LoggerSettings,
        *,
        stop_deadline: Callable[[], float | None],
        urgent: asyncio.Event | None = None,
        derive: Callable[[], bool] = lambda: False,
        on_derive_failures: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.channels = tuple(channels)
        self.by_table = {channel.table: channel for channel in self.channels}
        self.urgent = urgent  # set while flush()/stop() waits: no commit delay then
        # derive(): write the run/step rows of the group's records too (read per commit, as
        # run_pipeline may switch a logger's derive_run_rows on after it was built).
        self.derive = derive
        self.on_derive_failures = on_derive_failures
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
        self.streaming_delay = min(STREAMING_COMMIT_DELAY_SECONDS, settings.flush_interval_seconds)
        # A pipelined store (SQLiteStore's writer process) takes the next group before the
        # previous one is committed: rows leave this process within about the commit delay
        # (a parent killed then still has them committed), the child commits them in order.
        self.pipelined = bool(getattr(store, "pipelined", False))
        self.free_slots = PIPELINED_GROUPS
        self._slot_waiter: asyncio.Future[None] | None = None
        # A writer process's store (submit_nowait) takes groups encoded once (_encode).
        self._encoded_parts: Callable[..., Parts] | None = None
        if self.pipelined and getattr(store, "submit_nowait", None) is not None:
            from persistence._writer_parts import EncodedParts

            self._encoded_parts = EncodedParts
            for channel in self.channels:
                channel.on_backlog = self._send_backlog
                channel.backlog_rows = BACKLOG_ROWS
        # Rows of the group being gathered, already sent to the writer child (STREAM_ROWS).
        self._streamed: Streamed | None = None
        self._end_now = False  # end_group_now(): no commit delay for the group being gathered
        self._stream_channel = self.by_table.get(STATE_TRANSITIONS)
        streams = self._encoded_parts is not None and getattr(store, "stream_link", None)
        if streams and self._stream_channel is not None:
            stream_parts.load()
            self._stream_channel.on_backlog = self._stream
            self._stream_channel.backlog_rows = STREAM_ROWS
        # Sends are serialised by the pipe anyway: one thread of its own, so a full pipe never
        # holds more than one thread (the shared writer pool serves every other store).
        self._sender: concurrent.futures.ThreadPoolExecutor | None = None

    async def run(self) -> None:
        """Forever: wait for a first row in any queue, take everything ready, write it."""
        while True:
            group: Group = []
            slot = False
            try:
                if self.pipelined:
                    await self._take_slot()
                    slot = True
                await self._wait_for_rows()
                urgent = self.urgent is not None and self.urgent.is_set()
                full = any(c.ready_count() >= self.max_rows for c in self.channels)
                if not urgent and not full and not self._end_now:
                    # Commit delay: rows of the same burst that arrive within a millisecond
                    # share this commit (each commit rewrites its index pages to the WAL).
                    await self._commit_delay(self.delay)
                    more = self.streaming_delay - self.delay
                    if more > 0 and not self._end_now and self._streaming():
                        # The rest of STREAMING_COMMIT_DELAY_SECONDS in one wait: each wake of
                        # this task costs the pipeline's loop ~20 us (the 100-step chain woke
                        # it every millisecond, four times).
                        await self._commit_delay(more)
            except asyncio.CancelledError:
                if slot:
                    self._release_slot()
                self._drop_streamed("shutdown")
                raise
            group, streamed = self._take_group()
            self._end_now = False
            if not group:  # woken by flush() or stop() with nothing queued
                if slot:
                    self._release_slot()
                continue
            if streamed is not None:  # its last frame goes now, before any other group's rows
                self._send_now(group, streamed)
                continue
            task = asyncio.create_task(self._flush(group))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            if self.pipelined:
                task.add_done_callback(self._release_slot)
                continue
            try:
                await asyncio.shield(task)  # one commit at a time: the next takes the backlog
            except asyncio.CancelledError:
                task.cancel()
                raise

    async def _take_slot(self) -> None:
        """Wait until fewer than PIPELINED_GROUPS groups are in flight, then count one more."""
        while self.free_slots <= 0:
            self._slot_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._slot_waiter
            finally:
                self._slot_waiter = None
        self.free_slots -= 1

    def _release_slot(self, _: object = None) -> None:
        """A group in flight is settled: its slot is free again."""
        self.free_slots += 1
        waiter = self._slot_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _commit_delay(self, seconds: float) -> None:
        """Wait `seconds`, cut short by a full batch or a flush()/stop() (channel.wake)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        for channel in self.channels:
            channel.wait_with(waiter, self.max_rows)
        timer = loop.call_later(seconds, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            for channel in self.channels:
                channel.forget(waiter)

    async def _wait_for_rows(self) -> None:
        """Return once any channel has a row ready (one shared future, no timer)."""
        if self._streamed is not None or any(channel.ready_count() for channel in self.channels):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for channel in self.channels:
            channel.wait_with(waiter, 1)
        try:
            await waiter
        finally:
            for channel in self.channels:
                channel.forget(waiter)

    async def _flush(
        self,
        group: Group,
        *,
        sent: asyncio.Future[Any] | None = None,
        derive: bool | None = None,
        parts: Parts | None = None,
    ) -> None:
        """Write one group; retry retryable failures with backoff; settle every row once.

        sent: the group's first attempt, already handed to a pipelined store (_send_backlog),
        with its parts as sent (encoded: the group's items are gone, only their counts stay).
        """
        attempt = 0
        writes = [(channel, channel.write_started()) for channel, _ in group]
        tickets = [ticket for _, ticket in writes]
        if derive is None:
            derive = self.derive()
        if parts is None:
            parts = self._encode(group, derive)
        try:
            while True:
                try:
                    if self.pipelined:
                        first, sent = sent, None  # a retry sends the group again
                        results, derived, failures = await self._submit(
                            parts, derive, tickets, first
                        )
                    else:
                        (
                            results,
                            derived,
                            failures,
                        ) = await asyncio.get_running_loop().run_in_executor(
                            writer_pool(),
                            finished,
                            tickets,
                            write_group_derived,
                            self.store,
                            parts,
                            derive,
                        )
                    break
                except Exception as error:
                    for channel, _ in group:
                        channel.note_failure(error)
                    delay = self._delay(error, attempt)
                    if delay is None:
                        if derive:
                            self._drop_derived(parts, drop_reason(error))
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
            if derive:
                self._drop_derived(parts, "shutdown")
            self._settle_all(group, "shutdown")
            raise
        finally:
            for channel, ticket in writes:
                channel.write_ended(ticket)
        for (channel, batch), result in zip(group, results, strict=True):
            channel.in_flight -= len(batch)
            settle_written(channel, len(batch), result)
        self._settle_derived(derived, failures)

    def _encode(self, group: Group, derive: bool, streamed: Streamed | None = None) -> Parts:
        """The group's parts; for a writer process encoded into its frame now, and the items
        let go (each batch keeps its length, in empty tuples: settling counts rows, nothing
        reads them).

        The encoded parts are what every attempt sends (persistence._writer_parts.EncodedParts
        says why). A group that cannot be encoded stays as it is: its send meets the error.
        """
        parts: Parts = [(channel.table, batch) for channel, batch in group]
        if self._encoded_parts is None:
            return parts
        try:
            encoded = self._encoded_parts(parts, derive, streamed)
        except Exception:
            encoded = None
        if encoded is not None:
            for _, batch in group:
                batch[:] = [()] * len(batch)
        if streamed is not None:  # the rows sent ahead are this group's: settled with it
            group[0][1].extend([()] * streamed.rows)
        return parts if encoded is None else encoded

    async def _submit(
        self,
        parts: Parts,
        derive: bool,
        tickets: Sequence[WriteTicket],
        sent: asyncio.Future[Any] | None = None,
    ) -> tuple[list[WriteResult], list[tuple[str, WriteResult]], int]:
        """Hand a group to a pipelined store (unless `sent` already did), await its commit.

        The loop sends it itself (submit_nowait never blocks); a thread only when the store
        cannot take it so (no writer child runs: submit_many forks one).
        """
        loop = asyncio.get_running_loop()
        nowait = getattr(self.store, "submit_nowait", None)
        future: asyncio.Future[Any] | None = sent
        if future is None and nowait is not None:
            future = nowait(parts, derive=derive, loop=loop)
            prepare = getattr(self.store, "prepare_writes", None)
            if future is None and prepare is not None:
                # No writer child runs (it died): fork one from a thread, then send from here.
                # If that fails, submit_many below fails the group the store's own way.
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(self._sending_thread(), prepare)
                    future = nowait(parts, derive=derive, loop=loop)
        if future is None:
            submit = functools.partial(self.store.submit_many, parts, derive=derive)  # type: ignore[attr-defined]
            threaded: concurrent.futures.Future[Any]
            threaded = await loop.run_in_executor(self._sending_thread(), submit)
            future = asyncio.wrap_future(threaded)

        def done(finished: asyncio.Future[Any]) -> None:
            # The store committed the group: not a stuck write. A failure (or a wait that
            # stop() cancelled) is not progress: a retry keeps the ticket, as a thread's does.
            if not finished.cancelled() and finished.exception() is None:
                for ticket in tickets:
                    ticket.finish()

        future.add_done_callback(done)
        outcome: tuple[list[WriteResult], list[tuple[str, WriteResult]], int]
        outcome = await future
        return outcome

    def _sending_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        """The one thread that forks or sends for this committer when the loop cannot."""
        if self._sender is None:
            self._sender = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="pipestate-send"
            )
        return self._sender

    def _settle_derived(self, derived: list[tuple[str, WriteResult]], failures: int) -> None:
        """Count derived rows on their tables' channels: submitted and settled in one go.

        They were never queued (the writer built them from the committed records), so a
        failed group has none to drop: its records are retried or dropped, and with them the
        rows they imply.
        """
        if failures:
            self.on_derive_failures(failures)
        for table, result in derived:
            channel = self.by_table[table]
            rows = result.written + len(result.rejected)
            for row_error in result.rejected:
                _log.warning(
                    "metadata_row_rejected",
                    table=table,
                    row_id=row_error.row_id,
                    error=row_error.message,
                )
            channel.submit(rows)
            channel.settle(
                rows, written=result.written, drops={"store_rejected": len(result.rejected)}
            )

    def _drop_derived(self, parts: Parts, reason: str) -> None:
        """Count the run/step rows a dropped group implied as dropped too (rare path)."""
        from persistence._writer_parts import EncodedParts

        # Queued value or wire tuples, or items already let go: read the records from the frame.
        try:
            encoded = parts if isinstance(parts, EncodedParts) else EncodedParts(parts, True)
            records = encoded.decoded()
        except Exception:  # a group that cannot be encoded at all: count what is a record
            records = [
                (table, [i for i in batch if not isinstance(i, tuple)]) for table, batch in parts
            ]
        extra, _ = derive_parts(records)
        for table, rows in extra:
            channel = self.by_table[table]
            channel.submit(len(rows))
            channel.settle(len(rows), drops={reason: len(rows)})

    def _settle_all(self, group: Group, reason: str) -> None:
        """Count every row of a group as dropped for `reason` (a cancelled or failed write)."""
        for channel, batch in group:
            channel.in_flight -= len(batch)
            channel.settle(len(batch), drops={reason: len(batch)})
        group.clear()

    def _delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds before the next attempt, or None to give up (see retry_delay)."""
        return retry_delay(error, attempt, self.settings, self.policy, self.stop_deadline())

    def _give_up(self, group: Group, error: BaseException, attempts: int) -> None:
        """Drop a group the store would not take, counted by reason, with one warning."""
        reason = drop_reason(error)
        _log.warning(
            "metadata_flush_failed",
            tables=[channel.table for channel, _ in group],
            rows=sum(len(batch) for _, batch in group),
            attempts=attempts + 1,
            reason=reason,
            error=group[0][0].last_flush_error,
        )
        self._settle_all(group, reason)
