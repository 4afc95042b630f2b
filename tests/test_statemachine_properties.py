"""Property tests: random legal and illegal events keep every invariant of issue 3."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from statemachine import IllegalTransition, InMemorySink, ManualClock, PipelineRun, StepRun
from tests.strategies.events import (
    ERROR_TYPE_NAMES,
    EVENTS,
    EXPECTED,
    STATES,
    TERMINAL,
    Oracle,
    event_kwargs,
    running_pipeline,
    sequential_ids,
)

_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class _EntityMachine(RuleBasedStateMachine):
    """Shared rules: create entities, move the fake clock, fire random events with random args."""

    kind = "PIPELINE"
    entities = Bundle("entities")

    def __init__(self) -> None:
        super().__init__()
        self.sink = InMemorySink()
        self.clock = ManualClock()
        self.oracle = Oracle(self.kind, self.sink, self.clock)
        self.all: list[Any] = []
        # RUNNING (joint rule 1), its own start row kept out of the sink the oracle counts.
        self.pipeline = running_pipeline(
            "nightly_billing",
            org_slug="acme",
            sink=self.sink,
            clock=self.clock,
            id_source=sequential_ids(),
        )

    def new_entity(self, name: str) -> Any:
        """Create one entity of this machine's kind."""
        raise NotImplementedError

    @initialize(target=entities, name=st.sampled_from(["extract_data", "load", "transform"]))
    def first(self, name: str) -> Any:
        return self._create(name)

    @rule(target=entities, name=st.sampled_from(["extract_data", "load", "transform"]))
    def create(self, name: str) -> Any:
        return self._create(name)

    def _create(self, name: str) -> Any:
        entity = self.new_entity(name)
        self.oracle.track(entity)
        self.all.append(entity)
        return entity

    @rule(ms=st.integers(min_value=0, max_value=3_600_000))
    def advance(self, ms: int) -> None:
        self.oracle.advance(ms)

    @rule(entity=entities, data=st.data())
    def fire(self, entity: Any, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(EVENTS[self.kind]), label="event")
        kwargs = data.draw(event_kwargs(event), label="kwargs")
        self.oracle.fire(entity, event, kwargs)

    @rule(entity=entities, data=st.data())
    def fire_legal(self, entity: Any, data: st.DataObject) -> None:
        legal = [e for (s, e) in EXPECTED[self.kind] if s == entity.state]
        if not legal:
            return
        event = data.draw(st.sampled_from(legal), label="legal event")
        kwargs = data.draw(event_kwargs(event), label="kwargs")
        record = self.oracle.fire(entity, event, kwargs)
        if kwargs.get("error_type") in (None, *ERROR_TYPE_NAMES):
            assert record is not None

    @invariant()
    def terminal_entities_reject_everything(self) -> None:
        for entity in self.all:
            if entity.state in TERMINAL[self.kind]:
                assert entity.is_terminal
                assert entity.legal_events() == ()
            else:
                assert not entity.is_terminal
            assert entity.state in STATES[self.kind]

    @invariant()
    def records_count_matches_chains(self) -> None:
        assert len(self.sink.records) == sum(len(c) for c in self.oracle.chains.values())


class PipelineMachine(_EntityMachine):
    """Random events on pipeline runs."""

    kind = "PIPELINE"

    def new_entity(self, name: str) -> Any:
        """A new pipeline run on the shared sink and clock."""
        return PipelineRun.create(
            name, org_slug="acme", sink=self.sink, clock=self.clock, id_source=sequential_ids()
        )


class StepMachine(_EntityMachine):
    """Random events on step runs of one pipeline."""

    kind = "STEP"

    def new_entity(self, name: str) -> Any:
        """A new step of the shared pipeline."""
        return StepRun.create(name, pipeline=self.pipeline)


TestPipelineProperties = PipelineMachine.TestCase
TestPipelineProperties.settings = _SETTINGS
TestPipelineProperties.__doc__ = (
    "Any sequence of pipeline events keeps every invariant: illegal events change and emit "
    "nothing, legal ones emit one chained, correctly timed record."
)
TestStepProperties = StepMachine.TestCase
TestStepProperties.settings = _SETTINGS
TestStepProperties.__doc__ = (
    "Any sequence of step events keeps every invariant, including retry_count growing only on "
    "RETRYING -> RUNNING."
)


def _drive_to(kind: str, state: str, sink: InMemorySink, clock: ManualClock) -> Any:
    entity: Any
    if kind == "PIPELINE":
        entity = PipelineRun.create("p", org_slug="acme", sink=sink, clock=clock)
    else:
        parent = running_pipeline("p", org_slug="acme", sink=sink, clock=clock)
        entity = StepRun.create("s", pipeline=parent)
    paths = {
        "PENDING": [],
        "RUNNING": ["start"],
        "COMPLETED": ["start", "complete"],
        "FAILED": ["start", "fail"],
        "TIMEOUT": ["start", "time_out"],
        "RETRYING": ["start", "retry"],
    }
    for event in paths[state]:
        getattr(entity, event)()
    assert entity.state == state
    return entity


_MATRIX = [
    (kind, state, event)
    for kind in ("PIPELINE", "STEP")
    for state in STATES[kind]
    for event in ("start", "complete", "fail", "time_out", "retry")
]


class TestTransitionMatrix:
    """The full state x event matrix of both machines."""

    @pytest.mark.parametrize(("kind", "state", "event"), _MATRIX)
    def test_legal_iff_in_specification(self, kind: str, state: str, event: str) -> None:
        """An event succeeds exactly when (state, event) is in the issue's table, to its dest."""
        sink = InMemorySink()
        entity = _drive_to(kind, state, sink, ManualClock())
        before = len(sink.records)
        dest = EXPECTED[kind].get((state, event))
        method = getattr(entity, event, None)
        if method is None:
            assert event not in EVENTS[kind], f"{kind} lacks a method for {event}"
            return
        if dest is None:
            with pytest.raises(IllegalTransition):
                method()
            assert entity.state == state
            assert len(sink.records) == before
        else:
            record = method()
            assert (record.from_state, record.to_state, entity.state) == (state, dest, dest)
            assert sink.records[before:] == [record]
