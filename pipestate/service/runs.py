"""RunManager: admits, starts, follows, cancels and drains the pipelines of one service process.

Every run is an asyncio task on the runner loop (a thread of its own, _runner.py) calling
executor.run_pipeline with one shared MetadataLogger, which lives on that loop too. The API's
loop only validates, admits and hands a run over (`call_soon_threadsafe`); it waits for a run
through a concurrent future that the runner loop resolves when the run's task ends. The
manager is also the runs' TransitionSink (called on the runner loop): it forwards each record
to the logger (and any extra sinks) and keeps the live state of its own runs, so a run can be
read back before its rows are flushed. What both threads touch (the run tables, the admission
counters, each run's live state) is guarded by locks; the API reads a run through view().
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from classifier.errors import ValidationError
from executor.cancellation import request_cancel
from pipestate.service._run_parts import RunIds as _RunIds
from pipestate.service._run_parts import Step, timeline_row, timeline_step
from pipestate.service._run_parts import resolve_wait as _resolve
from pipestate.service._run_parts import version_of as _version
from pipestate.service.errors import NotFound, ShuttingDown, TooBusy, Unprocessable

if TYPE_CHECKING:
    from executor.config import PipelineConfig
    from executor.runner import PipelineResult
    from pipestate.service._runner import RunnerLoop
    from pipestate.service.metrics import ServiceMetrics
    from pipestate.service.settings import ServiceSettings
    from statemachine import TransitionRecord, TransitionSink

_log = logging.getLogger("pipestate.service")
TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMEOUT"})
_RECENT = 2000  # finished runs kept in memory for reads that beat the store's flush
_CONFIG_CACHE = 1000
TIMELINE_CAP = 2000  # transitions kept in memory per run


@attrs.frozen(kw_only=True)
class RunView:
    """A consistent copy of a live run's state, taken under its lock (for the API thread)."""

    state: str
    pipeline_id: str | None
    steps: dict[str, str]
    timeline: list[dict[str, Any]]
    timeline_complete: bool
    result: PipelineResult | None
    done: bool


@attrs.define(kw_only=True)
class LiveRun:
    """A run this process started: its task and the states its transitions reported."""

    pipeline_logging_id: str
    org_slug: str
    pipeline: str
    key_id: str
    state: str = "PENDING"
    pipeline_id: str | None = None
    steps: dict[str, str] = attrs.field(factory=dict)
    # The run's transitions as tuples of atoms (answers reads without the store; timeline_row()
    # shows them), up to TIMELINE_CAP; a longer run is read back from the store instead.
    timeline: list[Step] = attrs.field(factory=list, repr=False)
    timeline_complete: bool = True
    # The task runs on the runner loop and is only touched there.
    task: asyncio.Task[PipelineResult] | None = attrs.field(default=None, repr=False)
    # A cancel asked before the pipeline went RUNNING: (source, by), delivered then.
    pending_cancel: tuple[str, str | None] | None = attrs.field(default=None, repr=False)
    result: PipelineResult | None = None
    # Resolved by the runner loop once the task ended (result set); any thread may wait on it.
    finished: concurrent.futures.Future[None] = attrs.field(
        factory=concurrent.futures.Future, repr=False
    )
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    @property
    def done(self) -> bool:
        """True once the pipeline's task ended."""
        return self.finished.done()

    def view(self, *, timeline: bool = False) -> RunView:
        """The run's state as one consistent copy (its timeline rows only when asked for)."""
        with self.lock:
            steps = list(self.timeline) if timeline else []
            view = RunView(
                state=self.result.state if self.result else self.state,
                pipeline_id=self.pipeline_id,
                steps=dict(self.steps),
                timeline=[],
                timeline_complete=self.timeline_complete,
                result=self.result,
                done=self.finished.done(),
            )
        # Rows are built here, on a read, not per transition on the runner thread: most runs
        # are never read back while in memory (issue 13: HTTP / in-process).
        view.timeline.extend(map(timeline_row, steps))
        return view


