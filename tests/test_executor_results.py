"""Tests for executor._results: a processor's whole return value is recorded, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from executor._results import RESULT_JSON_CHARS, RESULT_KEYS, result_metadata
from executor.config import parse_pipeline_config
from executor.processors import ProcessorContext, processor
from executor.runner import run_pipeline
from statemachine import InMemorySink


@processor("tests.orders_result")
async def orders(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return more than rows_processed, including a secret that must be scrubbed."""
    return {"rows_processed": 1234, "table": "raw.orders", "dsn": "postgres://u:hunter2@db/x"}


class TestResultMetadata:
    """result_metadata keeps every key of a mapping, within the bounds."""

    def test_whole_mapping_kept(self) -> None:
        """Every key of a small mapping is recorded."""
        assert result_metadata({"rows_processed": 3, "table": "t"}) == {
            "rows_processed": 3,
            "table": "t",
        }

    def test_non_mapping_under_result(self) -> None:
        """A non-mapping value is recorded under 'result'; None records nothing."""
        assert result_metadata("ok") == {"result": "ok"}
        assert result_metadata(None) == {}

    def test_key_bound(self) -> None:
        """More than RESULT_KEYS keys are cut, with the number omitted recorded."""
        meta = result_metadata({f"k{i}": i for i in range(RESULT_KEYS + 5)})
        assert meta["result_keys_omitted"] == 5
        assert len(meta) == RESULT_KEYS + 1

    def test_size_bound(self) -> None:
        """A result larger than RESULT_JSON_CHARS keeps small scalars and notes what was cut."""
        meta = result_metadata({"rows_processed": 7, "blob": ["x" * 100] * 500})
        assert meta["rows_processed"] == 7
        assert meta["result_truncated"] is True
        assert meta["result_json_chars"] > RESULT_JSON_CHARS
        assert meta["result_omitted"] == ["blob"]


def test_completed_row_records_the_whole_result() -> None:
    """The COMPLETED transition carries every returned key, secrets scrubbed."""

    async def go() -> None:
        config = parse_pipeline_config(
            "pipeline_id: r\ntimeout_minutes: 1\nsteps:\n"
            "  - {step_id: load, processor: tests.orders_result}\n",
            source="r.yml",
        )
        sink = InMemorySink()
        await run_pipeline(config, org_slug="acme", logger=sink)
        done = next(
            r for r in sink.records if r.to_state == "COMPLETED" and r.entity_type == "STEP"
        )
        assert done.metadata["rows_processed"] == 1234
        assert done.metadata["table"] == "raw.orders"
        assert "hunter2" not in done.metadata["dsn"]
        assert done.metadata["step_type"] == "tests.orders_result"
        assert done.metadata["step_index"] == 0

    asyncio.run(go())
