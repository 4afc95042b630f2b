"""persistence._derive: pipeline-run / step-log rows derived from TransitionRecords."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from executor.runner import PipelineResult, run_pipeline
from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from persistence._derive import derive_run_rows
from persistence._rows import pipeline_run_row, step_log_row
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import TransitionRecord

ROOT = Path(__file__).resolve().parent.parent
T = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)


def record(entity_type: str, from_state: str, to_state: str, **kw: Any) -> TransitionRecord:
    """A record of one edge with sensible defaults."""
    fields: dict[str, Any] = {
        "transition_id": "t-1",
        "org_slug": "acme",
        "pipeline_logging_id": "pl-1",
        "step_logging_id": "st-1" if entity_type == "STEP" else None,
        "entity_type": entity_type,
        "entity_name": "extract" if entity_type == "STEP" else "billing",
        "from_state": from_state,
        "to_state": to_state,
        "transition_time": T,
        "transition_date": T.date(),
        "trigger_type": "api",
        "user_id": "u-1",
    }
    fields.update(kw)
    return TransitionRecord(**fields)


FAILURE = {
    "error_type": "TRANSIENT",
    "error_message": "503 Service Unavailable",
    "stack_trace_truncated": "Traceback ...",
    "retry_count": 1,
    "duration_in_state_ms": 1500,
    "metadata": {"error_class": "ConnectionError", "is_retryable": True, "attempts": 2},
}
CONTEXT = {
    "error_type": "TRANSIENT",
    "error_class": "ConnectionError",
    "is_retryable": True,
    "retry_count": 1,
    "stack_trace_truncated": "Traceback ...",
}


class TestDerivePipelineRows:
    """PIPELINE records: start on PENDING->RUNNING, end on RUNNING->terminal."""

    def test_start_row_matches_log_pipeline_start(self) -> None:
        """PENDING->RUNNING yields exactly the row log_pipeline_start builds (same id)."""
        rec = record("PIPELINE", "PENDING", "RUNNING", metadata={"total_steps": 3})
        assert derive_run_rows(rec) == [
            (
                PIPELINE_RUNS,
                pipeline_run_row(
                    phase="start",
                    status="RUNNING",
                    pipeline_logging_id="pl-1",
                    pipeline_id="billing",
                    org_slug="acme",
                    start_time=T,
                    trigger_type="api",
                    user_id="u-1",
                    metadata={"total_steps": 3},
                ),
            )
        ]
        row = derive_run_rows(rec)[0][1]
        assert (row["run_log_id"], row["status"], row["end_time"]) == (
            "pl-1:start",
            "RUNNING",
            None,
        )

    @pytest.mark.parametrize("to_state", ["COMPLETED", "FAILED", "TIMEOUT"])
    def test_end_row_times_status_and_id(self, to_state: str) -> None:
        """RUNNING->terminal yields the end row: status = to_state, start = time - duration."""
        rec = record("PIPELINE", "RUNNING", to_state, duration_in_state_ms=2500)
        [(table, row)] = derive_run_rows(rec)
        assert table == PIPELINE_RUNS
        assert row["run_log_id"] == "pl-1:end"
        assert row["status"] == to_state
        assert row["start_time"] == (T - dt.timedelta(milliseconds=2500)).isoformat()
        assert row["end_time"] == T.isoformat()
        assert row["duration_ms"] == 2500
        assert (row["trigger_type"], row["user_id"], row["org_slug"]) == ("api", "u-1", "acme")

    def test_failed_end_row_carries_error_context(self) -> None:
        """A failed pipeline's end row has error_message and the seed's error_context."""
        rec = record("PIPELINE", "RUNNING", "FAILED", **FAILURE)
        [(_, row)] = derive_run_rows(rec)
        meta = json.loads(row["metadata"])
        assert row["error_message"] == "503 Service Unavailable"
        assert meta["error_context"] == CONTEXT
        assert meta["attempts"] == 2

    def test_completed_end_row_has_no_error_context(self) -> None:
        """A successful end row carries no error_context."""
        [(_, row)] = derive_run_rows(record("PIPELINE", "RUNNING", "COMPLETED"))
        assert "error_context" not in json.loads(row["metadata"])
        assert row["error_message"] is None


class TestDeriveStepRows:
    """STEP records: one start and one end row per attempt, keyed by retry_count."""

    @pytest.mark.parametrize(("from_state", "attempt"), [("PENDING", 0), ("RETRYING", 2)])
    def test_start_row_per_attempt(self, from_state: str, attempt: int) -> None:
        """PENDING/RETRYING->RUNNING yields the start row of attempt retry_count."""
        rec = record("STEP", from_state, "RUNNING", retry_count=attempt)
        [(table, row)] = derive_run_rows(rec)
        assert table == STEP_LOGS
        assert row == step_log_row(
            phase="start",
            status="RUNNING",
            step_logging_id="st-1",
            pipeline_logging_id="pl-1",
            step_name="extract",
            attempt=attempt,
            org_slug="acme",
            start_time=T,
            trigger_type="api",
            user_id="u-1",
        )
        assert row["step_log_id"] == f"st-1:{attempt}:start"
        assert (row["step_type"], row["step_index"]) == (None, None)

    def test_completed_end_row_keeps_rows_processed(self) -> None:
        """RUNNING->COMPLETED yields a COMPLETED end row with rows_processed in metadata."""
        rec = record(
            "STEP", "RUNNING", "COMPLETED", duration_in_state_ms=40, metadata={"rows_processed": 42}
        )
        [(_, row)] = derive_run_rows(rec)
        assert row["step_log_id"] == "st-1:0:end"
        assert row["status"] == "COMPLETED"
        assert row["duration_ms"] == 40
        assert row["start_time"] == (T - dt.timedelta(milliseconds=40)).isoformat()
        assert json.loads(row["metadata"]) == {"rows_processed": 42}

    def test_failed_end_row_merges_error_context(self) -> None:
        """RUNNING->FAILED yields a FAILED end row with error_context merged into metadata."""
        [(_, row)] = derive_run_rows(record("STEP", "RUNNING", "FAILED", **FAILURE))
        meta = json.loads(row["metadata"])
        assert (row["step_log_id"], row["status"]) == ("st-1:1:end", "FAILED")
        assert row["error_message"] == "503 Service Unavailable"
        assert meta["error_context"] == CONTEXT
        assert "will_retry" not in meta

    def test_retrying_ends_the_attempt_as_failed_with_will_retry(self) -> None:
        """RUNNING->RETRYING ends the attempt FAILED, marked will_retry in metadata."""
        [(_, row)] = derive_run_rows(record("STEP", "RUNNING", "RETRYING", **FAILURE))
        meta = json.loads(row["metadata"])
        assert (row["step_log_id"], row["status"]) == ("st-1:1:end", "FAILED")
        assert meta["will_retry"] is True
        assert meta["error_context"]["error_class"] == "ConnectionError"

    @pytest.mark.parametrize("from_state", ["PENDING", "RETRYING"])
    def test_failing_without_an_attempt_yields_nothing(self, from_state: str) -> None:
        """PENDING/RETRYING->FAILED ran no attempt, so no step-log row is derived."""
        rec = record("STEP", from_state, "FAILED", error_type="DEPENDENCY_FAILURE")
        assert derive_run_rows(rec) == []

    def test_derivation_does_not_mutate_the_record(self) -> None:
        """Adding will_retry never changes the record's own metadata."""
        rec = record("STEP", "RUNNING", "RETRYING", **FAILURE)
        derive_run_rows(rec)
        assert "will_retry" not in rec.metadata


