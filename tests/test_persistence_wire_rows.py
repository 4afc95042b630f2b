"""persistence._wire_rows: the writer child's parameters equal the general route's, exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import persistence._wire_rows as wire_rows
from persistence._derive import derive_run_rows
from persistence._frame import encode_parts
from persistence._wire_rows import WireUnusual, timestamp_text, timestamp_texts, wire_params
from persistence.schema import table_spec
from persistence.stores._sqlite_rows import RowPreparer, record_timestamp
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import TransitionRecord
from tests.strategies.records import BASE_TIME, record, transition_records

_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PREPARERS = {t: RowPreparer(table_spec(t)) for t in (STATE_TRANSITIONS, PIPELINE_RUNS, STEP_LOGS)}
_EXECUTOR_METADATA = st.fixed_dictionaries(
    {},
    optional={
        "step_type": st.one_of(st.just("generic.noop"), st.integers(0, 3)),
        "step_index": st.one_of(st.integers(0, 99), st.booleans(), st.just("3")),
        "error_class": st.just("ValueError"),
        "is_retryable": st.booleans(),
        "rows": st.integers(0, 10),
    },
)


def _wires(records: list[TransitionRecord]) -> list[Any]:
    """The records' wire tuples, as the child loads them from the frame."""
    encoded, _ = encode_parts([(STATE_TRANSITIONS, records)])
    return encoded[0][1]


def _general(table: str, items: list[Any]) -> list[tuple[Any, ...]]:
    """The general route's insert parameters of records or derived rows (none rejected)."""
    good, bad = _PREPARERS[table].prepare_items(items)
    assert bad == []
    return [tuple(values) for values in good]


@st.composite
def _records(draw: st.DrawFn) -> TransitionRecord:
    """Any record, often one that implies a run or step row, with the executor's metadata."""
    base = draw(transition_records(id_prefix="wire"))
    if draw(st.booleans()):
        base = attrs.evolve(base, from_state="RUNNING")
    when = base.transition_time
    if draw(st.booleans()):  # a whole second: isoformat() would drop the fraction
        when = when.replace(microsecond=0)
    return attrs.evolve(
        base,
        transition_time=when,
        transition_date=when.date(),
        metadata={**base.metadata, **draw(_EXECUTOR_METADATA)},
    )


