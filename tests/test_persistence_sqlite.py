"""SQLiteStore: idempotent batches, per-row rejection, threads, processes, opening a store URL."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import SQLiteStore, open_store
from persistence.stores.base import (
    STATE_TRANSITIONS,
    STEP_LOGS,
    Bootstrappable,
    Store,
    StoreError,
)
from statemachine.records import TransitionRecord
from tests import sqlite_support
from tests.sqlite_support import table_rows
from tests.strategies.records import BASE_TIME, many_records, record, transition_records

# Fixtures shared with the other SQLiteStore tests.
db = sqlite_support.db
store = sqlite_support.store

ROOT = Path(__file__).resolve().parent.parent


class TestWriteBatch:
    """write_batch inserts rows idempotently and keeps the stored values faithful."""

    def test_store_satisfies_both_protocols(self, store: SQLiteStore) -> None:
        """SQLiteStore is a Store and a Bootstrappable."""
        assert isinstance(store, Store)
        assert isinstance(store, Bootstrappable)

    def test_row_round_trips_with_canonical_timestamp(self, store: SQLiteStore, db: Path) -> None:
        """A written record reads back field for field; timestamps are fixed-width UTC text."""
        rec = record(at=BASE_TIME.replace(microsecond=0), metadata={"rows_processed": 1000})
        result = store.write_batch(STATE_TRANSITIONS, [rec.to_row()])
        assert (result.written, result.rejected) == (1, ())
        [row] = table_rows(db)
        expected = rec.to_row()
        expected["transition_time"] = "2025-12-21T12:00:00.000000+00:00"
        assert row == expected
        assert json.loads(str(row["metadata"])) == {"rows_processed": 1000}

    @settings(
        max_examples=25,
        deadline=None,  # file I/O: a busy machine makes one example slow
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(records=st.lists(transition_records(id_prefix="rt"), min_size=1, max_size=20))
    def test_rewriting_batches_never_duplicates(
        self, tmp_path: Path, records: list[TransitionRecord]
    ) -> None:
        """Whatever the records, writing them, then again in other batches, stores each id once."""
        path = tmp_path / f"h{records[0].transition_id}.db"
        s = SQLiteStore(path)
        rows = [r.to_row() for r in records]
        s.write_batch(STATE_TRANSITIONS, rows)
        again = s.write_batch(STATE_TRANSITIONS, rows[::-1])
        assert (again.written, again.rejected) == (len(rows), ())  # a retry is not an error
        for row in rows:
            s.write_batch(STATE_TRANSITIONS, [row])
        s.close()
        stored = table_rows(path)
        assert sorted(str(r["transition_id"]) for r in stored) == sorted(
            r.transition_id for r in records
        )
        by_id = {r["transition_id"]: r for r in stored}
        for rec in records:
            got = by_id[rec.transition_id]
            assert got["metadata"] == rec.to_row()["metadata"]
            assert got["stack_trace_truncated"] == rec.stack_trace_truncated
            parsed = dt.datetime.fromisoformat(str(got["transition_time"]))
            assert parsed == rec.transition_time

    def test_bad_row_is_rejected_by_id_and_the_rest_land(
        self, store: SQLiteStore, db: Path
    ) -> None:
        """A row missing a REQUIRED column is reported with its id; the other rows are written."""
        good = [record(transition_id=f"ok-{i}").to_row() for i in range(3)]
        bad = dict(record(transition_id="bad-1").to_row(), org_slug=None)
        result = store.write_batch(STATE_TRANSITIONS, [good[0], bad, *good[1:]])
        assert result.written == 3
        assert [e.row_id for e in result.rejected] == ["bad-1"]
        assert "org_slug" in result.rejected[0].message
        assert sorted(str(r["transition_id"]) for r in table_rows(db)) == ["ok-0", "ok-1", "ok-2"]

    def test_malformed_timestamp_and_unknown_column_are_rejected(self, store: SQLiteStore) -> None:
        """Rows with an unparsable timestamp or an unknown column are rejected by id."""
        bad_time = dict(record(transition_id="t1").to_row(), transition_time="yesterday")
        extra = dict(record(transition_id="t2").to_row(), surprise=1)
        result = store.write_batch(STATE_TRANSITIONS, [bad_time, extra])
        assert result.written == 0
        assert [e.row_id for e in result.rejected] == ["t1", "t2"]

    def test_unknown_table_is_a_permanent_store_error(self, store: SQLiteStore) -> None:
        """Writing to a table that does not exist is a non-retryable StoreError naming it."""
        with pytest.raises(StoreError, match="nope") as info:
            store.write_batch("nope", [{"a": 1}])
        assert info.value.retryable is False

    def test_step_rows_with_json_metadata_dicts(self, store: SQLiteStore, db: Path) -> None:
        """A dict in a JSON column is stored as JSON text."""
        row = {
            "step_log_id": "s:0:end",
            "step_logging_id": "s",
            "pipeline_logging_id": "p",
            "org_slug": "acme",
            "step_name": "extract",
            "attempt": 0,
            "status": "FAILED",
            "start_time": BASE_TIME,
            "run_date": BASE_TIME.date(),
            "metadata": {"error_context": {"error_type": "TRANSIENT"}},
        }
        assert store.write_batch(STEP_LOGS, [row]).written == 1
        [stored] = table_rows(db, STEP_LOGS)
        assert json.loads(str(stored["metadata"])) == {"error_context": {"error_type": "TRANSIENT"}}
        assert stored["run_date"] == "2025-12-21"

    def test_locked_file_is_a_retryable_store_error(self, db: Path) -> None:
        """When another connection holds the write lock past busy_timeout, it is retryable."""
        s = SQLiteStore(db, busy_timeout_seconds=0.05)
        s.write_batch(STATE_TRANSITIONS, [record().to_row()])
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError) as info:
                s.write_batch(STATE_TRANSITIONS, [record().to_row()])
            assert info.value.retryable is True
        finally:
            other.execute("ROLLBACK")
            other.close()
            s.close()

    def test_closed_store_refuses_and_close_is_idempotent(self, db: Path) -> None:
        """close() twice is fine; a write after close is a permanent StoreError."""
        s = SQLiteStore(db)
        s.close()
        s.close()
        with pytest.raises(StoreError, match="closed"):
            s.write_batch(STATE_TRANSITIONS, [record().to_row()])


class TestConcurrency:
    """Several threads and several processes may write one file at once."""

    def test_threads_sharing_a_store_lose_nothing(self, store: SQLiteStore, db: Path) -> None:
        """Eight threads writing disjoint batches through one store land every row once."""
        records = many_records(4000, prefix="thr")

        def work(k: int) -> None:
            mine = [r.to_row() for r in records[k::8]]
            for i in range(0, len(mine), 50):
                store.write_batch(STATE_TRANSITIONS, mine[i : i + 50])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(str(r["transition_id"]) for r in table_rows(db)) == sorted(
            r.transition_id for r in records
        )

    def test_processes_writing_one_file_lose_nothing(self, db: Path) -> None:
        """Three processes writing overlapping batches to one file store each id exactly once."""
        script = (
            "import sys\n"
            "from persistence import SQLiteStore\n"
            "from tests.strategies.records import many_records\n"
            "k = int(sys.argv[2])\n"
            "s = SQLiteStore(sys.argv[1])\n"
            "rows = [r.to_row() for r in many_records(3000, prefix='proc')]\n"
            "mine = rows[k * 1000 : k * 1000 + 1500]\n"  # overlaps the next process's slice
            "for i in range(0, len(mine), 100):\n"
            "    s.write_batch('org_meta_state_transitions', mine[i : i + 100])\n"
            "s.close()\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(db), str(k)], cwd=ROOT)
            for k in range(3)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        ids = [r["transition_id"] for r in table_rows(db)]
        assert len(ids) == len(set(ids)) == 3000


class TestOpenStore:
    """open_store picks a store from a URL."""

    def test_sqlite_url_opens_that_file(self, db: Path) -> None:
        """'sqlite:PATH' opens a SQLiteStore on PATH."""
        s = open_store(f"sqlite:{db}")
        assert isinstance(s, SQLiteStore)
        assert s.path == str(db)
        s.close()

    @pytest.mark.parametrize("url", ["pipestate.db", "mysql:x", "bigquery:"])
    def test_bad_urls_are_rejected_with_the_url(self, url: str) -> None:
        """A URL without a known scheme (or a bigquery URL without project) is a ValueError."""
        with pytest.raises(ValueError, match=r"store URL|scheme|project"):
            open_store(url)


def test_transition_record_strategy_builds_valid_records() -> None:
    """The shared strategy yields TransitionRecords whose rows every store accepts."""

    @settings(max_examples=10)
    @given(transition_records())
    def check(rec: TransitionRecord) -> None:
        assert rec.to_row()["transition_id"] == rec.transition_id

    check()
