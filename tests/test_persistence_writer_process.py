"""persistence._writer_process: local files are committed by a forked writer, which is reaped."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sqlite3
import weakref
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _writer_pool
from persistence._frame import wire_record
from persistence._writer_process import (
    EncodedParts,
    _encode_group,
    _encode_parts,
    record_from_values,
    record_values,
    writer_process_default,
)
from persistence.outbox import OutboxStore
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS, StoreError
from statemachine import PipelineRun, StepRun
from statemachine.records import TransitionRecord
from tests.outbox_support import GatedRemote, outbox_ids
from tests.processes import gone
from tests.strategies.records import record, transition_records


@pytest.fixture(autouse=True)
def unpooled_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests end each writer child with its store: no child is parked for reuse."""
    _writer_pool.clear()
    monkeypatch.setattr(_writer_pool, "POOL_SIZE", 0)


def stored(path: Path, table: str, column: str) -> set[str]:
    """Ids in one table, read with a separate connection."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}"')}


def one_run(logger: MetadataLogger) -> PipelineRun:
    """A finished run with one step, emitted into logger."""
    run = PipelineRun.create("p", org_slug="acme", sink=logger)
    run.start()
    step = StepRun.create("s", pipeline=run)
    step.start()
    step.complete()
    run.complete()
    return run


class TestSQLiteWriter:
    """SQLiteStore's commits run in a child process that ends with the store."""

    def test_logger_rows_land_through_a_reaped_child(self, tmp_path: Path) -> None:
        """A run's transitions and derived rows are stored by another process, reaped on close."""
        path = tmp_path / "w.db"
        store = SQLiteStore(path, writer_process=True)

        async def body() -> tuple[PipelineRun, int | None]:
            async with MetadataLogger(store, derive_run_rows=True) as logger:
                run = one_run(logger)
                assert await logger.flush(timeout=30)
                return run, store.writer_pid

        run, pid = asyncio.run(body())
        assert pid is not None
        assert pid != os.getpid()
        store.close()
        assert gone(pid)
        assert len(stored(path, STATE_TRANSITIONS, "transition_id")) == 4
        assert stored(path, PIPELINE_RUNS, "run_log_id") == {f"{run.pipeline_logging_id}:end"}
        assert len(stored(path, STEP_LOGS, "step_log_id")) == 1

    @pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling API")
    def test_the_writer_never_preempts_the_pipeline_on_wakeup(self, tmp_path: Path) -> None:
        """The child runs as SCHED_BATCH (no wakeup preemption); this process keeps its policy."""
        policy = os.sched_getscheduler(0)
        store = SQLiteStore(tmp_path / "b.db", writer_process=True)
        store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
        pid = store.writer_pid
        assert pid is not None
        try:
            assert os.sched_getscheduler(pid) == os.SCHED_BATCH
            assert os.sched_getscheduler(0) == policy
        finally:
            store.close()
        assert stored(tmp_path / "b.db", STATE_TRANSITIONS, "transition_id") == {"a"}

    def test_a_killed_writer_is_replaced_and_the_group_retried(self, tmp_path: Path) -> None:
        """After the writer dies, the next write forks a new one and nothing is lost."""
        path = tmp_path / "k.db"
        store = SQLiteStore(path, writer_process=True)
        store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
        first = store.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        failures = []
        for _ in range(2):  # a group sent before the death is noticed fails, retryably
            try:
                store.write_many([(STATE_TRANSITIONS, [record(transition_id="b")])])
                break
            except StoreError as error:
                failures.append(error)
        assert len(failures) <= 1
        assert all(f.retryable and "exited" in str(f) for f in failures)
        second = store.writer_pid
        store.close()
        assert second not in (None, first)
        assert stored(path, STATE_TRANSITIONS, "transition_id") == {"a", "b"}

    def test_a_refused_row_rejects_itself_only(self, tmp_path: Path) -> None:
        """A row SQLite cannot bind is rejected by id in the child; the rest of the group lands."""
        path = tmp_path / "bad.db"
        store = SQLiteStore(path, writer_process=True)
        huge = record(transition_id="huge", retry_count=2**70)
        results = store.write_many([(STATE_TRANSITIONS, [record(transition_id="ok"), huge])])
        store.close()
        assert results[0].written == 1
        assert [e.row_id for e in results[0].rejected] == ["huge"]
        assert stored(path, STATE_TRANSITIONS, "transition_id") == {"ok"}

    def test_a_later_fork_does_not_keep_the_writer_alive(self, tmp_path: Path) -> None:
        """A process forked after the writer closes the writer's pipe: close() still ends it."""
        store = SQLiteStore(tmp_path / "f.db", writer_process=True)
        store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
        writer = store.writer_pid
        assert writer is not None
        hold_r, hold_w = os.pipe()
        other = os.fork()
        if other == 0:  # a fork that outlives close(): waits until the test lets it go
            os.close(hold_w)
            os.read(hold_r, 1)
            os._exit(0)
        os.close(hold_r)
        try:
            store.close()  # would wait 60 s if the fork still held the writer's pipe
            assert gone(writer)
        finally:
            os.close(hold_w)
            os.waitpid(other, 0)

    def test_thread_mode_has_no_writer(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """PIPESTATE_SQLITE_WRITER=thread keeps commits in this process; a bad value is named."""
        monkeypatch.setenv("PIPESTATE_SQLITE_WRITER", "thread")
        store = SQLiteStore(tmp_path / "t.db")
        store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
        assert store.writer_pid is None
        assert not store.derives_rows
        store.close()
        monkeypatch.setenv("PIPESTATE_SQLITE_WRITER", "fork")
        with pytest.raises(ValueError, match=r"PIPESTATE_SQLITE_WRITER.*'fork'"):
            writer_process_default()


class TestForkGuard:
    """Connections of dropped stores are closed by the guard a fork waits for."""

    def test_a_dropped_store_closes_its_connection_under_the_guard(self, tmp_path: Path) -> None:
        """A store collected unclosed has its connection closed at once, not at random later."""
        store = SQLiteStore(tmp_path / "d.db", writer_process=False)
        store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
        conn = store._conn
        assert conn is not None
        del store
        gc.collect()
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


class TestOutboxWriter:
    """The outbox's commits run in a writer process as well."""

    def test_run_lands_in_the_outbox_file(self, tmp_path: Path) -> None:
        """Transitions and derived rows reach the outbox file; counters see them; reaped."""
        remote = GatedRemote()
        remote.outage = True  # nothing ships: every row stays in the file
        path = tmp_path / "outbox.db"
        store = OutboxStore(remote, path, upload_interval_seconds=3600, writer_process=True)

        async def body() -> PipelineRun:
            async with MetadataLogger(store, derive_run_rows=True) as logger:
                run = one_run(logger)
                assert await logger.flush(timeout=30)
                return run

        run = asyncio.run(body())
        enqueued = store.status()["rows_enqueued"]
        writer = store._writer
        assert writer is not None
        pid = writer.pid
        store.close(timeout=0)
        ids = outbox_ids(path)
        assert f"{run.pipeline_logging_id}:end" in ids
        assert len(ids) == 4 + 2  # transitions + the run's row + the step's row
        assert enqueued == len(ids)
        assert pid is not None
        assert gone(pid)


class TestRecordValues:
    """A pipelined store's records travel (and wait in the queue) as their value tuples."""

    @settings(max_examples=50, deadline=None)
    @given(rec=transition_records())
    def test_a_record_survives_its_value_tuple(self, rec: TransitionRecord) -> None:
        """Invariant: rebuilding a record from record_values(record) gives the same record."""
        assert record_from_values(record_values(rec)) == rec

    def test_a_value_tuple_is_encoded_as_its_record(self) -> None:
        """The frame of a group is the same whether it holds records, their value tuples or
        their wire tuples."""
        recs = [record(transition_id=f"v{i}", metadata={"i": i}) for i in range(3)]
        parts = [(STATE_TRANSITIONS, recs)]
        as_values = [(STATE_TRANSITIONS, [record_values(r) for r in recs])]
        as_wire = [(STATE_TRANSITIONS, [wire_record(r) for r in recs])]
        assert _encode_parts(as_values) == _encode_parts(parts)
        assert _encode_parts(as_wire) == _encode_parts(parts)

    def test_emit_keeps_no_record_and_the_row_lands_whole(self, tmp_path: Path) -> None:
        """Under a writer child, emit() queues the record's wire tuple and keeps no reference
        to the record itself; the stored row is the record's."""
        path = tmp_path / "v.db"

        async def body() -> None:
            store = SQLiteStore(path, writer_process=True)
            try:
                async with MetadataLogger(store) as logger:
                    channel = logger.channels[STATE_TRANSITIONS]
                    rec = record(transition_id="whole", reason="why", metadata={"k": "v", "n": 2})
                    alive = weakref.ref(rec)
                    logger.emit(rec)
                    assert channel.queue[-1] == wire_record(rec)
                    del rec
                    assert alive() is None
                    assert await logger.flush(timeout=60)
            finally:
                store.close()

        asyncio.run(body())
        with sqlite3.connect(path) as conn:
            row = conn.execute(
                "SELECT reason, metadata FROM org_meta_state_transitions WHERE transition_id = ?",
                ("whole",),
            ).fetchone()
        assert row[0] == "why"
        assert json.loads(row[1]) == {"k": "v", "n": 2}

    def test_emit_drops_a_record_the_full_queue_cannot_take(self, tmp_path: Path) -> None:
        """emit()'s short way queues only while the queue has room: past its capacity (no
        put_timeout) a record is dropped as queue_full, and after stop() as shutdown."""
        settings = LoggerSettings(batch_size=2, queue_size=2, put_timeout=0.0)

        async def body() -> tuple[int, dict[str, int], dict[str, int]]:
            store = SQLiteStore(tmp_path / "full.db", writer_process=True)
            try:
                logger = MetadataLogger(store, settings)
                await logger.start()
                channel = logger.channels[STATE_TRANSITIONS]
                for i in range(5):  # no await in between: nothing leaves the queue meanwhile
                    logger.emit(record(transition_id=f"f{i}"))
                queued = len(channel.queue)
                full = dict(channel.drops)
                await logger.stop()
                logger.emit(record(transition_id="late"))
                return queued, full, dict(channel.drops)
            finally:
                store.close()

        queued, full, after = asyncio.run(body())
        assert queued == 2
        assert full == {"queue_full": 3}
        assert after == {"queue_full": 3, "shutdown": 1}


class TestEncodedParts:
    """A group encoded once is sent (and resent) as its frame, without its items."""

    def test_encoded_parts_carry_the_frame_of_their_items(self) -> None:
        """EncodedParts read as the parts' tables and send the frame the parts would."""
        recs = [record(transition_id=f"e{i}", metadata={"i": i}) for i in range(3)]
        parts = [(STATE_TRANSITIONS, [record_values(r) for r in recs]), (PIPELINE_RUNS, [])]
        encoded = EncodedParts(parts, True)
        assert [table for table, _ in encoded] == [STATE_TRANSITIONS, PIPELINE_RUNS]
        assert _encode_group(encoded, True) == _encode_group(parts, True)
        with pytest.raises(ValueError, match="derive=True"):
            _encode_group(encoded, False)

    @settings(max_examples=30, deadline=None)
    @given(recs=st.lists(transition_records(), max_size=4))
    def test_decoded_gives_back_what_was_encoded(self, recs: list[TransitionRecord]) -> None:
        """Invariant: the records and rows an encoded group holds are the ones encoded."""
        rows = [{"pipeline_logging_id": "p1", "n": 1}]
        parts = [(STATE_TRANSITIONS, [record_values(r) for r in recs]), (PIPELINE_RUNS, rows)]
        assert EncodedParts(parts, False).decoded() == [
            (STATE_TRANSITIONS, recs),
            (PIPELINE_RUNS, rows),
        ]


class TestCollectedConnections:
    def test_a_finalizer_never_waits_for_a_fork_under_way(self) -> None:
        """A collected store's connection closed while another thread holds the fork guard is
        left for the fork's end (a blocking wait there deadlocked with os.fork()'s at-fork
        locks), and closed by it."""
        import threading

        from persistence import _writer_process

        conn = sqlite3.connect(":memory:", check_same_thread=False)
        holding, release = threading.Event(), threading.Event()

        def fork_under_way() -> None:
            with _writer_process._FORK_GUARD:
                holding.set()
                release.wait(10)

        forker = threading.Thread(target=fork_under_way)
        forker.start()
        assert holding.wait(10)
        closer = threading.Thread(target=_writer_process._close_guarded, args=(conn,))
        closer.start()
        closer.join(5)
        returned = not closer.is_alive()
        release.set()
        forker.join(10)
        closer.join(10)
        assert returned, "the finalizer waited for the fork guard"
        assert conn.execute("SELECT 1").fetchone() == (1,)  # still open: deferred
        _writer_process._close_deferred()
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
        assert _writer_process._DEFERRED_CLOSES == []
