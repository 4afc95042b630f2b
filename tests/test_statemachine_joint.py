"""A pipeline and several steps driven at random: the engine keeps the joint rules of issue 11."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from statemachine import IllegalTransition, InMemorySink, PipelineRun, StepRun, TransitionRecord
from statemachine.errors import JointRuleViolation
from tests.strategies.events import EVENTS, EXPECTED, TERMINAL
from tests.strategies.joint import SteppingClock

STEP_NAMES = ("extract", "load", "transform", "publish")


def expected_rule(kind: str, state: str, event: str, pipeline: str, steps: list[str]) -> int | None:
    """The joint rule (by number) that must refuse a table-legal event, restated by hand."""
    if kind == "STEP":
        if state in ("PENDING", "ABSENT") and pipeline != "RUNNING" and event != "create":
            return 1  # a step leaves PENDING only while its pipeline is RUNNING
        if pipeline in TERMINAL["PIPELINE"]:
            return 4  # nothing is created and nothing moves after the pipeline ended
        return None
    if event == "complete" and any(s != "COMPLETED" for s in steps):
        return 2  # COMPLETED only over COMPLETED steps
    if event in ("fail", "time_out") and any(s not in TERMINAL["STEP"] for s in steps):
        return 3  # FAILED / TIMEOUT only over terminal steps
    return None


class JointMachine(RuleBasedStateMachine):
    """One pipeline, steps created at any time, random events, a wall clock that may step back."""

    def __init__(self) -> None:
        super().__init__()
        self.sink = InMemorySink()
        self.clock = SteppingClock()
        self.pipeline = PipelineRun.create("p", org_slug="acme", sink=self.sink, clock=self.clock)
        self.steps: list[StepRun] = []

    def _fire(self, entity: Any, kind: str, event: str) -> None:
        state = entity.state
        steps = [s.state for s in self.steps]
        legal = (state, event) in EXPECTED[kind]
        joint = expected_rule(kind, state, event, self.pipeline.state, steps) if legal else None
        before = len(self.sink.records)
        refused: IllegalTransition | None = None
        try:
            record = getattr(entity, event)()
        except IllegalTransition as exc:
            refused = exc
        if refused is None:
            assert legal, f"{kind} {event} from {state} is not an edge"
            assert joint is None, f"{kind} {event} from {state} must break rule {joint}"
            assert self.sink.records[before:] == [record]
            return
        assert not legal or joint is not None, f"{kind} {event} from {state} was refused"
        assert entity.state == state, "a refused event changes nothing"
        assert len(self.sink.records) == before, "a refused event emits nothing"
        if joint is not None:
            assert isinstance(refused, JointRuleViolation)
            assert refused.rule_number == joint
            assert f"rule {joint} ({refused.rule})" in str(refused)

    @rule(name=st.sampled_from(STEP_NAMES))
    def create_step(self, name: str) -> None:
        before = len(self.sink.records)
        expected = expected_rule("STEP", "ABSENT", "create", self.pipeline.state, [])
        refused: JointRuleViolation | None = None
        try:
            self.steps.append(StepRun.create(f"{name}{len(self.steps)}", pipeline=self.pipeline))
        except JointRuleViolation as exc:
            refused = exc
        assert expected == (None if refused is None else refused.rule_number)
        assert len(self.sink.records) == before, "creating a step writes no row"

    @rule(event=st.sampled_from(EVENTS["PIPELINE"]))
    def fire_pipeline(self, event: str) -> None:
        self._fire(self.pipeline, "PIPELINE", event)

    @rule(data=st.data(), event=st.sampled_from(EVENTS["STEP"]))
    def fire_step(self, data: st.DataObject, event: str) -> None:
        if self.steps:
            self._fire(data.draw(st.sampled_from(self.steps), label="step"), "STEP", event)

    @rule(data=st.data())
    def finish_steps(self, data: st.DataObject) -> None:
        """Drive every open step to a terminal state (so the pipeline may end)."""
        for step in self.steps:
            if step.state == "PENDING" and self.pipeline.state == "RUNNING":
                step.start()
            if step.state in ("RUNNING", "RETRYING"):
                if data.draw(st.booleans(), label="complete") and step.state == "RUNNING":
                    step.complete()
                else:
                    step.fail(RuntimeError("closed"))

    @rule()
    def clock_steps_back(self) -> None:
        self.clock.back = True

    @invariant()
    def states_obey_the_joint_rules(self) -> None:
        pipeline, steps = self.pipeline.state, [s.state for s in self.steps]
        if pipeline == "PENDING":
            assert all(s == "PENDING" for s in steps)
        if pipeline == "COMPLETED":
            assert all(s == "COMPLETED" for s in steps)
        if pipeline in ("FAILED", "TIMEOUT"):
            assert all(s in TERMINAL["STEP"] for s in steps)

    @invariant()
    def rows_obey_the_joint_rules(self) -> None:
        records: list[TransitionRecord] = self.sink.records
        runs = [r for r in records if r.entity_type == "PIPELINE"]
        steps = [r for r in records if r.entity_type == "STEP"]
        if steps:
            assert runs, "a step row needs its pipeline's start row"
            assert all(runs[0].transition_time <= r.transition_time for r in steps)
        if runs and runs[-1].to_state in TERMINAL["PIPELINE"]:
            end = records.index(runs[-1])
            assert all(r.entity_type == "PIPELINE" for r in records[end:])
            assert all(r.transition_time <= runs[-1].transition_time for r in steps)
        chains: dict[str | None, str] = {}
        for record in records:
            assert chains.get(record.step_logging_id, "PENDING") == record.from_state
            chains[record.step_logging_id] = record.to_state


TestJointProperties = JointMachine.TestCase
TestJointProperties.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestJointProperties.__doc__ = (
    "Any sequence of step creations, pipeline and step events and clock steps back keeps the "
    "joint rules: refused events name the rule and change nothing, rows stay in the run's "
    "interval and no step row follows the pipeline's end."
)
