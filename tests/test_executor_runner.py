"""Tests for executor.runner: run_pipeline's semantics, checked on the records it emits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from classifier.errors import ValidationError
from executor import processors
from executor.config import PipelineConfig, StepConfig, parse_pipeline_config
from executor.processors import ProcessorContext, processor
from executor.runner import PipelineResult, run_pipeline
from statemachine import InMemorySink, TransitionRecord

Row = tuple[str, str, str, str | None, int]

# Shared state for the test processors below, reset per test.
GATES: dict[str, asyncio.Event] = {}
ACTIVE = {"now": 0, "peak": 0}


@processor("tests.gate")
async def gate_processor(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Signal `started`, then wait until the test opens `release` (never, if absent)."""
    GATES[f"started:{context.step_id}"].set()
    await GATES[str(config.get("release", "never"))].wait()


@processor("tests.count")
async def count_processor(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Track how many steps run at once; wait until `width` of them overlap, then finish."""
    ACTIVE["now"] += 1
    ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    if ACTIVE["now"] >= int(config["width"]):
        GATES["wide"].set()
    await GATES["wide"].wait()
    await asyncio.sleep(0)
    ACTIVE["now"] -= 1


@processor("tests.weird_result")
async def weird_result(context: ProcessorContext, config: Mapping[str, Any]) -> str:
    """Return something that is not a dict."""
    return "not a dict"


def sync_processor(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, int]:
    """A plain function plug-in: its return value is used as is."""
    return {"rows_processed": 4}


processors.register("tests.sync", sync_processor, replace=True)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _reset() -> None:
    GATES.clear()
    ACTIVE.update(now=0, peak=0)


def _config(steps: str, **top: Any) -> PipelineConfig:
    head = {"pipeline_id": "p", "timeout_minutes": 1, **top}
    lines = [f"{k}: {v}" for k, v in head.items()]
    lines.append("retry: {max_retries: 2, base_delay_seconds: 0.001, max_delay_seconds: 0.01}")
    return parse_pipeline_config("\n".join(lines) + "\nsteps:\n" + steps, source="t.yml")


def _run(cfg: PipelineConfig | str, sink: InMemorySink, **kwargs: Any) -> PipelineResult:
    async def go() -> PipelineResult:
        for key in ("never", "wide"):
            GATES.setdefault(key, asyncio.Event())
        if isinstance(cfg, PipelineConfig):
            for s in cfg.steps:
                GATES[f"started:{s.step_id}"] = asyncio.Event()
        return await run_pipeline(cfg, org_slug="acme", logger=sink, **kwargs)

    return asyncio.run(go())


def _rows(sink: InMemorySink, entity: str | None = None) -> list[Row]:
    return [
        (r.entity_name, r.from_state, r.to_state, r.error_type, r.retry_count)
        for r in sink.records
        if entity is None or r.entity_name == entity
    ]


def _last(sink: InMemorySink, entity: str) -> TransitionRecord:
    return [r for r in sink.records if r.entity_name == entity][-1]


class TestOutcomes:
    """Successful, retried and failed steps produce the documented rows."""

    def test_chain_completes(self) -> None:
        """A two-step chain: every entity PENDING -> RUNNING -> COMPLETED, pipeline last."""
        cfg = _config(
            "  - {step_id: a, processor: generic.noop, config: {rows_processed: 10}}\n"
            "  - {step_id: b, processor: generic.noop, depends_on: [a]}\n"
        )
        sink = InMemorySink()
        result = _run(cfg, sink)
        assert result.state == "COMPLETED"
        assert result.ok
        assert result.step_states == {"a": "COMPLETED", "b": "COMPLETED"}
        assert _rows(sink) == [
            ("p", "PENDING", "RUNNING", None, 0),
            ("a", "PENDING", "RUNNING", None, 0),
            ("a", "RUNNING", "COMPLETED", None, 0),
            ("b", "PENDING", "RUNNING", None, 0),
            ("b", "RUNNING", "COMPLETED", None, 0),
            ("p", "RUNNING", "COMPLETED", None, 0),
        ]
        assert _last(sink, "a").metadata.get("rows_processed") == 10
        assert {r.pipeline_logging_id for r in sink.records} == {result.pipeline_logging_id}

    def test_non_dict_result_completes(self) -> None:
        """A processor returning a non-dict still completes, without rows_processed."""
        sink = InMemorySink()
        result = _run(_config("  - {step_id: a, processor: tests.weird_result}\n"), sink)
        assert result.state == "COMPLETED"
        assert "rows_processed" not in _last(sink, "a").metadata

    def test_sync_processor(self) -> None:
        """A non-async processor works and reports rows_processed."""
        sink = InMemorySink()
        result = _run(_config("  - {step_id: a, processor: tests.sync}\n"), sink)
        assert result.state == "COMPLETED"
        assert _last(sink, "a").metadata.get("rows_processed") == 4

    def test_transient_then_success(self) -> None:
        """A flaky step retries with RETRYING rows and increasing retry_count, then completes."""
        sink = InMemorySink()
        cfg = _config("  - {step_id: f, processor: generic.flaky, config: {failures: 2}}\n")
        result = _run(cfg, sink)
        assert result.state == "COMPLETED"
        assert _rows(sink, "f") == [
            ("f", "PENDING", "RUNNING", None, 0),
            ("f", "RUNNING", "RETRYING", "TRANSIENT", 0),
            ("f", "RETRYING", "RUNNING", None, 1),
            ("f", "RUNNING", "RETRYING", "TRANSIENT", 1),
            ("f", "RETRYING", "RUNNING", None, 2),
            ("f", "RUNNING", "COMPLETED", None, 2),
        ]
        assert result.retry_counts == {"f": 2}

    def test_retries_exhausted(self) -> None:
        """After max_retries, a transient failure is FAILED and fails the pipeline."""
        sink = InMemorySink()
        cfg = _config("  - {step_id: f, processor: generic.flaky, config: {failures: 9}}\n")
        result = _run(cfg, sink)
        assert result.state == "FAILED"
        assert result.error_type == "TRANSIENT"
        assert result.failed_step == "f"
        assert _rows(sink, "f")[-1] == ("f", "RUNNING", "FAILED", "TRANSIENT", 2)
        assert _rows(sink, "p")[-1] == ("p", "RUNNING", "FAILED", "TRANSIENT", 0)

    def test_step_max_retries_override(self) -> None:
        """A step's max_retries overrides the pipeline default."""
        sink = InMemorySink()
        cfg = _config(
            "  - {step_id: f, processor: generic.flaky, max_retries: 0, config: {failures: 1}}\n"
        )
        assert _run(cfg, sink).state == "FAILED"
        assert _rows(sink, "f") == [
            ("f", "PENDING", "RUNNING", None, 0),
            ("f", "RUNNING", "FAILED", "TRANSIENT", 0),
        ]

    def test_permanent_failure_not_retried(self) -> None:
        """A permanent error fails at once with the error context in the record."""
        sink = InMemorySink()
        cfg = _config(
            "  - step_id: x\n    processor: generic.fail\n"
            "    config: {exception: PermissionError, message: '403 Forbidden'}\n"
        )
        result = _run(cfg, sink)
        assert _rows(sink, "x")[-1] == ("x", "RUNNING", "FAILED", "PERMANENT", 0)
        assert result.error_type == "PERMANENT"
        record = _last(sink, "x")
        assert "403 Forbidden" in (record.error_message or "")
        assert record.metadata.get("error_class") == "builtins.PermissionError"

    def test_step_timeout_is_retried_then_failed(self) -> None:
        """A step past its timeout is TIMEOUT, retried by policy, then FAILED with TIMEOUT."""
        sink = InMemorySink()
        cfg = _config(
            "  - {step_id: s, processor: generic.slow_processor, timeout_minutes: 0.0005,"
            " max_retries: 1, config: {sleep_seconds: 30}}\n"
        )
        result = _run(cfg, sink)
        assert _rows(sink, "s") == [
            ("s", "PENDING", "RUNNING", None, 0),
            ("s", "RUNNING", "RETRYING", "TIMEOUT", 0),
            ("s", "RETRYING", "RUNNING", None, 1),
            ("s", "RUNNING", "FAILED", "TIMEOUT", 1),
        ]
        assert result.state == "FAILED"
        assert result.error_type == "TIMEOUT"


class TestDependencies:
    """Upstream failures block dependents; independent branches still run."""

    def test_dependents_fail_independent_completes(self) -> None:
        """Dependents go PENDING -> FAILED (DEPENDENCY_FAILURE) naming the failed step."""
        sink = InMemorySink()
        cfg = _config(
            "  - {step_id: bad, processor: generic.fail, config: {exception: PermissionError}}\n"
            "  - {step_id: mid, processor: generic.noop, depends_on: [bad]}\n"
            "  - {step_id: end, processor: generic.noop, depends_on: [mid]}\n"
            "  - {step_id: other, processor: generic.noop}\n"
        )
        result = _run(cfg, sink)
        assert result.state == "FAILED"
        assert result.error_type == "PERMANENT"
        assert result.step_states == {
            "bad": "FAILED",
            "mid": "FAILED",
            "end": "FAILED",
            "other": "COMPLETED",
        }
        for step in ("mid", "end"):
            assert _rows(sink, step) == [(step, "PENDING", "FAILED", "DEPENDENCY_FAILURE", 0)]
            assert "bad" in (_last(sink, step).reason or "")
        assert _rows(sink)[-1] == ("p", "RUNNING", "FAILED", "PERMANENT", 0)

    def test_fail_fast_cancels_running_branch(self) -> None:
        """With fail_fast, a running independent step is cancelled and FAILED."""
        sink = InMemorySink()
        cfg = _config(
            "  - {step_id: hang, processor: tests.gate}\n"
            "  - {step_id: bad, processor: generic.fail, depends_on: [], config: {}}\n"
            "  - {step_id: after, processor: generic.noop, depends_on: [hang]}\n",
        )
        result = _run(cfg, sink, fail_fast=True)
        assert result.state == "FAILED"
        assert result.failed_step == "bad"
        assert _rows(sink, "hang")[-1][1:4] == ("RUNNING", "FAILED", "DEPENDENCY_FAILURE")
        assert _rows(sink, "after") == [("after", "PENDING", "FAILED", "DEPENDENCY_FAILURE", 0)]

    def test_concurrency_bound(self) -> None:
        """No more than `concurrency` steps run at once, and that many do overlap."""
        steps = "".join(
            f"  - {{step_id: c{i}, processor: tests.count, config: {{width: 2}}}}\n"
            for i in range(5)
        )
        result = _run(_config(steps, concurrency=2), InMemorySink())
        assert result.state == "COMPLETED"
        assert ACTIVE["peak"] == 2

    def test_concurrency_override(self) -> None:
        """The concurrency argument overrides the config."""
        steps = "".join(
            f"  - {{step_id: c{i}, processor: tests.count, config: {{width: 1}}}}\n"
            for i in range(4)
        )
        _run(_config(steps, concurrency=4), InMemorySink(), concurrency=1)
        assert ACTIVE["peak"] == 1


class TestDeadline:
    """The pipeline deadline ends every step, then the pipeline, as TIMEOUT."""

    def test_pipeline_timeout(self) -> None:
        """Running, retrying and pending steps all end FAILED (TIMEOUT); pipeline TIMEOUT."""
        sink = InMemorySink()
        cfg = parse_pipeline_config(
            "pipeline_id: p\ntimeout_minutes: 0.002\n"
            "retry: {base_delay_seconds: 60, max_delay_seconds: 60}\n"
            "steps:\n"
            "  - {step_id: slow, processor: generic.slow_processor, config: {sleep_seconds: 30}}\n"
            "  - {step_id: later, processor: generic.noop, depends_on: [slow]}\n"
            "  - {step_id: flaky, processor: generic.flaky, config: {failures: 5}}\n"
        )
        result = _run(cfg, sink)
        assert result.state == "TIMEOUT"
        assert result.error_type == "TIMEOUT"
        assert _rows(sink, "slow")[-1] == ("slow", "RUNNING", "FAILED", "TIMEOUT", 0)
        assert _rows(sink, "later") == [("later", "PENDING", "FAILED", "TIMEOUT", 0)]
        assert _rows(sink, "flaky")[-1] == ("flaky", "RETRYING", "FAILED", "TIMEOUT", 0)
        assert _rows(sink)[-1] == ("p", "RUNNING", "TIMEOUT", "TIMEOUT", 0)

    def test_cancellation_leaves_nothing_running(self) -> None:
        """Cancelling the run fails every step and the pipeline, then re-raises."""
        sink = InMemorySink()
        cfg = _config(
            "  - {step_id: hang, processor: tests.gate}\n"
            "  - {step_id: next, processor: generic.noop, depends_on: [hang]}\n"
        )

        async def go() -> None:
            GATES["never"] = asyncio.Event()
            GATES["started:hang"] = asyncio.Event()
            task = asyncio.create_task(run_pipeline(cfg, org_slug="acme", logger=sink))
            await GATES["started:hang"].wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())
        assert _rows(sink, "hang")[-1][1:3] == ("RUNNING", "FAILED")
        assert _rows(sink, "next") == [("next", "PENDING", "FAILED", "UNKNOWN", 0)]
        assert _rows(sink)[-1][:3] == ("p", "RUNNING", "FAILED")
        assert "cancelled" in (sink.records[-1].reason or "")


