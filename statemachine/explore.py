"""Exhaustive, breadth-first exploration of one pipeline and its steps under the joint rules.

The composed state is the pipeline's state plus each step's (ABSENT before StepRun.create).
From every reachable state every event is tried: the pipeline's events, each step's creation
and events, and every event that writes a row once more with the wall clock stepped back
(rule 5). The joint rules of statemachine/joint.py decide what may fire; the environment adds
one constraint, the dependency shape: a step starts only once its upstream steps are COMPLETED,
as the executor schedules them. Every dependency shape on n steps (every DAG, up to
isomorphism) is explored, for n = 0 .. 4.

Checked in every reachable state or on every edge, each the intent of one rule:
 1. while the pipeline is PENDING, no step has left PENDING;
 2. a COMPLETED pipeline has only COMPLETED steps;
 3. a FAILED or TIMEOUT pipeline has only terminal steps;
 4. no step is created or moves while its pipeline is terminal;
 5. no step row is stamped before its pipeline's start row, no pipeline end row before a step row;
and liveness: from every reachable state some sequence of events reaches an all-terminal state.
A broken check yields the shortest event sequence that breaks it (breadth-first order).

Run `python -m statemachine.explore [max_steps]` for the figures.
"""

from __future__ import annotations

import functools
import itertools
import sys
import time
from collections import deque
from collections.abc import Iterator

import attrs

from statemachine.joint import ABSENT, CREATE, JOINT_RULES, JointRule, rules_for
from statemachine.spec import COMPLETED, PENDING, PIPELINE, RUNNING, STEP

Shape = tuple[tuple[int, int], ...]  # dependency edges (upstream, downstream)
State = tuple[str, ...]  # (pipeline state, step 0 state, step 1 state, ...)
BOTH_STAMPED = frozenset({PIPELINE.kind, STEP.kind})
CLOCK_BACK = " [clock stepped back]"
_NO_ROW = frozenset({ABSENT, PENDING})  # step states that have written no row yet


@attrs.frozen
class Counterexample:
    """The shortest event sequence that breaks a check, with the shape it was found in."""

    check: str
    detail: str
    n_steps: int
    shape: Shape
    events: tuple[str, ...]

    def render(self) -> str:
        """A readable multi-line account of the counterexample."""
        deps = ", ".join(f"s{a} -> s{b}" for a, b in self.shape) or "none"
        lines = [
            f"{self.check}: {self.detail}",
            f"  {self.n_steps} step(s), dependencies: {deps}",
            *(f"  {i}. {event}" for i, event in enumerate(self.events, 1)),
        ]
        return "\n".join(lines)


@attrs.frozen
class Exploration:
    """What one exploration covered, and the first (shortest) broken check if any."""

    n_steps: int
    shapes: int
    states: int
    edges: int
    seconds: float
    counterexample: Counterexample | None


def dag_shapes(n: int) -> list[Shape]:
    """Every DAG on n nodes up to isomorphism, each in its smallest relabelled edge list."""
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    perms = list(itertools.permutations(range(n)))
    seen: dict[Shape, None] = {}
    for mask in range(1 << len(pairs)):
        edges = [p for i, p in enumerate(pairs) if mask >> i & 1]
        canonical = min(tuple(sorted((perm[a], perm[b]) for a, b in edges)) for perm in perms)
        seen.setdefault(canonical, None)
    return list(seen)


class _Model:
    """The successor function of the composed system for one rule set and one shape."""

    def __init__(
        self, n: int, shape: Shape, rules: tuple[JointRule, ...], stamped: frozenset[str]
    ) -> None:
        self.n = n
        self.deps = [tuple(a for a, b in shape if b == i) for i in range(n)]
        self.stamped = stamped
        self.pipeline_moves = [
            (e.event, e.source, e.dest, rules_for(PIPELINE.kind, e.source, e.dest, rules))
            for e in PIPELINE.edges
        ]
        self.step_moves = [
            (e.event, e.source, e.dest, rules_for(STEP.kind, e.source, e.dest, rules))
            for e in STEP.edges
        ]
        self.create_rules = rules_for(STEP.kind, ABSENT, PENDING, rules)

    def successors(self, state: State) -> Iterator[tuple[str, State, str | None, str]]:
        """(event label, next state, broken edge check or None, its detail) per firing."""
        p, steps = state[0], state[1:]
        created = tuple(s for s in steps if s != ABSENT)
        for event, source, dest, rules in self.pipeline_moves:
            if source != p or not all(r.allows(p, created) for r in rules):
                continue
            nxt = (dest, *steps)
            yield f"pipeline.{event}", nxt, None, ""
            broken = None
            if PIPELINE.kind not in self.stamped and any(s not in _NO_ROW for s in steps):
                broken = "pipeline end row stamped before a step row"
            yield f"pipeline.{event}{CLOCK_BACK}", nxt, broken and "rule-5", broken or ""
        for i, s in enumerate(steps):
            if s == ABSENT:
                if all(r.allows(p, created) for r in self.create_rules):
                    yield (f"s{i}.{CREATE}", self._set(state, i, PENDING), *self._late(p, i))
                continue
            for event, source, dest, rules in self.step_moves:
                if source != s or not all(r.allows(p, created) for r in rules):
                    continue
                if dest == RUNNING and any(steps[d] != COMPLETED for d in self.deps[i]):
                    continue  # the scheduler starts a step only after its upstreams
                nxt = self._set(state, i, dest)
                label = f"s{i}.{event}"
                yield (label, nxt, *self._late(p, i))
                late = self._late(p, i)
                if late[0] is None and STEP.kind not in self.stamped and p != PENDING:
                    late = ("rule-5", f"s{i} row stamped before its pipeline's start row")
                yield (label + CLOCK_BACK, nxt, *late)

    @staticmethod
    def _late(p: str, i: int) -> tuple[str | None, str]:
        if p in PIPELINE.terminal:
            return "rule-4", f"s{i} created or moved while the pipeline is {p}"
        return None, ""

    @staticmethod
    def _set(state: State, i: int, value: str) -> State:
        return (*state[: i + 1], value, *state[i + 2 :])


