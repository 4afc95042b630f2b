"""Broken variants of the joint rules: each must make the exploration find a counterexample.

Every rule is removed once and weakened once; one rule is also strengthened to show that the
liveness check catches a rule set that can strand a run. Tests, docs and the benchmark run
them through statemachine.explore.
"""

from __future__ import annotations

import attrs

from statemachine.explore import BOTH_STAMPED
from statemachine.joint import (
    ABSENT,
    COMPLETE_NEEDS_COMPLETED_STEPS,
    END_NEEDS_TERMINAL_STEPS,
    JOINT_RULES,
    NOTHING_AFTER_PIPELINE_END,
    STEP_NEEDS_RUNNING_PIPELINE,
    JointRule,
)
from statemachine.spec import COMPLETED, PENDING, PIPELINE, RUNNING, STEP


@attrs.frozen
class Mutant:
    """A rule set with one rule removed, weakened or strengthened, and the check that must break."""

    name: str
    description: str
    rules: tuple[JointRule, ...]
    stamped: frozenset[str]
    breaks: str


def _replace(old: JointRule, new: JointRule | None) -> tuple[JointRule, ...]:
    return tuple(r for r in (new if r is old else r for r in JOINT_RULES) if r is not None)


def mutants() -> tuple[Mutant, ...]:
    """Every mutant, in rule order."""
    r1, r2, r3, r4 = (
        STEP_NEEDS_RUNNING_PIPELINE,
        COMPLETE_NEEDS_COMPLETED_STEPS,
        END_NEEDS_TERMINAL_STEPS,
        NOTHING_AFTER_PIPELINE_END,
    )
    full = BOTH_STAMPED
    return (
        Mutant("remove-1", "rule 1 removed", _replace(r1, None), full, "rule-1"),
        Mutant(
            "weaken-1",
            "rule 1 lets a step leave PENDING while its pipeline is PENDING",
            _replace(r1, attrs.evolve(r1, pipeline_in=frozenset({PENDING, RUNNING}))),
            full,
            "rule-1",
        ),
        Mutant("remove-2", "rule 2 removed", _replace(r2, None), full, "rule-2"),
        Mutant(
            "weaken-2",
            "rule 2 lets a pipeline complete over FAILED steps",
            _replace(r2, attrs.evolve(r2, steps_in=STEP.terminal)),
            full,
            "rule-2",
        ),
        Mutant("remove-3", "rule 3 removed", _replace(r3, None), full, "rule-3"),
        Mutant(
            "weaken-3",
            "rule 3 leaves PENDING steps open when a pipeline fails",
            _replace(r3, attrs.evolve(r3, steps_in=STEP.terminal | {PENDING})),
            full,
            "rule-3",
        ),
        Mutant(
            "strengthen-3",
            "rule 3 wants every step COMPLETED before a pipeline may fail",
            _replace(r3, attrs.evolve(r3, steps_in=frozenset({COMPLETED}))),
            full,
            "liveness",
        ),
        Mutant("remove-4", "rule 4 removed", _replace(r4, None), full, "rule-4"),
        Mutant(
            "weaken-4",
            "rule 4 guards step moves but not step creation",
            _replace(r4, attrs.evolve(r4, sources=r4.sources - {ABSENT})),
            full,
            "rule-4",
        ),
        Mutant("remove-5", "rule 5 removed (no stamping)", JOINT_RULES, frozenset(), "rule-5"),
        Mutant(
            "weaken-5",
            "rule 5 stamps pipeline rows only",
            JOINT_RULES,
            frozenset({PIPELINE.kind}),
            "rule-5",
        ),
        Mutant(
            "weaken-5b",
            "rule 5 stamps step rows only",
            JOINT_RULES,
            frozenset({STEP.kind}),
            "rule-5",
        ),
    )
