"""persistence._writer_pool: a closed store's writer child is parked and reused by the next one."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import MetadataLogger, SQLiteStore, _writer_pool
from persistence._writer_link import Link
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine import PipelineRun, StepRun
from tests.processes import ROOT


@pytest.fixture(autouse=True)
def empty_pool() -> Iterator[None]:
    """Each test starts and ends with no parked child (earlier tests may have left some)."""
    _writer_pool.clear()
    yield
    _writer_pool.clear()


def count(path: Path, table: str) -> int:
    """Rows in one table, read with a separate connection."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


def log_runs(store: SQLiteStore, runs: int) -> int | None:
    """Log `runs` one-step runs through a logger on store (flushed); the writer's pid."""

    async def body() -> int | None:
        async with MetadataLogger(store, derive_run_rows=True) as logger:
            for _ in range(runs):
                run = PipelineRun.create("p", org_slug="acme", sink=logger)
                run.start()
                step = StepRun.create("s", pipeline=run)
                step.start()
                step.complete()
                run.complete()
            assert await logger.flush(timeout=30)
            return store.writer_pid

    return asyncio.run(body())


def exited(pid: int, within: float = 10.0) -> bool:
    """True once `pid` has exited (waits on a pidfd, at most `within` seconds)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], within)[0])
    finally:
        os.close(fd)


def open_on(pid: int, path: Path) -> list[str]:
    """The files of path (the database, its -wal and -shm) that process pid holds open."""
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.removesuffix(" (deleted)") in names:
            held.append(target)
    return held


class TestReuse:
    """A second store in the same process gets the first one's child, not a new fork."""

    def test_a_second_store_reuses_the_parked_child(self, tmp_path: Path) -> None:
        """Two stores on two files, one after the other: one child, and all rows of both stored."""
        first, second = tmp_path / "a.db", tmp_path / "b.db"
        store = SQLiteStore(first, writer_process=True)
        pid = log_runs(store, 2)
        store.close()
        assert pid is not None
        assert _writer_pool.parked_pids() == [pid]
        store = SQLiteStore(second, writer_process=True)
        again = log_runs(store, 3)
        store.close()
        assert again == pid
        assert (count(first, STATE_TRANSITIONS), count(first, STEP_LOGS)) == (8, 2)
        assert (count(second, STATE_TRANSITIONS), count(second, STEP_LOGS)) == (12, 3)
        assert count(second, PIPELINE_RUNS) == 3

    def test_the_same_file_is_reopened_by_the_same_child(self, tmp_path: Path) -> None:
        """A store closes its own connection before the fork, so its file's next store reuses."""
        path = tmp_path / "same.db"
        pids = []
        for _ in range(3):
            store = SQLiteStore(path, writer_process=True)
            pids.append(log_runs(store, 1))
            store.close()
        assert len(set(pids)) == 1
        assert count(path, STATE_TRANSITIONS) == 12

    def test_a_file_open_at_the_fork_is_not_reopened(self, tmp_path: Path) -> None:
        """A file this process held open when the child was forked gets a new child."""
        held = tmp_path / "held.db"
        sqlite3.connect(held).execute("CREATE TABLE t (x)").connection.commit()
        keep = sqlite3.connect(held)  # open across the fork below
        try:
            store = SQLiteStore(tmp_path / "other.db", writer_process=True)
            first = log_runs(store, 1)
            store.close()
            store = SQLiteStore(held, writer_process=True)
            second = log_runs(store, 1)
            store.close()
            parked = _writer_pool.parked_pids()
        finally:
            keep.close()
        assert first is not None
        assert second not in (None, first)
        assert parked == [first]  # the second could not reopen its own file: not parked
        assert count(held, STATE_TRANSITIONS) == 4

    def test_a_parked_child_holds_no_descriptor_on_its_file(self, tmp_path: Path) -> None:
        """After close() the parked child has closed the database; the WAL is checkpointed away."""
        path = tmp_path / "fd.db"
        store = SQLiteStore(path, writer_process=True)
        pid = log_runs(store, 2)
        assert pid is not None
        assert open_on(pid, path)  # the check sees the child's files while it writes
        store.close()
        assert _writer_pool.parked_pids() == [pid]
        assert open_on(pid, path) == []
        assert not Path(f"{path}-wal").exists()

    def test_a_store_closed_beside_its_running_loop_parks_its_child(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """close() from another thread while the logger's loop still runs and reads the child's
        answers parks the child at once: it never waits on a pipe that loop has emptied."""
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        read = Link.read_available

        def loop_reads_first(link: Link) -> None:
            # The loop wins every race for the answer (the service's case): only it reads.
            if threading.get_ident() == runner.ident:
                read(link)

        monkeypatch.setattr(Link, "read_available", loop_reads_first)
        store = SQLiteStore(tmp_path / "loop.db", writer_process=True)
        try:
            pids = []
            for _ in range(2):
                logger = MetadataLogger(store, derive_run_rows=True)
                asyncio.run_coroutine_threadsafe(logger.start(), loop).result(30)
                run = PipelineRun.create("p", org_slug="acme", sink=logger)
                asyncio.run_coroutine_threadsafe(_finish(run, logger), loop).result(30)
                pids.append(store.writer_pid)
                closing = threading.Thread(target=store.close)
                closing.start()
                closing.join(20)  # a close waiting on the emptied pipe took the whole 60 s
                assert not closing.is_alive()
                assert _writer_pool.parked_pids() == [pids[-1]]
                store = SQLiteStore(tmp_path / "loop.db", writer_process=True)
        finally:
            asyncio.run_coroutine_threadsafe(asyncio.to_thread(store.close), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            runner.join(30)
            loop.close()
        assert len(set(pids)) == 1
        assert count(tmp_path / "loop.db", STATE_TRANSITIONS) == 4


async def _finish(run: PipelineRun, logger: MetadataLogger) -> None:
    """Start and complete `run` on the running loop, flush and stop its logger there."""
    run.start()
    run.complete()
    assert await logger.flush(timeout=30)
    await logger.stop()


class TestEnd:
    """A parked child never outlives its use: parent death, idle timeout, death while parked."""

    def test_a_parked_child_exits_when_its_parent_is_killed(self, tmp_path: Path) -> None:
        """SIGKILL of the process that parked a child makes the child exit (end-of-file)."""
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            from persistence import SQLiteStore, _writer_pool
            from persistence.stores.base import STATE_TRANSITIONS
            from tests.strategies.records import record
            store = SQLiteStore({str(tmp_path / "k.db")!r}, writer_process=True)
            store.write_many([(STATE_TRANSITIONS, [record(transition_id="a")])])
            store.close()
            print(*_writer_pool.parked_pids(), flush=True)
            sys.stdin.read()
            """
        )
        parent = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert parent.stdout is not None
            parked = int(parent.stdout.readline())
            assert not exited(parked, within=0.0)
            parent.send_signal(signal.SIGKILL)
            parent.wait(30)
            assert exited(parked)
        finally:
            parent.kill()
            parent.wait(30)
        assert count(tmp_path / "k.db", STATE_TRANSITIONS) == 1

    def test_a_parked_child_exits_after_its_idle_timeout(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A child parked longer than IDLE_SECONDS exits by itself; the next store forks anew."""
        monkeypatch.setattr(_writer_pool, "IDLE_SECONDS", 0.2)
        store = SQLiteStore(tmp_path / "i.db", writer_process=True)
        pid = log_runs(store, 1)
        store.close()
        assert pid is not None
        assert exited(pid)
        store = SQLiteStore(tmp_path / "j.db", writer_process=True)
        again = log_runs(store, 1)
        store.close()
        assert again not in (None, pid)
        assert count(tmp_path / "j.db", STATE_TRANSITIONS) == 4

    def test_a_child_that_died_parked_is_never_reused(self, tmp_path: Path) -> None:
        """A parked child killed meanwhile is reaped; start() forks a new one, rows all land."""
        store = SQLiteStore(tmp_path / "d.db", writer_process=True)
        pid = log_runs(store, 1)
        store.close()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert exited(pid)
        store = SQLiteStore(tmp_path / "e.db", writer_process=True)
        again = log_runs(store, 2)
        store.close()
        assert again not in (None, pid)
        assert count(tmp_path / "e.db", STATE_TRANSITIONS) == 8

    def test_a_full_pool_ends_the_child(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no room in the pool, close() ends the child as before: nothing is parked."""
        monkeypatch.setattr(_writer_pool, "POOL_SIZE", 0)
        store = SQLiteStore(tmp_path / "n.db", writer_process=True)
        pid = log_runs(store, 1)
        store.close()
        assert pid is not None
        assert _writer_pool.parked_pids() == []
        assert exited(pid)

    def test_a_child_forked_with_unknown_open_files_is_not_parked(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without /proc/self/fd the files a child inherited are unknown: it ends with its store."""
        monkeypatch.setattr(_writer_pool, "open_files", lambda: None)
        store = SQLiteStore(tmp_path / "u.db", writer_process=True)
        pid = log_runs(store, 1)
        store.close()
        assert pid is not None
        assert _writer_pool.parked_pids() == []
        assert exited(pid)
        assert count(tmp_path / "u.db", STATE_TRANSITIONS) == 4
