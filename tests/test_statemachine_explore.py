"""The exhaustive exploration of the composed machine: shipped rules pass, every mutant fails."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from statemachine import IllegalTransition
from statemachine.explore import (
    ABSENT,
    CLOCK_BACK,
    Counterexample,
    _Model,
    dag_shapes,
    explore,
    explore_shape,
    shipped_figures,
    state_check,
)
from statemachine.joint import JOINT_RULES
from statemachine.machines import TransitionEngine
from statemachine.mutants import Mutant, mutants
from statemachine.spec import PIPELINE, STEP
from tests.strategies.joint import Replay

# Unlabelled DAGs on n nodes (OEIS A003087), counted by hand, not by our enumeration.
DAG_COUNTS = [1, 1, 2, 6, 31]
MUTANTS = mutants()


def _is_acyclic(n: int, edges: tuple[tuple[int, int], ...]) -> bool:
    indegree = [sum(1 for _, b in edges if b == i) for i in range(n)]
    ready = deque(i for i in range(n) if indegree[i] == 0)
    seen = 0
    while ready:
        node = ready.popleft()
        seen += 1
        for a, b in edges:
            if a == node:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    return seen == n


class TestShapes:
    """Every dependency shape is explored exactly once."""

    @pytest.mark.parametrize("n", range(5))
    def test_every_dag_up_to_isomorphism(self, n: int) -> None:
        """dag_shapes(n) lists acyclic shapes, no two isomorphic, as many as OEIS A003087."""
        shapes = dag_shapes(n)
        assert len(shapes) == DAG_COUNTS[n]
        assert all(_is_acyclic(n, shape) for shape in shapes)
        forms = {
            frozenset((perm[a], perm[b]) for a, b in shape)
            for shape in shapes
            for perm in itertools.permutations(range(n))
        }
        assert len(forms) == sum(
            len({frozenset((p[a], p[b]) for a, b in s) for p in itertools.permutations(range(n))})
            for s in shapes
        ), "two shapes are isomorphic"


class TestShippedRules:
    """The joint rules as shipped keep every check in every reachable state."""

    @pytest.mark.parametrize("n", range(5))
    def test_no_counterexample(self, n: int) -> None:
        """Up to 4 steps, every shape, every interleaving: no check breaks and every reachable
        state can still reach an all-terminal state."""
        result = shipped_figures()[n]
        assert result.counterexample is None, result.counterexample.render()
        assert result.shapes == DAG_COUNTS[n]
        assert result.states > 0
        assert result.edges >= result.states - result.shapes

    def test_state_space_figures(self) -> None:
        """With no dependencies and one step the composed machine has exactly the 16 states
        counted by hand (5 pipeline states x what each allows for the step)."""
        assert explore(1).states == 16
        assert explore(2).states > explore(1).states

    def test_every_reached_state_passes_the_state_checks(self) -> None:
        """The model never yields a state that a check would flag (two steps, no deps)."""
        model = _Model(2, (), JOINT_RULES, frozenset({"PIPELINE", "STEP"}))
        start = ("PENDING", ABSENT, ABSENT)
        seen, todo = {start}, deque([start])
        while todo:
            for _, nxt, broken, _ in model.successors(todo.popleft()):
                assert broken is None
                assert state_check(nxt) is None
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert len(seen) == explore_shape(2, ())[0]


def _labels(n: int) -> list[str]:
    events = [f"pipeline.{e}" for e in PIPELINE.events]
    for i in range(n):
        events += [f"s{i}.create", *(f"s{i}.{e}" for e in STEP.events)]
    return events


def _accepts(path: tuple[str, ...], label: str, n: int) -> bool:
    replay = Replay(n)
    for step in path:
        replay.fire(step)
    who, _, event = label.partition(".")
    if who != "pipeline" and (event == "create") == (who in replay.steps):
        return False  # no such object yet, or one already: the model has one object per name
    try:
        replay.fire(label)
    except IllegalTransition:
        return False
    return True


class TestModelMatchesEngine:
    """The exploration's model and the real engine agree on every event in every state."""

    def test_two_steps_no_dependencies(self) -> None:
        """In every state reachable with two independent steps, the real objects accept exactly
        the events the model offers, and end in the state the model predicts."""
        n = 2
        model = _Model(n, (), JOINT_RULES, frozenset({"PIPELINE", "STEP"}))
        start = ("PENDING", ABSENT, ABSENT)
        paths: dict[tuple[str, ...], tuple[str, ...]] = {start: ()}
        todo = deque([start])
        while todo:
            state = todo.popleft()
            offered = {
                label: nxt
                for label, nxt, _, _ in model.successors(state)
                if not label.endswith(CLOCK_BACK)
            }
            for label in _labels(n):
                assert _accepts(paths[state], label, n) == (label in offered), (state, label)
            for label, nxt in offered.items():
                if nxt not in paths:
                    paths[nxt] = (*paths[state], label)
                    todo.append(nxt)
                    replay = Replay(n)
                    for step in paths[nxt]:
                        replay.fire(step)
                    assert replay.states() == nxt
        assert len(paths) == explore_shape(n, ())[0]


def _engines(mutant: Mutant) -> tuple[TransitionEngine, TransitionEngine]:
    return (
        TransitionEngine(PIPELINE, rules=mutant.rules, stamp="PIPELINE" in mutant.stamped),
        TransitionEngine(STEP, rules=mutant.rules, stamp="STEP" in mutant.stamped),
    )


class TestMutants:
    """Removing or weakening any joint rule lets the exploration find a counterexample."""

    @pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
    def test_counterexample_found(self, mutant: Mutant) -> None:
        """The exploration of the mutant breaks the check of the rule it changed, and prints
        the shortest event sequence that does it."""
        result = explore(2, mutant.rules, mutant.stamped)
        found = result.counterexample
        assert isinstance(found, Counterexample)
        print(f"\n{mutant.name} ({mutant.description}):\n{found.render()}")
        assert found.check == mutant.breaks
        assert found.events
        assert found.render().count("\n") == len(found.events) + 1

    @pytest.mark.parametrize(
        "mutant", [m for m in MUTANTS if m.breaks != "liveness"], ids=lambda m: m.name
    )
    def test_counterexample_replays_on_real_engines(self, mutant: Mutant) -> None:
        """Real engines built with the mutant's rules accept the whole counterexample, while
        the shipped engines refuse one of its events or stamp it inside the pipeline's run."""
        found = explore(2, mutant.rules, mutant.stamped).counterexample
        assert found is not None
        mutated = Replay(2, *_engines(mutant))
        for label in found.events:
            mutated.fire(label)
        shipped = Replay(2)
        refusals = []
        for label in found.events:
            try:
                shipped.fire(label)
            except IllegalTransition as refused:
                refusals.append(refused.rule)
                break
        if refusals:
            assert refusals[0] is not None, "refused by a joint rule, not by a table"
            return
        assert mutant.breaks == "rule-5"
        times = [r.transition_time for r in shipped.sink.records]
        assert times == sorted(times)
        mutated_times = [r.transition_time for r in mutated.sink.records]
        assert mutated_times != sorted(mutated_times)

    def test_every_rule_has_a_removal_and_a_weakening(self) -> None:
        """Each of the five rules is removed once and weakened at least once."""
        for number in range(1, 6):
            kinds = {m.name.split("-")[0] for m in MUTANTS if m.breaks == f"rule-{number}"}
            assert {"remove", "weaken"} <= kinds, number
