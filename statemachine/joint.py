"""The joint rules of a pipeline and its steps, as data next to the two tables in spec.py.

Each machine is legal on its own; these rules tie a pipeline run to the steps it created. Rules
1-4 are guards: an event they forbid raises JointRuleViolation (an IllegalTransition naming the
rule) and emits nothing. Rule 5 is kept by construction: every record of one pipeline run is
stamped no earlier than the latest record already stamped in that run (a wall clock that steps
back cannot put a step outside its pipeline's RUNNING interval). The engine (machines.py), the
exhaustive exploration (explore.py), the docs and `pipestate verify` all read this module.

Lock order, which makes the guards atomic: a pipeline event holds the pipeline's lock; a step
event holds its pipeline's lock, then its own. No code takes a step's lock before its
pipeline's, so the two can never deadlock, and while a pipeline's lock is held none of its
steps can move (so "every step is terminal" stays true until the pipeline's record is out).
"""

from __future__ import annotations

import attrs

from statemachine.errors import InvalidDefinition
from statemachine.spec import COMPLETED, PENDING, PIPELINE, RUNNING, STEP

# The pseudo-state a step is in before StepRun.create: creation is the edge ABSENT -> PENDING.
ABSENT = "ABSENT"
CREATE = "create"


@attrs.frozen(slots=True)
class JointRule:
    """A guard on one entity's edges that depends on the other machine's state.

    A STEP rule applies to step edges whose source is in `sources` and dest in `dests`, and
    requires the pipeline to be in `pipeline_in`. A PIPELINE rule applies to pipeline edges
    (same selection) and requires every step the pipeline created to be in `steps_in`.
    """

    number: int
    name: str
    text: str
    moving: str
    sources: frozenset[str]
    dests: frozenset[str]
    pipeline_in: frozenset[str] = frozenset()
    steps_in: frozenset[str] = frozenset()

    def applies(self, source: str, dest: str) -> bool:
        """Whether the rule guards the edge source -> dest of the moving entity."""
        return source in self.sources and dest in self.dests

    def allows(self, pipeline_state: str, step_states: tuple[str, ...]) -> bool:
        """Whether the other side is in a state that lets the guarded edge happen."""
        if self.moving == STEP.kind:
            return pipeline_state in self.pipeline_in
        return all(s in self.steps_in for s in step_states)

    @property
    def label(self) -> str:
        """'rule N (name)', as errors and reports print it."""
        return f"rule {self.number} ({self.name})"


@attrs.frozen(slots=True)
class StampRule:
    """A rule the engine keeps by stamping records, not by refusing events."""

    number: int
    name: str
    text: str

    @property
    def label(self) -> str:
        """'rule N (name)', as errors and reports print it."""
        return f"rule {self.number} ({self.name})"


_STEP_STATES = frozenset(STEP.states)
_PIPELINE_STATES = frozenset(PIPELINE.states)
_OPEN_PIPELINE = _PIPELINE_STATES - PIPELINE.terminal

STEP_NEEDS_RUNNING_PIPELINE = JointRule(
    number=1,
    name="step-leaves-pending-only-while-pipeline-running",
    text="a step leaves PENDING only while its pipeline is RUNNING",
    moving=STEP.kind,
    sources=frozenset({PENDING}),
    dests=_STEP_STATES,
    pipeline_in=frozenset({RUNNING}),
)
COMPLETE_NEEDS_COMPLETED_STEPS = JointRule(
    number=2,
    name="pipeline-completes-only-when-every-step-completed",
    text="a pipeline enters COMPLETED only when every step it created is COMPLETED",
    moving=PIPELINE.kind,
    sources=_PIPELINE_STATES,
    dests=frozenset({COMPLETED}),
    steps_in=frozenset({COMPLETED}),
)
# The strict choice for rule 3 (no cascade): the executor already closes every step before it
# ends the run, and one event then still writes exactly one row.
END_NEEDS_TERMINAL_STEPS = JointRule(
    number=3,
    name="pipeline-fails-only-when-every-step-terminal",
    text="a pipeline enters FAILED or TIMEOUT only after every step it created is terminal "
    "(COMPLETED or FAILED); close the others first",
    moving=PIPELINE.kind,
    sources=_PIPELINE_STATES,
    dests=PIPELINE.error_states,
    steps_in=STEP.terminal,
)
NOTHING_AFTER_PIPELINE_END = JointRule(
    number=4,
    name="no-step-activity-after-pipeline-terminal",
    text="no step is created and no step moves once its pipeline is terminal",
    moving=STEP.kind,
    sources=_STEP_STATES | {ABSENT},
    dests=_STEP_STATES,
    pipeline_in=_OPEN_PIPELINE,
)
STEP_TIMES_INSIDE_PIPELINE = StampRule(
    number=5,
    name="step-times-within-pipeline-running-interval",
    text="a step's transition times lie within its pipeline's RUNNING interval (each record of "
    "a run is stamped no earlier than the run's latest record)",
)

JOINT_RULES: tuple[JointRule, ...] = (
    STEP_NEEDS_RUNNING_PIPELINE,
    COMPLETE_NEEDS_COMPLETED_STEPS,
    END_NEEDS_TERMINAL_STEPS,
    NOTHING_AFTER_PIPELINE_END,
)
STAMP_RULES: tuple[StampRule, ...] = (STEP_TIMES_INSIDE_PIPELINE,)


def validate_rules(rules: tuple[JointRule, ...]) -> None:
    """Raise InvalidDefinition when a rule names unknown states or an unknown moving kind."""
    numbers = [r.number for r in rules]
    if len(set(numbers)) != len(numbers):
        raise InvalidDefinition(f"joint rules: numbers declared twice: {sorted(numbers)}")
    for rule in rules:
        where = f"joint {rule.label}"
        if rule.moving == STEP.kind:
            own, other, needs = _STEP_STATES | {ABSENT}, _PIPELINE_STATES, rule.pipeline_in
        elif rule.moving == PIPELINE.kind:
            own, other, needs = _PIPELINE_STATES, _STEP_STATES, rule.steps_in
        else:
            raise InvalidDefinition(f"{where}: moving must be PIPELINE or STEP ({rule.moving!r})")
        unknown = (rule.sources | rule.dests) - own | (needs - other)
        if unknown:
            raise InvalidDefinition(
                f"{where}: unknown states: {', '.join(sorted(unknown))}", unknown
            )
        if not needs:
            raise InvalidDefinition(f"{where}: allows no state of the other machine")


def rules_for(
    kind: str, source: str, dest: str, rules: tuple[JointRule, ...] = JOINT_RULES
) -> tuple[JointRule, ...]:
    """The rules guarding the edge source -> dest of an entity of `kind`, in rule order."""
    return tuple(r for r in rules if r.moving == kind and r.applies(source, dest))


validate_rules(JOINT_RULES)
