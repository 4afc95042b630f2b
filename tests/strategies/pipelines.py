"""Strategies for random DAG pipelines with scripted step outcomes, and row-checking helpers."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from hypothesis import strategies as st

from executor.config import PipelineConfig, RetryDefaults, StepConfig

# The legal edges, restated from the issue (not imported from statemachine, to check it).
LEGAL = {
    "PIPELINE": {
        ("PENDING", "RUNNING"),
        ("RUNNING", "COMPLETED"),
        ("RUNNING", "FAILED"),
        ("RUNNING", "TIMEOUT"),
    },
    "STEP": {
        ("PENDING", "RUNNING"),
        ("RUNNING", "COMPLETED"),
        ("RUNNING", "FAILED"),
        ("RUNNING", "RETRYING"),
        ("RETRYING", "RUNNING"),
        ("PENDING", "FAILED"),
        ("RETRYING", "FAILED"),
    },
}
TERMINAL = {"PIPELINE": {"COMPLETED", "FAILED", "TIMEOUT"}, "STEP": {"COMPLETED", "FAILED"}}

# Outcome kinds: ok, slow, transient (k failures), permanent, step_timeout, hang.
OUTCOMES = ("ok", "slow", "transient", "permanent", "step_timeout", "hang")
STEP_TIMEOUT_MINUTES = 0.0002  # 12 ms
HANG_DEADLINE_MINUTES = 0.004  # 240 ms


@attrs.frozen
class Outcome:
    """What a generated step will do: its kind and, for transient, how many failures."""

    kind: str
    failures: int = 0


@attrs.frozen
class Scenario:
    """A generated pipeline plus the scripted outcome of each step."""

    config: PipelineConfig
    outcomes: Mapping[str, Outcome]

    def max_retries(self, step_id: str) -> int:
        """Effective max_retries of a step."""
        step = self.config.step(step_id)
        return self.config.retry.max_retries if step.max_retries is None else step.max_retries


def _step(
    step_id: str, deps: tuple[str, ...], outcome: Outcome, max_retries: int | None
) -> StepConfig:
    kind = outcome.kind
    base: dict[str, Any] = {"step_id": step_id, "depends_on": deps, "max_retries": max_retries}
    if kind == "ok":
        return StepConfig(processor="generic.noop", config={"rows_processed": 1}, **base)
    if kind == "slow":
        return StepConfig(
            processor="generic.slow_processor", config={"sleep_seconds": 0.003}, **base
        )
    if kind == "transient":
        return StepConfig(processor="generic.flaky", config={"failures": outcome.failures}, **base)
    if kind == "permanent":
        config = {"exception": "PermissionError", "message": "403 Forbidden"}
        return StepConfig(processor="generic.fail", config=config, **base)
    if kind == "step_timeout":
        return StepConfig(
            processor="generic.slow_processor",
            config={"sleep_seconds": 30},
            timeout_minutes=STEP_TIMEOUT_MINUTES,
            **base,
        )
    return StepConfig(processor="generic.slow_processor", config={"sleep_seconds": 30}, **base)


_outcome = st.one_of(
    st.sampled_from([Outcome("ok"), Outcome("slow"), Outcome("permanent")]),
    st.integers(1, 3).map(lambda k: Outcome("transient", k)),
    st.just(Outcome("step_timeout")),
    st.just(Outcome("hang")),
)


@st.composite
def scenarios(draw: st.DrawFn, max_steps: int = 12) -> Scenario:
    """A random DAG of 1..max_steps steps (edges only to earlier steps) with random outcomes."""
    n = draw(st.integers(1, max_steps))
    ids = [f"s{i}" for i in range(n)]
    outcomes: dict[str, Outcome] = {}
    steps = []
    for i, sid in enumerate(ids):
        deps = tuple(sorted(draw(st.sets(st.sampled_from(ids[:i]), max_size=3))) if i else ())
        outcome = draw(_outcome)
        outcomes[sid] = outcome
        override = draw(st.one_of(st.none(), st.integers(0, 3)))
        steps.append(_step(sid, deps, outcome, override))
    hang = any(o.kind == "hang" for o in outcomes.values())
    config = PipelineConfig(
        pipeline_id="prop",
        steps=tuple(steps),
        timeout_minutes=HANG_DEADLINE_MINUTES if hang else 1.0,
        retry=RetryDefaults(
            max_retries=draw(st.integers(0, 3)),
            base_delay_seconds=0.001,
            multiplier=2.0,
            max_delay_seconds=0.004,
        ),
        concurrency=draw(st.integers(1, 6)),
        fail_fast=draw(st.booleans()),
    )
    return Scenario(config=config, outcomes=outcomes)


# -- reading and ordering stored rows ----------------------------------------------------


def read_rows(db_path: str | Path, pipeline_logging_id: str) -> list[dict[str, Any]]:
    """Every stored transition of one pipeline run, straight from the SQLite table."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        cur = conn.execute(
            "SELECT * FROM org_meta_state_transitions WHERE pipeline_logging_id = ? "
            "ORDER BY transition_time",
            (pipeline_logging_id,),
        )
        return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def chain(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Order one entity's rows as a chain from PENDING (time first, links break ties)."""
    remaining = sorted(rows, key=lambda r: str(r["transition_time"]))
    out: list[Mapping[str, Any]] = []
    state = "PENDING"
    while remaining:
        nxt = next((r for r in remaining if r["from_state"] == state), None)
        if nxt is None:
            raise AssertionError(f"rows do not chain from {state}: {remaining}")
        remaining.remove(nxt)
        out.append(nxt)
        state = nxt["to_state"]
    return out


def by_entity(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Group rows by (entity_type, entity_name) key 'TYPE:name', each as an ordered chain."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(f"{row['entity_type']}:{row['entity_name']}", []).append(row)
    return {key: chain(group) for key, group in groups.items()}


def sequence(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str | None, int]]:
    """(from_state, to_state, error_type, retry_count) of an ordered chain."""
    return [(r["from_state"], r["to_state"], r["error_type"], r["retry_count"]) for r in rows]
