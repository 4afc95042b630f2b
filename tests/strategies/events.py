"""Strategies and a reference oracle for driving the state machines with random events.

The oracle's expected tables are copied by hand from issue 3, not imported from
statemachine.spec, so a wrong specification table is caught too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st

from statemachine import (
    IllegalTransition,
    InMemorySink,
    ManualClock,
    NullSink,
    PipelineRun,
    StepRun,
    TransitionRecord,
)

# (state, event) -> destination, exactly as issue 3 specifies; everything else is illegal.
EXPECTED_PIPELINE: dict[tuple[str, str], str] = {
    ("PENDING", "start"): "RUNNING",
    ("RUNNING", "complete"): "COMPLETED",
    ("RUNNING", "fail"): "FAILED",
    ("RUNNING", "time_out"): "TIMEOUT",
}
EXPECTED_STEP: dict[tuple[str, str], str] = {
    ("PENDING", "start"): "RUNNING",
    ("RUNNING", "complete"): "COMPLETED",
    ("RUNNING", "fail"): "FAILED",
    ("RUNNING", "retry"): "RETRYING",
    ("RETRYING", "start"): "RUNNING",
    ("PENDING", "fail"): "FAILED",
    ("RETRYING", "fail"): "FAILED",
}
EXPECTED = {"PIPELINE": EXPECTED_PIPELINE, "STEP": EXPECTED_STEP}
STATES = {
    "PIPELINE": ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT"),
    "STEP": ("PENDING", "RUNNING", "COMPLETED", "FAILED", "RETRYING"),
}
EVENTS = {
    "PIPELINE": ("start", "complete", "fail", "time_out"),
    "STEP": ("start", "complete", "fail", "retry"),
}
TERMINAL = {
    "PIPELINE": frozenset({"COMPLETED", "FAILED", "TIMEOUT"}),
    "STEP": frozenset({"COMPLETED", "FAILED"}),
}
ERROR_STATES = frozenset({"FAILED", "TIMEOUT", "RETRYING"})
ERROR_TYPE_NAMES = (
    "TRANSIENT",
    "PERMANENT",
    "TIMEOUT",
    "VALIDATION_ERROR",
    "DEPENDENCY_FAILURE",
    "UNKNOWN",
)
# Which keyword arguments each event accepts (time_out has no error_type, only retry a policy).
EVENT_KWARGS = {
    "start": ("reason", "metadata"),
    "complete": ("reason", "metadata"),
    "fail": ("error", "error_type", "reason", "metadata"),
    "time_out": ("error", "reason", "metadata"),
    "retry": ("error", "error_type", "reason", "metadata"),
}


def running_pipeline(entity_name: str, *, sink: Any, **kwargs: Any) -> PipelineRun:
    """A RUNNING pipeline whose own start row went nowhere; steps created from it emit to `sink`.

    Joint rule 1 lets a step leave PENDING only while its pipeline is RUNNING; tests about one
    step's rows start the parent this way so the parent's row does not count among them.
    """
    pipeline = PipelineRun.create(entity_name, sink=NullSink(), **kwargs)
    pipeline.start()
    pipeline.sink = sink
    return pipeline


def sequential_ids() -> Callable[[], str]:
    """A deterministic id source yielding valid, distinct uuid4-shaped strings."""
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012x}"


def _raised(cls: type[BaseException], message: str) -> BaseException:
    try:
        raise cls(message)
    except cls as exc:  # a raised exception carries a traceback, like real failures
        return exc


_MESSAGES = st.one_of(
    st.sampled_from(
        [
            "connection reset by peer",
            "rate limit exceeded, try again",
            "401 unauthorized",
            "validation error: missing required field 'date'",
            "deadline exceeded after 600s",
            "password=hunter2 in postgres://u:secret@db/x",
        ]
    ),
    st.text(max_size=300),
)
_ERROR_CLASSES = st.sampled_from(
    [ConnectionError, TimeoutError, ValueError, RuntimeError, PermissionError, KeyError]
)


def errors() -> st.SearchStrategy[BaseException | None]:
    """None, or an exception (raised or not) of a common class with a random message."""
    exceptions = st.builds(lambda c, m: c(m), _ERROR_CLASSES, _MESSAGES)
    raised = st.builds(_raised, _ERROR_CLASSES, _MESSAGES)
    return st.one_of(st.none(), exceptions, raised)


def error_types() -> st.SearchStrategy[str | None]:
    """None (classify the exception), an explicit error type name, or rarely an invalid one."""
    return st.one_of(st.none(), st.sampled_from(ERROR_TYPE_NAMES), st.just("NOT_A_TYPE"))


def metadata() -> st.SearchStrategy[dict[str, Any] | None]:
    """None or a small JSON-ready metadata dict."""
    values = st.one_of(st.integers(-(10**9), 10**9), st.booleans(), st.text(max_size=20))
    return st.one_of(
        st.none(), st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=4)
    )


def event_kwargs(event: str) -> st.SearchStrategy[dict[str, Any]]:
    """Random keyword arguments accepted by `event`'s method."""
    parts: dict[str, st.SearchStrategy[Any]] = {
        "error": errors(),
        "error_type": error_types(),
        "reason": st.one_of(st.none(), st.text(max_size=40)),
        "metadata": metadata(),
    }
    return st.fixed_dictionaries({name: parts[name] for name in EVENT_KWARGS[event]})


@attrs.frozen
class Snapshot:
    """Everything about an entity that a rejected event must leave untouched."""

    state: str
    retry_count: int
    entered_monotonic_ns: int
    entered_at: object

    @classmethod
    def of(cls, entity: PipelineRun | StepRun) -> Snapshot:
        """Take a snapshot of `entity`."""
        return cls(entity.state, entity.retry_count, entity.entered_monotonic_ns, entity.entered_at)


