"""The checks of `pipestate verify` over rows streamed in run order (the SQLite way).

SQLite walks its (pipeline_logging_id, transition_time) index, so the rows arrive grouped by
run and in time order without a sort; each row is checked against its entity's previous row and
forgotten, and a run's step summaries are dropped when the next run begins: memory holds one
run at a time. The checks, their order and their wording are those of persistence/_verify_sql.py
(tests run both on the same files and compare).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from persistence._verify_sql import _TIE, _epoch_us, _scope, _where
from statemachine.spec import PIPELINE, STEP, TABLES

LEGAL = frozenset(f"{k}:{e.source}>{e.dest}" for k, t in TABLES.items() for e in t.edges)
_LEGAL_TUPLES = frozenset((k, e.source, e.dest) for k, t in TABLES.items() for e in t.edges)

# One row: pipeline_logging_id, entity_type, step_logging_id, from_state, to_state,
# transition_time, t_us, retry_count, duration_in_state_ms, transition_id, entity_name.
Row = tuple[str, str, "str | None", str, str, str, int, int, int, str, "str | None"]
Found = tuple[str, str, "str | None", str, "str | None", str, str]


def stream_sql(table: str, *, org: bool, run: bool, dates: bool) -> str:
    """The SELECT feeding check_rows: the rows in scope, by run, time and chain order."""
    return f"""
SELECT pipeline_logging_id, entity_type, step_logging_id, from_state, to_state,
       transition_time, {_epoch_us("sqlite")} AS t_us, retry_count, duration_in_state_ms,
       transition_id, entity_name
