"""persistence._writer_process: local files are committed by a forked writer, which is reaped."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from persistence import MetadataLogger, SQLiteStore, _writer_pool
from persistence._writer_process import writer_process_default
from persistence.outbox import OutboxStore
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS, StoreError
from statemachine import PipelineRun, StepRun
from tests.outbox_support import GatedRemote, outbox_ids
from tests.processes import gone
from tests.strategies.records import record


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
