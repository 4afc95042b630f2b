"""statemachine.records: the audit row checks its fields and serialises metadata as strict JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
import zoneinfo
from typing import Any

import pytest

from statemachine.records import (
    RECORD_FIELDS,
    STACK_TRACE_LIMIT,
    TransitionRecord,
    dumps_metadata,
    trusted_record,
)

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


class Unprintable:
    """An object whose str() and repr() both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class NotAString:
    """An object whose str() returns a non-string."""

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class TestDumpsMetadataShape:
    """dumps_metadata writes key-sorted JSON that keeps types and non-ASCII text."""

    def test_empty(self) -> None:
        """No metadata, or an empty dict, is the empty JSON object."""
        assert dumps_metadata(None) == "{}"
        assert dumps_metadata({}) == "{}"

    def test_types_order_and_text_kept(self) -> None:
        """Values keep their JSON types, keys come out sorted, non-ASCII stays literal."""
        data = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": 3}}
        text = dumps_metadata(data)
        assert json.loads(text) == data
        assert text.index('"a"') < text.index('"b"')
        assert text.index('"y"') < text.index('"z"')
        assert "é" in text

    def test_non_json_values_rendered(self) -> None:
        """Datetimes, bytes, sets and odd objects become readable strings; nothing raises."""
        when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        data = {
            "when": when,
            "day": when.date(),
            "raw": b"caf\xc3\xa9 \xff",
            "set": {3, 1, 2},
            "bad": Unprintable(),
            "odd": NotAString(),
        }
        parsed = json.loads(dumps_metadata(data))
        assert parsed["when"] == when.isoformat()
        assert parsed["day"] == when.date().isoformat()
        assert parsed["raw"] == b"caf\xc3\xa9 \xff".decode("utf-8", errors="replace")
        assert json.loads(parsed["set"]) == [1, 2, 3]
        assert parsed["bad"] == "<unprintable Unprintable>"
        assert parsed["odd"] == "<unprintable NotAString>"

    def test_unsortable_set_falls_back_to_text(self) -> None:
        """A set whose members cannot be listed is written as a placeholder, not an error."""
        parsed = json.loads(dumps_metadata({"s": {Unprintable()}}))
        assert parsed["s"] == "<unprintable set>"

    def test_secrets_in_rendered_values_redacted(self) -> None:
        """A secret inside a value JSON cannot encode is masked when it is rendered."""
        from classifier import redact

        secret = b"password=hunter2secret"
        parsed = json.loads(dumps_metadata({"raw": secret}))
        assert parsed["raw"] == redact(secret.decode())
        assert "hunter2" not in parsed["raw"]

    def test_cycle_falls_back_to_flat_strings(self) -> None:
        """A cyclic dict is written as a flat dict of strings, keys kept, without raising."""
        data: dict[Any, Any] = {"n": 1}
        data["self"] = data
        data[7] = "seven"
        parsed = json.loads(dumps_metadata(data))
        assert sorted(parsed) == ["7", "n", "self"]
        assert parsed["n"] == "1"
        assert parsed["7"] == "seven"
        assert all(isinstance(v, str) for v in parsed.values())

    def test_non_finite_nested_in_lists_of_dicts(self) -> None:
        """Non-finite floats inside tuples are found too, and finite floats are not touched."""
        parsed = json.loads(dumps_metadata({"t": (1.0, math.nan), "f": 0.5}))
        assert parsed == {"t": [1.0, str(math.nan)], "f": 0.5}


