"""statemachine.records: the audit row checks its fields and serialises metadata as strict JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from statemachine.records import STACK_TRACE_LIMIT, TransitionRecord, dumps_metadata

WHEN = dt.datetime(2025, 12, 21, 12, 0, tzinfo=dt.UTC)


def _record(**changes: Any) -> TransitionRecord:
    fields: dict[str, Any] = {
        "transition_id": "t-1",
        "org_slug": "org",
        "pipeline_logging_id": "p-1",
        "step_logging_id": None,
        "entity_type": "PIPELINE",
        "entity_name": "etl",
        "from_state": "PENDING",
        "to_state": "RUNNING",
        "transition_time": WHEN,
        "transition_date": WHEN.date(),
    }
    fields.update(changes)
    return TransitionRecord(**fields)


class TestValidators:
    """The constructor refuses what the audit table cannot hold, naming the field."""

    @pytest.mark.parametrize(
        "when",
        [
            WHEN.replace(tzinfo=None),
            WHEN.astimezone(dt.timezone(dt.timedelta(hours=2))),
            WHEN.date(),
        ],
        ids=["naive", "plus-two-hours", "date"],
    )
    def test_transition_time_must_be_utc(self, when: Any) -> None:
        """A naive, non-UTC or non-datetime transition_time is refused by name."""
        with pytest.raises(ValueError, match="'transition_time' must be a timezone-aware UTC"):
            _record(transition_time=when)

    def test_utc_equivalent_zone_accepted(self) -> None:
        """Any zone at offset zero is UTC enough."""
        zero = dt.timezone(dt.timedelta(0), "Z")
        assert _record(transition_time=WHEN.replace(tzinfo=zero)).transition_time == WHEN


class TestStackTrace:
    """The constructor keeps a stack trace up to STACK_TRACE_LIMIT characters, cutting the rest."""

    def test_short_kept_long_cut(self) -> None:
        """A short trace is kept whole, a long one keeps its first STACK_TRACE_LIMIT characters."""
        assert _record(stack_trace_truncated="line 1").stack_trace_truncated == "line 1"
        long = "".join(str(i % 10) for i in range(STACK_TRACE_LIMIT + 50))
        assert _record(stack_trace_truncated=long).stack_trace_truncated == long[:STACK_TRACE_LIMIT]
        assert _record().stack_trace_truncated is None


class TestDumpsMetadata:
    """Metadata JSON is strict: non-finite floats become strings wherever they sit."""

    def test_nested_non_finite_floats(self) -> None:
        """NaN and infinities nested in dicts and lists become their str(), siblings unchanged."""
        data = {"a": {"x": math.nan, "y": 1.5}, "b": [math.inf, {"z": -math.inf}], "c": "s"}
        parsed = json.loads(dumps_metadata(data))
        assert parsed == {
            "a": {"x": str(math.nan), "y": 1.5},
            "b": [str(math.inf), {"z": str(-math.inf)}],
            "c": "s",
        }
