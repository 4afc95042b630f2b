"""Strategies and builders for TransitionRecords and the audit rows the stores hold."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import strategies as st

from statemachine.records import TransitionRecord

STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "RETRYING")
ERROR_TYPES = ("TRANSIENT", "PERMANENT", "TIMEOUT", "VALIDATION_ERROR", "DEPENDENCY_FAILURE")
BASE_TIME = dt.datetime(2025, 12, 21, 12, 0, 0, tzinfo=dt.UTC)
_ids = itertools.count()

# Text that exercises JSON and SQL escaping without control characters that break nothing new.
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
_metadata_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), _text, st.lists(st.integers(), max_size=3)
)


@st.composite
def transition_records(draw: st.DrawFn, *, id_prefix: str = "t") -> TransitionRecord:
    """Any valid TransitionRecord, with a unique transition_id (unique per test session)."""
    entity_type = draw(st.sampled_from(("PIPELINE", "STEP")))
    when = BASE_TIME + dt.timedelta(
        microseconds=draw(st.integers(min_value=-(10**12), max_value=10**12))
    )
    error_type = draw(st.one_of(st.none(), st.sampled_from(ERROR_TYPES)))
    return TransitionRecord(
        transition_id=f"{id_prefix}-{next(_ids)}",
        org_slug=draw(_ident),
        pipeline_logging_id=draw(_ident),
        step_logging_id=draw(_ident) if entity_type == "STEP" else None,
        entity_type=entity_type,
        entity_name=draw(_ident),
        from_state=draw(st.sampled_from(STATES)),
        to_state=draw(st.sampled_from(STATES)),
        transition_time=when,
        transition_date=when.date(),
        reason=draw(st.one_of(st.none(), _text)),
        error_type=error_type,
        error_message=draw(st.one_of(st.none(), _text)) if error_type else None,
        stack_trace_truncated=draw(st.one_of(st.none(), st.text(max_size=2500))),
        retry_count=draw(st.integers(min_value=0, max_value=10)),
        duration_in_state_ms=draw(st.integers(min_value=0, max_value=10**9)),
        metadata=draw(st.dictionaries(_ident, _metadata_values, max_size=4)),
        trigger_type=draw(st.one_of(st.none(), st.sampled_from(("api", "schedule", "cli")))),
        user_id=draw(st.one_of(st.none(), _ident)),
    )


def record(
    *,
    transition_id: str | None = None,
    pipeline_logging_id: str = "run-1",
    entity_type: str = "PIPELINE",
    entity_name: str = "billing",
    step_logging_id: str | None = None,
    from_state: str = "PENDING",
    to_state: str = "RUNNING",
    at: dt.datetime = BASE_TIME,
    **fields: Any,
) -> TransitionRecord:
    """A hand-built TransitionRecord for tests with known answers; unspecified fields are dull."""
    return TransitionRecord(
        transition_id=transition_id or f"r-{next(_ids)}",
        org_slug=fields.pop("org_slug", "acme"),
        pipeline_logging_id=pipeline_logging_id,
        step_logging_id=step_logging_id,
        entity_type=entity_type,
        entity_name=entity_name,
        from_state=from_state,
        to_state=to_state,
        transition_time=at,
        transition_date=at.date(),
        **fields,
    )


def many_records(count: int, *, prefix: str = "bulk", pipelines: int = 100) -> list[TransitionRecord]:
    """`count` distinct records spread over `pipelines` runs (fast; no hypothesis)."""
    return [
        TransitionRecord(
            transition_id=f"{prefix}-{i}",
            org_slug="acme",
            pipeline_logging_id=f"{prefix}-run-{i % pipelines}",
            step_logging_id=None,
            entity_type="PIPELINE",
            entity_name="billing",
            from_state="RUNNING",
            to_state="COMPLETED",
            transition_time=BASE_TIME,
            transition_date=BASE_TIME.date(),
            metadata={"i": i},
        )
        for i in range(count)
    ]
