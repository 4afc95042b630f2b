"""Pipeline-run and step-log rows derived from TransitionRecords, so no one calls log_* twice.

The executor never calls log_pipeline_* / log_step_*: every row comes from the state machines'
records. derive_run_rows() maps the edges that end a run, an attempt or a step onto the same row
builders (and so the same insert keys) log_pipeline_end / log_step_end use; a caller who also
logs explicitly writes the same ids, which every store de-duplicates.

The tables read like the seed's log_pipeline_end / log_step_end rows: one row per finished run
and one per step attempt, each holding its final status, start and end time and error_context.
No start rows are derived: append-only stores (BigQuery streaming) cannot update a RUNNING row,
which would otherwise sit next to its end row for ever. Live runs are in
org_meta_state_transitions (`pipestate runs`, the stuck query).

Edges and rows:
- PIPELINE RUNNING->COMPLETED/FAILED/TIMEOUT: the run's row, status = to_state.
- STEP RUNNING->COMPLETED/FAILED: the attempt's row, status = to_state.
- STEP RUNNING->RETRYING: the attempt's row with status FAILED (the attempt did fail) and
  metadata "will_retry": true; RETRYING is the step's state, not the attempt's outcome.
- STEP PENDING->FAILED (an upstream step failed, the run was cancelled or timed out before it
  started) and RETRYING->FAILED (abandoned while waiting to retry): a FAILED row for the attempt
  that never ran, with metadata "never_started": true and zero duration.
Attempts count from 1, as ProcessorContext.attempt does. step_type (the processor) and
step_index (the position in the config) come from the record's metadata, where the executor
puts them. Every other edge yields nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, TypeAlias

from persistence._rows import pipeline_run_row, step_log_row
from persistence.stores.base import PIPELINE_RUNS, STEP_LOGS
from statemachine.records import TransitionRecord

if TYPE_CHECKING:
    from persistence.stores._sqlite_rows import RecordValues

# A record, or the writer process's RecordValues of one (the same fields, read by name).
Derivable: TypeAlias = "TransitionRecord | RecordValues"

RUNNING = "RUNNING"
PIPELINE_ENDS = frozenset({"COMPLETED", "FAILED", "TIMEOUT"})
STEP_ENDS = frozenset({"COMPLETED", "FAILED", "RETRYING"})
# A step that fails from these states ends an attempt that never ran.
NEVER_STARTED_FROM = frozenset({"PENDING", "RETRYING"})
# Every edge above ends in one of these: a record into any other state implies no row.
DERIVING_STATES = PIPELINE_ENDS | STEP_ENDS | {"FAILED"}
# Metadata keys that are columns of org_meta_step_logs (moved out of its metadata).
STEP_COLUMNS = ("step_type", "step_index")

Row = tuple[str, dict[str, Any]]


def error_context(record: Derivable) -> dict[str, Any] | None:
    """The seed's error_context of a failed record (None when the record carries no error)."""
    return error_context_of(
        record.error_type, record.metadata, record.retry_count, record.stack_trace_truncated
    )


def error_context_of(
    error_type: str | None, meta: dict[str, Any], retry_count: int, stack: str | None
) -> dict[str, Any] | None:
    """error_context from a record's fields (the writer child has no record: _wire_rows)."""
    if error_type is None:
        return None
    return {
        "error_type": error_type,
        "error_class": meta.get("error_class"),
        "is_retryable": meta.get("is_retryable"),
        "retry_count": retry_count,
        "stack_trace_truncated": stack,
    }


def ends_run(from_state: str, to_state: str) -> bool:
    """True for a PIPELINE edge that ends the run (its row in org_meta_pipeline_runs)."""
    return from_state == RUNNING and to_state in PIPELINE_ENDS


def step_outcome(
    from_state: str, to_state: str, retry_count: int
) -> tuple[int, str, dict[str, Any], bool] | None:
    """(attempt, status, extra metadata, never started) of a STEP edge's row; None: no row."""
    if to_state == "FAILED" and from_state in NEVER_STARTED_FROM:
        # PENDING: attempt 1 never ran; RETRYING: the retry (attempt retry_count + 2) never ran.
        attempt = 1 if from_state == "PENDING" else retry_count + 2
        return attempt, "FAILED", {"never_started": True}, True
    if from_state == RUNNING and to_state in STEP_ENDS:
        if to_state == "RETRYING":
            return retry_count + 1, "FAILED", {"will_retry": True}, False
        return retry_count + 1, to_state, {}, False
    return None


def _window(record: Derivable) -> tuple[dt.datetime, dt.datetime, int]:
    """(start, end, duration_ms) of the state just left, from the record's own timing."""
    end = record.transition_time
    duration = record.duration_in_state_ms
    return end - dt.timedelta(milliseconds=duration), end, duration


def _pipeline_rows(record: Derivable) -> list[Row]:
    from_state, to_state = record.from_state, record.to_state
    common: dict[str, Any] = {
        "pipeline_logging_id": record.pipeline_logging_id,
        "pipeline_id": record.entity_name,
        "org_slug": record.org_slug,
        "trigger_type": record.trigger_type,
        "user_id": record.user_id,
    }
    if ends_run(from_state, to_state):
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


def step_column_values(metadata: dict[str, Any]) -> tuple[str | None, int | None]:
    """(step_type, step_index) of a step record's metadata: None where missing or mistyped."""
    step_type = metadata.get("step_type")
    step_index = metadata.get("step_index")
    return (
        step_type if isinstance(step_type, str) else None,
        step_index if isinstance(step_index, int) and not isinstance(step_index, bool) else None,
    )


def step_columns(metadata: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """(step_type, step_index, the rest of the metadata) of a step record."""
    rest = {k: v for k, v in metadata.items() if k not in STEP_COLUMNS}
    return (*step_column_values(metadata), rest)


def _step_rows(record: Derivable) -> list[Row]:
    from_state, to_state = record.from_state, record.to_state
    if record.step_logging_id is None:  # not a step of a run: nothing to key the row on
        return []
    outcome = step_outcome(from_state, to_state, record.retry_count)
    if outcome is None:
        return []
    attempt, status, extra, never_started = outcome
    if never_started:
        start = end = record.transition_time
        duration = 0
    else:
        start, end, duration = _window(record)
    step_type, step_index, metadata = step_columns(record.metadata)
    row = step_log_row(
        phase="end",
        step_logging_id=record.step_logging_id,
        pipeline_logging_id=record.pipeline_logging_id,
        step_name=record.entity_name,
        step_type=step_type,
        step_index=step_index,
        attempt=attempt,
        org_slug=record.org_slug,
        trigger_type=record.trigger_type,
        user_id=record.user_id,
        status=status,
        start_time=start,
        end_time=end,
        duration_ms=duration,
        error_message=record.error_message,
        error_context=error_context(record),
        metadata={**metadata, **extra},
    )
    return [(STEP_LOGS, row)]


def derive_run_rows(record: Derivable) -> list[Row]:
    """The (table, row) pairs a record implies for the pipeline-run and step-log tables."""
    # Dispatch on the kind only: each helper checks from/to states before building anything.
    if record.entity_type == "PIPELINE":
        return _pipeline_rows(record)
    if record.entity_type == "STEP":
        return _step_rows(record)
    return []
