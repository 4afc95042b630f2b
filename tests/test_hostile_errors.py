"""Huge, binary, surrogate-laden and unprintable errors are recorded, bounded, and stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from classifier import create_error_context
from executor.config import PipelineConfig, RetryDefaults, StepConfig
from executor.processors import ProcessorContext, register, unregister
from executor.runner import PipelineResult, run_pipeline
from persistence import MetadataLogger, SQLiteStore
from persistence.stores.base import STATE_TRANSITIONS
from statemachine import InMemorySink, PipelineRun, StepRun, TransitionRecord
from tests.strategies.events import running_pipeline
from tests.strategies.hostile import (
    DB_PASSWORD,
    NonStrStr,
    RaisingStr,
    error_texts,
    hostile_messages,
    transition_rows,
    with_logger,
)

STACK_LIMIT = 2000
# The bound this suite holds error_message to (classifier.context.MAX_MESSAGE_CHARS).
MESSAGE_LIMIT = 8192
REASON_LIMIT = 2000
PROCESSOR = "hostile.raise_payload"


def _chained(depth: int) -> BaseException:
    error: BaseException | None = None
    for level in range(depth):
        try:
            raise ValueError(f"level {level}") from error
        except ValueError as exc:
            error = exc
    assert error is not None
    return error


def _cyclic_cause() -> BaseException:
    first, second = ValueError("first"), RuntimeError("second")
    first.__cause__, second.__cause__ = second, first
    return first


def _raised(error: BaseException) -> BaseException:
    """The error with a real traceback attached."""
    try:
        raise error
    except BaseException as exc:
        return exc


def hostile_errors() -> dict[str, BaseException]:
    """Named exceptions a careless or hostile processor might raise."""
    errors: dict[str, BaseException] = {
        name: _raised(RuntimeError(payload)) for name, payload in hostile_messages().items()
    }
    errors["raising_str"] = _raised(RaisingStr("unprintable"))
    errors["non_str_str"] = _raised(NonStrStr("not a str"))
    errors["huge_args"] = _raised(RuntimeError(*["a" * 1000] * 5000))
    errors["chain_3000"] = _chained(3000)
    errors["cyclic_cause"] = _raised(_cyclic_cause())
    errors["bytes_arg"] = _raised(ValueError(b"\xff\xfe\x00" * 1000))
    return errors


ERRORS = hostile_errors()


def _utf8(text: str | None) -> None:
    if text is not None:
        text.encode("utf-8")  # raises on lone surrogates: no store accepts them


def _check_record(record: TransitionRecord) -> None:
    """Every text field is bounded and encodable; metadata serialises."""
    assert record.to_state == "FAILED"
    assert record.error_type is not None
    assert record.stack_trace_truncated is None or len(record.stack_trace_truncated) <= STACK_LIMIT
    assert record.error_message is not None
    assert len(record.error_message) <= MESSAGE_LIMIT
    assert record.reason is not None
    assert len(record.reason) <= REASON_LIMIT
    for text in (record.reason, record.error_message, record.stack_trace_truncated):
        _utf8(text)
    json.loads(record.to_row()["metadata"])


class TestErrorContext:
    """classifier.create_error_context survives every hostile exception."""

    @pytest.mark.parametrize("name", list(ERRORS))
    def test_context_is_bounded_and_serialisable(self, name: str) -> None:
        """The context is JSON-serialisable, stack_trace_truncated <= 2000, message <= 8192."""
        ctx = create_error_context(ERRORS[name], "step", retry_count=1)
        json.dumps(ctx)
        assert ctx["stack_trace_truncated"] is None or len(ctx["stack_trace_truncated"]) <= 2000
        assert ctx["error_message"] is None or len(ctx["error_message"]) <= MESSAGE_LIMIT
        assert ctx["stack_trace"] is None or len(ctx["stack_trace"]) <= 64 * 1024
        assert ctx["error_class"].endswith(type(ERRORS[name]).__qualname__)

    def test_secret_cut_at_the_message_bound_is_not_half_kept(self) -> None:
        """A DSN straddling the 8192-character cut must not leave part of its password behind
        (truncating before redacting keeps 'postgresql://etl:S3cr3' unmasked)."""
        message = "x" * (MESSAGE_LIMIT - 22) + f"postgresql://etl:{DB_PASSWORD}@db:5432/x"
        ctx = create_error_context(RuntimeError(message), "step")
        assert DB_PASSWORD[:5] not in ctx["error_message"]


class TestStepRunFail:
    """StepRun.fail / retry and PipelineRun.fail take any exception; the transition stands."""

    @pytest.mark.parametrize("name", list(ERRORS))
    def test_fail_records_bounded_fields(self, name: str) -> None:
        """fail(error) moves the step to FAILED with bounded, encodable fields."""
        sink = InMemorySink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        step.start()
        record = step.fail(ERRORS[name])
        assert step.state == "FAILED"
        _check_record(record)

    @pytest.mark.parametrize("name", ["huge", "surrogates", "raising_str", "binary"])
    def test_retry_then_pipeline_fail(self, name: str) -> None:
        """retry(error) and the pipeline's fail(error) are as robust as a step's fail."""
        sink = InMemorySink()
        pipeline = PipelineRun.create("p", org_slug="o", sink=sink)
        pipeline.start()
        step = StepRun.create("s", pipeline=pipeline)
        step.start()
        assert step.retry(ERRORS[name]).to_state == "RETRYING"
        _check_record(step.fail(ERRORS[name]))
        _check_record(pipeline.fail(ERRORS[name], reason=f"caller reason {'r' * 50_000}"))

    @settings(max_examples=60, deadline=None)
    @given(error_texts(), error_texts())
    def test_any_text_as_message_and_reason(self, message: str, reason: str) -> None:
        """Any text as the error message or the caller's reason yields an encodable record."""
        sink = InMemorySink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        step.start()
        _check_record(step.fail(RuntimeError(message), reason=reason))