def table_rows(path: Path, table: str) -> list[dict[str, Any]]:
    """Every row of a table, read through a separate connection."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()


def run_both(db: Path, *, derive: bool) -> list[PipelineResult]:
    """Run the retry and the dependency test pipelines through one logger into `db`."""

    async def body() -> list[PipelineResult]:
        settings = LoggerSettings(flush_interval_seconds=0.05)
        async with MetadataLogger(SQLiteStore(db), settings, derive_run_rows=derive) as logger:
            results = [
                await run_pipeline(
                    ROOT / "configs/test" / name, org_slug="acme", logger=logger, user_id="u-7"
                )
                for name in ("retry/test_retry.yml", "dependency/test_dependency.yml")
            ]
            assert await logger.flush(timeout=30)
            assert logger.derive_failures == 0
        return results

    return asyncio.run(body())


class TestDeriveEndToEnd:
    """A real executor run fills the run and step tables from its transitions alone."""

    def test_runs_and_attempts_get_start_and_end_rows(self, tmp_path: Path) -> None:
        """Each run has start+end rows and each attempt one start+end pair, as transitioned."""
        db = tmp_path / "derive.db"
        results = run_both(db, derive=True)
        assert [r.state for r in results] == ["COMPLETED", "FAILED"]
        runs = table_rows(db, PIPELINE_RUNS)
        steps = table_rows(db, STEP_LOGS)
        transitions = table_rows(db, STATE_TRANSITIONS)
        assert len({r["run_log_id"] for r in runs}) == len(runs)
        assert len({r["step_log_id"] for r in steps}) == len(steps)

        expected_runs = {}
        for result in results:
            expected_runs[f"{result.pipeline_logging_id}:start"] = "RUNNING"
            expected_runs[f"{result.pipeline_logging_id}:end"] = result.state
        assert {r["run_log_id"]: r["status"] for r in runs} == expected_runs
        assert all(r["user_id"] == "u-7" and r["org_slug"] == "acme" for r in runs)

        # One start+end pair per attempt, with the attempt's outcome as the state machine said.
        expected_steps: dict[str, str] = {}
        for t in transitions:
            if t["entity_type"] != "STEP":
                continue
            key = f"{t['step_logging_id']}:{t['retry_count']}"
            if t["to_state"] == "RUNNING":
                expected_steps[f"{key}:start"] = "RUNNING"
            elif t["from_state"] == "RUNNING":
                outcome = "FAILED" if t["to_state"] == "RETRYING" else t["to_state"]
                expected_steps[f"{key}:end"] = outcome
        assert {r["step_log_id"]: r["status"] for r in steps} == expected_steps

        by_name = Counter((r["step_name"], r["status"]) for r in steps)
        # fetch_api: three attempts (two failed with retry), then COMPLETED.
        assert by_name[("fetch_api", "RUNNING")] == 3
        assert by_name[("fetch_api", "FAILED")] == 2
        assert by_name[("fetch_api", "COMPLETED")] == 1
        # extract_data failed once; its dependants never ran, so they have no rows.
        assert by_name[("extract_data", "FAILED")] == 1
        assert not {"transform_data", "load_data"} & {r["step_name"] for r in steps}
        assert by_name[("audit_report", "COMPLETED")] == 1

        fetch_ends = [r for r in steps if r["step_name"] == "fetch_api" and r["end_time"]]
        completed = next(r for r in fetch_ends if r["status"] == "COMPLETED")
        assert completed["attempt"] == 2
        assert json.loads(completed["metadata"])["rows_processed"] == 42
        retried = [json.loads(r["metadata"]) for r in fetch_ends if r["status"] == "FAILED"]
        assert all(m["will_retry"] is True for m in retried)
        assert all(m["error_context"]["error_type"] == "TRANSIENT" for m in retried)
        failed_run = next(
            r for r in runs if r["run_log_id"].endswith(":end") and r["error_message"]
        )
        assert json.loads(failed_run["metadata"])["error_context"]["error_type"] == "PERMANENT"

    def test_disabled_derivation_writes_no_run_or_step_rows(self, tmp_path: Path) -> None:
        """derive_run_rows=False leaves both tables empty while transitions still land."""
        db = tmp_path / "plain.db"
        run_both(db, derive=False)
        assert table_rows(db, PIPELINE_RUNS) == []
        assert table_rows(db, STEP_LOGS) == []
        assert table_rows(db, STATE_TRANSITIONS)

    def test_explicit_log_calls_do_not_duplicate_derived_rows(self, tmp_path: Path) -> None:
        """A caller who also calls log_pipeline_start writes the same id: one row remains."""
        db = tmp_path / "both.db"
        rec = record("PIPELINE", "PENDING", "RUNNING")

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(db), LoggerSettings()) as logger:
                logger.emit(rec)
                await logger.log_pipeline_start(
                    pipeline_logging_id="pl-1", pipeline_id="billing", org_slug="acme", start_time=T
                )
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        assert [r["run_log_id"] for r in table_rows(db, PIPELINE_RUNS)] == ["pl-1:start"]

    def test_a_derive_failure_is_counted_not_raised(self, tmp_path: Path) -> None:
        """A record the deriver cannot read is counted in derive_failures; emit never raises."""
        broken = SimpleNamespace(entity_type="PIPELINE", from_state="PENDING", to_state="RUNNING")
        logger = MetadataLogger(SQLiteStore(tmp_path / "bad.db"), derive_run_rows=True)
        logger.emit(broken)  # type: ignore[arg-type]  # a hostile caller, on purpose
        assert logger.derive_failures == 1
        assert logger.channels[PIPELINE_RUNS].submitted == 0
        logger.store.close()
