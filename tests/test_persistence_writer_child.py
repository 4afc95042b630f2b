"""persistence._writer_child: the writer process inserts record values as sent, derives the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence._derive import DERIVING_STATES, derive_run_rows
from persistence._frame import dump_group, load_group
from persistence._frame import encode_parts as _encode_parts
from persistence._rows import step_log_row
from persistence._writer_child import _commit, _commit_prepared, _decode_parts
from persistence.schema import table_spec
from persistence.stores._sqlite_rows import RecordValues, RowPreparer
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from persistence.stores.sqlite import CHILD_ROWS_PER_STATEMENT, SQLiteStore
from statemachine.records import TransitionRecord
from tests.strategies.records import BASE_TIME, STATES, record, transition_records

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


def _groups(*parts_lists: list[tuple[str, list[Any]]], derive: bool = True) -> list[Any]:
    """Groups as the child reads them from frames (encoded, marshalled, loaded)."""
    return [load_group(dump_group(_encode_parts(parts)[0], derive)) for parts in parts_lists]


def _rows(store: SQLiteStore, table: str) -> list[dict[str, Any]]:
    return store.select_rows(table, {})


class TestCommitRoutes:
    """_commit writes the usual groups from the wire tuples, anything else the general way."""

    def test_usual_groups_take_the_wire_route_and_reply_per_group(self, tmp_path: Path) -> None:
        """Two groups of records: one transaction, a reply per group, derived rows counted once."""
        store = SQLiteStore(tmp_path / "w.db", writer_process=False)
        first = [record(transition_id="a1", from_state="PENDING", to_state="RUNNING")]
        second = [
            record(transition_id="a2", from_state="RUNNING", to_state="COMPLETED"),
            record(
                transition_id="a3",
                entity_type="STEP",
                step_logging_id="s-1",
                from_state="RUNNING",
                to_state="FAILED",
            ),
        ]
        groups = _groups([(STATE_TRANSITIONS, first)], [(STATE_TRANSITIONS, second)])
        replies = _commit_prepared(store, groups)
        assert replies is not None
        assert [status for status, _ in replies] == ["ok", "ok"]
        (own1, derived, failures), (own2, later, _) = (body for _, body in replies)
        assert [r.written for r in own1] == [1]
        assert [r.written for r in own2] == [2]
        assert [(t, r.written) for t, r in derived] == [(PIPELINE_RUNS, 1), (STEP_LOGS, 1)]
        assert failures == 0
        assert later == []
        assert len(_rows(store, STATE_TRANSITIONS)) == 3
        assert [r["status"] for r in _rows(store, STEP_LOGS)] == ["FAILED"]
        store.close()

    def test_an_unusual_group_falls_back_and_is_rejected_by_id(self, tmp_path: Path) -> None:
        """A record without org_slug: the wire route declines (frames untouched), the general
        route rejects that record by id and writes the other."""
        store = SQLiteStore(tmp_path / "w.db", writer_process=False)
        bad = attrs.evolve(record(transition_id="bad"), org_slug=None)  # type: ignore[arg-type]
        groups = _groups([(STATE_TRANSITIONS, [record(transition_id="good"), bad])])
        assert _commit_prepared(store, groups) is None
        [(status, (own, _, _))] = _commit(store, groups)
        assert status == "ok"
        assert own[0].written == 1
        assert [e.row_id for e in own[0].rejected] == ["bad"]
        assert [r["transition_id"] for r in _rows(store, STATE_TRANSITIONS)] == ["good"]
        store.close()

    def test_rows_of_other_tables_take_the_general_route(self, tmp_path: Path) -> None:
        """A group holding a logged row (not a record) is written the general way, in full."""
        store = SQLiteStore(tmp_path / "w.db", writer_process=False)
        row = step_log_row(
            phase="end",
            step_logging_id="s-9",
            pipeline_logging_id="run-1",
            org_slug="acme",
            step_name="load",
            status="COMPLETED",
            start_time=BASE_TIME,
            end_time=BASE_TIME,
        )
        groups = _groups([(STATE_TRANSITIONS, [record(transition_id="t1")]), (STEP_LOGS, [row])])
        assert _commit_prepared(store, groups) is None
        [(status, (own, _, _))] = _commit(store, groups)
        assert status == "ok"
        assert [r.written for r in own] == [1, 1]
        assert [r["step_log_id"] for r in _rows(store, STEP_LOGS)] == [row["step_log_id"]]
        store.close()


def test_the_child_binds_none_as_null_through_a_registered_adapter() -> None:
    """bind_none_directly registers a None adapter (in a fresh process), and None stays NULL."""
    script = (
        "import sqlite3\n"
        "from persistence._writer_child import bind_none_directly\n"
        "key = (type(None), sqlite3.PrepareProtocol)\n"
        "assert key not in sqlite3.adapters\n"
        "bind_none_directly()\n"
        "assert key in sqlite3.adapters\n"
        "conn = sqlite3.connect(':memory:')\n"
        "print(conn.execute('SELECT ? IS NULL, typeof(?)', (None, None)).fetchone())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "(1, 'null')"


def test_the_childs_store_writes_short_statements(tmp_path: Path) -> None:
    """tune_for_writer_child caps every table's rows per INSERT, and a 40-row group still lands."""
    store = SQLiteStore(tmp_path / "w.db", writer_process=False)
    store.tune_for_writer_child()
    preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
    preparer.rows_per_statement = CHILD_ROWS_PER_STATEMENT
    rows = [record(transition_id=f"r{i}") for i in range(40)]
    assert len(preparer.statements(preparer.prepare_items(rows)[0])) == 3  # 16 + 16 + 8
    groups = _groups([(STATE_TRANSITIONS, rows)])
    [(status, (own, _, _))] = _commit(store, groups)
    assert status == "ok"
    assert own[0].written == 40
    assert len(_rows(store, STATE_TRANSITIONS)) == 40
    assert {p.rows_per_statement for p in store._preparers.values()} == {CHILD_ROWS_PER_STATEMENT}
    store.close()


