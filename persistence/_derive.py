"""Pipeline-run and step-log rows derived from TransitionRecords, so no one calls log_* twice.

The executor never calls log_pipeline_* / log_step_*: every row comes from the state machines'
records. derive_run_rows() maps the few edges that start or end a run or an attempt onto the
same row builders (and so the same insert keys) log_* uses; a caller who also logs explicitly
writes the same ids, which every store de-duplicates.

Edges and rows:
- PIPELINE PENDING->RUNNING: pipeline start row (RUNNING).
- PIPELINE RUNNING->COMPLETED/FAILED/TIMEOUT: pipeline end row, status = to_state.
- STEP PENDING->RUNNING, RETRYING->RUNNING: step start row of attempt retry_count (RUNNING).
- STEP RUNNING->COMPLETED/FAILED: step end row of that attempt, status = to_state.
- STEP RUNNING->RETRYING: step end row with status FAILED (the attempt did fail) and
  metadata "will_retry": true; RETRYING is the step's state, not the attempt's outcome.
- STEP PENDING->FAILED, RETRYING->FAILED: no row, since no attempt ran (the transition row
  already says why the step never ran or never ran again).
Every other edge yields nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from persistence._rows import pipeline_run_row, step_log_row
from persistence.stores.base import PIPELINE_RUNS, STEP_LOGS
from statemachine.records import TransitionRecord

RUNNING = "RUNNING"
PIPELINE_ENDS = frozenset({"COMPLETED", "FAILED", "TIMEOUT"})
STEP_STARTS_FROM = frozenset({"PENDING", "RETRYING"})
STEP_ENDS = frozenset({"COMPLETED", "FAILED", "RETRYING"})

Row = tuple[str, dict[str, Any]]


def error_context(record: TransitionRecord) -> dict[str, Any] | None:
    """The seed's error_context of a failed record (None when the record carries no error)."""
    if record.error_type is None:
        return None
    meta = record.metadata
    return {
        "error_type": record.error_type,
        "error_class": meta.get("error_class"),
        "is_retryable": meta.get("is_retryable"),
        "retry_count": record.retry_count,
        "stack_trace_truncated": record.stack_trace_truncated,
    }


def _window(record: TransitionRecord) -> tuple[dt.datetime, dt.datetime, int]:
    """(start, end, duration_ms) of the state just left, from the record's own timing."""
    end = record.transition_time
    duration = record.duration_in_state_ms
    return end - dt.timedelta(milliseconds=duration), end, duration


def _pipeline_rows(record: TransitionRecord) -> list[Row]:
    from_state, to_state = record.from_state, record.to_state
    common: dict[str, Any] = {
        "pipeline_logging_id": record.pipeline_logging_id,
        "pipeline_id": record.entity_name,
        "org_slug": record.org_slug,
        "trigger_type": record.trigger_type,
        "user_id": record.user_id,
    }
    if from_state == "PENDING" and to_state == RUNNING:
        row = pipeline_run_row(
            phase="start",
            status=RUNNING,
            start_time=record.transition_time,
            metadata=record.metadata,
            **common,
        )
        return [(PIPELINE_RUNS, row)]
    if from_state == RUNNING and to_state in PIPELINE_ENDS:
        start, end, duration = _window(record)
        row = pipeline_run_row(
            phase="end",
            status=to_state,
            start_time=start,
            end_time=end,
            duration_ms=duration,
            error_message=record.error_message,
            error_context=error_context(record),
            metadata=record.metadata,
            **common,
        )
        return [(PIPELINE_RUNS, row)]
    return []


def _step_rows(record: TransitionRecord) -> list[Row]:
    from_state, to_state = record.from_state, record.to_state
    if record.step_logging_id is None:  # not a step of a run: nothing to key the row on
        return []
    common: dict[str, Any] = {
        "step_logging_id": record.step_logging_id,
        "pipeline_logging_id": record.pipeline_logging_id,
        "step_name": record.entity_name,
        "step_type": None,
        "step_index": None,
        "attempt": record.retry_count,
        "org_slug": record.org_slug,
        "trigger_type": record.trigger_type,
        "user_id": record.user_id,
    }
    if to_state == RUNNING and from_state in STEP_STARTS_FROM:
        row = step_log_row(
            phase="start",
            status=RUNNING,
            start_time=record.transition_time,
            metadata=record.metadata,
            **common,
        )
        return [(STEP_LOGS, row)]
    if from_state == RUNNING and to_state in STEP_ENDS:
        start, end, duration = _window(record)
        metadata = record.metadata
        status = to_state
        if to_state == "RETRYING":
            metadata = {**metadata, "will_retry": True}
            status = "FAILED"
        row = step_log_row(
            phase="end",
            status=status,
            start_time=start,
            end_time=end,
            duration_ms=duration,
            error_message=record.error_message,
            error_context=error_context(record),
            metadata=metadata,
            **common,
        )
        return [(STEP_LOGS, row)]
    return []


def derive_run_rows(record: TransitionRecord) -> list[Row]:
    """The (table, row) pairs a record implies for the pipeline-run and step-log tables."""
    # Dispatch on the kind only: each helper checks from/to states before building anything.
    if record.entity_type == "PIPELINE":
        return _pipeline_rows(record)
    if record.entity_type == "STEP":
        return _step_rows(record)
    return []
