"""PipelineRun and StepRun: creation, records, errors, reasons, sinks and illegal events."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid

import pytest
import structlog
from transitions.core import MachineError

from classifier.errors import DependencyFailure
from statemachine import (
    IllegalTransition,
    InMemorySink,
    ManualClock,
    NullSink,
    PipelineRun,
    StepRun,
    TransitionRecord,
    sink_failure_count,
    uuid4_str,
)
from statemachine.records import RECORD_FIELDS
from tests.strategies.events import sequential_ids


class RaisingSink:
    """A sink whose emit always raises."""

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, record: TransitionRecord) -> None:
        """Count the call, then fail."""
        self.calls += 1
        raise OSError("disk full")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def pipeline(sink: InMemorySink, clock: ManualClock) -> PipelineRun:
    return PipelineRun.create(
        "daily_billing",
        org_slug="acme",
        sink=sink,
        clock=clock,
        user_id="u-1",
        trigger_type="scheduler",
        id_source=sequential_ids(),
    )


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


class TestCreate:
    """The create classmethods."""

    def test_pipeline_defaults(self, sink: InMemorySink) -> None:
        """A new pipeline is PENDING with a UUIDv7 logging id and the system clock."""
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        assert run.state == "PENDING"
        assert run.retry_count == 0
        assert run.trigger_type == "api"
        assert run.user_id is None
        assert uuid.UUID(run.pipeline_logging_id).version == 7
        assert run.entered_at.tzinfo is not None
        assert not run.is_terminal
        assert sink.records == []

    def test_step_inherits_from_pipeline(self, pipeline: PipelineRun) -> None:
        """A step shares org, pipeline id, trigger, user, sink and clock with its pipeline."""
        step = StepRun.create("extract_data", pipeline=pipeline, step_logging_id="s-1")
        assert step.org_slug == "acme"
        assert step.pipeline_logging_id == pipeline.pipeline_logging_id
        assert (step.trigger_type, step.user_id) == ("scheduler", "u-1")
        assert step.sink is pipeline.sink
        assert step.clock is pipeline.clock
        assert step.step_logging_id == "s-1"

    def test_explicit_pipeline_id(self, sink: InMemorySink) -> None:
        """A given pipeline_logging_id is kept."""
        run = PipelineRun.create("p", org_slug="acme", sink=sink, pipeline_logging_id="given")
        assert run.pipeline_logging_id == "given"

    @pytest.mark.parametrize(
        ("field", "kwargs"),
        [
            ("entity_name", {"entity_name": ""}),
            ("org_slug", {"org_slug": ""}),
        ],
    )
    def test_rejects_empty_text(self, field: str, kwargs: dict[str, str]) -> None:
        """Empty names are rejected with the field named."""
        args = {"entity_name": "p", "org_slug": "acme", **kwargs}
        with pytest.raises(ValueError, match=f"'{field}' must be a non-empty str"):
            PipelineRun.create(args["entity_name"], org_slug=args["org_slug"], sink=NullSink())

    def test_rejects_non_sink(self) -> None:
        """A sink without emit is rejected."""
        with pytest.raises(TypeError, match="'sink' must have an emit"):
            PipelineRun.create("p", org_slug="acme", sink=object())  # type: ignore[arg-type]

    def test_identity_not_equality(self, pipeline: PipelineRun) -> None:
        """Two runs with equal fields are different entities (eq=False)."""
        twin = PipelineRun.create(
            "daily_billing",
            org_slug="acme",
            sink=pipeline.sink,
            clock=pipeline.clock,
            pipeline_logging_id=pipeline.pipeline_logging_id,
        )
        assert twin != pipeline
        assert len({pipeline, twin}) == 2

    def test_slots_only(self, pipeline: PipelineRun) -> None:
        """Entities have no per-instance __dict__ and each has its own lock."""
        step = StepRun.create("s", pipeline=pipeline)
        assert not hasattr(step, "__dict__")
        assert step._lock is not pipeline._lock


class TestHappyPath:
    """Legal transitions and the records they emit."""

    def test_pipeline_run_records(
        self, pipeline: PipelineRun, sink: InMemorySink, clock: ManualClock
    ) -> None:
        """PENDING -> RUNNING -> COMPLETED emits two chained, timed rows."""
        clock.advance(ms=40)
        started = pipeline.start()
        clock.advance(ms=1500)
        done = pipeline.complete(metadata={"steps_completed": 3})
        assert sink.records == [started, done]
        assert (started.from_state, started.to_state) == ("PENDING", "RUNNING")
        assert (done.from_state, done.to_state) == ("RUNNING", "COMPLETED")
        assert (started.duration_in_state_ms, done.duration_in_state_ms) == (40, 1500)
        assert done.metadata == {"steps_completed": 3}
        assert done.reason == "Pipeline completed successfully"
        assert started.entity_type == "PIPELINE"
        assert started.step_logging_id is None
        assert (done.trigger_type, done.user_id, done.org_slug) == ("scheduler", "u-1", "acme")
        assert done.transition_time == clock.now()
        assert done.transition_date == dt.date(2025, 12, 21)
        assert pipeline.is_terminal

    def test_ids_come_from_id_source(self, pipeline: PipelineRun) -> None:
        """Transition ids come from the injected id source."""
        record = pipeline.start()
        assert record.transition_id == "00000000-0000-4000-8000-000000000002"

    def test_step_retry_cycle(self, pipeline: PipelineRun, clock: ManualClock) -> None:
        """A step can retry twice; retry_count grows only on RETRYING -> RUNNING."""
        pipeline.start()
        step = StepRun.create("extract_data", pipeline=pipeline)
        counts = []
        for _ in range(2):
            counts.append(step.start().retry_count)
            counts.append(step.retry(_raised(ConnectionError("reset"))).retry_count)
        counts.append(step.start().retry_count)
        counts.append(step.complete(metadata={"rows_processed": 1000}).retry_count)
        assert counts == [0, 0, 1, 1, 2, 2]
        records = pipeline.sink.records[1:]  # type: ignore[attr-defined]
        assert records[-2].reason == "Step retry attempt 2 started"
        assert records[-1].metadata == {"rows_processed": 1000}
        assert all(r.entity_type == "STEP" for r in records)
        assert all(r.step_logging_id == step.step_logging_id for r in records)

    def test_caller_metadata_is_copied(self, pipeline: PipelineRun) -> None:
        """Mutating the caller's dict later does not change the record."""
        meta = {"a": 1}
        record = pipeline.start(metadata=meta)
        meta["a"] = 2
        assert record.metadata == {"a": 1}

    def test_custom_reason(self, pipeline: PipelineRun) -> None:
        """A given reason replaces the default sentence."""
        assert pipeline.start(reason="manual kick").reason == "manual kick"

    def test_trusted_record_equals_validated(self, pipeline: PipelineRun) -> None:
        """The hot-path record equals one built through the validating __init__."""
        record = pipeline.start()
        rebuilt = TransitionRecord(**{f: getattr(record, f) for f in RECORD_FIELDS})
        assert rebuilt == record