@_SETTINGS
@given(count=st.integers(min_value=0, max_value=80))
def test_halving_statements_keep_every_row_in_order(count: int) -> None:
    """Invariant: halving splits n rows into statements of the few compiled sizes, rows in order."""
    preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
    preparer.rows_per_statement = CHILD_ROWS_PER_STATEMENT
    preparer.halving = True
    rows = [tuple(range(i * 3, i * 3 + 3)) for i in range(count)]
    statements = preparer.statements(rows)
    sizes = [len(params) // 3 for _, params in statements]
    assert [value for _, params in statements for value in params] == [
        value for row in rows for value in row
    ]
    assert set(sizes) <= set(preparer.statement_sizes()) == {16, 8, 4, 2, 1}
    assert sizes == sorted(sizes, reverse=True)  # at most one statement of each size below 16
    assert len(sizes) - sizes.count(16) == bin(count % 16).count("1")
    for sql, params in statements:
        assert sql == preparer.multi_insert_sql(len(params) // 3)


def _prepared_statements(store: SQLiteStore) -> set[str]:
    """The SQL of the statements prepared (cached) on the store's connection (sqlite_stmt)."""
    assert store._conn is not None
    return {sql for (sql,) in store._conn.execute("SELECT sql FROM sqlite_stmt")}


def test_the_childs_store_compiles_its_inserts_before_the_first_commit(tmp_path: Path) -> None:
    """_open_store leaves every halving INSERT of the child's three tables compiled, none run."""
    import functools

    from persistence._writer_child import _open_store

    path = tmp_path / "warm.db"
    store = _open_store(functools.partial(SQLiteStore, path, writer_process=False))
    try:
        compiled = _prepared_statements(store)
        for table in (STATE_TRANSITIONS, STEP_LOGS, PIPELINE_RUNS):
            preparer = store._preparers[table]
            wanted = {preparer.multi_insert_sql(size) for size in (16, 8, 4, 2, 1)}
            assert wanted <= compiled, table
        assert not store._conn.in_transaction
        assert all(_rows(store, table) == [] for table in (STATE_TRANSITIONS, STEP_LOGS))
        groups = _groups([(STATE_TRANSITIONS, [record(transition_id=f"w{i}") for i in range(21)])])
        [(status, _)] = _commit(store, groups)
        assert status == "ok"
        assert len(_rows(store, STATE_TRANSITIONS)) == 21
    finally:
        store.close()
