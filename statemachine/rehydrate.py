"""Rebuild PipelineRun / StepRun objects from a run's stored transition chain.

A watcher that recovers a crashed run drives the *same* state machines as the executor did, so
its rows obey the same table: the objects are rebuilt in the state their stored chain ends in,
after checking that the chain is a legal path from the initial state (no gaps, no illegal edge).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from statemachine._table import MachineTable
from statemachine.clock import SYSTEM_CLOCK, Clock
from statemachine.entities import PipelineRun, StepRun
from statemachine.machines import STEP_ENGINE
from statemachine.sink import TransitionSink
from statemachine.spec import PIPELINE, STEP

# Namespace of deterministic transition ids (UUIDv5): the same entity and purpose always
# give the same id, so stores that de-duplicate on transition_id keep one row per entity.
TRANSITION_NAMESPACE = uuid.UUID("6f1c1f4e-7a52-5d0e-9b7e-8f5f0c2a4d11")


def deterministic_id(entity_id: str, purpose: str) -> str:
    """UUIDv5 of `entity_id` and `purpose` (e.g. "recovered") in pipestate's namespace."""
    return str(uuid.uuid5(TRANSITION_NAMESPACE, f"{entity_id}:{purpose}"))


class BrokenChain(ValueError):
    """A stored chain is not a legal path from the initial state (rows missing or illegal)."""


@attrs.frozen
class RebuiltRun:
    """A pipeline run and its steps, each in the state its stored chain ends in."""

    pipeline: PipelineRun
    steps: tuple[StepRun, ...]


def _time(value: Any) -> dt.datetime:
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC)


def _walk(table: MachineTable, label: str, rows: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Check `rows` (time order) form a legal path from the initial state; return the last."""
    legal = {(e.source, e.dest) for e in table.edges}
    state = table.initial
    remaining = list(rows)
    last: Mapping[str, Any] | None = None
    while remaining:
        # Rows with equal timestamps may be stored in any order: take the one that continues.
        index = next((i for i, r in enumerate(remaining) if r["from_state"] == state), None)
        if index is None:
            found = [f"{r['from_state']}->{r['to_state']}" for r in remaining]
            raise BrokenChain(f"{label}: no stored transition leaves {state} (left: {found}).")
        row = remaining.pop(index)
        if (row["from_state"], row["to_state"]) not in legal:
            raise BrokenChain(
                f"{label}: {row['from_state']}->{row['to_state']} is not a legal edge."
            )
        state = row["to_state"]
        last = row
    if last is None:
        raise BrokenChain(f"{label}: no stored transitions.")
    return last


def _fields(row: Mapping[str, Any], clock: Clock, now: dt.datetime) -> dict[str, Any]:
    entered_at = _time(row["transition_time"])
    # Time already spent in the state: the recovery row's duration_in_state_ms covers it.
    waited_ns = max(0, int((now - entered_at).total_seconds() * 1e9))
    return {
        "org_slug": row["org_slug"],
        "pipeline_logging_id": row["pipeline_logging_id"],
        "clock": clock,
        "entered_monotonic_ns": clock.monotonic_ns() - waited_ns,
        "entered_at": entered_at,
        "trigger_type": row.get("trigger_type") or "api",
        "user_id": row.get("user_id"),
        "state": row["to_state"],
        "retry_count": int(row.get("retry_count") or 0),
    }


def rebuild_run(
    rows: Iterable[Mapping[str, Any]],
    *,
    sink: TransitionSink,
    purpose: str,
    clock: Clock | None = None,
) -> RebuiltRun:
    """Rebuild one run's objects from its rows (any order, duplicates allowed).

    Each rebuilt entity's next transition gets the id deterministic_id(entity id, purpose), so
    it is meant for exactly one more event per entity. Raises BrokenChain when the rows are not
    a legal path (for example when rows are still in flight to the store).
    """
    clock = SYSTEM_CLOCK if clock is None else clock
    now = clock.now()
    unique = {str(r["transition_id"]): r for r in rows}
    ordered = sorted(unique.values(), key=lambda r: (_time(r["transition_time"]), r["to_state"]))
    pipeline_rows = [r for r in ordered if r["entity_type"] == "PIPELINE"]
    by_step: dict[str, list[Mapping[str, Any]]] = {}
    for r in ordered:
        if r["entity_type"] == "STEP":
            by_step.setdefault(str(r["step_logging_id"]), []).append(r)
    if not pipeline_rows:
        raise BrokenChain("run has no stored PIPELINE transitions.")
    run_id = str(pipeline_rows[0]["pipeline_logging_id"])
    last = _walk(PIPELINE, f"pipeline {run_id}", pipeline_rows)
    pipeline = PipelineRun(
        entity_name=str(last["entity_name"]),
        sink=sink,
        id_source=_one_id(run_id, purpose),
        **_fields(last, clock, now),
    )
    # Joint rule 5: nothing of this run may be stamped before its latest stored record.
    pipeline._latest_at = max(_time(r["transition_time"]) for r in ordered)
    steps = []
    for step_id, step_rows in by_step.items():
        last_step = _walk(STEP, f"step {step_id}", step_rows)
        step = StepRun(
            entity_name=str(last_step["entity_name"]),
            step_logging_id=step_id,
            sink=sink,
            id_source=_one_id(step_id, purpose),
            pipeline=pipeline,
            **_fields(last_step, clock, now),
        )
        if not pipeline.is_terminal:  # a terminal run takes no steps (joint rule 4)
            STEP_ENGINE.register(step, pipeline)  # the joint rules see the run's steps
        steps.append(step)
    steps.sort(key=lambda s: (s.entered_at, s.entity_name))
    return RebuiltRun(pipeline=pipeline, steps=tuple(steps))


def _one_id(entity_id: str, purpose: str) -> Callable[[], str]:
    value = deterministic_id(entity_id, purpose)
    return lambda: value
