"""Tests for executor._threads and sync processors: a blocking `def` never stalls the run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from executor import processors
from executor._threads import SyncRunner
from executor.config import parse_pipeline_config
from executor.processors import ProcessorContext
from executor.runner import run_pipeline
from statemachine import InMemorySink

RELEASE = threading.Event()
BLOCKED = threading.Event()


def blocking(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, int]:
    """Block the calling thread until the test releases it (a `time.sleep` stand-in)."""
    BLOCKED.set()
    RELEASE.wait(timeout=30)
    return {"rows_processed": 1}


def raising(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """A sync processor that fails transiently."""
    raise ConnectionError("connection reset by peer")


processors.register("tests.blocking", blocking, replace=True)  # type: ignore[arg-type]
processors.register("tests.sync_raising", raising, replace=True)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _release() -> Any:
    RELEASE.clear()
    BLOCKED.clear()
    yield
    RELEASE.set()  # let abandoned daemon threads end


_BLOCKED_YAML = """
pipeline_id: sync
timeout_minutes: 1
retry: {max_retries: 0}
steps:
  - {step_id: stuck, processor: tests.blocking, timeout_minutes: 0.001}
  - {step_id: other, processor: generic.noop}
"""


class TestSyncProcessors:
    """Sync processors run in threads, so timeouts and independent branches work for them."""

    def test_timeout_applies_and_independent_branch_runs(self) -> None:
        """A blocked sync step times out at its deadline while an independent step completes."""
        config = parse_pipeline_config(_BLOCKED_YAML, source="sync.yml")
        sink = InMemorySink()
        result = asyncio.run(run_pipeline(config, org_slug="acme", logger=sink))
        assert BLOCKED.is_set()
        assert result.step_states == {"stuck": "FAILED", "other": "COMPLETED"}
        stuck_end = [r for r in sink.records if r.entity_name == "stuck"][-1]
        assert stuck_end.error_type == "TIMEOUT"
        assert not RELEASE.is_set()  # the thread was still blocked when the step was recorded

    def test_sync_error_is_classified(self) -> None:
        """An exception from a sync processor is raised to the step and classified."""

        async def go() -> None:
            config = parse_pipeline_config(
                "pipeline_id: e\ntimeout_minutes: 1\nretry: {max_retries: 0}\n"
                "steps:\n  - {step_id: s, processor: tests.sync_raising}\n",
                source="e.yml",
            )
            result = await run_pipeline(config, org_slug="acme", logger=InMemorySink())
            assert result.error_type == "TRANSIENT"

        asyncio.run(go())


class TestSyncRunner:
    """The runner bounds live threads, holding a slot until the thread really ends."""

    def test_slot_held_until_thread_ends(self) -> None:
        """With one slot, a second call waits while the first thread is still blocked."""

        async def go() -> None:
            runner = SyncRunner(1)
            first = asyncio.create_task(runner.call(blocking, None, {}))
            await asyncio.to_thread(BLOCKED.wait, 10)
            first.cancel()  # the awaiting task gives up; the thread keeps running
            second = asyncio.create_task(runner.call(lambda: "done"))
            await asyncio.sleep(0)
            assert runner.alive == 1
            assert not second.done()
            RELEASE.set()
            assert await second == "done"
            assert runner.alive == 0

        asyncio.run(go())

    def test_rejects_zero_limit(self) -> None:
        """A limit below 1 is refused."""
        with pytest.raises(ValueError, match="limit"):
            SyncRunner(0)
