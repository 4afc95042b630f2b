"""persistence._writer_link: the event loop sends groups and reads replies without threads."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from persistence import MetadataLogger, SQLiteStore, _writer_pool
from persistence.stores.base import STATE_TRANSITIONS
from tests.processes import gone
from tests.strategies.records import record

REPLY_THREAD = "pipestate-sqlite-replies"
SEND_THREAD = "pipestate-send"


@pytest.fixture(autouse=True)
def unpooled_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests end each writer child with its store: no child is parked for reuse."""
    _writer_pool.clear()
    monkeypatch.setattr(_writer_pool, "POOL_SIZE", 0)


def stored_ids(path: Path) -> set[str]:
    """transition_ids in the file, read with a separate connection."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute(f'SELECT transition_id FROM "{STATE_TRANSITIONS}"')}


def helper_threads(before: set[int]) -> set[str]:
    """Names of the writer's helper threads alive now that were not running `before`."""
    names = {t.name.split("_")[0] for t in threading.enumerate() if t.ident not in before}
    return names & {REPLY_THREAD, SEND_THREAD}


def settle_earlier_writers() -> set[int]:
    """Let writers that earlier tests dropped without close() end; the threads alive then.

    A dropped writer's finalizer starts a reply thread (ending with its child), which would
    otherwise look like one of this test's own.
    """
    gc.collect()
    for thread in threading.enumerate():
        if thread.name.startswith(REPLY_THREAD):
            thread.join(30)
    return {t.ident for t in threading.enumerate() if t.ident is not None}


class TestLoopDrivenWriter:
    """A logger's groups travel through the pipes on the event loop alone."""

    def test_logger_uses_no_helper_thread(self, tmp_path: Path) -> None:
        """Groups are sent and answered on the loop: no sender or reader thread ever starts."""
        before = settle_earlier_writers()
        path = tmp_path / "l.db"
        store = SQLiteStore(path, writer_process=True)
        seen: list[set[str]] = []

        async def body() -> None:
            async with MetadataLogger(store) as logger:
                for i in range(3):
                    logger.emit(record(transition_id=f"a{i}"))
                    assert await logger.flush(timeout=30)
                    seen.append(helper_threads(before))

        asyncio.run(body())
        pid = store.writer_pid
        store.close()
        assert seen == [set(), set(), set()]
        assert stored_ids(path) == {"a0", "a1", "a2"}
        assert pid is not None
        assert gone(pid)

    def test_a_full_pipe_never_blocks_the_loop(self, tmp_path: Path) -> None:
        """With the child stopped, groups beyond the pipe's size wait in memory; all land later."""
        path = tmp_path / "full.db"
        store = SQLiteStore(path, writer_process=True)
        store.prepare_writes()
        pid = store.writer_pid
        assert pid is not None
        big = "x" * 4000  # ~4 KB per row: 600 rows overfill a 1 MiB pipe
        results = []

        async def body() -> float:
            loop = asyncio.get_running_loop()
            os.kill(pid, signal.SIGSTOP)
            try:
                start = time.monotonic()
                futures = []
                for g in range(6):
                    rows = [record(transition_id=f"g{g}-{i}", reason=big) for i in range(100)]
                    parts = [(STATE_TRANSITIONS, rows)]
                    future = store.submit_nowait(parts, derive=False, loop=loop)
                    assert future is not None
                    futures.append(future)
                sent_in = time.monotonic() - start
            finally:
                os.kill(pid, signal.SIGCONT)
            results.extend(await asyncio.wait_for(asyncio.gather(*futures), 60))
            return sent_in

        sent_in = asyncio.run(body())
        store.close()
        assert sent_in < 5.0  # a blocking write would wait for SIGCONT for ever
        assert [r[0][0].written for r in results] == [100] * 6
        assert len(stored_ids(path)) == 600

    def test_a_thread_takes_over_after_the_loop_closed(self, tmp_path: Path) -> None:
        """After the logger's loop is gone, a plain write_many still gets its reply; reaped."""
        path = tmp_path / "t.db"
        store = SQLiteStore(path, writer_process=True)

        async def body() -> None:
            async with MetadataLogger(store) as logger:
                logger.emit(record(transition_id="on-loop"))
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        pid = store.writer_pid
        results = store.write_many([(STATE_TRANSITIONS, [record(transition_id="sync")])])
        assert store.writer_pid == pid  # the same child answered
        store.close()
        assert results[0].written == 1
        assert stored_ids(path) == {"on-loop", "sync"}
        assert pid is not None
        assert gone(pid)

    def test_a_killed_child_fails_loop_groups_retryably_and_is_replaced(
        self, tmp_path: Path
    ) -> None:
        """A writer killed under a logger is noticed on the loop; the rows land via a new one."""
        path = tmp_path / "k.db"
        store = SQLiteStore(path, writer_process=True)
        pids: list[int | None] = []

        async def body() -> dict[str, int]:
            async with MetadataLogger(store) as logger:
                logger.emit(record(transition_id="before"))
                assert await logger.flush(timeout=30)
                first = store.writer_pid
                assert first is not None
                pids.append(first)
                os.kill(first, signal.SIGKILL)
                logger.emit(record(transition_id="after"))
                assert await logger.flush(timeout=60)
                pids.append(store.writer_pid)
                depths = logger.get_queue_depths()["state_transition"]
                return {"written": depths["rows_written"], "dropped": depths["rows_dropped"]}

        counts = asyncio.run(body())
        store.close()
        assert counts == {"written": 2, "dropped": 0}
        assert stored_ids(path) == {"before", "after"}
        assert pids[1] not in (None, pids[0])
        assert all(gone(pid) for pid in pids if pid is not None)
