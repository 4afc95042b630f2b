"""The Watcher: cycles on its thread between start() and stop(), recovers, alerts, notifies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from persistence.stores.sqlite import SQLiteStore
from persistence.watch.notify import Notifier
from persistence.watch.rules import AlertConfig, StuckRule
from persistence.watch.watcher import Watcher, interval_from_env
from statemachine import ManualClock
from tests.watch_support import NOW, Runs, receiver, write_lease

LATER = NOW + dt.timedelta(minutes=5)


def _crashed(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    runs = Runs()
    runs.crashed("dead", NOW - dt.timedelta(minutes=1))
    runs.write(store)
    write_lease(store, "dead", NOW)
    return store


class TestLifecycle:
    """start() runs cycles in the background until stop(); a service plugs these in."""

    def test_start_stop_recover_notify(self, tmp_path: Path) -> None:
        """The background cycles recover the dead run and post RECOVERED to the webhook."""
        store = _crashed(tmp_path / "w.db")
        with receiver() as (state, port):
            watcher = Watcher(
                store,
                config=AlertConfig(rules=(StuckRule(name="stuck", running_for_minutes=0.5),)),
                interval_seconds=0.01,
                notifier=Notifier([f"json://127.0.0.1:{port}/hook"]),
                clock=ManualClock(start=LATER),
            )
            watcher.start()
            assert watcher.wait_for_cycles(3, timeout=20)
            assert state.wait_for(1)
            watcher.stop()
        titles = [b["title"] for b in state.bodies]
        assert "[pipestate] RECOVERED run dead" in titles
        assert watcher.cycles >= 3
        assert watcher.failed_cycles == 0

    def test_stop_is_idempotent(self, tmp_path: Path) -> None:
        """stop() twice, or without start(), is harmless."""
        watcher = Watcher(SQLiteStore(tmp_path / "w.db"), interval_seconds=1)
        watcher.stop()
        watcher.stop()
        assert watcher.cycles == 0


class TestCycleErrors:
    """A failing store is reported in the cycle, never raised."""

    def test_closed_store(self, tmp_path: Path) -> None:
        """Both halves report their error; the cycle returns."""
        store = SQLiteStore(tmp_path / "w.db")
        store.close()
        report = Watcher(store, interval_seconds=1).cycle()
        assert len(report.errors) == 2
        assert report.errors[0].startswith("sweep: ")
        assert "closed" in report.errors[1]

    def test_interval_env(self) -> None:
        """The interval defaults to the heartbeat and refuses non-numbers by name."""
        assert interval_from_env({}) == 15.0
        assert interval_from_env({"PIPESTATE_HEARTBEAT_SECONDS": "2"}) == 2.0
        assert interval_from_env({"PIPESTATE_WATCH_INTERVAL_SECONDS": "0.5"}) == 0.5
        with pytest.raises(ValueError, match="PIPESTATE_WATCH_INTERVAL_SECONDS"):
            interval_from_env({"PIPESTATE_WATCH_INTERVAL_SECONDS": "often"})
