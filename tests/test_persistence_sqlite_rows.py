"""persistence.stores._sqlite_rows: the column-wise route gives the row route's parameters."""

from __future__ import annotations

import datetime as dt
import math
import operator
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence._derive import derive_run_rows
from persistence.schema import table_spec
from persistence.stores._sqlite_rows import RecordValues, RowPreparer, record_values
from persistence.stores.base import STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import RECORD_FIELDS, TransitionRecord
from tests.strategies.hostile import hostile_metadata
from tests.strategies.records import BASE_TIME, record, transition_records

_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_values = operator.attrgetter(*RECORD_FIELDS)


def _both_routes(preparer: RowPreparer, items: list[Any]) -> tuple[Any, Any]:
    """(prepare_items, the row route) with value rows as tuples (the routes' row types differ)."""
    good, bad = preparer.prepare_items(items)
    row_good, row_bad = preparer._prepare_rows(items)
    return ([tuple(v) for v in good], bad), ([tuple(v) for v in row_good], row_bad)


class TestColumnRoute:
    """prepare_items takes the column-wise route for a usual batch, with the same result."""

    @_SETTINGS
    @given(records=st.lists(transition_records(), min_size=1, max_size=12))
    def test_records_and_their_values_prepare_as_row_by_row(
        self, records: list[TransitionRecord]
    ) -> None:
        """Invariant: records, or their RecordValues, give the row route's exact parameters."""
        preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
        for items in (records, [record_values(_values(r)) for r in records]):
            fast, slow = _both_routes(preparer, list(items))
            assert fast == slow

    @_SETTINGS
    @given(
        records=st.lists(transition_records(), min_size=1, max_size=6),
        metadata=hostile_metadata(),
        micro=st.sampled_from([0, 1, 999_999]),
    )
    def test_unusual_values_prepare_as_row_by_row(
        self, records: list[TransitionRecord], metadata: dict[Any, Any], micro: int
    ) -> None:
        """Invariant: hostile metadata, whole-second times or a missing org give the row
        route's parameters and rejections (the batch falls back to it where needed)."""
        odd = attrs.evolve(
            records[0],
            metadata=metadata,
            transition_time=records[0].transition_time.replace(microsecond=micro),
        )
        missing = attrs.evolve(records[-1], org_slug=None)
        preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
        for batch in ([odd, *records[1:]], [*records[:-1], missing]):
            for items in (batch, [record_values(_values(r)) for r in batch]):
                fast, slow = _both_routes(preparer, list(items))
                assert fast == slow

    def test_usual_batches_take_the_column_route(self) -> None:
        """Records, RecordValues and derived step rows go column-wise; odd batches do not."""
        at = BASE_TIME + dt.timedelta(microseconds=7)  # with a fraction: canonical isoformat()
        runs = [
            record(transition_id=f"c-{i}", step_logging_id=f"s-{i}", entity_type="STEP", at=at)
            for i in range(3)
        ]
        ends = [
            attrs.evolve(
                r,
                transition_id=f"{r.transition_id}-end",
                from_state="RUNNING",
                to_state="COMPLETED",
                metadata={"step_type": "x", "step_index": 1},
            )
            for r in runs
        ]
        transitions = RowPreparer(table_spec(STATE_TRANSITIONS))
        steps = RowPreparer(table_spec(STEP_LOGS))
        step_rows = [row for r in ends for _, row in derive_run_rows(r)]
        assert len(step_rows) == 3
        assert transitions._prepare_columns(ends) is not None
        assert transitions._prepare_columns([record_values(_values(r)) for r in ends]) is not None
        assert steps._prepare_columns(step_rows) is not None
        whole_second = attrs.evolve(ends[0], transition_time=BASE_TIME.replace(microsecond=0))
        extra_column = {**step_rows[0], "surprise": 1}
        naive_text = {**step_rows[0], "end_time": "2025-12-21T12:00:00.000001"}
        assert transitions._prepare_columns([*ends, whole_second]) is None
        assert transitions._prepare_columns([*ends, attrs.evolve(ends[0], org_slug=None)]) is None
        assert transitions._prepare_columns([*ends, ends[0].to_row()]) is None  # mixed kinds
        assert steps._prepare_columns([*step_rows, extra_column]) is None
        assert steps._prepare_columns([*step_rows, naive_text]) is None

    def test_non_canonical_text_is_converted_not_copied(self) -> None:
        """A row whose times are not canonical text still gets canonical text (row route)."""
        [(_, row)] = derive_run_rows(
            record(
                step_logging_id="s", entity_type="STEP", from_state="RUNNING", to_state="COMPLETED"
            )
        )
        row = {**row, "end_time": "2025-12-21T12:00:00+00:00", "run_date": "2025-12-21"}
        preparer = RowPreparer(table_spec(STEP_LOGS))
        [values], _ = preparer.prepare_items([row])
        end = preparer.columns.index("end_time")
        assert values[end] == "2025-12-21T12:00:00.000000+00:00"


class TestRecordValues:
    """RecordValues read like the record they were taken from."""

    def test_fields_by_name_and_position(self) -> None:
        """Each field reads by name as on the record, and the tuple is the values in order."""
        source = record(metadata={"k": math.pi}, at=BASE_TIME + dt.timedelta(microseconds=5))
        values = record_values(_values(source))
        assert type(values) is RecordValues
        assert tuple(values) == _values(source)
        assert {name: getattr(values, name) for name in RECORD_FIELDS} == attrs.asdict(source)