class TestFailures:
    """Failure transitions classify the error and fill the error fields."""

    def test_step_failure_fields(self, pipeline: PipelineRun) -> None:
        """fail(exc) records error type, redacted message, stack and classifier metadata."""
        pipeline.start()
        step = StepRun.create("extract_data", pipeline=pipeline)
        step.start()
        err = _raised(ConnectionError("connection reset by peer"))
        record = step.fail(err, metadata={"timeout_seconds": 600})
        assert record.to_state == "FAILED"
        assert record.error_type == "TRANSIENT"
        assert record.error_message == "connection reset by peer"
        assert record.reason == (
            "Step failed with builtins.ConnectionError: connection reset by peer"
        )
        assert record.stack_trace_truncated is not None
        assert "ConnectionError" in record.stack_trace_truncated
        assert len(record.stack_trace_truncated) <= 2000
        assert record.metadata["error_class"] == "builtins.ConnectionError"
        assert record.metadata["is_retryable"] is True
        assert record.metadata["timeout_seconds"] == 600

    def test_reason_cuts_message_at_200(self, pipeline: PipelineRun) -> None:
        """The default reason quotes at most 200 characters of the message."""
        pipeline.start()
        record = pipeline.fail(ValueError("x" * 500))
        assert record.reason is not None
        assert record.reason.endswith("x" * 200)
        assert "x" * 201 not in record.reason

    def test_error_type_override(self, pipeline: PipelineRun) -> None:
        """error_type overrides the classifier (dependency failures from PENDING)."""
        pipeline.start()
        step = StepRun.create("load", pipeline=pipeline)
        record = step.fail(error_type="DEPENDENCY_FAILURE")
        assert (record.from_state, record.error_type) == ("PENDING", "DEPENDENCY_FAILURE")
        assert record.error_message
        assert record.stack_trace_truncated is None

    def test_dependency_failure_exception(self, pipeline: PipelineRun) -> None:
        """A DependencyFailure is classified as DEPENDENCY_FAILURE."""
        pipeline.start()
        step = StepRun.create("load", pipeline=pipeline)
        record = step.fail(DependencyFailure("upstream 'extract' failed"))
        assert record.error_type == "DEPENDENCY_FAILURE"

    def test_pipeline_timeout_is_timeout(self, pipeline: PipelineRun) -> None:
        """time_out always records error_type TIMEOUT, with or without an exception."""
        pipeline.start()
        record = pipeline.time_out(metadata={"timeout_minutes": 0.1})
        assert (record.to_state, record.error_type) == ("TIMEOUT", "TIMEOUT")
        assert record.reason == "Pipeline timed out with TIMEOUT"

    def test_secrets_are_redacted(self, pipeline: PipelineRun) -> None:
        """Error message and reason never carry a password from the exception."""
        pipeline.start()
        record = pipeline.fail(RuntimeError("cannot reach postgres://app:hunter2@db:5432/x"))
        assert "hunter2" not in (record.error_message or "")
        assert "hunter2" not in (record.reason or "")

    def test_retry_carries_next_delay(self, pipeline: PipelineRun) -> None:
        """retry() records next_retry_delay_seconds from the policy and the retry count."""
        pipeline.start()
        from classifier import RetryPolicy

        step = StepRun.create("extract_data", pipeline=pipeline)
        step.start()
        record = step.retry(TimeoutError("deadline"), policy=RetryPolicy(base_delay_seconds=1.0))
        assert record.to_state == "RETRYING"
        assert record.error_type == "TIMEOUT"
        assert record.metadata["next_retry_delay_seconds"] == 1.0

    def test_bad_error_type_changes_nothing(
        self, pipeline: PipelineRun, sink: InMemorySink
    ) -> None:
        """An unknown error_type raises ValueError naming the field; nothing changes."""
        pipeline.start()
        before = len(sink.records)
        with pytest.raises(ValueError, match="'error_type' must be one of"):
            pipeline.fail(error_type="SOMETIMES")
        assert pipeline.state == "RUNNING"
        assert len(sink.records) == before


