"""SQLiteStore's schema and retention (stores/_sqlite_schema.py): purge and ensure_tables."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from persistence import SQLiteStore
from persistence.schema import (
    load_table_specs,
    sqlite_create_table,
    sqlite_indexes,
    sqlite_retired_indexes,
    table_spec,
)
from persistence.stores.base import (
    PIPELINE_RUNS,
    STATE_TRANSITIONS,
    STEP_LOGS,
)
from persistence.stores.sqlite import PAGE_SIZE_BYTES
from tests import sqlite_support
from tests.sqlite_support import table_rows
from tests.strategies.records import record

# Fixtures shared with the other SQLiteStore tests.
db = sqlite_support.db
store = sqlite_support.store


def _one_write_then_interval(db: Path) -> int:
    """Open a store on db, create the tables, write one record, close; its wal_autocheckpoint."""
    store = SQLiteStore(db, writer_process=False)
    store.ensure_tables(load_table_specs(), dry_run=False)
    assert store.write_records(STATE_TRANSITIONS, [record()]).written == 1
    assert store._conn is not None
    (interval,) = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    store.close()
    return int(interval)


class TestRetentionAndBootstrap:
    """purge_older_than and ensure_tables."""

    def test_purge_deletes_only_rows_before_the_cutoff(self, store: SQLiteStore, db: Path) -> None:
        """Rows dated before as_of - days go; rows on or after the cutoff stay."""
        as_of = dt.date(2025, 12, 31)
        days = [as_of - dt.timedelta(days=n) for n in (0, 89, 90, 91, 400)]
        rows = [
            record(
                transition_id=f"d{n}",
                at=dt.datetime.combine(d, dt.time(12), tzinfo=dt.UTC),
            ).to_row()
            for n, d in enumerate(days)
        ]
        store.write_batch(STATE_TRANSITIONS, rows)
        deleted = store.purge_older_than(90, as_of=as_of)
        assert deleted[STATE_TRANSITIONS] == 2
        assert sorted(str(r["transition_id"]) for r in table_rows(db)) == ["d0", "d1", "d2"]

    def test_purge_rejects_negative_days(self, store: SQLiteStore) -> None:
        """A negative retention is a ValueError naming the argument."""
        with pytest.raises(ValueError, match="days"):
            store.purge_older_than(-1)

    def test_ensure_tables_dry_run_changes_nothing(self, store: SQLiteStore, db: Path) -> None:
        """A dry run lists every table to create but leaves the file empty of tables."""
        actions = store.ensure_tables(load_table_specs(), dry_run=True)
        assert [a.split()[2] for a in actions if a.startswith("create table")] == [
            s.name for s in load_table_specs()
        ]
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
        conn.close()

    def test_ensure_tables_is_idempotent(self, store: SQLiteStore) -> None:
        """The first real run creates tables and indexes; the second finds nothing to do."""
        assert store.ensure_tables(load_table_specs(), dry_run=False)
        assert store.ensure_tables(load_table_specs(), dry_run=False) == []

    def test_a_new_file_gets_8_kib_pages_and_a_64_mib_checkpoint_interval(self, db: Path) -> None:
        """A file the store creates has PAGE_SIZE_BYTES pages and checkpoints every ~64 MiB."""
        interval = _one_write_then_interval(db)
        conn = sqlite3.connect(db)
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.close()
        assert (page_size, interval) == (PAGE_SIZE_BYTES, 8_000)

    def test_the_writer_childs_store_checkpoints_in_a_thread(self, db: Path) -> None:
        """Tuned for the writer child, the connection never auto-checkpoints, and once a
        threshold's worth of WAL frames is committed the checkpointer thread copies them back."""
        store = SQLiteStore(db, writer_process=False)
        store.tune_for_writer_child(checkpoint_frames=40)
        store.ensure_tables(load_table_specs(), dry_run=False)
        assert store._conn is not None
        assert store._checkpointer is not None
        (interval,) = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        checkpointer = store._checkpointer
        batch = 0
        # Small commits (a few frames each) until the last one crossed the threshold.
        while (checkpointer.pending_frames() or 0) < checkpointer.threshold:
            rows = [record(transition_id=f"r{batch}-{i}") for i in range(5)]
            assert store.write_records(STATE_TRANSITIONS, rows).written == 5
            batch += 1
        with checkpointer.checkpointed:
            checkpointer.checkpointed.wait_for(lambda: checkpointer.checkpoints > 0, timeout=10)
        pending = checkpointer.pending_frames()
        store.close()
        assert interval == 0
        assert checkpointer.checkpoints >= 1
        assert pending is not None
        assert pending < 2 * checkpointer.threshold
        assert not (db.parent / (db.name + "-wal")).exists()  # the close checkpointed the rest
        assert checkpointer.writer_checkpoints == 0
        assert len(table_rows(db)) == 5 * batch

    def test_an_existing_4_kib_file_keeps_its_pages_and_its_interval(self, db: Path) -> None:
        """A file made with 4 KiB pages keeps them (rows still land) and checkpoints every
        16,000 pages, the same ~64 MiB."""
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA page_size = 4096")
        conn.execute(sqlite_create_table(table_spec(STATE_TRANSITIONS)))
        conn.commit()
        interval = _one_write_then_interval(db)
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        assert len(table_rows(db)) == 1
        conn.close()
        assert (page_size, interval) == (4096, 16_000)

    def test_ensure_tables_drops_retired_indexes(self, store: SQLiteStore, db: Path) -> None:
        """An index an earlier version made (merged into another since) is dropped, and said so."""
        store.ensure_tables(load_table_specs(), dry_run=False)
        old = sqlite_retired_indexes(table_spec(STATE_TRANSITIONS))[0][0]
        conn = sqlite3.connect(db)
        conn.execute(f'CREATE INDEX "{old}" ON {STATE_TRANSITIONS} (transition_date)')
        conn.commit()
        assert store.ensure_tables(load_table_specs(), dry_run=False) == [
            f"drop index {old} on {STATE_TRANSITIONS}"
        ]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        conn.close()
        assert old not in names
        assert {n for n, _ in sqlite_indexes(table_spec(STATE_TRANSITIONS))} <= names

    def test_a_file_with_the_old_derived_table_indexes_loses_them_and_keeps_working(
        self, db: Path
    ) -> None:
        """A file made by an earlier version (run, run_date on the run and step tables) has
        them dropped on open; its rows stay, new rows land and the queries still answer."""
        conn = sqlite3.connect(db)
        for spec in load_table_specs():
            conn.execute(sqlite_create_table(spec))
        for table in (PIPELINE_RUNS, STEP_LOGS):
            date = "run_date"
            conn.execute(f'CREATE INDEX "ix_{table}__run" ON "{table}" (pipeline_logging_id)')
            conn.execute(f'CREATE INDEX "ix_{table}__{date}" ON "{table}" ({date})')
        conn.commit()
        old = SQLiteStore(db, writer_process=False)
        old._schema_ready = True  # as an earlier version left it: tables and indexes made
        first = record(transition_id="before", from_state="RUNNING", to_state="COMPLETED")
        assert old.write_records(STATE_TRANSITIONS, [first]).written == 1
        old.close()
        store = SQLiteStore(db, writer_process=False)
        actions = store.ensure_tables(load_table_specs(), dry_run=False)
        assert sorted(a for a in actions if a.startswith("drop")) == sorted(
            f"drop index ix_{t}__{i} on {t}"
            for t in (PIPELINE_RUNS, STEP_LOGS)
            for i in ("run", "run_date")
        )
        later = record(transition_id="after", pipeline_logging_id="run-2")
        assert store.write_records(STATE_TRANSITIONS, [later]).written == 1
        assert len(store.query("timeline", {"pipeline_logging_id": "run-1"})) == 1
        store.close()
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        conn.close()
        assert not any(n.startswith((f"ix_{PIPELINE_RUNS}", f"ix_{STEP_LOGS}")) for n in names)