class TestParity:
    """The wire route gives the parameters derive_run_rows + RowPreparer give."""

    @_SETTINGS
    @given(records=st.lists(_records(), min_size=1, max_size=12))
    def test_transitions_and_derived_rows_match_the_general_route(
        self, records: list[TransitionRecord]
    ) -> None:
        """Invariant: for any valid records, the transitions' parameters and the run and step
        rows equal those of the records and derive_run_rows' rows prepared for SQLite."""
        rows, runs, steps = wire_params(_wires(records), derive=True)
        assert rows == _general(STATE_TRANSITIONS, records)
        derived: dict[str, list[Any]] = {PIPELINE_RUNS: [], STEP_LOGS: []}
        for item in records:
            for table, row in derive_run_rows(item):
                derived[table].append(row)
        assert runs == _general(PIPELINE_RUNS, derived[PIPELINE_RUNS])
        assert steps == _general(STEP_LOGS, derived[STEP_LOGS])

    @_SETTINGS
    @given(
        micros=st.integers(
            min_value=(dt.datetime(1, 1, 2) - dt.datetime(1970, 1, 1)) // dt.timedelta(0, 0, 1),
            max_value=(dt.datetime(9999, 12, 30) - dt.datetime(1970, 1, 1))
            // dt.timedelta(0, 0, 1),
        )
    )
    def test_timestamp_text_is_the_canonical_text(self, micros: int) -> None:
        """Invariant: the text of any time in years 1-9999 is record_timestamp's of its datetime."""
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        assert timestamp_text(micros) == record_timestamp(when)

    @_SETTINGS
    @given(
        seconds=st.lists(st.integers(-(10**7), 10**7), min_size=1, max_size=8, unique=True),
        picks=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 999_999)), min_size=1),
        spread=st.lists(st.integers(-(10**13), 10**13), max_size=6),
        cache_size=st.integers(1, 8),
    )
    def test_timestamp_texts_match_one_by_one_whatever_the_cache_holds(
        self, seconds: list[int], picks: list[tuple[int, int]], spread: list[int], cache_size: int
    ) -> None:
        """Invariant: the column's texts are record_timestamp's, in order, for times sharing a
        few seconds (the per-second cache, even smaller than their seconds and overflowing) or
        spread out (formatted field by field), and timestamp_text's one by one are the same."""
        base = (BASE_TIME - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(0, 0, 1)
        stamps = [base + seconds[i % len(seconds)] * 1_000_000 + f for i, f in picks]
        stamps += [base + offset for offset in spread]
        expected = [
            record_timestamp(dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(0, 0, m))
            for m in stamps
        ]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(wire_rows, "_MAX_SECONDS", cache_size)
            patch.setattr(wire_rows, "_seconds", {})
            assert timestamp_texts(stamps[:1] * 4) == expected[:1] * 4
            assert stamps[0] // 1_000_000 in wire_rows._seconds  # a repeated second is cached
            assert timestamp_texts(stamps) == expected
            # First and last in one second, every second four times: the cache route (all the
            # seconds cached, overflowing when the cache is small).
            framed = [stamps[0], *stamps * 4, stamps[0]]
            assert timestamp_texts(framed) == [expected[0], *expected * 4, expected[0]]
            assert len(wire_rows._seconds) <= max(cache_size, len(set(stamps)))
            assert [timestamp_text(m) for m in stamps] == expected
        assert timestamp_texts([]) == []

    def test_seconds_of_a_few_times_each_are_not_cached(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Times that share no second often, or whose first and last are in different seconds
        (a backlog), are formatted field by field and cached only when one second repeats."""
        monkeypatch.setattr(wire_rows, "_seconds", {})
        base = (BASE_TIME - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(0, 0, 1)
        stamps = [base + 1, base + 7_000_001, base + 3]  # first and last in one second
        assert timestamp_texts(stamps) == [timestamp_text(m) for m in stamps]
        assert wire_rows._seconds == {}
        spanning = stamps[:1] * 4 + stamps[1:2] * 4  # first and last in different seconds
        assert timestamp_texts(spanning) == [timestamp_text(m) for m in spanning]
        assert wire_rows._seconds == {}
        assert timestamp_texts(stamps[:1] * 4) == [timestamp_text(stamps[0])] * 4
        assert list(wire_rows._seconds) == [base // 1_000_000]

    def test_cached_step_outcomes_keep_the_retry_counts_own_type(self) -> None:
        """A float retry count after an int one of equal value gets its own attempt (2.0, not
        the cached 2), as derive_run_rows gives it; the cache only serves int counts."""
        steps = [
            record(
                entity_type="STEP",
                step_logging_id=f"s-{retry!r}",
                from_state="RUNNING",
                to_state=to_state,
                retry_count=retry,
                metadata={"step_type": "generic.noop", "step_index": 3},
            )
            for retry in (1, 1.0, 1)
            for to_state in ("COMPLETED", "RETRYING")
        ]
        _, _, rows = wire_params(_wires(steps), derive=True)
        derived = [row for item in steps for _, row in derive_run_rows(item)]
        assert repr(rows) == repr(_general(STEP_LOGS, derived))
        assert [type(row[7]) for row in rows] == [int, int, float, float, int, int]
        assert [row[14] for row in rows[:2]] == ["{}", '{"will_retry": true}']

    def test_a_step_failed_before_it_started_has_a_zero_duration_row(self) -> None:
        """PENDING -> FAILED of a step: attempt 1, never_started, start = end, 0 ms, as derived."""
        failed = record(
            entity_type="STEP",
            step_logging_id="s-1",
            from_state="PENDING",
            to_state="FAILED",
            duration_in_state_ms=1500,
            error_type="DEPENDENCY_FAILURE",
        )
        _, _, steps = wire_params(_wires([failed]), derive=True)
        assert steps == _general(STEP_LOGS, [row for _, row in derive_run_rows(failed)])
        (row,) = steps
        assert row[7] == 1
        assert row[12] == 0
        assert row[9] == row[10]
        assert '"never_started": true' in row[14]


class TestUnusual:
    """A batch the wire route does not convert raises WireUnusual (the child then falls back)."""

    def test_a_missing_required_value_is_unusual(self) -> None:
        """A record without an org_slug (a NOT NULL column) is left to the general route."""
        missing = attrs.evolve(record(), org_slug=None)  # type: ignore[arg-type]
        wires = _wires([record(), missing])
        with pytest.raises(WireUnusual):
            wire_params(wires, derive=False)

    def test_a_non_integer_duration_is_unusual(self) -> None:
        """A run row from a duration that is not an int is left to the general route."""
        ended = attrs.evolve(
            record(from_state="RUNNING", to_state="COMPLETED"), duration_in_state_ms=True
        )
        with pytest.raises(WireUnusual):
            wire_params(_wires([ended]), derive=True)

    def test_a_start_before_year_one_is_refused(self) -> None:
        """A duration reaching before 0001-01-01 raises, as the datetime route does."""
        ended = record(
            from_state="RUNNING",
            to_state="COMPLETED",
            at=BASE_TIME,
            duration_in_state_ms=10**15,
        )
        with pytest.raises(ValueError, match="ordinal"):
            wire_params(_wires([ended]), derive=True)
        with pytest.raises(OverflowError):
            derive_run_rows(ended)
