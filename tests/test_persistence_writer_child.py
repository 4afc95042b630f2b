"""persistence._writer_child: the writer process inserts record values as sent, derives the rest."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence._derive import DERIVING_STATES, derive_run_rows
from persistence._writer_child import _decode_parts
from persistence._writer_process import _encode_parts
from persistence.schema import table_spec
from persistence.stores._sqlite_rows import RecordValues, RowPreparer
from persistence.stores.base import STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import TransitionRecord
from tests.strategies.records import STATES, record, transition_records

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_no_row_is_derived_outside_deriving_states() -> None:
    """Every edge of every entity kind: a row is derived only into a state of DERIVING_STATES."""
    deriving_edges = set()
    for kind, step_id in (("PIPELINE", None), ("STEP", "step-1")):
        for source in STATES:
            for target in STATES:
                edge = record(
                    entity_type=kind, step_logging_id=step_id, from_state=source, to_state=target
                )
                if derive_run_rows(edge):
                    deriving_edges.add(target)
    assert deriving_edges <= DERIVING_STATES
    assert deriving_edges  # the loop above reaches the deriving edges at all


@_SETTINGS
@given(records=st.lists(transition_records(), min_size=1, max_size=8))
def test_values_insert_as_the_records_would(records: list[TransitionRecord]) -> None:
    """Invariant: the child's RecordValues prepare to exactly the parameters of the records."""
    encoded, _ = _encode_parts([(STATE_TRANSITIONS, records)])
    parts, _ = _decode_parts(encoded, as_values=True)
    [(table, items)] = parts
    assert table == STATE_TRANSITIONS
    assert all(type(item) is RecordValues for item in items)
    preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
    assert preparer.prepare_items(items) == preparer.prepare_items(records)


@_SETTINGS
@given(records=st.lists(transition_records(), min_size=1, max_size=8))
def test_the_records_to_derive_imply_every_derived_row(records: list[TransitionRecord]) -> None:
    """Invariant: the RecordValues kept for derivation imply the same rows as all records."""
    encoded, _ = _encode_parts([(STATE_TRANSITIONS, records)])
    _, deriving = _decode_parts(encoded, as_values=True)
    assert [derive_run_rows(r) for r in deriving if derive_run_rows(r)] == [
        derive_run_rows(r) for r in records if derive_run_rows(r)
    ]
    assert all(type(r) is RecordValues for r in deriving)


def test_nothing_is_kept_to_derive_from_without_derive() -> None:
    """A group sent with derive=False lists no record to derive from (none is rebuilt)."""
    ends = [
        record(transition_id=f"e{i}", from_state="RUNNING", to_state="COMPLETED") for i in range(3)
    ]
    encoded, _ = _encode_parts([(STATE_TRANSITIONS, ends)])
    assert len(_decode_parts(encoded, as_values=True, derive=True)[1]) == 3
    encoded, _ = _encode_parts([(STATE_TRANSITIONS, ends)])
    assert _decode_parts(encoded, as_values=True, derive=False)[1] == []


def test_a_store_without_write_records_gets_records() -> None:
    """The outbox's writer (rows only) gets rebuilt records, every one of them to derive from."""
    records = [record(transition_id=f"r{i}") for i in range(3)]
    encoded, _ = _encode_parts([(STATE_TRANSITIONS, records), (STEP_LOGS, [])])
    parts, deriving = _decode_parts(encoded, as_values=False)
    assert parts == [(STATE_TRANSITIONS, records), (STEP_LOGS, [])]
    assert all(type(r) is TransitionRecord for r in parts[0][1])
    assert deriving == records
