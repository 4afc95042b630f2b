"""The executor's side of a run lease: hold it while the run executes, stop if it is lost.

run_pipeline(..., store=...) calls open_lease(store, run): a LeaseKeeper heartbeats from the
process's lease threads (persistence/watch/leases.py) and the run's sink is wrapped so that no
record is passed on once the lease cannot be trusted. When the lease is lost the run's task is
cancelled with source "recovery"; the rows that cancellation would write are dropped, because a
watcher has recovered (or is about to recover) the run and its rows are the ones that count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from classifier.errors import ValidationError

if TYPE_CHECKING:
    from persistence.watch.leases import LeaseKeeper, LeaseSettings
    from statemachine import PipelineRun, TransitionRecord, TransitionSink

CANCEL_SOURCE = "recovery"


class FencedSink:
    """Passes records on while the lease is valid; drops (and counts) them afterwards."""

    def __init__(self, inner: TransitionSink, keeper: LeaseKeeper) -> None:
        self.inner = inner
        self.keeper = keeper
        self.dropped = 0

    def emit(self, record: TransitionRecord) -> None:
        """Forward `record` unless the lease was lost."""
        if self.keeper.valid():
            self.inner.emit(record)
        else:
            self.dropped += 1

    def __getattr__(self, name: str) -> Any:
        # ProgressSink and friends expose more than emit(); keep them reachable.
        return getattr(self.inner, name)


class RunLease:
    """One run's lease as the executor sees it: start, guard the work, release."""

    def __init__(self, keeper: LeaseKeeper, sink: FencedSink) -> None:
        self.keeper = keeper
        self.sink = sink
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def lost(self) -> bool:
        """True once the lease was lost (the run stopped writing)."""
        return self.keeper.lost.is_set()

    def _on_lost(self) -> None:
        """Called from the keeper thread (or the loop): cancel the run's task, thread-safely."""
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(_cancel, self._task)

    async def run(self, work: Awaitable[None]) -> None:
        """Await `work` while holding the lease; a lost lease ends it quietly (no more rows)."""
        self._task = task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self.keeper.on_lost = self._on_lost
        pending = await self._start_keeper()
        if pending is not None and task is not None:
            # A cancel that came while the lease was being taken is delivered now, so the run
            # goes RUNNING and ends FAILED with the cancel's rows instead of leaving none.
            task.cancel(*pending.args)
        try:
            await work
        except asyncio.CancelledError:
            if not self.lost or self._task is None:
                raise
            self._task.uncancel()  # our own cancellation: the run ends, the caller goes on
        finally:
            # The RELEASED row goes with other runs' rows (the store's lease lane); no thread.
            await asyncio.wrap_future(self.keeper.end())
            # The run, its task and its keeper point at each other: part the cycle here so the
            # run's objects are freed when it ends, not by a later (longer) collection.
            self.keeper.on_lost = None
            self._task = None

    async def _start_keeper(self) -> asyncio.CancelledError | None:
        """Take the lease (the store's lease lane writes it); a cancel meanwhile is held."""
        starting = asyncio.wrap_future(self.keeper.begin())
        pending: asyncio.CancelledError | None = None
        while not starting.done():
            try:
                await asyncio.shield(starting)
            except asyncio.CancelledError as cancel:
                if starting.cancelled() or self._task is None:
                    raise
                pending = pending or cancel
                self._task.uncancel()
        starting.result()  # a failure to take the lease propagates as before
        return pending


def _cancel(task: asyncio.Task[Any]) -> None:
    from executor.cancellation import request_cancel

    request_cancel(task, source=CANCEL_SOURCE)


def open_lease(
    store: Any, run: PipelineRun, settings: LeaseSettings | None = None
) -> RunLease | None:
    """Wrap `run`'s sink and prepare its lease; None when there is no store or leases are off."""
    if store is None or not callable(getattr(store, "write_batch", None)):
        return None
    from persistence.watch.leases import LeaseKeeper, LeaseSettings

    if settings is None:
        try:
            settings = LeaseSettings.from_env()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    if not settings.enabled:
        return None
    keeper = LeaseKeeper(
        store,
        pipeline_logging_id=run.pipeline_logging_id,
        org_slug=run.org_slug,
        pipeline_id=run.entity_name,
        settings=settings,
    )
    sink = FencedSink(run.sink, keeper)
    run.sink = sink
    return RunLease(keeper, sink)