class TestValidation:
    """A missing or invalid config still leaves the seed's VALIDATION_ERROR trail."""

    def test_missing_pipeline(self, tmp_path: Path) -> None:
        """A name with no file: PIPELINE PENDING -> RUNNING -> FAILED (VALIDATION_ERROR)."""
        sink = InMemorySink()
        result = _run("invalid/domain/pipeline", sink, config_dir=tmp_path)
        assert _rows(sink) == [
            ("invalid/domain/pipeline", "PENDING", "RUNNING", None, 0),
            ("invalid/domain/pipeline", "RUNNING", "FAILED", "VALIDATION_ERROR", 0),
        ]
        assert result.state == "FAILED"
        assert result.error_type == "VALIDATION_ERROR"
        assert "not found" in (result.error_message or "")

    def test_invalid_config_object(self) -> None:
        """A PipelineConfig built in code is validated too."""
        cfg = PipelineConfig(pipeline_id="p", steps=(StepConfig(step_id="a", processor="no.such"),))
        sink = InMemorySink()
        result = _run(cfg, sink)
        assert result.error_type == "VALIDATION_ERROR"
        assert "unknown processor" in (sink.records[-1].error_message or "")

    def test_bad_org_raises(self) -> None:
        """An invalid org slug raises before anything is emitted."""
        sink = InMemorySink()
        with pytest.raises(ValidationError, match="org_slug"):
            asyncio.run(run_pipeline("x/y/z", org_slug="../evil", logger=sink))
        assert sink.records == []


class TestMemory:
    """A finished run is freed by reference counting: it leaves no cyclic garbage."""

    def test_finished_run_leaves_no_cycles(self, tmp_path: Path) -> None:
        """With a store (so a lease too), no run, step or lease object is left to the collector."""
        import gc

        from persistence.stores.sqlite import SQLiteStore

        store = SQLiteStore(tmp_path / "a.db")
        cfg = _config(
            "".join(f"  - {{step_id: s{i}, processor: generic.noop}}\n" for i in range(3))
        )
        _run(cfg, InMemorySink(), store=store)  # imports and one-time set-up
        gc.collect()
        gc.disable()
        try:
            sink = InMemorySink()
            result = _run(cfg, sink, store=store)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            ours = [
                type(o).__name__
                for o in gc.garbage
                if type(o).__name__ in {"PipelineRun", "StepRun", "LeaseKeeper", "FencedSink"}
            ]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
            store.close()
        assert result.state == "COMPLETED"
        assert len(sink.records) == 8  # the run really ran: 1 + 3 steps, 2 transitions each
        assert ours == []
