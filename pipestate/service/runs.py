"""RunManager: admits, starts, follows, cancels and drains the pipelines of one service process.

Every run is an asyncio task on the server's loop calling executor.run_pipeline with one shared
MetadataLogger. The manager is also the runs' TransitionSink: it forwards each record to the
logger (and any extra sinks) and keeps the live state of its own runs, so a run can be read
back before its rows are flushed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from classifier.errors import ValidationError
from executor.cancellation import request_cancel
from pipestate.service.errors import NotFound, ShuttingDown, TooBusy, Unprocessable

if TYPE_CHECKING:
    from executor.config import PipelineConfig
    from executor.runner import PipelineResult
    from pipestate.service.metrics import ServiceMetrics
    from pipestate.service.settings import ServiceSettings
    from statemachine import TransitionRecord, TransitionSink

_log = logging.getLogger("pipestate.service")
TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMEOUT"})
_RECENT = 2000  # finished runs kept in memory for reads that beat the store's flush
_CONFIG_CACHE = 1000
TIMELINE_CAP = 2000  # transitions kept in memory per run


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
    # The run's transitions as the timeline shows them (answers reads without the store), up
    # to TIMELINE_CAP; a longer run is read back from the store instead.
    timeline: list[dict[str, Any]] = attrs.field(factory=list, repr=False)
    timeline_complete: bool = True
    task: asyncio.Task[PipelineResult] | None = attrs.field(default=None, repr=False)
    result: PipelineResult | None = None

    @property
    def done(self) -> bool:
        """True once the pipeline reached a terminal state and its task ended."""
        return self.task is None or self.task.done()


class RunManager:
    """Admission, the live runs, cancellation and the graceful drain of one process."""

    def __init__(
        self,
        settings: ServiceSettings,
        logger: TransitionSink,
        *,
        store: Any,
        metrics: ServiceMetrics,
        sinks: Sequence[TransitionSink] = (),
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.store = store
        self.metrics = metrics
        self.sinks = tuple(sinks)
        self.closing = False
        self.runs: dict[str, LiveRun] = {}
        self._running: collections.Counter[str] = collections.Counter()
        self._recent: collections.OrderedDict[str, LiveRun] = collections.OrderedDict()
        self._configs: dict[str, tuple[tuple[str, int, int], PipelineConfig]] = {}

    # -- the sink -------------------------------------------------------------------------------

    def emit(self, record: TransitionRecord) -> None:
        """Forward a record to the logger and extra sinks, then note the new state."""
        self.logger.emit(record)
        for sink in self.sinks:
            try:
                sink.emit(record)
            except Exception:  # an exporter must never fail a pipeline
                _log.exception("extra sink failed")
        self.metrics.transitions.labels(record.entity_type).inc()
        run = self.runs.get(record.pipeline_logging_id)
        if run is None:
            return
        if len(run.timeline) >= TIMELINE_CAP:
            run.timeline_complete = False
        else:
            run.timeline.append(
                {
                    "transition_time": record.transition_time.isoformat(timespec="microseconds"),
                    "entity_type": record.entity_type,
                    "entity_name": record.entity_name,
                    "from_state": record.from_state,
                    "to_state": record.to_state,
                    "duration_seconds": round(record.duration_in_state_ms / 1000.0, 3),
                    "reason": record.reason,
                }
            )
        if record.entity_type == "PIPELINE":
            run.state = record.to_state
            run.pipeline_id = record.entity_name
            if record.to_state in TERMINAL:
                self.metrics.runs.labels(record.to_state).inc()
        else:
            run.steps[record.entity_name] = record.to_state

    # -- admission and start ------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Pipelines running in this process now."""
        return sum(self._running.values())

    def _admit(self, org_slug: str) -> None:
        if self.closing:
            self.metrics.rejections.labels("shutting_down").inc()
            raise ShuttingDown("the server is shutting down; retry on another replica")
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
        if self.running >= self.settings.max_running:
            self.metrics.rejections.labels("process_limit").inc()
            raise TooBusy(
                f"{self.running} pipelines are running (limit {self.settings.max_running})",
                headers=retry,
            )
        if self._running[org_slug] >= self.settings.per_org_limit:
            self.metrics.rejections.labels("org_limit").inc()
            raise TooBusy(
                f"org {org_slug!r} has {self._running[org_slug]} pipelines running "
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
        run_id = str(uuid.uuid4())
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
            # The seed's trail PENDING -> RUNNING -> FAILED (VALIDATION_ERROR) is still stored.
            result = await run_pipeline(pipeline, **common)
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
        self.runs[run_id] = run
        self._running[org_slug] += 1
        self.metrics.running.inc()
        run.task = asyncio.create_task(
            run_pipeline(config, **common), name=f"pipestate-run-{run_id}"
        )
        run.task.add_done_callback(lambda task: self._finished(run, task))
        return run

    def _public(self, message: str) -> str:
        """An error message without the server's own config path (clients see `<configs>`)."""
        root = str(Path(self.settings.config_dir))
        for prefix in {str(Path(root).resolve()), root}:
            message = message.replace(prefix, "<configs>")
        return message

    async def _config(self, pipeline: str) -> PipelineConfig:
        """The pipeline's config, parsed once per version of its file (path, mtime, size)."""
        from executor.config import load_pipeline_config, resolve_pipeline

        path = resolve_pipeline(pipeline, self.settings.config_dir)
        try:
            stat = path.stat()
        except OSError:
            stat = None
        version = (str(path), stat.st_mtime_ns, stat.st_size) if stat else None
        cached = self._configs.get(pipeline)
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        config = await asyncio.to_thread(
            load_pipeline_config, pipeline, config_dir=self.settings.config_dir
        )
        if version is not None:
            if len(self._configs) >= _CONFIG_CACHE:
                self._configs.clear()
            self._configs[pipeline] = (version, config)
        return config

    def _finished(self, run: LiveRun, task: asyncio.Task[PipelineResult]) -> None:
        self._running[run.org_slug] -= 1
        if self._running[run.org_slug] <= 0:
            del self._running[run.org_slug]
        self.metrics.running.dec()
        if not task.cancelled() and task.exception() is None:
            run.result = task.result()
        elif not task.cancelled():
            _log.error("run %s raised", run.pipeline_logging_id, exc_info=task.exception())
        self.runs.pop(run.pipeline_logging_id, None)
        self._recent[run.pipeline_logging_id] = run
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    # -- reads, waits and cancels -------------------------------------------------------------

    def get(self, org_slug: str, run_id: str) -> LiveRun | None:
        """A run of this org started here (running or recently finished), else None."""
        run = self.runs.get(run_id) or self._recent.get(run_id)
        if run is None or run.org_slug != org_slug:
            return None
        return run

    async def wait(self, run: LiveRun, timeout: float) -> None:  # noqa: ASYNC109 - bounded
        """Wait until the run ends or `timeout` passes (the run goes on either way)."""
        if run.task is None or run.task.done():
            return
        await asyncio.wait({run.task}, timeout=min(timeout, self.settings.max_wait_seconds))

    def cancel(self, org_slug: str, run_id: str, *, by: str) -> LiveRun:
        """Cancel a live run of this org; NotFound if it is not running here."""
        run = self.runs.get(run_id)
        if run is None or run.org_slug != org_slug or run.task is None:
            raise NotFound(f"no live run {run_id!r} in this process")
        request_cancel(run.task, source="api", by=by)
        return run

    # -- shutdown -----------------------------------------------------------------------------

    def stop_admitting(self) -> None:
        """From now on new runs get 503."""
        self.closing = True

    async def drain(self, grace: float) -> bool:
        """Stop admitting; wait up to `grace` seconds for the running pipelines to end."""
        self.stop_admitting()
        tasks = {r.task for r in self.runs.values() if r.task is not None and not r.task.done()}
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        return not pending

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - bounded
        """Cancel whatever still runs (source "shutdown") and wait for it to end."""
        self.stop_admitting()
        tasks = [r.task for r in self.runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            request_cancel(task, source="shutdown", by=None)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
