"""Tests for executor.cancellation: a cancelled run says who cancelled it, in every row."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from executor.cancellation import (
    CANCEL_SOURCES,
    CancelRequest,
    decode_cancel,
    request_cancel,
)
from executor.config import parse_pipeline_config
from executor.processors import ProcessorContext, processor
from executor.runner import run_pipeline
from statemachine import InMemorySink

STARTED: dict[str, asyncio.Event] = {}


@processor("tests.cancel_wait")
async def wait_forever(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Signal that the step started, then wait until cancelled."""
    STARTED[context.step_id].set()
    await asyncio.Event().wait()


_YAML = """
pipeline_id: cancel-me
timeout_minutes: 1
steps:
  - {step_id: a, processor: tests.cancel_wait}
  - {step_id: b, processor: generic.noop, depends_on: [a]}
"""


async def _cancelled_run(**cancel: Any) -> tuple[InMemorySink, asyncio.Task[Any]]:
    sink = InMemorySink()
    STARTED["a"] = asyncio.Event()
    config = parse_pipeline_config(_YAML, source="cancel.yml")
    task = asyncio.create_task(run_pipeline(config, org_slug="acme", logger=sink))
    await STARTED["a"].wait()
    if cancel:
        assert request_cancel(task, **cancel)
    else:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return sink, task


class TestRequestCancel:
    """request_cancel encodes the request; the executor records it on every final row."""

    def test_round_trip(self) -> None:
        """A request survives encoding into a CancelledError message and back."""
        request = CancelRequest("api", by="key_123")
        assert decode_cancel(asyncio.CancelledError(request.encode())) == request

    def test_unknown_message_is_shutdown(self) -> None:
        """A cancel without our message is recorded as source 'shutdown'."""
        assert decode_cancel(asyncio.CancelledError()).source == "shutdown"
        assert decode_cancel(asyncio.CancelledError("pipestate-cancel:{bad")).source == "shutdown"

    def test_refuses_unknown_source(self) -> None:
        """An unknown source is refused with the accepted ones named."""
        with pytest.raises(ValueError, match="source: expected one of"):
            request_cancel(None, source="nope")  # type: ignore[arg-type]

    @pytest.mark.parametrize("source", sorted(CANCEL_SOURCES - {"shutdown"}))
    def test_every_final_row_marked(self, source: str) -> None:
        """Each entity ends FAILED, with cancelled metadata and a reason starting 'Cancelled'."""

        async def go() -> None:
            by = "key_1" if source == "api" else None
            sink, _ = await _cancelled_run(source=source, by=by)
            finals = [r for r in sink.records if r.to_state == "FAILED"]
            assert {r.entity_name for r in finals} == {"cancel-me", "a", "b"}
            for record in finals:
                assert record.metadata["cancelled"] is True
                assert record.metadata["cancel_source"] == source
                assert record.metadata.get("cancelled_by") == by
                assert record.reason is not None
                assert record.reason.startswith("Cancelled")

        asyncio.run(go())

    def test_bare_cancel_is_marked_shutdown(self) -> None:
        """A bare task.cancel() still marks the rows as cancelled, source 'shutdown'."""

        async def go() -> None:
            sink, _ = await _cancelled_run()
            pipeline_end = [r for r in sink.records if r.entity_type == "PIPELINE"][-1]
            assert pipeline_end.metadata["cancelled"] is True
            assert pipeline_end.metadata["cancel_source"] == "shutdown"
            assert "cancelled_by" not in pipeline_end.metadata

        asyncio.run(go())


_FAIL_FAST_YAML = """
pipeline_id: ff
timeout_minutes: 1
fail_fast: true
retry: {max_retries: 0}
steps:
  - {step_id: slow, processor: tests.cancel_wait}
  - {step_id: boom, processor: generic.fail, config: {exception: PermissionError}}
"""


class TestFailFast:
    """Steps cancelled by fail_fast carry cancel_source fail_fast; the root failure does not."""

    def test_fail_fast_marks_only_the_cancelled(self) -> None:
        """The failing step's row is a plain failure; the cancelled sibling is marked."""

        async def go() -> InMemorySink:
            STARTED["slow"] = asyncio.Event()
            config = parse_pipeline_config(_FAIL_FAST_YAML, source="ff.yml")
            sink = InMemorySink()
            await run_pipeline(config, org_slug="acme", logger=sink)
            return sink

        sink = asyncio.run(go())
        by_step = {r.entity_name: r for r in sink.records if r.to_state == "FAILED"}
        assert "cancelled" not in by_step["boom"].metadata
        assert by_step["slow"].metadata["cancel_source"] == "fail_fast"
        assert by_step["slow"].reason.startswith("Cancelled")  # type: ignore[union-attr]
