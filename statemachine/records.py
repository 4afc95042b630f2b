"""The audit row: one frozen TransitionRecord per state change."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import attrs

from statemachine._scrub import METADATA_STRING_LIMIT, encodable, scrub_text

STACK_TRACE_LIMIT = 2000
ENTITY_TYPES = ("PIPELINE", "STEP")


def _json_default(value: object) -> str:
    """Render a value JSON cannot encode as a readable, redacted string, never raising."""
    # Only values JSON cannot encode get here (off the hot path): the string may hold anything.
    return scrub_text(_render(value), METADATA_STRING_LIMIT)


def _render(value: object) -> str:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset)):
        try:
            return json.dumps(sorted(value, key=repr), default=_json_default, ensure_ascii=False)
        except Exception:  # unsortable, unprintable or cyclic members
            return _safe_text(value, repr)
    return _safe_text(value, str)


def _safe_text(value: object, render: Callable[[object], str]) -> str:
    try:
        text = render(value)
    except Exception:  # a hostile __str__ / __repr__ must not break a flush
        return f"<unprintable {type(value).__qualname__}>"
    return text if isinstance(text, str) else f"<unprintable {type(value).__qualname__}>"


def _finite(value: Any) -> Any:
    """A copy of value with non-finite floats as strings ("nan", "inf", "-inf")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_metadata(metadata: dict[str, Any] | None) -> str:
    """Serialise metadata to compact JSON; non-JSON values become readable strings; never raises."""
    try:
        text = json.dumps(metadata or {}, default=_json_default, sort_keys=True, ensure_ascii=False)
        if "NaN" in text or "Infinity" in text:
            # Bare NaN / Infinity are not JSON: SQLite's json_extract and BigQuery refuse them.
            text = json.dumps(
                _finite(metadata), default=_json_default, sort_keys=True, ensure_ascii=False
            )
    except Exception:
        # Cycles, unsortable keys or a raising __str__: fall back to a flat, string-valued copy.
        items = metadata.items() if isinstance(metadata, dict) else [("value", metadata)]
        safe = {
            _json_default(k) if not isinstance(k, str) else k: _json_default(v) for k, v in items
        }
        text = json.dumps(safe, sort_keys=True, ensure_ascii=False)
    return encodable(text)


def _utc_datetime(instance: Any, attribute: attrs.Attribute[Any], value: dt.datetime) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() != dt.timedelta(0):
        raise ValueError(
            f"'{attribute.name}' must be a timezone-aware UTC datetime (got {value!r})."
        )


