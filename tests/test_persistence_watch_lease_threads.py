"""The process's lease threads: one clock for every lease, one writer lane per store."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persistence.bootstrap import bootstrap
from persistence.stores.base import RUN_LEASES, WriteResult
from persistence.stores.sqlite import SQLiteStore
from persistence.watch import _lease_threads
from persistence.watch.leases import LeaseKeeper, LeaseSettings


class BatchStore:
    """SQLite underneath; records the size of every lease batch; the first lease write can hang."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(path)
        bootstrap(self.inner)
        self.batches: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Wait on the gate for lease rows, then write and note the batch size."""
        if table == RUN_LEASES:
            self.entered.set()
            self.gate.wait(30)
            self.batches.append(len(rows))
        return self.inner.write_batch(table, rows)

    def run_sql(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegate."""
        return self.inner.run_sql(sql, params)


def _keeper(store: Any, run_id: str) -> LeaseKeeper:
    return LeaseKeeper(
        store,
        pipeline_logging_id=run_id,
        org_slug="acme",
        pipeline_id="etl",
        settings=LeaseSettings(heartbeat_seconds=30, missed_heartbeats=4),
    )


class TestLane:
    """Lease rows of concurrent runs share one transaction and no run has a thread."""

    def test_waiting_rows_go_in_one_batch(self, tmp_path: Path) -> None:
        """While one write is in flight, the ACQUIRED rows queued behind it land in one batch."""
        store = BatchStore(tmp_path / "a.db")
        store.gate.clear()
        first = _keeper(store, "run-0")
        pending = [first.begin()]
        assert store.entered.wait(10)  # the lane is inside the first write
        threads = threading.active_count()
        keepers = [_keeper(store, f"run-{i}") for i in range(1, 6)]
        pending += [keeper.begin() for keeper in keepers]
        assert threading.active_count() == threads  # five more leases, no new thread
        store.gate.set()
        for future in pending:
            future.result(10)
        assert store.batches == [1, 5]
        for keeper in [first, *keepers]:
            keeper.stop()
        rows = store.run_sql("SELECT event FROM {org_meta_run_leases}", {})
        assert sorted(r["event"] for r in rows) == ["ACQUIRED"] * 6 + ["RELEASED"] * 6

    def test_a_bad_row_fails_only_its_own_lease(self, tmp_path: Path) -> None:
        """A lease whose row cannot be built counts a failure; the rows batched with it land."""
        store = BatchStore(tmp_path / "a.db")
        store.gate.clear()
        blocker = _keeper(store, "run-0")
        pending = [blocker.begin()]
        assert store.entered.wait(10)
        broken, good = _keeper(store, "run-bad"), _keeper(store, "run-good")

        def no_row(event: str) -> dict[str, Any]:
            raise ValueError("no row")

        broken._row = no_row  # type: ignore[method-assign]
        pending += [broken.begin(), good.begin()]
        store.gate.set()
        for future in pending:
            future.result(10)
        assert (broken.counts, good.counts) == (
            {"written": 0, "failed": 1},
            {"written": 1, "failed": 0},
        )
        assert store.batches == [1, 1]  # the good row went alone, in one batch
        for keeper in (blocker, broken, good):
            keeper.stop()

    def test_heartbeat_is_never_queued_after_release(self, tmp_path: Path) -> None:
        """A heartbeat whose lease already ended is not queued (checked under the lane's lock)."""
        store = BatchStore(tmp_path / "a.db")
        keeper = _keeper(store, "run-1")
        keeper.start()
        keeper.stop()
        keeper._heartbeat()  # what a clock entry that raced with stop() would do
        assert _lease_threads.submit(store, keeper, "HEARTBEAT", unless=lambda: True) is None
        rows = store.run_sql("SELECT event FROM {org_meta_run_leases} ORDER BY heartbeat_seq", {})
        assert [r["event"] for r in rows] == ["ACQUIRED", "RELEASED"]

    def test_ended_lease_leaves_nothing_on_the_clock(self, tmp_path: Path) -> None:
        """After stop() the keeper's heartbeat and fence entries are gone from the clock."""
        store = BatchStore(tmp_path / "a.db")
        before = _lease_threads.CLOCK.pending
        keeper = _keeper(store, "run-1")
        keeper.start()
        assert _lease_threads.CLOCK.pending == before + 2  # next heartbeat, fence check
        keeper.stop()
        assert _lease_threads.CLOCK.pending == before


class Target:
    """Something a clock entry points at."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def first(self) -> None:
        """Note a call."""
        self.calls.append("first")

    def second(self) -> None:
        """Note a call."""
        self.calls.append("second")


class TestClock:
    """Callbacks run in due order; a cancelled one never runs and is let go at once."""

    def test_due_order_and_cancel(self) -> None:
        """Entries fire earliest first; a cancelled entry is skipped and its callback freed."""
        clock = _lease_threads.Clock()
        target, done = Target(), threading.Event()
        now = time.monotonic()
        clock.at(now + 0.2, target.second)
        dropped = Target()
        entry = clock.at(now + 0.1, dropped.first)  # the bound method holds `dropped`
        clock.at(now + 0.1, target.first)
        clock.at(now + 0.3, done.set)
        clock.cancel(entry)
        ref = weakref.ref(dropped)
        del dropped
        assert ref() is None  # the cancelled entry no longer holds its target
        assert done.wait(10)
        assert target.calls == ["first", "second"]
        assert clock.pending == 0
