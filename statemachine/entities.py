"""PipelineRun and StepRun: the state objects the shared machines drive."""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

import attrs

from statemachine.clock import SYSTEM_CLOCK, Clock
from statemachine.ids import IdSource, new_id
from statemachine.machines import PIPELINE_ENGINE, STEP_ENGINE
from statemachine.records import TransitionRecord
from statemachine.sink import TransitionSink
from statemachine.spec import PENDING, PIPELINE, STEP

if TYPE_CHECKING:
    from classifier import ErrorType, RetryPolicy

_PIPELINE_TERMINAL = PIPELINE.terminal
_STEP_TERMINAL = STEP.terminal


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{name}' must be a non-empty str (got {value!r}).")


def _require_sink(sink: object) -> None:
    if not callable(getattr(sink, "emit", None)):
        raise TypeError(f"'sink' must have an emit(record) method (got {sink!r}).")


# eq=False: with eq=True an equal twin would be treated as the same entity.
@attrs.define(eq=False, slots=True)
class PipelineRun:
    """One run of a pipeline; its methods are the machine's events and return the record."""

    entity_name: str
    org_slug: str
    pipeline_logging_id: str
    sink: TransitionSink = attrs.field(repr=False)
    clock: Clock = attrs.field(repr=False)
    id_source: IdSource = attrs.field(repr=False)
    entered_monotonic_ns: int
    entered_at: dt.datetime
    trigger_type: str = "api"
    user_id: str | None = None
    state: str = PENDING
    retry_count: int = 0
    _lock: threading.RLock = attrs.field(init=False, factory=threading.RLock, repr=False)
    # The steps created for this run (joint rules 2 and 3 read them) and the latest time
    # stamped on a record of this run (rule 5); both guarded by _lock.
    _steps: list[StepRun] = attrs.field(init=False, factory=list, repr=False)
    _latest_at: dt.datetime | None = attrs.field(init=False, default=None, repr=False)

    @classmethod
    def create(
        cls,
        entity_name: str,
        *,
        org_slug: str,
        sink: TransitionSink,
        trigger_type: str = "api",
        user_id: str | None = None,
        pipeline_logging_id: str | None = None,
        clock: Clock | None = None,
        id_source: IdSource | None = None,
    ) -> PipelineRun:
        """A PENDING pipeline run whose time in PENDING starts now."""
        _require_text("entity_name", entity_name)
        _require_text("org_slug", org_slug)
        _require_sink(sink)
        clock = SYSTEM_CLOCK if clock is None else clock
        ids = new_id if id_source is None else id_source
        return cls(
            entity_name=entity_name,
            org_slug=org_slug,
            pipeline_logging_id=ids() if pipeline_logging_id is None else pipeline_logging_id,
            sink=sink,
            clock=clock,
            id_source=ids,
            entered_monotonic_ns=clock.monotonic_ns(),
            entered_at=clock.now(),
            trigger_type=trigger_type,
            user_id=user_id,
        )

    @property
    def is_terminal(self) -> bool:
        """True once the run is COMPLETED, FAILED or TIMEOUT."""
        return self.state in _PIPELINE_TERMINAL

    @property
    def steps(self) -> tuple[StepRun, ...]:
        """The steps created for this run, in creation order."""
        with self._lock:
            return tuple(self._steps)

    def legal_events(self) -> tuple[str, ...]:
        """The events allowed in the current state."""
        return PIPELINE_ENGINE.legal_events(self.state)

    def forget_steps(self) -> None:
        """Once terminal, drop the run's list of its steps (each step points back at the run).

        Hook for the executor (issue 13): a finished run is then freed by reference counting,
        not by a cyclic collection, which stops every thread of the process while it runs.
        """
        if self.is_terminal:
            with self._lock:
                self._steps.clear()

    def start(
        self, *, reason: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TransitionRecord:
        """PENDING -> RUNNING."""
        return PIPELINE_ENGINE.fire(self, "start", None, None, reason, metadata)

    def complete(
        self, *, reason: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TransitionRecord:
        """RUNNING -> COMPLETED."""
        return PIPELINE_ENGINE.fire(self, "complete", None, None, reason, metadata)

    def fail(
        self,
        error: BaseException | None = None,
        *,
        error_type: ErrorType | str | None = None,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TransitionRecord:
        """RUNNING -> FAILED; `error` is classified unless `error_type` is given."""
        return PIPELINE_ENGINE.fire(self, "fail", error, error_type, reason, metadata)

    def time_out(
        self,
        error: BaseException | None = None,
        *,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TransitionRecord:
        """RUNNING -> TIMEOUT; the record's error_type is TIMEOUT."""
        return PIPELINE_ENGINE.fire(self, "time_out", error, None, reason, metadata)


@attrs.define(eq=False, slots=True)
class StepRun:
    """One step of a pipeline run; its methods are the machine's events and return the record."""

    entity_name: str
    org_slug: str
    pipeline_logging_id: str
    step_logging_id: str
    sink: TransitionSink = attrs.field(repr=False)
    clock: Clock = attrs.field(repr=False)
    id_source: IdSource = attrs.field(repr=False)
    entered_monotonic_ns: int
    entered_at: dt.datetime
    trigger_type: str = "api"
    user_id: str | None = None
    state: str = PENDING
    retry_count: int = 0
    # The run this step belongs to; the joint rules (statemachine/joint.py) read its state.
    _pipeline: PipelineRun | None = attrs.field(default=None, repr=False, kw_only=True)
    _lock: threading.RLock = attrs.field(init=False, factory=threading.RLock, repr=False)

    @classmethod
    def create(
        cls,
        entity_name: str,
        *,
        pipeline: PipelineRun,
        step_logging_id: str | None = None,
    ) -> StepRun:
        """A PENDING step of `pipeline`, sharing its org, ids, trigger, user, sink and clock.

        Raises JointRuleViolation (rule 4) when the pipeline is already terminal.
        """
        _require_text("entity_name", entity_name)
        if not isinstance(pipeline, PipelineRun):
            raise TypeError(f"'pipeline' must be a PipelineRun (got {pipeline!r}).")
        clock = pipeline.clock
        step = cls(
            entity_name=entity_name,
            org_slug=pipeline.org_slug,
            pipeline_logging_id=pipeline.pipeline_logging_id,
            step_logging_id=pipeline.id_source() if step_logging_id is None else step_logging_id,
            sink=pipeline.sink,
            clock=clock,
            id_source=pipeline.id_source,
            entered_monotonic_ns=clock.monotonic_ns(),
            entered_at=clock.now(),
            trigger_type=pipeline.trigger_type,
            user_id=pipeline.user_id,
            pipeline=pipeline,
        )
        STEP_ENGINE.register(step, pipeline)
        return step

    @property
    def pipeline(self) -> PipelineRun | None:
        """The run this step belongs to (None only for a StepRun built without create())."""
        return self._pipeline

    @property
    def is_terminal(self) -> bool:
        """True once the step is COMPLETED or FAILED."""
        return self.state in _STEP_TERMINAL

    def legal_events(self) -> tuple[str, ...]:
        """The events allowed in the current state."""
        return STEP_ENGINE.legal_events(self.state)

    def start(
        self, *, reason: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TransitionRecord:
        """PENDING -> RUNNING, or RETRYING -> RUNNING (retry_count + 1)."""
        return STEP_ENGINE.fire(self, "start", None, None, reason, metadata)

    def complete(
        self, *, reason: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TransitionRecord:
        """RUNNING -> COMPLETED."""
        return STEP_ENGINE.fire(self, "complete", None, None, reason, metadata)

    def fail(
        self,
        error: BaseException | None = None,
        *,
        error_type: ErrorType | str | None = None,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TransitionRecord:
        """PENDING, RUNNING or RETRYING -> FAILED; `error_type` overrides classification."""
        return STEP_ENGINE.fire(self, "fail", error, error_type, reason, metadata)

    def retry(
        self,
        error: BaseException | None = None,
        *,
        error_type: ErrorType | str | None = None,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        policy: RetryPolicy | None = None,
    ) -> TransitionRecord:
        """RUNNING -> RETRYING; the record carries next_retry_delay_seconds from `policy`."""
        return STEP_ENGINE.fire(self, "retry", error, error_type, reason, metadata, policy)
