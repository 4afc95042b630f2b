"""Rows for log_pipeline_* / log_step_*, and TransitionRecords for log_state_transition."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from persistence._json_text import plain_json
from statemachine._scrub import encodable
from statemachine.ids import uuid7_str
from statemachine.records import TransitionRecord, dumps_metadata

_UTC = dt.UTC
# dumps_metadata's output for plain JSON: sorted keys, non-ASCII kept (see merged_metadata).
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def utc(value: dt.datetime | None) -> dt.datetime:
    """An aware UTC datetime; None means now, a naive value is taken as UTC (datetime.utcnow())."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    if value.tzinfo is _UTC:  # already UTC (every record's time): skip astimezone()
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _text(value: object) -> str:
    """A state or error type as plain text: an enum's value, else str()."""
    return str(getattr(value, "value", value))


def run_log_id(pipeline_logging_id: str, phase: str) -> str:
    """Deterministic insert key of a pipeline-run row: a retried write never duplicates."""
    return f"{pipeline_logging_id}:{phase}"


def step_log_id(step_logging_id: str, attempt: int, phase: str) -> str:
    """Deterministic insert key of a step-log row."""
    return f"{step_logging_id}:{attempt}:{phase}"


def merged_metadata(metadata: dict[str, Any] | None, error_context: dict[str, Any] | None) -> str:
    """The metadata JSON with error_context merged in under "error_context", as the seed shows."""
    if not metadata and error_context is None:
        return "{}"  # what dumps_metadata({}) returns; most derived start rows
    merged = dict(metadata or {})
    if error_context is not None:
        merged["error_context"] = error_context
    if plain_json is not None:
        try:
            return encodable(plain_json(merged))
        except Exception:  # not plain JSON, or not finite: dumps_metadata's own path
            return dumps_metadata(merged)
    try:
        # Plain JSON values (the usual case) need no `default`; one encoder built once is
        # cheaper than json.dumps(**kwargs). Anything else takes dumps_metadata's own path.
        text = _ENCODER.encode(merged)
    except Exception:
        return dumps_metadata(merged)
    if "NaN" in text or "Infinity" in text:
        return dumps_metadata(merged)
    return encodable(text)


def _duration_ms(start: dt.datetime, end: dt.datetime | None, given: int | None) -> int | None:
    """Explicit duration wins; else end - start in whole milliseconds (never negative)."""
    if given is not None:
        return int(given)
    if end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def _timing_fields(
    phase: str,
    start_time: dt.datetime | None,
    end_time: dt.datetime | None,
    duration_ms: int | None,
) -> dict[str, Any]:
    """start_time, end_time (set on an end row), run_date and duration_ms of a run or step row."""
    start = utc(start_time)
    end = utc(end_time) if (end_time is not None or phase == "end") else None
    return {
        "start_time": start.isoformat(),
        "end_time": None if end is None else end.isoformat(),
        "run_date": start.date().isoformat(),
        "duration_ms": _duration_ms(start, end, duration_ms),
    }


def pipeline_run_row(
    *,
    phase: str,
    pipeline_logging_id: str,
    pipeline_id: str,
    org_slug: str | None,
    status: str,
    start_time: dt.datetime | None,
    end_time: dt.datetime | None = None,
    duration_ms: int | None = None,
    error_message: str | None = None,
    metadata: dict[str, Any] | None = None,
    error_context: dict[str, Any] | None = None,
    trigger_type: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """One org_meta_pipeline_runs row; phase is "start" or "end"."""
    return {
        "run_log_id": run_log_id(pipeline_logging_id, phase),
        "pipeline_logging_id": pipeline_logging_id,
        "org_slug": org_slug,
        "pipeline_id": pipeline_id,
        "status": status,
        **_timing_fields(phase, start_time, end_time, duration_ms),
        "error_message": error_message,
        "metadata": merged_metadata(metadata, error_context),
        "trigger_type": trigger_type,
        "user_id": user_id,
    }


def step_log_row(
    *,
    phase: str,
    step_logging_id: str,
    pipeline_logging_id: str,
    org_slug: str | None,
    step_name: str,
    status: str,
    start_time: dt.datetime | None,
    step_type: str | None = None,
    step_index: int | None = None,
    attempt: int = 0,
    end_time: dt.datetime | None = None,
    duration_ms: int | None = None,
    error_message: str | None = None,
    metadata: dict[str, Any] | None = None,
    error_context: dict[str, Any] | None = None,
    trigger_type: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """One org_meta_step_logs row; phase is "start" or "end"."""
    return {
        "step_log_id": step_log_id(step_logging_id, attempt, phase),
        "step_logging_id": step_logging_id,
        "pipeline_logging_id": pipeline_logging_id,
        "org_slug": org_slug,
        "step_name": step_name,
        "step_type": step_type,
        "step_index": step_index,
        "attempt": attempt,
        "status": status,
        **_timing_fields(phase, start_time, end_time, duration_ms),
        "error_message": error_message,
        "metadata": merged_metadata(metadata, error_context),
        "trigger_type": trigger_type,
        "user_id": user_id,
    }


def transition_record(
    *,
    pipeline_logging_id: str,
    from_state: str,
    to_state: str,
    entity_type: str,
    entity_name: str,
    org_slug: str,
    step_logging_id: str | None = None,
    reason: str | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
    stack_trace: str | None = None,
    retry_count: int | None = 0,
    duration_in_state_ms: int | None = None,
    metadata: dict[str, Any] | None = None,
    trigger_type: str | None = None,
    user_id: str | None = None,
    transition_id: str | None = None,
    transition_time: dt.datetime | None = None,
) -> TransitionRecord:
    """A TransitionRecord from the seed's log_state_transition keyword arguments."""
    when = utc(transition_time)
    return TransitionRecord(
        transition_id=transition_id or uuid7_str(),
        org_slug=org_slug,
        pipeline_logging_id=pipeline_logging_id,
        step_logging_id=step_logging_id,
        entity_type=entity_type,
        entity_name=entity_name,
        from_state=_text(from_state),
        to_state=_text(to_state),
        transition_time=when,
        transition_date=when.date(),
        reason=reason,
        error_type=None if error_type is None else _text(error_type),
        error_message=error_message,
        stack_trace_truncated=stack_trace,
        retry_count=int(retry_count or 0),
        duration_in_state_ms=int(duration_in_state_ms or 0),
        metadata=dict(metadata or {}),
        trigger_type=trigger_type,
        user_id=user_id,
    )