class TestStoredErrors:
    """Failure records with hostile errors land in SQLite through MetadataLogger."""

    def test_every_hostile_failure_lands(self, tmp_path: Path) -> None:
        """One failed step per hostile error; all rows land, none is dropped, all bounded."""
        db = tmp_path / "errors.db"

        async def body(logger: MetadataLogger) -> int:
            pipeline = PipelineRun.create("p", org_slug="o", sink=logger)
            pipeline.start()
            for name, error in ERRORS.items():
                step = StepRun.create(name, pipeline=pipeline)
                step.start()
                step.fail(error)
            pipeline.fail(ERRORS["huge"])
            return 2 + 2 * len(ERRORS)

        expected, depths = with_logger(db, body)
        rows = transition_rows(db)
        assert len(rows) == expected
        assert depths["state_transition"]["rows_dropped"] == 0
        for row in rows:
            assert len(row["stack_trace_truncated"] or "") <= STACK_LIMIT
            assert len(row["error_message"] or "") <= MESSAGE_LIMIT
            assert len(row["reason"] or "") <= REASON_LIMIT


class TestUnencodableRows:
    """A row the store cannot encode must reject itself only, not its whole batch."""

    def _rows(self, bad_field: str) -> list[dict[str, Any]]:
        sink = InMemorySink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        step.start()
        step.complete()
        rows = [r.to_row() for r in sink.records]
        bad = dict(rows[0], transition_id="bad-row")
        bad[bad_field] = "lone \ud800 surrogate"
        return [rows[0], bad, rows[1]]

    @pytest.mark.parametrize("field", ["entity_name", "reason", "org_slug"])
    def test_sqlite_write_batch_rejects_only_the_bad_row(self, tmp_path: Path, field: str) -> None:
        """write_batch with one lone-surrogate row among good rows writes the good rows and
        rejects (or repairs) the bad one; it does not raise UnicodeEncodeError for the batch."""
        store = SQLiteStore(tmp_path / "enc.db")
        try:
            result = store.write_batch(STATE_TRANSITIONS, self._rows(field))
        finally:
            store.close()
        assert result.written + len(result.rejected) == 3
        assert result.written >= 2
        assert [e.row_id for e in result.rejected] in ([], ["bad-row"])

    def test_logger_batch_survives_a_surrogate_from_log_state_transition(
        self, tmp_path: Path
    ) -> None:
        """A lone surrogate in log_state_transition(reason=...) must not drop the records
        queued in the same batch (today the whole batch is dropped as store_rejected)."""
        db = tmp_path / "batch.db"

        async def body(logger: MetadataLogger) -> None:
            pipeline = PipelineRun.create("p", org_slug="o", sink=logger)
            pipeline.start()
            await logger.log_state_transition(
                pipeline_logging_id=pipeline.pipeline_logging_id,
                from_state="RUNNING",
                to_state="FAILED",
                entity_type="STEP",
                entity_name="s",
                org_slug="o",
                reason="lone \ud800 surrogate",
            )
            pipeline.complete()

        _, depths = with_logger(db, body, batch_size=10, flush_interval_seconds=1.0)
        assert len(transition_rows(db)) >= 2
        assert depths["state_transition"]["rows_written"] >= 2