Fire = Callable[[Any, str, dict[str, Any]], TransitionRecord]


def fire_by_method(entity: Any, event: str, kwargs: dict[str, Any]) -> TransitionRecord:
    """Fire `event` through the entity's public method of the same name."""
    method = getattr(entity, event)
    record: TransitionRecord = method(**kwargs)
    return record


class Oracle:
    """Fires events and asserts every invariant of issue 3 against the hand-written table."""

    def __init__(self, kind: str, sink: InMemorySink, clock: ManualClock) -> None:
        self.kind = kind
        self.expected = EXPECTED[kind]
        self.sink = sink
        self.clock = clock
        self.chains: dict[int, list[TransitionRecord]] = {}
        self.ms_in_state: dict[int, int] = {}

    def track(self, entity: Any) -> None:
        """Start following a freshly created entity (PENDING, nothing emitted)."""
        assert entity.state == "PENDING"
        self.chains[id(entity)] = []
        self.ms_in_state[id(entity)] = 0

    def advance(self, ms: int) -> None:
        """Move the fake clock and remember how long every entity has been in its state."""
        self.clock.advance(ms=ms)
        for key in self.ms_in_state:
            self.ms_in_state[key] += ms

    def fire(
        self, entity: Any, event: str, kwargs: dict[str, Any], fire: Fire = fire_by_method
    ) -> TransitionRecord | None:
        """Fire one event and check the outcome; return the record, or None if rejected."""
        before = Snapshot.of(entity)
        emitted = len(self.sink.records)
        dest = self.expected.get((before.state, event))
        bad_type = kwargs.get("error_type") not in (None, *ERROR_TYPE_NAMES)
        rejected: Exception | None = None
        try:
            record = fire(entity, event, kwargs)
        except (IllegalTransition, ValueError) as exc:
            rejected = exc
        if isinstance(rejected, IllegalTransition):
            self._check_illegal(entity, before, emitted, event, dest, rejected)
            return None
        if rejected is not None:
            assert bad_type, f"unexpected ValueError: {rejected}"
            assert dest is not None, f"{event} from {before.state} must be illegal first"
            assert "'error_type'" in str(rejected)
            self._unchanged(entity, before, emitted)
            return None
        assert dest is not None, f"{event} from {before.state} must be illegal"
        assert not bad_type, "an unknown error_type must be rejected"
        assert before.state not in TERMINAL[self.kind], "terminal states reject every event"
        assert self.sink.records[emitted:] == [record], "exactly one record per transition"
        self._check_record(entity, before, event, dest, record, kwargs)
        return record

    def _check_illegal(
        self,
        entity: Any,
        before: Snapshot,
        emitted: int,
        event: str,
        dest: str | None,
        exc: IllegalTransition,
    ) -> None:
        assert dest is None, f"{event} from {before.state} should lead to {dest}: {exc}"
        self._unchanged(entity, before, emitted)
        assert (exc.event, exc.state, exc.entity) == (event, before.state, entity.entity_name)
        legal = {e for (s, e) in self.expected if s == before.state}
        assert set(exc.legal_events) == legal
        assert exc.args == (str(exc),)

    def _unchanged(self, entity: Any, before: Snapshot, emitted: int) -> None:
        assert Snapshot.of(entity) == before, "a rejected event must change nothing"
        assert len(self.sink.records) == emitted, "a rejected event must emit nothing"

    def _check_record(
        self,
        entity: Any,
        before: Snapshot,
        event: str,
        dest: str,
        record: TransitionRecord,
        kwargs: dict[str, Any],
    ) -> None:
        assert (record.from_state, record.to_state) == (before.state, dest)
        assert entity.state == dest
        chain = self.chains[id(entity)]
        expected_from = chain[-1].to_state if chain else "PENDING"
        assert record.from_state == expected_from, "rows must form a chain from PENDING"
        chain.append(record)
        assert record.duration_in_state_ms == self.ms_in_state[id(entity)]
        self.ms_in_state[id(entity)] = 0
        assert record.transition_time == self.clock.now() == entity.entered_at
        assert record.transition_date == record.transition_time.date()
        assert entity.entered_monotonic_ns == self.clock.monotonic_ns()
        grows = (before.state, dest) == ("RETRYING", "RUNNING")
        assert entity.retry_count == before.retry_count + (1 if grows else 0)
        assert record.retry_count == entity.retry_count
        assert record.entity_type == self.kind
        assert record.entity_name == entity.entity_name
        assert record.pipeline_logging_id == entity.pipeline_logging_id
        step_id = entity.step_logging_id if self.kind == "STEP" else None
        assert record.step_logging_id == step_id
        if dest in ERROR_STATES:
            assert record.error_type in ERROR_TYPE_NAMES
            assert isinstance(record.error_message, str)
            assert "error_class" in record.metadata
            assert "is_retryable" in record.metadata
            if kwargs.get("error_type") is not None:
                assert record.error_type == kwargs["error_type"]
            has_error = kwargs.get("error") is not None
            assert (record.stack_trace_truncated is not None) == has_error
            if event == "time_out":
                assert record.error_type == "TIMEOUT"
        else:
            assert record.error_type is None
            assert record.error_message is None
            assert record.stack_trace_truncated is None
            if "error_class" not in (kwargs.get("metadata") or {}):
                assert "error_class" not in record.metadata
        if kwargs.get("reason") is not None:
            assert record.reason == kwargs["reason"]
        else:
            assert record.reason
        for key, value in (kwargs.get("metadata") or {}).items():
            if key not in ("error_class", "is_retryable", "next_retry_delay_seconds"):
                assert record.metadata[key] == value
        assert record.to_row()["transition_id"] == record.transition_id