class RunManager:
    """Admission, the live runs, cancellation and the graceful drain of one process."""

    def __init__(
        self,
        settings: ServiceSettings,
        logger: TransitionSink,
        *,
        store: Any,
        metrics: ServiceMetrics,
        runner: RunnerLoop,
        sinks: Sequence[TransitionSink] = (),
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.store = store
        self.metrics = metrics
        self.runner = runner
        self.sinks = tuple(sinks)
        self.closing = False
        # Guards runs, _recent and _running: the API thread admits, the runner thread finishes.
        self._lock = threading.Lock()
        self.runs: dict[str, LiveRun] = {}
        self._running: collections.Counter[str] = collections.Counter()
        self._recent: collections.OrderedDict[str, LiveRun] = collections.OrderedDict()
        # pipeline -> (file version, monotonic time it was last checked, config)
        self._configs: dict[str, tuple[tuple[str, int, int], float, PipelineConfig]] = {}
        self._ids = _RunIds()
        # Runs admitted in this step of the API loop, not yet passed to the runner loop.

    # -- the sink -------------------------------------------------------------------------------

    def emit(self, record: TransitionRecord) -> None:
        """Forward a record to the logger and extra sinks, then note the new state.

        Called on the runner loop, where the logger lives (its same-thread fast path).
        """
        self.logger.emit(record)
        for sink in self.sinks:
            try:
                sink.emit(record)
            except Exception:  # an exporter must never fail a pipeline
                _log.exception("extra sink failed")
        self.metrics.transitions[record.entity_type] += 1
        run = self.runs.get(record.pipeline_logging_id)
        if run is None:
            return
        with run.lock:
            if len(run.timeline) >= TIMELINE_CAP:
                run.timeline_complete = False
            else:
                run.timeline.append(timeline_step(record))
            if record.entity_type == "PIPELINE":
                run.state = record.to_state
                run.pipeline_id = record.entity_name
            else:
                run.steps[record.entity_name] = record.to_state
        if record.entity_type == "PIPELINE" and record.to_state in TERMINAL:
            self.metrics.labelled(self.metrics.runs, record.to_state).inc()
        if run.pending_cancel is not None and record.to_state == "RUNNING":
            asyncio.get_running_loop().call_soon(_cancel_on_loop, run, *run.pending_cancel)
            run.pending_cancel = None

    # -- admission and start ------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Pipelines running in this process now."""
        with self._lock:
            return sum(self._running.values())

    def _admit(self, org_slug: str) -> None:
        if self.closing:
            self.metrics.rejections.labels("shutting_down").inc()
            raise ShuttingDown("the server is shutting down; retry on another replica")
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
        with self._lock:
            running, org_running = sum(self._running.values()), self._running[org_slug]
        if running >= self.settings.max_running:
            self.metrics.rejections.labels("process_limit").inc()
            raise TooBusy(
                f"{running} pipelines are running (limit {self.settings.max_running})",
                headers=retry,
            )
        if org_running >= self.settings.per_org_limit:
            self.metrics.rejections.labels("org_limit").inc()
            raise TooBusy(
                f"org {org_slug!r} has {org_running} pipelines running "
                f"(limit {self.settings.per_org_limit} per org)",
                headers=retry,
            )

    async def start(
        self, org_slug: str, pipeline: str, params: Mapping[str, Any], *, key_id: str
    ) -> LiveRun:
        """Admit and start one run; an invalid pipeline or params is recorded, then 422."""
        from executor.params import check_values, resolve
        from executor.runner import run_pipeline

        check_values(params)  # a hostile body is a bad request, not a run: nothing is stored
        self._admit(org_slug)
        run_id = self._ids.next()
        common: dict[str, Any] = {
            "org_slug": org_slug,
            "logger": self,
            "trigger_type": "api",
            "user_id": key_id,
            "config_dir": self.settings.config_dir,
            "store": self.store,
            "pipeline_logging_id": run_id,
            "params": params,
        }
        try:
            config = await self._config(pipeline)
            resolve(config.params, params)
        except ValidationError:
            # The seed's trail PENDING -> RUNNING -> FAILED (VALIDATION_ERROR) is still stored,
            # by the runner loop, where the logger lives.
            result = await self.runner.call(run_pipeline(pipeline, **common))
            self.metrics.runs.labels(result.state).inc()
            raise Unprocessable(
                self._public(result.error_message or "invalid pipeline"),
                pipeline_logging_id=result.pipeline_logging_id,
                state=result.state,
                error_type=result.error_type,
                status_url=f"/api/v1/runs/{org_slug}/{result.pipeline_logging_id}",
            ) from None
        run = LiveRun(
            pipeline_logging_id=run_id, org_slug=org_slug, pipeline=pipeline, key_id=key_id
        )
        with self._lock:
            self.runs[run_id] = run
            self._running[org_slug] += 1
        self.metrics.running.inc()
        work = run_pipeline(config, **common)
        try:
            # at once, not batched after this loop step: batching measured slower (make bench,
            # HTTP / in-process 1.81 vs 1.36 in 3 interleaved pairs)
            self.runner.call_soon(self._launch, run, work)
        except RuntimeError:  # the runner loop has stopped: the process is going down
            work.close()
            self._release(run)
            raise ShuttingDown("the server is shutting down; retry on another replica") from None
        return run

    def _launch(self, run: LiveRun, work: Coroutine[Any, Any, PipelineResult]) -> None:
        """On the runner loop: start the run's task (a cancel scheduled later finds it)."""
        run.task = asyncio.get_running_loop().create_task(
            work, name=f"pipestate-run-{run.pipeline_logging_id}"
        )
        run.task.add_done_callback(functools.partial(self._finished, run))

    def _public(self, message: str) -> str:
        """An error message without the server's own config path (clients see `<configs>`)."""
        root = str(Path(self.settings.config_dir))
        for prefix in {str(Path(root).resolve()), root}:
            message = message.replace(prefix, "<configs>")
        return message

    async def _config(self, pipeline: str) -> PipelineConfig:
        """The pipeline's config, parsed once per version of its file (path, mtime, size).

        A cached config is trusted for `config_cache_seconds` after its file was last checked
        (a stat), so an edit or a removal is seen within that time; within it a submit makes no
        system call for the config: each one releases the GIL, and getting it back from a busy
        runner thread can take a whole switch interval (5 ms).
        """
        from executor.config import load_pipeline_config, resolve_pipeline

        cached = self._configs.get(pipeline)
        if cached is not None:
            version, checked, config = cached
            now = time.monotonic()
            if now - checked < self.settings.config_cache_seconds:
                return config
            # One stat of the file found last time (resolving the name again walks every
            # path component).
            if _version(Path(version[0])) == version:
                self._configs[pipeline] = (version, now, config)
                return config
        path = resolve_pipeline(pipeline, self.settings.config_dir)
        found = _version(path)
        config = await asyncio.to_thread(
            load_pipeline_config, pipeline, config_dir=self.settings.config_dir
        )
        if found is not None:
            if len(self._configs) >= _CONFIG_CACHE:
                self._configs.clear()
            self._configs[pipeline] = (found, time.monotonic(), config)
        return config

    def _finished(self, run: LiveRun, task: asyncio.Task[PipelineResult]) -> None:
        """On the runner loop, once a run's task ended: free its slot, wake its waiters."""
        if not task.cancelled() and task.exception() is None:
            with run.lock:
                run.result = task.result()
        elif not task.cancelled():
            _log.error("run %s raised", run.pipeline_logging_id, exc_info=task.exception())
        self._release(run)

    def _release(self, run: LiveRun) -> None:
        """Free a run's admission slot, keep it among the recent runs, wake its waiters."""
        with self._lock:
            self._running[run.org_slug] -= 1
            if self._running[run.org_slug] <= 0:
                del self._running[run.org_slug]
            self.runs.pop(run.pipeline_logging_id, None)
            self._recent[run.pipeline_logging_id] = run
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        self.metrics.running.dec()
        finished = run.finished
        finished.set_result(None)  # wakes the waiters
        # Kept among the recent runs, a run holds only what reads need: its task (coroutine,
        # result or traceback) and its own future (a Condition, an RLock, lists) would stay
        # alive for the collector to walk in every full collection (issue 13).
        run.finished, run.task = _FINISHED, None

    # -- reads, waits and cancels -------------------------------------------------------------

    def get(self, org_slug: str, run_id: str) -> LiveRun | None:
        """A run of this org started here (running or recently finished), else None."""
        with self._lock:
            run = self.runs.get(run_id) or self._recent.get(run_id)
        if run is None or run.org_slug != org_slug:
            return None
        return run

    async def wait(self, run: LiveRun, timeout: float) -> None:  # noqa: ASYNC109 - bounded
        """Wait until the run ends or `timeout` passes (the run goes on either way)."""
        if run.done:
            return
        # One loop future, woken from the runner thread, and one timer: what wrap_future plus
        # asyncio.wait built per request (a chained future, a waiter, a set, two callbacks) cost
        # API-thread time on every ?wait=true (issue 13). A timeout leaves the run alone.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)

        run.finished.add_done_callback(wake)
        timer = loop.call_later(min(timeout, self.settings.max_wait_seconds), _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    def cancel(self, org_slug: str, run_id: str, *, by: str) -> LiveRun:
        """Cancel a live run of this org; NotFound if it is not running here."""
        with self._lock:
            run = self.runs.get(run_id)
        if run is None or run.org_slug != org_slug:
            raise NotFound(f"no live run {run_id!r} in this process")
        self.runner.call_soon(_cancel_on_loop, run, "api", by)
        return run

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounded
        """Wait (bounded) until this process's queued rows are written, on the logger's loop."""
        flush = getattr(self.logger, "flush", None)
        if flush is None:
            return True
        return bool(await self.runner.call(flush(timeout)))

    # -- shutdown -----------------------------------------------------------------------------

    def stop_admitting(self) -> None:
        """From now on new runs get 503."""
        self.closing = True

    def _live(self) -> list[LiveRun]:
        with self._lock:
            return [run for run in self.runs.values() if not run.done]

    async def drain(self, grace: float) -> bool:
        """Stop admitting; wait up to `grace` seconds for the running pipelines to end."""
        self.stop_admitting()
        live = self._live()
        if not live:
            return True
        _, pending = await asyncio.wait(
            [asyncio.wrap_future(run.finished) for run in live], timeout=grace
        )
        return not pending

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - bounded
        """Cancel whatever still runs (source "shutdown") and wait for it to end."""
        self.stop_admitting()
        live = self._live()
        for run in live:
            self.runner.call_soon(_cancel_on_loop, run, "shutdown", None)
        if live:
            await asyncio.wait([asyncio.wrap_future(run.finished) for run in live], timeout=timeout)


# The future of every run once it ended (resolved; waiting on it returns at once).
_FINISHED: concurrent.futures.Future[None] = concurrent.futures.Future()
_FINISHED.set_result(None)


def _cancel_on_loop(run: LiveRun, source: str, by: str | None) -> None:
    """On the runner loop: cancel the run's task if it still runs (cancellation contract).

    A run cancelled before its pipeline went RUNNING (its task not started yet, or acquiring
    its lease) would end without a single row; such a cancel is kept and delivered by emit()
    the moment the pipeline goes RUNNING, so the rows end FAILED and say who cancelled.
    """
    if run.task is None or run.task.done():
        return
    if run.state == "PENDING":
        run.pending_cancel = (source, by)
        return
    request_cancel(run.task, source=source, by=by)
