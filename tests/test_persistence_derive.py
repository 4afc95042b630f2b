"""persistence._derive: pipeline-run / step-log rows derived from TransitionRecords."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from executor.runner import PipelineResult, run_pipeline
from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from persistence._derive import derive_run_rows
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import TransitionRecord
from tests.sqlite_support import table_rows

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
    """PIPELINE records: one row per run, on RUNNING->terminal."""

    def test_no_start_row(self) -> None:
        """PENDING->RUNNING yields no row: the end row alone describes the run, as the seed's."""
        rec = record("PIPELINE", "PENDING", "RUNNING", metadata={"total_steps": 3})
        assert derive_run_rows(rec) == []

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

    @pytest.mark.parametrize("from_state", ["PENDING", "RETRYING"])
    def test_no_start_row_per_attempt(self, from_state: str) -> None:
        """PENDING/RETRYING->RUNNING yields no row: the attempt's end row holds its outcome."""
        assert derive_run_rows(record("STEP", from_state, "RUNNING", retry_count=1)) == []

    def test_step_type_and_index_from_metadata(self) -> None:
        """step_type and step_index move from the record's metadata into their columns."""
        meta = {"step_type": "generic.noop", "step_index": 2, "rows_processed": 1}
        [(_, row)] = derive_run_rows(record("STEP", "RUNNING", "COMPLETED", metadata=meta))
        assert (row["step_type"], row["step_index"]) == ("generic.noop", 2)
        assert json.loads(row["metadata"]) == {"rows_processed": 1}

    def test_completed_end_row_keeps_rows_processed(self) -> None:
        """RUNNING->COMPLETED yields a COMPLETED end row with rows_processed in metadata."""
        rec = record(
            "STEP", "RUNNING", "COMPLETED", duration_in_state_ms=40, metadata={"rows_processed": 42}
        )
        [(_, row)] = derive_run_rows(rec)
        assert row["step_log_id"] == "st-1:1:end"
        assert row["attempt"] == 1
        assert row["status"] == "COMPLETED"
        assert row["duration_ms"] == 40
        assert row["start_time"] == (T - dt.timedelta(milliseconds=40)).isoformat()
        assert json.loads(row["metadata"]) == {"rows_processed": 42}

    def test_failed_end_row_merges_error_context(self) -> None:
        """RUNNING->FAILED yields a FAILED end row with error_context merged into metadata."""
        [(_, row)] = derive_run_rows(record("STEP", "RUNNING", "FAILED", **FAILURE))
        meta = json.loads(row["metadata"])
        assert (row["step_log_id"], row["status"]) == ("st-1:2:end", "FAILED")
        assert row["error_message"] == "503 Service Unavailable"
        assert meta["error_context"] == CONTEXT
        assert "will_retry" not in meta

    def test_retrying_ends_the_attempt_as_failed_with_will_retry(self) -> None:
        """RUNNING->RETRYING ends the attempt FAILED, marked will_retry in metadata."""
        [(_, row)] = derive_run_rows(record("STEP", "RUNNING", "RETRYING", **FAILURE))
        meta = json.loads(row["metadata"])
        assert (row["step_log_id"], row["status"]) == ("st-1:2:end", "FAILED")
        assert meta["will_retry"] is True
        assert meta["error_context"]["error_class"] == "ConnectionError"

    @pytest.mark.parametrize(("from_state", "attempt"), [("PENDING", 1), ("RETRYING", 3)])
    def test_failing_without_an_attempt_gets_a_row(self, from_state: str, attempt: int) -> None:
        """PENDING/RETRYING->FAILED yields a FAILED row for the attempt that never ran."""
        rec = record(
            "STEP",
            from_state,
            "FAILED",
            error_type="DEPENDENCY_FAILURE",
            retry_count=1,
            duration_in_state_ms=900,
        )
        [(_, row)] = derive_run_rows(rec)
        assert (row["status"], row["attempt"], row["duration_ms"]) == ("FAILED", attempt, 0)
        assert row["start_time"] == row["end_time"] == T.isoformat()
        assert json.loads(row["metadata"])["never_started"] is True

    def test_derivation_does_not_mutate_the_record(self) -> None:
        """Adding will_retry never changes the record's own metadata."""
        rec = record("STEP", "RUNNING", "RETRYING", **FAILURE)
        derive_run_rows(rec)
        assert "will_retry" not in rec.metadata


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

    def test_one_row_per_run_and_per_attempt(self, tmp_path: Path) -> None:
        """Each run has one row and each attempt one row holding its outcome, as transitioned."""
        db = tmp_path / "derive.db"
        results = run_both(db, derive=True)
        assert [r.state for r in results] == ["COMPLETED", "FAILED"]
        runs = table_rows(db, PIPELINE_RUNS)
        steps = table_rows(db, STEP_LOGS)
        transitions = table_rows(db, STATE_TRANSITIONS)
        assert len({r["step_log_id"] for r in steps}) == len(steps)

        expected_runs = {f"{r.pipeline_logging_id}:end": r.state for r in results}
        assert {r["run_log_id"]: r["status"] for r in runs} == expected_runs
        assert all(r["user_id"] == "u-7" and r["org_slug"] == "acme" for r in runs)
        assert all(r["status"] != "RUNNING" for r in runs + steps)

        # One row per attempt (attempts from 1), with the outcome the state machine recorded.
        expected_steps: dict[str, str] = {}
        for t in transitions:
            if t["entity_type"] != "STEP" or t["to_state"] == "RUNNING":
                continue
            if t["from_state"] == "RUNNING":
                key = f"{t['step_logging_id']}:{t['retry_count'] + 1}:end"
                expected_steps[key] = "FAILED" if t["to_state"] == "RETRYING" else t["to_state"]
            elif t["from_state"] == "PENDING":
                expected_steps[f"{t['step_logging_id']}:1:end"] = "FAILED"
        assert {r["step_log_id"]: r["status"] for r in steps} == expected_steps

        by_name = Counter((r["step_name"], r["status"]) for r in steps)
        # fetch_api: three attempts (two failed with retry), then COMPLETED.
        assert by_name[("fetch_api", "FAILED")] == 2
        assert by_name[("fetch_api", "COMPLETED")] == 1
        # extract_data failed once; its dependants never ran and have a never_started row.
        assert by_name[("extract_data", "FAILED")] == 1
        never = [r for r in steps if r["step_name"] in {"transform_data", "load_data"}]
        assert [json.loads(r["metadata"])["never_started"] for r in never] == [True, True]
        assert by_name[("audit_report", "COMPLETED")] == 1
        audit = next(r for r in steps if r["step_name"] == "audit_report")
        assert (audit["step_type"], audit["step_index"]) == ("generic.slow_processor", 3)

        fetch = [r for r in steps if r["step_name"] == "fetch_api"]
        completed = next(r for r in fetch if r["status"] == "COMPLETED")
        assert completed["attempt"] == 3
        assert sorted(r["attempt"] for r in fetch) == [1, 2, 3]
        assert json.loads(completed["metadata"])["rows_processed"] == 42
        retried = [json.loads(r["metadata"]) for r in fetch if r["status"] == "FAILED"]
        assert all(m["will_retry"] is True for m in retried)
        assert all(m["error_context"]["error_type"] == "TRANSIENT" for m in retried)
        failed_run = next(r for r in runs if r["error_message"])
        assert json.loads(failed_run["metadata"])["error_context"]["error_type"] == "PERMANENT"

    def test_disabled_derivation_writes_no_run_or_step_rows(self, tmp_path: Path) -> None:
        """derive_run_rows=False leaves both tables empty while transitions still land."""
        db = tmp_path / "plain.db"
        run_both(db, derive=False)
        assert table_rows(db, PIPELINE_RUNS) == []
        assert table_rows(db, STEP_LOGS) == []
        assert table_rows(db, STATE_TRANSITIONS)

    def test_library_default_derives(self, tmp_path: Path) -> None:
        """run_pipeline with a default MetadataLogger fills both tables, as the CLI does."""
        db = tmp_path / "d.db"

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(db)) as logger:
                await run_pipeline(
                    ROOT / "configs/test/success/test_success.yml", org_slug="acme", logger=logger
                )

        asyncio.run(body())
        assert [r["status"] for r in table_rows(db, PIPELINE_RUNS)] == ["COMPLETED"]
        assert {r["status"] for r in table_rows(db, STEP_LOGS)} == {"COMPLETED"}

    def test_explicit_log_calls_do_not_duplicate_derived_rows(self, tmp_path: Path) -> None:
        """A caller who also calls log_pipeline_end writes the same id: one row remains."""
        db = tmp_path / "both.db"
        rec = record("PIPELINE", "RUNNING", "COMPLETED")

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(db), LoggerSettings()) as logger:
                logger.emit(rec)
                await logger.log_pipeline_end(
                    pipeline_logging_id="pl-1",
                    pipeline_id="billing",
                    org_slug="acme",
                    status="COMPLETED",
                    start_time=T,
                )
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        assert [r["run_log_id"] for r in table_rows(db, PIPELINE_RUNS)] == ["pl-1:end"]

    def test_a_derive_failure_is_counted_not_raised(self, tmp_path: Path) -> None:
        """A record the deriver cannot read is counted in derive_failures; emit never raises."""
        broken = SimpleNamespace(entity_type="PIPELINE", from_state="RUNNING", to_state="FAILED")
        logger = MetadataLogger(SQLiteStore(tmp_path / "bad.db"), derive_run_rows=True)
        logger.emit(broken)  # type: ignore[arg-type]  # a hostile caller, on purpose
        assert logger.derive_failures == 1
        assert logger.channels[PIPELINE_RUNS].submitted == 0
        logger.store.close()
