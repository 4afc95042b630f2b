"""The joint-rules section of docs/state-machines.md, generated from joint.py and explore.py."""

from __future__ import annotations

from statemachine.explore import explore, shipped_figures
from statemachine.joint import JOINT_RULES, STAMP_RULES
from statemachine.mutants import mutants

_INTRO = """\
## The composed machine: a pipeline and its steps

Each machine above is legal on its own; these joint rules (statemachine/joint.py) tie a pipeline
run to the steps created for it. The engine refuses an event that would break rules 1-4 with
`JointRuleViolation` (an `IllegalTransition` whose `rule` names the rule) and emits nothing; rule
5 it keeps by stamping: no record of a run is stamped before the run's latest record, so a wall
clock that steps back cannot put a step outside its pipeline's RUNNING interval.

Rule 3 is strict, not a cascade: the caller closes every open step first (the executor does: on a
deadline, a cancellation or fail_fast it fails each open step, then ends the run), so one event
still writes exactly one row.

Locks: a pipeline event holds the pipeline's lock; a step event holds its pipeline's lock, then
its own. Nothing takes a step's lock before its pipeline's, so the two never deadlock, and while a
pipeline's lock is held none of its steps can move.

| Rule | Name | Enforced by | Statement |
|------|------|-------------|-----------|
"""

_EXPLORE = """
### Exhaustive exploration

`python -m statemachine.explore` walks, breadth first, every state of one pipeline with up to 4
steps, over every dependency shape (every DAG up to isomorphism; a step starts only once its
upstream steps are COMPLETED, as the executor schedules) and every interleaving of the
pipeline's events, each step's creation and events, and every row-writing event once more with
the wall clock stepped back. In every reachable state it checks the intent of rules 1-3, on every
edge that of rules 4-5, and that an all-terminal state is still reachable (liveness).

| Steps | Dependency shapes | States | Edges | Counterexample |
|-------|-------------------|--------|-------|----------------|
"""

_MUTANTS = """
Each rule removed, weakened (and rule 3 once strengthened) breaks the exploration; the shortest
counterexample found with 2 steps:

| Mutant | Breaks | Shortest event sequence |
|--------|--------|-------------------------|
"""

_VERIFY = """
### Hand-logged rows and `pipestate verify`

`MetadataLogger.log_state_transition(...)` checks each hand-logged row against the same tables:
an unknown entity type, an unknown state or an edge missing from the table raises
`IllegalTransition` (`rule` = `known-entity-type`, `known-state` or `legal-edge`) and nothing is
written. One row cannot show whether it continues its entity's chain, nor the joint rules:
`pipestate verify` checks what is stored.

`pipestate verify [--store URL] [--org ORG] [--run ID] [--since DATE] [--until DATE] [--json]`
reads SQLite or BigQuery (only reads) and checks every stored chain, without loading the table
into memory (BigQuery runs the checks as one SQL statement; SQLite streams the rows in run order
through the same checks, one run in memory at a time): legal
edges, chains continuous from PENDING, no duplicates, durations consistent with timestamps,
retry counts consistent with the retries, step rows within their pipeline's RUNNING interval,
and, for finished runs, every step ended terminal (COMPLETED under a COMPLETED run). It prints a
summary and each violation with its run, step and row ids; exit 0 clean, 1 violations, 2 usage
or store error. What it cannot prove: that a row was written at all. A lost last row looks like
a step still running (it is caught only when its run's end row is there), a run whose rows never
reached the store is invisible, and rows outside the chosen org, run or dates are not read.
"""


def render_joint() -> str:
    """The generated section (deterministic: counts and event sequences, no timings)."""
    lines = [_INTRO.rstrip("\n")]
    for rule in JOINT_RULES:
        lines.append(f"| {rule.number} | `{rule.name}` | refusal | {rule.text} |")
    for stamp in STAMP_RULES:
        lines.append(f"| {stamp.number} | `{stamp.name}` | stamping | {stamp.text} |")
    lines.append(_EXPLORE.rstrip("\n"))
    for result in shipped_figures():
        broken = "none" if result.counterexample is None else result.counterexample.check
        lines.append(
            f"| {result.n_steps} | {result.shapes} | {result.states:,} | {result.edges:,} "
            f"| {broken} |"
        )
    lines.append(_MUTANTS.rstrip("\n"))
    for mutant in mutants():
        found = explore(2, mutant.rules, mutant.stamped).counterexample
        events = "; ".join(found.events) if found else "NOT FOUND"
        check = found.check if found else "-"
        lines.append(f"| {mutant.description} | {check} | {events} |")
    lines.append(_VERIFY.rstrip("\n"))
    return "\n".join(lines) + "\n"