FROM {table}
{_where(table, _scope(org, run, dates))}
ORDER BY pipeline_logging_id, transition_time, retry_count, {_TIE}, transition_id
"""


class _Entity:
    """What the next row of one entity is checked against."""

    __slots__ = ("first_us", "from_state", "last", "retries", "seq", "t_us", "to_state")

    def __init__(self) -> None:
        self.seq = 0
        self.from_state = self.to_state = ""
        self.t_us = self.first_us = self.retries = 0
        self.last: Row | None = None


def _row_checks(row: Row, ent: _Entity, tolerance_ms: int) -> Iterator[tuple[str, str]]:
    """(kind, detail) for each per-row check the row breaks, given its entity's previous row."""
    _, kind, step_id, source, dest, _, t_us, retries, duration, _, _ = row
    first = ent.seq == 0
    if f"{kind}:{source}>{dest}" not in LEGAL:
        yield "illegal-edge", f"{kind} {source} -> {dest} is not in the tables"
    dup = not first and (source, dest, t_us) == (ent.from_state, ent.to_state, ent.t_us)
    if first and source != "PENDING":
        yield "broken-chain", f"first row starts at {source}, not PENDING"
    elif not first and source != ent.to_state and not dup:
        yield "broken-chain", f"starts at {source} but the previous row ended at {ent.to_state}"
    if dup:
        yield "duplicate", f"same {source} -> {dest} at the same time as the row before"
    gap = 0 if first else (t_us - ent.t_us) // 1000
    if duration < 0 or (not first and not dup and abs(duration - gap) > tolerance_ms + gap // 100):
        tail = " is negative" if first else f" but {gap} ms passed since the previous row"
        yield "duration", f"duration_in_state_ms {duration}{tail}"
    due = (0 if first else ent.retries) + (source == "RETRYING" and dest == "RUNNING")
    if retries != due and not dup:
        yield "retry-count", f"retry_count {retries} where {due} was due"
    if kind == STEP.kind and step_id is None:
        yield "identity", "STEP row without step_logging_id"
    elif kind == PIPELINE.kind and step_id is not None:
        yield "identity", "PIPELINE row with a step_logging_id"


def _plainly_fine(row: Row, ent: _Entity, tolerance_ms: int) -> bool:
    """The fast path: True when the row continues its entity's chain with nothing to report.

    False only means "look closer": _row_checks then names what (if anything) is wrong.
    """
    _, kind, step_id, source, dest, _, t_us, retries, duration, _, _ = row
    if (kind, source, dest) not in _LEGAL_TUPLES or (step_id is None) != (kind == "PIPELINE"):
        return False
    if ent.seq == 0:
        return source == "PENDING" and retries == 0 and duration >= 0
    gap = (t_us - ent.t_us) // 1000
    restart = source == "RETRYING" and dest == "RUNNING"
    return (
        source == ent.to_state
        and retries == ent.retries + restart
        and duration >= 0
        and abs(duration - gap) <= tolerance_ms + gap // 100
    )


def _run_checks(steps: dict[Any, _Entity], runs: dict[str, Any]) -> Iterator[tuple[str, Row, str]]:
    """(kind, the step's last row, detail) for each run-level check a step breaks."""
    started, ended, end_state = runs.get("started"), runs.get("ended"), runs.get("end_state")
    for ent in steps.values():
        last = ent.last
        assert last is not None
        if started is None:
            yield "outside-run", last, "step rows in a run that never started"
        elif ent.first_us < started:
            yield "outside-run", last, "step rows before its pipeline started"
        elif ended is not None and ent.t_us > ended:
            yield "outside-run", last, f"step rows after its pipeline ended {end_state}"
        if end_state is not None and (
            last[4] not in STEP.terminal or (end_state == "COMPLETED" and last[4] != "COMPLETED")
        ):
            yield "unfinished-step", last, f"step ends {last[4]} in a run that ended {end_state}"


def check_rows(
    rows: Iterable[Row], *, tolerance_ms: int, max_per_kind: int, summary: dict[str, int]
) -> tuple[dict[str, int], list[Found]]:
    """Counts per kind and the listed violations (first max_per_kind per kind, by run, time).

    `summary` is filled with row_count, run_count, finished_run_count and step_count.
    """
    summary.update(row_count=0, run_count=0, finished_run_count=0, step_count=0)
    counts: dict[str, int] = {}
    listed: list[Found] = []
    current: str | None = None
    entities: dict[tuple[str, str | None], _Entity] = {}
    run: dict[str, Any] = {}
    found: list[tuple[str, Row, str]] = []

    def close_run() -> None:
        steps = {k: e for k, e in entities.items() if k[0] == STEP.kind}
        summary["run_count"] += 1
        summary["finished_run_count"] += "end_state" in run
        summary["step_count"] += sum(1 for k in steps if k[1] is not None)
        found.extend(_run_checks(steps, run))
        found.sort(key=lambda f: (f[1][5], f[1][9]))
        for kind, row, detail in found:
            counts[kind] = counts.get(kind, 0) + 1
            if counts[kind] <= max_per_kind:
                listed.append((kind, row[0], row[2], row[9], row[10], row[5], detail))
        found.clear()
        entities.clear()
        run.clear()

    for row in rows:
        summary["row_count"] += 1
        if row[0] != current:
            if current is not None:
                close_run()
            current = row[0]
        key = (row[1], row[2])
        ent = entities.get(key)
        if ent is None:
            ent = entities[key] = _Entity()
            ent.first_us = row[6]
        if not _plainly_fine(row, ent, tolerance_ms):
            for kind, detail in _row_checks(row, ent, tolerance_ms):
                found.append((kind, row, detail))
        ent.seq += 1
        ent.from_state, ent.to_state, ent.t_us, ent.retries, ent.last = (
            row[3],
            row[4],
            row[6],
            row[7],
            row,
        )
        if row[1] == PIPELINE.kind:
            if row[4] == "RUNNING":
                run["started"] = min(run.get("started", row[6]), row[6])
            elif row[4] in PIPELINE.terminal:
                run["ended"] = max(run.get("ended", row[6]), row[6])
                run["end_state"] = max(run.get("end_state", row[4]), row[4])
    if current is not None:
        close_run()
    listed.sort(key=lambda v: (v[0], v[1], v[5], v[3]))
    return counts, listed
