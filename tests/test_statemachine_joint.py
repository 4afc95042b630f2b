"""A pipeline and several steps driven at random: the engine keeps the joint rules of issue 11."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from statemachine import IllegalTransition, InMemorySink, PipelineRun, StepRun, TransitionRecord
from statemachine.errors import InvalidDefinition, JointRuleViolation
from statemachine.joint import (
    COMPLETE_NEEDS_COMPLETED_STEPS,
    JOINT_RULES,
    STEP_NEEDS_RUNNING_PIPELINE,
    validate_rules,
)
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


class TestRefusals:
    """What a refused event looks like to the caller."""

    def test_late_step_from_the_issue(self) -> None:
        """The issue's example: a step created on a COMPLETED pipeline is refused by rule 4,
        and a step created earlier cannot start after the pipeline completed."""
        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        early = StepRun.create("early", pipeline=run)
        run.start()
        early.start()
        early.complete()
        run.complete()
        with pytest.raises(JointRuleViolation, match=r"rule 4 \(no-step-activity") as info:
            StepRun.create("late", pipeline=run)
        assert (info.value.event, info.value.state, info.value.rule_number) == (
            "create",
            "ABSENT",
            4,
        )
        assert "its pipeline is COMPLETED" in str(info.value)
        assert run.steps == (early,)
        assert len(sink.records) == 4

    def test_pipeline_end_names_the_open_steps(self) -> None:
        """complete and fail name the rule and list the steps standing in the way."""
        run = PipelineRun.create("p", org_slug="acme", sink=InMemorySink())
        run.start()
        steps = [StepRun.create(f"s{i}", pipeline=run) for i in range(7)]
        steps[0].start()
        with pytest.raises(JointRuleViolation) as info:
            run.fail(RuntimeError("x"))
        assert info.value.rule == "pipeline-fails-only-when-every-step-terminal"
        assert "s0=RUNNING, s1=PENDING" in info.value.blocking
        assert info.value.blocking.endswith("and 2 more")
        assert run.state == "RUNNING"

    def test_round_trips_through_pickle(self) -> None:
        """A JointRuleViolation pickles with its message and attributes (for process pools)."""
        run = PipelineRun.create("p", org_slug="acme", sink=InMemorySink())
        step = StepRun.create("s", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            step.start()
        copy = pickle.loads(pickle.dumps(info.value))
        assert str(copy) == str(info.value)
        assert (copy.rule, copy.rule_number, copy.blocking, copy.entity_id) == (
            info.value.rule,
            1,
            "its pipeline is PENDING",
            step.step_logging_id,
        )
        assert copy.args == (str(copy),)


class TestRuleTable:
    """The rule table is checked when it is built."""

    def test_rules_name_only_known_states(self) -> None:
        """A rule naming an unknown state fails validation, naming the state."""
        broken = attrs.evolve(STEP_NEEDS_RUNNING_PIPELINE, pipeline_in=frozenset({"WAITING"}))
        with pytest.raises(InvalidDefinition, match="WAITING") as info:
            validate_rules((broken,))
        assert info.value.states == ("WAITING",)

    def test_rules_must_allow_something(self) -> None:
        """A rule that no state of the other machine satisfies fails validation."""
        broken = attrs.evolve(STEP_NEEDS_RUNNING_PIPELINE, pipeline_in=frozenset())
        with pytest.raises(InvalidDefinition, match="allows no state"):
            validate_rules((broken,))

    def test_numbers_are_unique(self) -> None:
        """Two rules with one number fail validation."""
        with pytest.raises(InvalidDefinition, match="numbers declared twice"):
            validate_rules((STEP_NEEDS_RUNNING_PIPELINE, STEP_NEEDS_RUNNING_PIPELINE))


class TestValidateRulesDetails:
    """validate_rules accepts the shipped rules and names the rule and states it refuses."""

    def test_shipped_rules_pass(self) -> None:
        """The four shipped rules validate, pipeline rules included."""
        validate_rules(JOINT_RULES)
        validate_rules((COMPLETE_NEEDS_COMPLETED_STEPS,))

    def test_unknown_moving_kind(self) -> None:
        """A rule moving neither kind is refused with its label and the kind given."""
        broken = attrs.evolve(COMPLETE_NEEDS_COMPLETED_STEPS, moving="JOB")
        with pytest.raises(InvalidDefinition) as info:
            validate_rules((broken,))
        assert str(info.value) == f"joint {broken.label}: moving must be PIPELINE or STEP ('JOB')"

    def test_unknown_source_and_dest_named(self) -> None:
        """Unknown states in sources and in dests are both named, sorted, after the label."""
        broken = attrs.evolve(
            COMPLETE_NEEDS_COMPLETED_STEPS,
            sources=frozenset({"RUNNING", "LIMBO"}),
            dests=frozenset({"COMPLETED", "NOWHERE"}),
        )
        with pytest.raises(InvalidDefinition) as info:
            validate_rules((broken,))
        assert str(info.value) == f"joint {broken.label}: unknown states: LIMBO, NOWHERE"
        assert info.value.states == ("LIMBO", "NOWHERE")

    def test_pipeline_rule_needs_step_states(self) -> None:
        """A pipeline rule's steps_in must be step states (TIMEOUT is not one)."""
        broken = attrs.evolve(COMPLETE_NEEDS_COMPLETED_STEPS, steps_in=frozenset({"TIMEOUT"}))
        with pytest.raises(InvalidDefinition, match="unknown states: TIMEOUT"):
            validate_rules((broken,))
