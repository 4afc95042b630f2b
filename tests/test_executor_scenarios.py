"""End-to-end: the seed's scenarios on a real SQLiteStore through MetadataLogger."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from executor.runner import PipelineResult, run_pipeline
from persistence.logger import MetadataLogger
from persistence.queries import run_query
from persistence.stores.sqlite import SQLiteStore
from tests.strategies.pipelines import by_entity, read_rows, sequence

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
START = ("PENDING", "RUNNING", None, 0)
DONE = ("RUNNING", "COMPLETED", None, 0)


def _run(ref: str | Path, db: Path, **kwargs: Any) -> tuple[PipelineResult, list[dict[str, Any]]]:
    async def go() -> PipelineResult:
        store = SQLiteStore(db)
        try:
            async with MetadataLogger(store) as logger:
                result = await run_pipeline(
                    ref, org_slug="test_org", logger=logger, config_dir=CONFIGS, **kwargs
                )
                await logger.flush()
            return result
        finally:
            store.close()

    result = asyncio.run(go())
    return result, read_rows(db, result.pipeline_logging_id)


def _sequences(rows: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    return {key: sequence(chain) for key, chain in by_entity(rows).items()}


def _pipeline_ends_last(rows: list[dict[str, Any]]) -> None:
    """The pipeline's terminal row is not earlier than any step row."""
    chains = by_entity(rows)
    (pipeline_key,) = [k for k in chains if k.startswith("PIPELINE:")]
    end = str(chains[pipeline_key][-1]["transition_time"])
    assert all(str(r["transition_time"]) <= end for r in rows)


class TestSeedScenarios:
    """Each scenario stores exactly the expected (entity, from, to, error_type, retry) rows."""

    def test_success_fan_out(self, tmp_path: Path) -> None:
        """Success: pipeline and all three steps go PENDING -> RUNNING -> COMPLETED."""
        result, rows = _run("test/success/test_success", tmp_path / "s.db")
        assert result.state == "COMPLETED"
        assert _sequences(rows) == {
            "PIPELINE:test-success": [START, DONE],
            "STEP:extract_data": [START, DONE],
            "STEP:load_warehouse": [START, DONE],
            "STEP:load_cache": [START, DONE],
        }
        chains = by_entity(rows)
        extract_done = str(chains["STEP:extract_data"][-1]["transition_time"])
        for load in ("STEP:load_warehouse", "STEP:load_cache"):
            assert str(chains[load][0]["transition_time"]) >= extract_done
        _pipeline_ends_last(rows)

    def test_timeout_shortened(self, tmp_path: Path) -> None:
        """Timeout (0.3 s copy): PIPELINE -> TIMEOUT, STEP RUNNING -> FAILED (TIMEOUT)."""
        text = (CONFIGS / "test/timeout/test_timeout.yml").read_text()
        short = tmp_path / "short.yml"
        short.write_text(text.replace("timeout_minutes: 0.1", "timeout_minutes: 0.005"))
        result, rows = _run(short, tmp_path / "t.db")
        assert result.state == "TIMEOUT"
        assert _sequences(rows) == {
            "PIPELINE:test-timeout": [START, ("RUNNING", "TIMEOUT", "TIMEOUT", 0)],
            "STEP:slow_step": [START, ("RUNNING", "FAILED", "TIMEOUT", 0)],
        }
        _pipeline_ends_last(rows)

    @pytest.mark.slow
    def test_timeout_real_file(self, tmp_path: Path) -> None:
        """The seed's file as written: the 30 s step is cut at the 6 s pipeline deadline."""
        result, rows = _run("test/timeout/test_timeout", tmp_path / "t.db")
        assert result.state == "TIMEOUT"
        chains = by_entity(rows)
        assert sequence(chains["STEP:slow_step"])[-1] == ("RUNNING", "FAILED", "TIMEOUT", 0)
        pipeline_end = chains["PIPELINE:test-timeout"][-1]
        assert pipeline_end["to_state"] == "TIMEOUT"
        assert 5.5 <= pipeline_end["duration_in_state_ms"] / 1000 < 20

    @pytest.mark.parametrize("ref", ["invalid/domain/pipeline", "test/validation/test_bad_field"])
    def test_validation(self, tmp_path: Path, ref: str) -> None:
        """Validation: PIPELINE PENDING -> RUNNING -> FAILED (VALIDATION_ERROR), no step rows."""
        result, rows = _run(ref, tmp_path / "v.db")
        assert result.error_type == "VALIDATION_ERROR"
        assert _sequences(rows) == {
            f"PIPELINE:{ref}": [START, ("RUNNING", "FAILED", "VALIDATION_ERROR", 0)]
        }

    def test_bad_field_message(self, tmp_path: Path) -> None:
        """The stored error message names the file, the field path and the problem."""
        _, rows = _run("test/validation/test_bad_field", tmp_path / "v.db")
        message = rows[-1]["error_message"]
        assert "test_bad_field.yml" in message
        assert "steps[1].timeout_minutes: expected a number > 0" in message

    def test_retry(self, tmp_path: Path) -> None:
        """Retry: the flaky step succeeds on its third attempt after two TRANSIENT retries."""
        result, rows = _run("test/retry/test_retry", tmp_path / "r.db")
        assert result.state == "COMPLETED"
        assert _sequences(rows) == {
            "PIPELINE:test-retry": [START, DONE],
            "STEP:fetch_api": [
                START,
                ("RUNNING", "RETRYING", "TRANSIENT", 0),
                ("RETRYING", "RUNNING", None, 1),
                ("RUNNING", "RETRYING", "TRANSIENT", 1),
                ("RETRYING", "RUNNING", None, 2),
                ("RUNNING", "COMPLETED", None, 2),
            ],
        }

    def test_dependency(self, tmp_path: Path) -> None:
        """Dependency: two downstream steps fail DEPENDENCY_FAILURE, the other branch completes."""
        db = tmp_path / "d.db"
        result, rows = _run("test/dependency/test_dependency", db)
        assert result.state == "FAILED"
        blocked = [("PENDING", "FAILED", "DEPENDENCY_FAILURE", 0)]
        assert _sequences(rows) == {
            "PIPELINE:test-dependency": [START, ("RUNNING", "FAILED", "PERMANENT", 0)],
            "STEP:extract_data": [START, ("RUNNING", "FAILED", "PERMANENT", 0)],
            "STEP:transform_data": blocked,
            "STEP:load_data": blocked,
            "STEP:audit_report": [START, DONE],
        }
        _pipeline_ends_last(rows)
        store = SQLiteStore(db)
        try:
            failures: Mapping[str, Any] = {
                r["error_type"]: r["failure_count"] for r in run_query(store, "failures")
            }
        finally:
            store.close()
        # The failed step counts once, not again as the pipeline it failed.
        assert failures == {"PERMANENT": 1, "DEPENDENCY_FAILURE": 2}