class TestIllegal:
    """Illegal events raise IllegalTransition and change nothing."""

    def test_message_and_attributes(self, pipeline: PipelineRun, sink: InMemorySink) -> None:
        """The message reads like a sentence and the details are attributes."""
        step = StepRun.create("extract_data", pipeline=pipeline, step_logging_id="3f2c1a2b-9")
        with pytest.raises(IllegalTransition) as info:
            step.complete()
        exc = info.value
        assert str(exc) == (
            "Can't complete step 'extract_data' (3f2c1a2b...) when it is PENDING; "
            "legal events: start, fail"
        )
        assert exc.args == (str(exc),)
        assert (exc.entity, exc.event, exc.state) == ("extract_data", "complete", "PENDING")
        assert exc.legal_events == ("start", "fail")
        assert isinstance(exc, MachineError)
        assert sink.records == []

    def test_terminal_lists_no_events(self, pipeline: PipelineRun) -> None:
        """In a terminal state the message says no event is legal."""
        pipeline.start()
        pipeline.complete()
        with pytest.raises(IllegalTransition, match="when it is COMPLETED; legal events: none"):
            pipeline.start()

    def test_unknown_event_on_engine(self, pipeline: PipelineRun) -> None:
        """An event the machine does not know is illegal too."""
        from statemachine.machines import STEP_ENGINE

        step = StepRun.create("s", pipeline=pipeline)
        with pytest.raises(IllegalTransition, match="Can't time_out step"):
            STEP_ENGINE.fire(step, "time_out")

    def test_pickles(self) -> None:
        """The exception survives pickling with its attributes."""
        exc = IllegalTransition("p", "start", "FAILED", (), kind="pipeline", entity_id="abc")
        clone = pickle.loads(pickle.dumps(exc))
        assert (str(clone), clone.state, clone.entity_id) == (str(exc), "FAILED", "abc")


class TestSinkFailures:
    """A sink that raises never undoes or blocks a transition."""

    def test_transition_stands_and_is_counted(self, clock: ManualClock) -> None:
        """The state changes, the record is returned, the failure is counted and logged."""
        bad = RaisingSink()
        run = PipelineRun.create("p", org_slug="acme", sink=bad, clock=clock)
        before = sink_failure_count()
        with structlog.testing.capture_logs() as logs:
            record = run.start()
        assert run.state == "RUNNING"
        assert record.to_state == "RUNNING"
        assert bad.calls == 1
        assert sink_failure_count() == before + 1
        assert [e["event"] for e in logs] == ["transition_sink_failed"]
        assert logs[0]["transition_id"] == record.transition_id


class TestIds:
    """The default id source."""

    def test_uuid4_strings(self) -> None:
        """Ids are canonical, distinct version-4 RFC 4122 UUID strings."""
        ids = [uuid4_str() for _ in range(2000)]
        assert len(set(ids)) == len(ids)
        for value in ids:
            parsed = uuid.UUID(value)
            assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)


class TestStepCreateDetails:
    """StepRun.create checks the step's name and starts its clocks at creation."""

    def test_empty_step_name_named(self, pipeline: PipelineRun) -> None:
        """An empty step name is refused, naming the entity_name field."""
        with pytest.raises(ValueError, match="'entity_name' must be a non-empty str"):
            StepRun.create("", pipeline=pipeline)

    def test_entry_times_at_creation(self, pipeline: PipelineRun, clock: ManualClock) -> None:
        """A new step entered PENDING at the clock's current readings."""
        clock.advance(ms=42)
        step = StepRun.create("load", pipeline=pipeline)
        assert (step.entered_at, step.entered_monotonic_ns) == (clock.now(), clock.monotonic_ns())
