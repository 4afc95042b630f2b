"""persistence._fork_guard: a fork never meets a SQLite call or a connection being closed."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import pytest

from persistence import SQLiteStore
from persistence.stores.base import STATE_TRANSITIONS
from tests.strategies.records import record


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


class TestCollectedConnections:
    def test_a_finalizer_never_waits_for_a_fork_under_way(self) -> None:
        """A collected store's connection closed while another thread holds the fork guard is
        left for the fork's end (a blocking wait there deadlocked with os.fork()'s at-fork
        locks), and closed by it."""
        import threading

        from persistence import _fork_guard

        conn = sqlite3.connect(":memory:", check_same_thread=False)
        holding, release = threading.Event(), threading.Event()

        def fork_under_way() -> None:
            with _fork_guard._FORK_GUARD:
                holding.set()
                release.wait(10)

        forker = threading.Thread(target=fork_under_way)
        forker.start()
        assert holding.wait(10)
        closer = threading.Thread(target=_fork_guard._close_guarded, args=(conn,))
        closer.start()
        closer.join(5)
        returned = not closer.is_alive()
        release.set()
        forker.join(10)
        closer.join(10)
        assert returned, "the finalizer waited for the fork guard"
        assert conn.execute("SELECT 1").fetchone() == (1,)  # still open: deferred
        _fork_guard._close_deferred()
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
        assert _fork_guard._DEFERRED_CLOSES == []