@pytest.fixture
def raising_processor() -> Iterator[dict[str, BaseException]]:
    """Register a processor that raises the exception named by its step config's 'error'."""
    chosen: dict[str, BaseException] = {}

    async def raise_payload(context: ProcessorContext, config: Mapping[str, Any]) -> None:
        raise chosen[str(config["error"])]

    register(PROCESSOR, raise_payload, replace=True)
    try:
        yield chosen
    finally:
        unregister(PROCESSOR)


def _config(*step_errors: str, pipeline_id: str = "hostile") -> PipelineConfig:
    return PipelineConfig(
        pipeline_id=pipeline_id,
        retry=RetryDefaults(max_retries=0),
        steps=tuple(
            StepConfig(step_id=f"s{i}", processor=PROCESSOR, config={"error": name})
            for i, name in enumerate(step_errors)
        ),
    )


class TestProcessorErrors:
    """A processor raising a hostile error fails its pipeline cleanly; the next one runs."""

    @pytest.mark.parametrize("name", list(ERRORS))
    def test_pipeline_fails_cleanly_and_next_runs(
        self, tmp_path: Path, raising_processor: dict[str, BaseException], name: str
    ) -> None:
        """run_pipeline returns FAILED (no exception), every row lands, a later run completes."""
        raising_processor[name] = ERRORS[name]
        db = tmp_path / "run.db"
        good = PipelineConfig(
            pipeline_id="after",
            steps=(StepConfig(step_id="ok", processor="generic.noop"),),
        )

        async def body(logger: MetadataLogger) -> list[PipelineResult]:
            bad = await run_pipeline(_config(name), org_slug="org", logger=logger)
            after = await run_pipeline(good, org_slug="org", logger=logger)
            return [bad, after]

        (bad, after), depths = with_logger(db, body)
        assert bad.state == "FAILED"
        assert after.state == "COMPLETED"
        rows = transition_rows(db)
        assert len(rows) == 4 + 4
        assert depths["state_transition"]["rows_dropped"] == 0
        failed = [r for r in rows if r["to_state"] == "FAILED"]
        assert len(failed) == 2
        for row in failed:
            assert len(row["reason"]) <= REASON_LIMIT
            assert len(row["error_message"]) <= MESSAGE_LIMIT

    def test_generic_fail_with_a_10mb_message(self, tmp_path: Path) -> None:
        """The built-in generic.fail processor with a 10 MB message stores bounded fields."""
        config = PipelineConfig(
            pipeline_id="huge",
            retry=RetryDefaults(max_retries=0),
            steps=(
                StepConfig(
                    step_id="boom",
                    processor="generic.fail",
                    config={"exception": "ValueError", "message": "M" * (10 * 1024 * 1024)},
                ),
            ),
        )
        db = tmp_path / "huge.db"

        async def body(logger: MetadataLogger) -> PipelineResult:
            return await run_pipeline(config, org_slug="org", logger=logger)

        result, _ = with_logger(db, body)
        assert result.state == "FAILED"
        for row in transition_rows(db):
            assert len(row["error_message"] or "") <= MESSAGE_LIMIT
            assert len(row["reason"] or "") <= REASON_LIMIT
            assert len(row["stack_trace_truncated"] or "") <= STACK_LIMIT

    def test_in_memory_run_with_unprintable_error(
        self, raising_processor: dict[str, BaseException]
    ) -> None:
        """Without any store: an exception whose __str__ raises must not escape run_pipeline."""
        raising_processor["raising_str"] = ERRORS["raising_str"]
        sink = InMemorySink()
        result = asyncio.run(run_pipeline(_config("raising_str"), org_slug="org", logger=sink))
        assert result.state == "FAILED"
        assert sink.records[-1].entity_type == "PIPELINE"
        assert sink.records[-1].to_state == "FAILED"
