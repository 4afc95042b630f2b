"""Property tests: random DAG pipelines run through the executor, checked from stored rows."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from executor.runner import PipelineResult, run_pipeline
from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore
from persistence.verify import VerifyReport, verify
from statemachine import InMemorySink, TransitionRecord
from tests.strategies.pipelines import (
    LEGAL,
    TERMINAL,
    Scenario,
    by_entity,
    read_rows,
    scenarios,
)


class _Tee:
    """Forwards every record to the logger and keeps a copy to compare with the store."""

    def __init__(self, logger: MetadataLogger) -> None:
        self.logger = logger
        self.memory = InMemorySink()

    def emit(self, record: TransitionRecord) -> None:
        self.memory.emit(record)
        self.logger.emit(record)


def _execute(scn: Scenario, db: Path) -> tuple[PipelineResult, list[dict[str, Any]], set[str]]:
    async def go() -> tuple[PipelineResult, set[str]]:
        store = SQLiteStore(db)
        try:
            async with MetadataLogger(store) as logger:
                tee = _Tee(logger)
                result = await run_pipeline(scn.config, org_slug="prop_org", logger=tee)
                await logger.flush()
            return result, {r.transition_id for r in tee.memory.records}
        finally:
            store.close()

    result, emitted = asyncio.run(go())
    return result, read_rows(db, result.pipeline_logging_id), emitted


def _predict(scn: Scenario) -> dict[str, tuple[str, str | None]]:
    """Final (state, error_type) per step when nothing hangs and fail_fast is off."""
    out: dict[str, tuple[str, str | None]] = {}
    for step in scn.config.steps:  # generated so that dependencies come first
        sid = step.step_id
        ups = [out[d] for d in step.depends_on]
        if any(u[0] == "HANG" for u in ups):
            out[sid] = ("FAILED", "TIMEOUT")
            continue
        if any(u[0] != "COMPLETED" for u in ups):
            out[sid] = ("FAILED", "DEPENDENCY_FAILURE")
            continue
        outcome = scn.outcomes[sid]
        if outcome.kind in ("ok", "slow"):
            out[sid] = ("COMPLETED", None)
        elif outcome.kind == "transient":
            ok = outcome.failures <= scn.max_retries(sid)
            out[sid] = ("COMPLETED", None) if ok else ("FAILED", "TRANSIENT")
        elif outcome.kind == "permanent":
            out[sid] = ("FAILED", "PERMANENT")
        elif outcome.kind == "step_timeout":
            out[sid] = ("FAILED", "TIMEOUT")
        else:
            out[sid] = ("HANG", None)
    return out


def _check_rows(scn: Scenario, rows: list[dict[str, Any]], emitted: set[str]) -> None:
    ids = [r["transition_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a row is duplicated"
    assert set(ids) == emitted, "stored rows differ from emitted records"
    for row in rows:
        edge = (row["from_state"], row["to_state"])
        assert edge in LEGAL[row["entity_type"]], f"illegal edge {edge} in {row}"
    chains = by_entity(rows)  # raises if any entity's rows do not chain from PENDING
    assert set(chains) == {"PIPELINE:prop"} | {f"STEP:{s.step_id}" for s in scn.config.steps}
    for key, chain in chains.items():
        kind = key.split(":", 1)[0]
        states = [r["to_state"] for r in chain]
        assert states[-1] in TERMINAL[kind], f"{key} ends in {states[-1]}"
        assert not set(states[:-1]) & TERMINAL[kind], f"{key} leaves a terminal state"
        if kind == "STEP":
            limit = scn.max_retries(key.split(":", 1)[1])
            assert max(r["retry_count"] for r in chain) <= limit


def _check_joint(rows: list[dict[str, Any]]) -> None:
    """The joint rules (issue 11) read back from the stored rows of one run."""
    chains = by_entity(rows)
    pipeline = chains["PIPELINE:prop"]
    started, ended = str(pipeline[0]["transition_time"]), str(pipeline[-1]["transition_time"])
    steps = {k: c for k, c in chains.items() if k.startswith("STEP:")}
    for chain in steps.values():
        # Rules 1, 4, 5: every step row lies within the pipeline's RUNNING interval.
        assert all(started <= str(r["transition_time"]) <= ended for r in chain)
    finals = {c[-1]["to_state"] for c in steps.values()}
    if pipeline[-1]["to_state"] == "COMPLETED":
        assert finals <= {"COMPLETED"}  # rule 2
    else:
        assert finals <= TERMINAL["STEP"]  # rule 3


def _verify(db: Path, *, in_sql: bool = False) -> VerifyReport:
    store = SQLiteStore(db)
    try:
        return verify(store, in_sql=in_sql)
    finally:
        store.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scn=scenarios())
def test_random_pipelines_keep_every_invariant(scn: Scenario) -> None:
    """For any DAG and outcomes, the stored rows are legal, complete, chained and consistent.

    Every row is a legal edge; each entity's rows chain from PENDING to one terminal state; no
    row is missing or duplicated; retry_count never exceeds max_retries; every step is terminal
    no later than its pipeline; the pipeline's final state and error type follow from its steps.
    The joint rules hold on the stored rows (every step row inside the pipeline's RUNNING
    interval; a COMPLETED run has only COMPLETED steps, any other end only terminal ones), and
    `pipestate verify` finds nothing in the file.
    """
    with tempfile.TemporaryDirectory() as tmp:
        result, rows, emitted = _execute(scn, Path(tmp) / "p.db")
        report = _verify(Path(tmp) / "p.db")
        assert _verify(Path(tmp) / "p.db", in_sql=True) == report
    _check_rows(scn, rows, emitted)
    _check_joint(rows)
    assert report.clean, report.render()
    assert report.rows == len(rows)
    chains = by_entity(rows)
    pipeline_end = chains["PIPELINE:prop"][-1]
    assert all(str(r["transition_time"]) <= str(pipeline_end["transition_time"]) for r in rows)
    finals: Mapping[str, Mapping[str, Any]] = {
        key.split(":", 1)[1]: chain[-1] for key, chain in chains.items() if key.startswith("STEP")
    }
    state = pipeline_end["to_state"]
    assert state == result.state
    all_done = all(f["to_state"] == "COMPLETED" for f in finals.values())
    assert (state == "COMPLETED") == all_done
    root = sorted(
        (f for f in finals.values() if f["error_type"] not in (None, "DEPENDENCY_FAILURE")),
        key=lambda f: str(f["transition_time"]),
    )
    if state == "FAILED":
        assert root, "a FAILED pipeline needs a root-cause step failure"
        assert pipeline_end["error_type"] == root[0]["error_type"]

    predicted = _predict(scn)
    config_hang = any(o.kind == "hang" for o in scn.outcomes.values())
    reachable_hang = any(p[0] == "HANG" for p in predicted.values())
    root_predicted = any(
        p[0] == "FAILED" and p[1] != "DEPENDENCY_FAILURE" for p in predicted.values()
    )
    if not config_hang and not scn.config.fail_fast:
        actual = {sid: (f["to_state"], f["error_type"]) for sid, f in finals.items()}
        assert actual == predicted
    elif not config_hang:
        assert state == ("FAILED" if root_predicted else "COMPLETED")
    elif reachable_hang and not scn.config.fail_fast:
        assert state == "TIMEOUT"
    elif reachable_hang:
        assert state in ("TIMEOUT", "FAILED")
    if state == "TIMEOUT":
        assert config_hang, "only a pipeline with a hanging step may reach its deadline"