class TestToRow:
    """to_row is the record as the stores write it: every field, times as ISO text."""

    def test_every_field(self) -> None:
        """Each field appears under its own name; metadata is its JSON text."""
        record = _record(
            step_logging_id="s-1",
            entity_type="STEP",
            reason="r",
            error_type="TRANSIENT",
            error_message="m",
            stack_trace_truncated="st",
            retry_count=2,
            duration_in_state_ms=9,
            metadata={"k": 1},
            trigger_type="api",
            user_id="u",
        )
        row = record.to_row()
        assert row == {
            **{f: getattr(record, f) for f in RECORD_FIELDS},
            "transition_time": WHEN.isoformat(),
            "transition_date": WHEN.date().isoformat(),
            "metadata": dumps_metadata({"k": 1}),
        }
        assert record.row_id == "t-1"

    @pytest.mark.parametrize("field", ["retry_count", "duration_in_state_ms"])
    def test_counts_not_negative(self, field: str) -> None:
        """A negative count is refused by name; zero is fine."""
        with pytest.raises(ValueError, match=f"'{field}' must be >= 0"):
            _record(**{field: -1})
        assert getattr(_record(**{field: 0}), field) == 0

    def test_entity_type_checked(self) -> None:
        """Only PIPELINE and STEP are entity types."""
        with pytest.raises(ValueError, match="'entity_type' must be one of"):
            _record(entity_type="JOB")


class TestOneOddValue:
    """One value JSON cannot encode is rendered alone; the others keep their JSON types."""

    def test_siblings_keep_types(self) -> None:
        """Next to a datetime, numbers, lists and None stay numbers, lists and None."""
        data = {"when": WHEN, "n": 3, "xs": [1, 2], "none": None, "f": 1.5}
        parsed = json.loads(dumps_metadata(data))
        assert parsed == {"when": WHEN.isoformat(), "n": 3, "xs": [1, 2], "none": None, "f": 1.5}

    def test_infinity_alone_is_rewritten(self) -> None:
        """An infinity with no NaN beside it is rewritten too, with odd values, order and text."""
        data = {"b": math.inf, "a": "é", "when": WHEN, "n": -math.inf, "c": 2}
        text = dumps_metadata(data)
        assert json.loads(text) == {
            "b": str(math.inf),
            "a": "é",
            "when": WHEN.isoformat(),
            "n": str(-math.inf),
            "c": 2,
        }
        assert [text.index(f'"{k}"') for k in sorted(data)] == sorted(
            text.index(f'"{k}"') for k in data
        )
        assert "é" in text


def _trusted(when: dt.datetime, stack: str | None = None) -> TransitionRecord:
    return trusted_record(
        "t-1", "org", "p-1", None, "PIPELINE", "etl", "PENDING", "RUNNING", when,
        None, None, None, stack, 0, 0, {}, None, None,
    )  # fmt: skip


class TestTrustedRecord:
    """The engine's fast constructor still checks the time and bounds the stack trace."""

    @pytest.mark.parametrize(
        "zone",
        [dt.timezone(dt.timedelta(0)), zoneinfo.ZoneInfo("UTC"), dt.UTC],
        ids=["fixed-zero", "zoneinfo-utc", "dt-utc"],
    )
    def test_any_zero_offset_zone(self, zone: dt.tzinfo) -> None:
        """A time in any zone at offset zero is accepted, with its date."""
        when = WHEN.replace(tzinfo=zone)
        record = _trusted(when)
        assert (record.transition_time, record.transition_date) == (when, when.date())

    def test_other_offsets_refused(self) -> None:
        """A time at another offset is refused, naming the field."""
        with pytest.raises(ValueError, match="'transition_time' must be a timezone-aware UTC"):
            _trusted(WHEN.astimezone(dt.timezone(dt.timedelta(hours=-3))))

    def test_stack_trace_bounded(self) -> None:
        """A stack trace longer than STACK_TRACE_LIMIT is cut; one at the limit is kept."""
        long = "".join(str(i % 7) for i in range(STACK_TRACE_LIMIT + 9))
        assert _trusted(WHEN, long).stack_trace_truncated == long[:STACK_TRACE_LIMIT]
        exact = long[:STACK_TRACE_LIMIT]
        assert _trusted(WHEN, exact).stack_trace_truncated == exact
        assert _trusted(WHEN).stack_trace_truncated is None

    def test_equals_the_validated_record(self) -> None:
        """The fast record equals one built through the validating constructor."""
        assert _trusted(WHEN, "st") == _record(stack_trace_truncated="st")