def state_check(state: State) -> tuple[str, str] | None:
    """The first state invariant `state` breaks, as (check, detail), or None."""
    p, steps = state[0], [s for s in state[1:] if s != ABSENT]
    if p == PENDING and any(s != PENDING for s in steps):
        return "rule-1", f"pipeline PENDING with steps {'/'.join(steps)}"
    if p == COMPLETED and any(s != COMPLETED for s in steps):
        return "rule-2", f"pipeline COMPLETED with steps {'/'.join(steps)}"
    if p in PIPELINE.error_states and any(s not in STEP.terminal for s in steps):
        return "rule-3", f"pipeline {p} with steps {'/'.join(steps)}"
    return None


def _all_terminal(state: State) -> bool:
    return state[0] in PIPELINE.terminal and all(
        s == ABSENT or s in STEP.terminal for s in state[1:]
    )


def _path(parents: dict[State, tuple[State, str] | None], state: State) -> tuple[str, ...]:
    events: list[str] = []
    link = parents[state]
    while link is not None:
        state, event = link
        events.append(event)
        link = parents[state]
    return tuple(reversed(events))


def explore_shape(
    n: int,
    shape: Shape,
    rules: tuple[JointRule, ...] = JOINT_RULES,
    stamped: frozenset[str] = BOTH_STAMPED,
) -> tuple[int, int, Counterexample | None]:
    """Explore one shape: (states, edges, shortest counterexample or None)."""
    model = _Model(n, shape, rules, stamped)
    start: State = (PENDING, *([ABSENT] * n))
    parents: dict[State, tuple[State, str] | None] = {start: None}
    preds: dict[State, set[State]] = {start: set()}
    todo = deque([start])
    edges = 0
    while todo:
        state = todo.popleft()
        broken = state_check(state)
        if broken:
            return len(parents), edges, Counterexample(*broken, n, shape, _path(parents, state))
        for label, nxt, check, detail in model.successors(state):
            edges += 1
            if check is not None:
                events = (*_path(parents, state), label)
                return len(parents), edges, Counterexample(check, detail, n, shape, events)
            if nxt not in parents:
                parents[nxt] = (state, label)
                preds[nxt] = set()
                todo.append(nxt)
            preds[nxt].add(state)
    # Liveness: walk back from the all-terminal states; whatever is not reached is stuck.
    alive = {s for s in parents if _all_terminal(s)}
    back = deque(alive)
    while back:
        for prev in preds[back.popleft()]:
            if prev not in alive:
                alive.add(prev)
                back.append(prev)
    stuck = [s for s in parents if s not in alive]  # parents is in breadth-first order
    if stuck:
        detail = f"state {'/'.join(stuck[0])} can never reach an all-terminal state"
        return (
            len(parents),
            edges,
            Counterexample("liveness", detail, n, shape, _path(parents, stuck[0])),
        )
    return len(parents), edges, None


def explore(
    n: int,
    rules: tuple[JointRule, ...] = JOINT_RULES,
    stamped: frozenset[str] = BOTH_STAMPED,
) -> Exploration:
    """Explore every dependency shape on n steps; keep the shortest counterexample found."""
    started = time.perf_counter()
    shapes = dag_shapes(n)
    states = edges = 0
    found: Counterexample | None = None
    for shape in shapes:
        s, e, counter = explore_shape(n, shape, rules, stamped)
        states, edges = states + s, edges + e
        if counter is not None and (found is None or len(counter.events) < len(found.events)):
            found = counter
    return Exploration(n, len(shapes), states, edges, time.perf_counter() - started, found)


@functools.cache
def shipped_figures(max_steps: int = 4) -> tuple[Exploration, ...]:
    """The exploration of the shipped rules for 0 .. max_steps steps (computed once)."""
    return tuple(explore(n) for n in range(max_steps + 1))


def main(argv: list[str] | None = None) -> int:
    """Print the figures for 0 .. max_steps steps; exit 1 if any check breaks."""
    args = sys.argv[1:] if argv is None else argv
    max_steps = int(args[0]) if args else 4
    status = 0
    for result in shipped_figures(max_steps):
        print(
            f"{result.n_steps} step(s): {result.shapes} shapes, {result.states} states, "
            f"{result.edges} edges, {result.seconds:.2f} s"
        )
        if result.counterexample is not None:
            print(result.counterexample.render())
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
