"""One pipeline run: a DAG scheduler on one event loop driving PipelineRun and StepRun objects."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

# classifier.engine (its rule tables) is imported only when a step fails: a run that succeeds
# never classifies anything (tests/test_cold_start.py checks it stays unloaded).
from classifier import ErrorType, RetryPolicy, get_retry_delay, is_retryable, redact
from classifier.errors import DependencyFailure
from executor._results import result_metadata
from executor._threads import SyncRunner
from executor.dag import Dag
from executor.errors import PipelineCancelled, PipelineTimeout, StepTimeout
from executor.processors import ProcessorContext, ProcessorSpec, get_processor

if TYPE_CHECKING:
    from executor.cancellation import CancelRequest
    from executor.config import PipelineConfig, StepConfig
    from statemachine import PipelineRun, StepRun

_log = logging.getLogger(__name__)
# How long an aborted run waits for cancelled processors to unwind before moving on.
CANCEL_GRACE_SECONDS = 5.0


def _minutes(value: float) -> str:
    return f"{value:g} minute{'s' if value != 1 else ''}"


class Execution:
    """Schedules the steps of one pipeline run and drives their state objects to the end."""

    def __init__(
        self,
        config: PipelineConfig,
        run: PipelineRun,
        *,
        concurrency: int,
        fail_fast: bool,
        store: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        from statemachine import StepRun

        self.config = config
        self.run = run
        self.concurrency = max(1, concurrency)
        self.fail_fast = fail_fast
        self.store = store
        self.params: Mapping[str, Any] = MappingProxyType(dict(params or {}))
        self.dag = Dag({s.step_id: s.depends_on for s in config.steps})
        self.step_configs: dict[str, StepConfig] = {s.step_id: s for s in config.steps}
        self.steps: dict[str, StepRun] = {
            sid: StepRun.create(sid, pipeline=run) for sid in self.dag.order
        }
        # Every step row says which processor it ran and where the step sits in the config.
        self.step_meta: dict[str, dict[str, Any]] = {
            s.step_id: {"step_type": s.processor, "step_index": i}
            for i, s in enumerate(config.steps)
        }
        # Blocking `def` processors run in threads, at most `concurrency` alive at a time.
        self.sync_runner = SyncRunner(self.concurrency)
        self.cancel_request: CancelRequest | None = None
        # Root causes in the order they happened: (step id, exception, error type).
        self.failures: list[tuple[str, BaseException, str]] = []
        self.abandoned: set[str] = set()
        self._finished: deque[tuple[str, asyncio.Task[None]]] = deque()
        self._wake = asyncio.Event()
        self._deadline_hit = False

    # -- the scheduler -----------------------------------------------------------------

    async def execute(self) -> None:
        """Run every step to a terminal state, then end the pipeline; re-raise cancellation."""
        cfg = self.config
        started: dict[str, Any] = {
            "total_steps": len(cfg.steps),
            "timeout_minutes": cfg.timeout_minutes,
        }
        if self.params:
            started["params"] = dict(self.params)
        self.run.start(reason="Pipeline execution started", metadata=started)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(cfg.timeout_minutes * 60.0, self._on_deadline)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            await self._schedule(running)
        except asyncio.CancelledError as cancel:
            # Imported on cancellation only: each attrs class costs a cold start ~1 ms.
            from executor.cancellation import decode_cancel

            self.cancel_request = decode_cancel(cancel)
            self._abort_cancelled(running, self.cancel_request)
            await self._drain(running)
            raise
        finally:
            timer.cancel()
        if self._deadline_hit and not all(s.is_terminal for s in self.steps.values()):
            self._abort_timeout(running)
            await self._drain(running)
        else:
            self._finish()

    def _on_deadline(self) -> None:
        self._deadline_hit = True
        self._wake.set()

    def _on_task_done(self, sid: str, task: asyncio.Task[None]) -> None:
        self._finished.append((sid, task))
        self._wake.set()

    async def _schedule(self, running: dict[str, asyncio.Task[None]]) -> None:
        # Steps not yet started or failed; a ready queue fed by counting unfinished deps
        # keeps scheduling O(edges) even for long chains.
        pending: set[str] = set(self.dag.order)
        waiting_on = {sid: len(self.dag.deps(sid)) for sid in self.dag.order}
        ready: deque[str] = deque(self.dag.roots())
        stopping = False
        while True:
            while ready and len(running) < self.concurrency and not stopping:
                sid = ready.popleft()
                if sid in pending:
                    pending.discard(sid)
                    running[sid] = self._launch(sid)
            if not running or self._deadline_hit:
                return
            await self._wake.wait()
            self._wake.clear()
            while self._finished:
                sid, task = self._finished.popleft()
                running.pop(sid, None)
                self._settle(sid, task)
                if self.steps[sid].state == "COMPLETED":
                    for nxt in self.dag.dependents(sid):
                        waiting_on[nxt] -= 1
                        if waiting_on[nxt] == 0:
                            ready.append(nxt)
                elif sid not in self.abandoned:
                    self._block_dependents(sid, pending)
                    if self.fail_fast and not stopping:
                        stopping = True
                        self._abort_fail_fast(sid, running, pending)
            if stopping and not running:
                return

    def _launch(self, sid: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run_step(sid), name=f"pipestate-step-{sid}")
        task.add_done_callback(functools.partial(self._on_task_done, sid))
        return task

    def _settle(self, sid: str, task: asyncio.Task[None]) -> None:
        """Make sure a finished step task left its step terminal (a bug must not strand it)."""
        step = self.steps[sid]
        if step.is_terminal or sid in self.abandoned:
            return
        exc: BaseException = (
            PipelineCancelled(f"step {sid!r} was cancelled")
            if task.cancelled()
            else task.exception() or RuntimeError(f"step {sid!r} stopped without an outcome")
        )
        _log.error("step %s ended without a terminal state", sid, exc_info=exc)
        step.fail(
            exc,
            reason=f"Step {sid} stopped unexpectedly: {type(exc).__name__}",
            metadata=self.step_meta[sid],
        )
        self.failures.append((sid, exc, step_error_type(exc)))

    def _block_dependents(self, failed: str, pending: set[str]) -> None:
        for sid in self.dag.descendants(failed):
            if sid in pending:
                pending.discard(sid)
                err = DependencyFailure(f"upstream step {failed!r} failed")
                self.steps[sid].fail(
                    err,
                    error_type=ErrorType.DEPENDENCY_FAILURE,
                    reason=f"Upstream step {failed} failed; step {sid} cannot run",
                    metadata={**self.step_meta[sid], "upstream_step": failed},
                )

    # -- one step ----------------------------------------------------------------------

    async def _run_step(self, sid: str) -> None:
        cfg = self.step_configs[sid]
        step = self.steps[sid]
        spec = get_processor(cfg.processor)
        meta = self.step_meta[sid]
        step.start(metadata=meta)
        while True:
            result, error, error_type = await self._attempt(sid, spec, cfg, step.retry_count + 1)
            if sid in self.abandoned:
                return
            if error is None:
                # Engine keys win over a processor's keys of the same name.
                step.complete(metadata={**result_metadata(result), **meta})
                return
            policy = self._policy(cfg)
            if is_retryable(error_type) and step.retry_count < policy.max_retries:
                delay = get_retry_delay(step.retry_count, error_type, policy) or 0.0
                step.retry(
                    error,
                    error_type=error_type,
                    policy=policy,
                    metadata={**meta, "max_retries": policy.max_retries},
                )
                await asyncio.sleep(delay)
                if sid in self.abandoned:
                    return
                step.start(
                    reason=f"Retry {step.retry_count + 1} of {policy.max_retries}", metadata=meta
                )
                continue
            step.fail(
                error,
                error_type=error_type,
                metadata={
                    **meta,
                    "attempts": step.retry_count + 1,
                    "max_retries": policy.max_retries,
                },
            )
            self.failures.append((sid, error, error_type))
            return

    def _policy(self, cfg: StepConfig) -> RetryPolicy:
        """The step's retry policy (built only when a step fails: it is off the hot path)."""
        retry = self.config.retry
        return RetryPolicy(
            max_retries=retry.max_retries if cfg.max_retries is None else cfg.max_retries,
            base_delay_seconds=retry.base_delay_seconds,
            multiplier=retry.multiplier,
            max_delay_seconds=retry.max_delay_seconds,
        )

    async def _attempt(
        self, sid: str, spec: ProcessorSpec, cfg: StepConfig, attempt: int
    ) -> tuple[Any, BaseException | None, str]:
        ctx = ProcessorContext(
            pipeline_logging_id=self.run.pipeline_logging_id,
            pipeline_id=self.config.pipeline_id,
            step_id=sid,
            attempt=attempt,
            org_slug=self.run.org_slug,
            store=self.store,
            config_source=self.config.source,
            timeout_seconds=None if cfg.timeout_minutes is None else cfg.timeout_minutes * 60.0,
            params=self.params,
        )
        if cfg.timeout_minutes is None:
            try:
                return await self._call(spec, ctx, cfg), None, ""
            except Exception as exc:
                return None, exc, step_error_type(exc)
        cm = asyncio.timeout(cfg.timeout_minutes * 60.0)
        try:
            async with cm:
                result = await self._call(spec, ctx, cfg)
        except TimeoutError as exc:
            if not cm.expired():  # the processor's own timeout, not ours
                return None, exc, step_error_type(exc)
            limit = _minutes(cfg.timeout_minutes)
            return (
                None,
                StepTimeout(f"Step {sid} exceeded its timeout of {limit}"),
                ErrorType.TIMEOUT,
            )
        except Exception as exc:
            return None, exc, step_error_type(exc)
        return result, None, ""

    async def _call(self, spec: ProcessorSpec, ctx: ProcessorContext, cfg: StepConfig) -> Any:
        """Await an async processor; run a plain `def` one in a worker thread."""
        if spec.is_async:
            result = spec.fn(ctx, cfg.config)
        else:
            result = await self.sync_runner.call(spec.fn, ctx, cfg.config)
        if inspect.isawaitable(result):
            return await result
        return result

    # -- endings -----------------------------------------------------------------------

    def _fail_unfinished(
        self,
        error: BaseException,
        error_type: str,
        reasons: dict[str, str],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Fail every non-terminal step with a reason depending on the state it is in."""
        for sid in self.dag.order:
            step = self.steps[sid]
            if step.is_terminal:
                continue
            self.abandoned.add(sid)
            state = step.state
            step.fail(
                error,
                error_type=error_type,
                reason=reasons[state].format(sid=sid),
                metadata={**self.step_meta[sid], **(extra or {})},
            )

    def _abort_fail_fast(
        self, failed: str, running: dict[str, asyncio.Task[None]], pending: set[str]
    ) -> None:
        err = DependencyFailure(f"step {failed!r} failed and fail_fast is set")
        for task in running.values():
            task.cancel()
        pending.clear()
        self._fail_unfinished(
            err,
            ErrorType.DEPENDENCY_FAILURE,
            {
                "PENDING": f"Cancelled before start: step {failed} failed and fail_fast is set",
                "RUNNING": f"Cancelled: step {failed} failed and fail_fast is set",
                "RETRYING": f"Cancelled retry: step {failed} failed and fail_fast is set",
            },
            {**_fail_fast_metadata(), "upstream_step": failed},
        )

    def _abort_timeout(self, running: dict[str, asyncio.Task[None]]) -> None:
        limit = _minutes(self.config.timeout_minutes)
        err = PipelineTimeout(f"Pipeline {self.config.pipeline_id} exceeded its timeout of {limit}")
        for task in running.values():
            task.cancel()
        self._fail_unfinished(
            err,
            ErrorType.TIMEOUT,
            {
                "PENDING": f"Not started: pipeline timed out after {limit}",
                "RUNNING": f"Step {{sid}} cancelled: pipeline timed out after {limit}",
                "RETRYING": f"Retry abandoned: pipeline timed out after {limit}",
            },
        )
        self.run.time_out(
            err,
            reason=f"Pipeline exceeded its timeout of {limit}",
            metadata=self._summary(timeout_minutes=self.config.timeout_minutes),
        )

    def _abort_cancelled(
        self, running: dict[str, asyncio.Task[None]], request: CancelRequest
    ) -> None:
        source = request.source
        err = PipelineCancelled(f"Pipeline {self.config.pipeline_id} run was cancelled ({source})")
        for task in running.values():
            task.cancel()
        self._fail_unfinished(
            err,
            ErrorType.UNKNOWN,
            {
                "PENDING": f"Cancelled before start ({source}): pipeline run was cancelled",
                "RUNNING": f"Cancelled ({source}): step {{sid}} was running",
                "RETRYING": f"Cancelled retry ({source}): pipeline run was cancelled",
            },
            request.metadata(),
        )
        if not self.run.is_terminal:
            self.run.fail(
                err,
                error_type=ErrorType.UNKNOWN,
                reason=f"Cancelled ({source}): pipeline run was cancelled",
                metadata=self._summary(**request.metadata()),
            )

    async def _drain(self, running: dict[str, asyncio.Task[None]]) -> None:
        tasks = [t for t in running.values() if not t.done()]
        if not tasks:
            return
        try:
            _, still = await asyncio.wait(tasks, timeout=CANCEL_GRACE_SECONDS)
        except asyncio.CancelledError:
            still = {t for t in tasks if not t.done()}
        if still:
            _log.warning("%d processor(s) ignored cancellation; left running", len(still))

    def _finish(self) -> None:
        if all(s.state == "COMPLETED" for s in self.steps.values()):
            count = len(self.steps)
            done = "The step completed" if count == 1 else f"All {count} steps completed"
            self.run.complete(reason=done, metadata=self._summary())
            return
        if self.failures:
            sid, error, error_type = self.failures[0]
        else:  # unreachable unless a step failed without a recorded cause
            sid, error, error_type = "", RuntimeError("unknown failure"), ErrorType.UNKNOWN
        from classifier.engine import safe_str

        self.run.fail(
            error,
            error_type=error_type,
            reason=f"Step {sid} failed with {error_type}: {redact(safe_str(error))[:160]}",
            metadata=self._summary(failed_step=sid),
        )

    def _summary(self, **extra: Any) -> dict[str, Any]:
        states = [s.state for s in self.steps.values()]
        return {
            "total_steps": len(states),
            "steps_completed": states.count("COMPLETED"),
            "steps_failed": states.count("FAILED"),
            **extra,
        }


def _fail_fast_metadata() -> dict[str, object]:
    from executor.cancellation import CancelRequest

    return CancelRequest("fail_fast").metadata()


def step_error_type(exc: BaseException) -> str:
    """Classify an exception a processor raised."""
    from classifier.engine import classify_error

    return str(classify_error(exc))
