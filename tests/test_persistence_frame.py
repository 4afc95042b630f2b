"""persistence._frame: a group survives the writer frame exactly, marshalled or pickled."""

from __future__ import annotations

import datetime as dt
import enum
import operator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence._frame import (
    dump_group,
    encode_parts,
    expand_records,
    load_group,
    load_reply,
    ok_reply,
)
from persistence.schema import table_spec
from persistence.stores._sqlite_rows import RowPreparer, record_values
from persistence.stores.base import STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import RECORD_FIELDS, TransitionRecord
from tests.strategies.records import BASE_TIME, record, transition_records

_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_values = operator.attrgetter(*RECORD_FIELDS)


class _Colour(enum.StrEnum):
    RED = "red"


def _round_trip(parts: list[tuple[str, list[Any]]], derive: bool = True) -> tuple[Any, bytes]:
    """The parts as the child reads them (records expanded to value tuples), and the payload."""
    encoded, rejected = encode_parts(parts)
    assert rejected == [[] for _ in parts]
    payload = dump_group(encoded, derive)
    loaded, derive_flag = load_group(payload)
    assert derive_flag is derive
    for _, values, records in loaded:
        expand_records(values, records)
    return [(table, values) for table, values, _ in loaded], payload


class TestRoundTrip:
    """What the child rebuilds is what the parent had."""

    @_SETTINGS
    @given(
        records=st.lists(transition_records(), max_size=10),
        rows=st.lists(st.fixed_dictionaries({"step_log_id": st.text(max_size=5)}), max_size=3),
    )
    def test_records_and_rows_come_back_exactly(
        self, records: list[TransitionRecord], rows: list[dict[str, Any]]
    ) -> None:
        """Invariant: each record comes back as its values in RECORD_FIELDS order, times
        in UTC, and each row as an equal dict, in order."""
        parts, payload = _round_trip([(STATE_TRANSITIONS, list(records)), (STEP_LOGS, rows)])
        assert parts == [(STATE_TRANSITIONS, [_values(r) for r in records]), (STEP_LOGS, rows)]
        time = RECORD_FIELDS.index("transition_time")
        assert all(values[time].tzinfo is dt.UTC for values in parts[0][1])
        assert payload[:1] == b"M"  # plain values: marshal

    @_SETTINGS
    @given(records=st.lists(transition_records(), min_size=1, max_size=6), at=st.integers(0, 6))
    def test_records_among_rows_come_back_in_place(
        self, records: list[TransitionRecord], at: int
    ) -> None:
        """Invariant: in a part mixing rows and records, each keeps its position and value."""
        row = {"transition_id": "a-row", "org_slug": "acme"}
        items: list[Any] = list(records)
        items.insert(min(at, len(items)), row)
        parts, _ = _round_trip([(STATE_TRANSITIONS, items)])
        assert parts[0][1] == [item if item is row else _values(item) for item in items]

    @_SETTINGS
    @given(records=st.lists(transition_records(), min_size=1, max_size=6))
    def test_records_queued_as_their_values_travel_as_records(
        self, records: list[TransitionRecord]
    ) -> None:
        """Invariant: a record given as its value tuple (RECORD_FIELDS order) comes back as
        the record itself would."""
        as_tuples, _ = _round_trip([(STATE_TRANSITIONS, [_values(r) for r in records])])
        as_records, _ = _round_trip([(STATE_TRANSITIONS, list(records))])
        assert as_tuples == as_records

    def test_values_marshal_refuses_are_pickled(self) -> None:
        """Metadata holding a str subclass (an enum member) sends the group pickled, intact."""
        odd = record(metadata={"colour": _Colour.RED, "at": BASE_TIME})
        parts, payload = _round_trip([(STATE_TRANSITIONS, [odd, record()])])
        assert payload[:1] == b"P"
        assert parts[0][1][0] == _values(odd)
        assert type(parts[0][1][0][RECORD_FIELDS.index("metadata")]["colour"]) is _Colour

    def test_edge_times_and_dates_keep_their_values(self) -> None:
        """A zero-offset zone other than UTC, the first and last microsecond of the calendar
        and a date unlike the time's all come back as the same instant and the same date."""
        zulu = dt.timezone(dt.timedelta(0), "Z")
        records = [
            record(at=dt.datetime(2025, 12, 21, 23, 59, 59, 999_999, tzinfo=zulu)),
            record(at=dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
            record(at=dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)),
            attrs.evolve(record(), transition_date=dt.date(2001, 2, 3)),
        ]
        parts, _ = _round_trip([(STATE_TRANSITIONS, records)])
        assert parts[0][1] == [_values(r) for r in records]
        preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
        as_sent = [record_values(values) for values in parts[0][1]]
        assert preparer.prepare_items(as_sent) == preparer.prepare_items(records)

    def test_an_unknown_encoding_is_refused_by_name(self) -> None:
        """A payload that is neither marshal nor pickle raises, naming the byte it found."""
        with pytest.raises(ValueError, match=r"unknown encoding b'X', expected M or P"):
            load_group(b"X" + dump_group([], False)[1:])

    def test_items_that_are_neither_record_nor_row_are_refused(self) -> None:
        """An item of another type is rejected while encoding; the rest travel."""
        encoded, rejected = encode_parts([(STATE_TRANSITIONS, [record(), 42])])
        assert [len(values) for _, values, _ in encoded] == [1]
        assert [error.row_id for error in rejected[0]] == ["<int>"]


class TestReplies:
    """A streamed group's reply travels in marshal (ok_reply); any other reply is pickled."""

    @given(
        parts=st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
        runs=st.integers(0, 50),
        steps=st.integers(0, 500),
    )
    def test_ok_reply_reads_back_as_the_pickled_reply_would(
        self, parts: list[int], runs: int, steps: int
    ) -> None:
        """Invariant: whatever the counts, load_reply(ok_reply(...)) equals the reply the
        general route pickles for them: ("ok", (WriteResults, per-table results, 0))."""
        import pickle

        from persistence.stores.base import PIPELINE_RUNS, WriteResult

        derived = [(t, n) for t, n in ((PIPELINE_RUNS, runs), (STEP_LOGS, steps)) if n]
        expected = (
            "ok",
            ([WriteResult(n) for n in parts], [(t, WriteResult(n)) for t, n in derived], 0),
        )
        assert load_reply(ok_reply(parts, derived)) == expected
        assert load_reply(pickle.dumps(expected, pickle.HIGHEST_PROTOCOL)) == expected

    def test_an_error_reply_stays_pickled(self) -> None:
        """Errors and control replies keep their pickled form (they are rare and varied)."""
        import pickle

        reply = ("error", "OperationalError", "disk I/O error", True)
        assert load_reply(pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)) == reply