def _entity_type(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ENTITY_TYPES:
        raise ValueError(f"'{attribute.name}' must be one of {ENTITY_TYPES} (got {value!r}).")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0 (got {value!r}).")


def _truncate(value: str | None) -> str | None:
    return None if value is None else value[:STACK_TRACE_LIMIT]


@attrs.frozen(slots=True, kw_only=True)
class TransitionRecord:
    """One row of org_meta_state_transitions: which entity moved, from where to where, when."""

    transition_id: str
    org_slug: str
    pipeline_logging_id: str
    step_logging_id: str | None
    entity_type: str = attrs.field(validator=_entity_type)
    entity_name: str = attrs.field()
    from_state: str = attrs.field()
    to_state: str = attrs.field()
    transition_time: dt.datetime = attrs.field(validator=_utc_datetime)
    transition_date: dt.date = attrs.field()
    reason: str | None = attrs.field(default=None)
    error_type: str | None = attrs.field(default=None)
    error_message: str | None = attrs.field(default=None)
    stack_trace_truncated: str | None = attrs.field(default=None, converter=_truncate)
    retry_count: int = attrs.field(default=0, validator=_non_negative)
    duration_in_state_ms: int = attrs.field(default=0, validator=_non_negative)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    trigger_type: str | None = attrs.field(default=None)
    user_id: str | None = attrs.field(default=None)

    @property
    def row_id(self) -> str:
        """The insert key every store de-duplicates on."""
        return self.transition_id

    def to_row(self) -> dict[str, Any]:
        """Return the JSON-ready dict the stores write (metadata as a JSON string)."""
        return {
            "transition_id": self.transition_id,
            "org_slug": self.org_slug,
            "pipeline_logging_id": self.pipeline_logging_id,
            "step_logging_id": self.step_logging_id,
            "entity_type": self.entity_type,
            "entity_name": self.entity_name,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "transition_time": self.transition_time.isoformat(),
            "transition_date": self.transition_date.isoformat(),
            "reason": self.reason,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "stack_trace_truncated": self.stack_trace_truncated,
            "retry_count": self.retry_count,
            "duration_in_state_ms": self.duration_in_state_ms,
            "metadata": dumps_metadata(self.metadata),
            "trigger_type": self.trigger_type,
            "user_id": self.user_id,
        }


# Fast construction for the state machines' hot path. attrs' frozen __init__ sets each slot
# through object.__setattr__ and runs the validators, which costs about 3x the transition
# bookkeeping itself. The engine builds every field from values it has already checked (entity
# type from the table, durations clamped at zero, counts that only grow, UTC times), so it sets
# the slots directly. Everything else (evolve, cattrs, tests) still goes through __init__.
RECORD_FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(TransitionRecord))
_UTC = dt.UTC
_ZERO = dt.timedelta(0)
_new = object.__new__
(
    _s_transition_id,
    _s_org_slug,
    _s_pipeline_logging_id,
    _s_step_logging_id,
    _s_entity_type,
    _s_entity_name,
    _s_from_state,
    _s_to_state,
    _s_transition_time,
    _s_transition_date,
    _s_reason,
    _s_error_type,
    _s_error_message,
    _s_stack_trace_truncated,
    _s_retry_count,
    _s_duration_in_state_ms,
    _s_metadata,
    _s_trigger_type,
    _s_user_id,
) = (getattr(TransitionRecord, name).__set__ for name in RECORD_FIELDS)


def trusted_record(
    transition_id: str,
    org_slug: str,
    pipeline_logging_id: str,
    step_logging_id: str | None,
    entity_type: str,
    entity_name: str,
    from_state: str,
    to_state: str,
    transition_time: dt.datetime,
    reason: str | None,
    error_type: str | None,
    error_message: str | None,
    stack_trace_truncated: str | None,
    retry_count: int,
    duration_in_state_ms: int,
    metadata: dict[str, Any],
    trigger_type: str | None,
    user_id: str | None,
) -> TransitionRecord:
    """Build a record from pre-checked values (the time is still checked to be UTC)."""
    if transition_time.tzinfo is not _UTC and transition_time.utcoffset() != _ZERO:
        raise ValueError(
            f"'transition_time' must be a timezone-aware UTC datetime (got {transition_time!r})."
        )
    record = _new(TransitionRecord)
    _s_transition_id(record, transition_id)
    _s_org_slug(record, org_slug)
    _s_pipeline_logging_id(record, pipeline_logging_id)
    _s_step_logging_id(record, step_logging_id)
    _s_entity_type(record, entity_type)
    _s_entity_name(record, entity_name)
    _s_from_state(record, from_state)
    _s_to_state(record, to_state)
    _s_transition_time(record, transition_time)
    _s_transition_date(record, transition_time.date())
    _s_reason(record, reason)
    _s_error_type(record, error_type)
    _s_error_message(record, error_message)
    _s_stack_trace_truncated(
        record,
        stack_trace_truncated
        if stack_trace_truncated is None or len(stack_trace_truncated) <= STACK_TRACE_LIMIT
        else stack_trace_truncated[:STACK_TRACE_LIMIT],
    )
    _s_retry_count(record, retry_count)
    _s_duration_in_state_ms(record, duration_in_state_ms)
    _s_metadata(record, metadata)
    _s_trigger_type(record, trigger_type)
    _s_user_id(record, user_id)
    return record
