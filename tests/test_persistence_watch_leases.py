"""Run leases: settings, rows, heartbeats from a thread, self-fencing when renewals stall."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from persistence.bootstrap import bootstrap
from persistence.stores.base import RUN_LEASES, StoreError, WriteResult
from persistence.stores.sqlite import SQLiteStore
from persistence.watch.leases import (
    ACQUIRED,
    LEASE_NAMESPACE,
    LeaseKeeper,
    LeaseOwner,
    LeaseSettings,
    lease_row,
    process_owner,
)


class CountingStore:
    """Delegates to SQLite; signals after `target` lease writes; can hang or fail lease writes."""

    def __init__(self, inner: SQLiteStore, target: int = 0) -> None:
        # Tables first: creating them inside the first lease write would eat the fencing window.
        bootstrap(inner)
        self.inner = inner
        self.target = target
        self.lease_writes = 0
        self.reached = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Write (waiting on the gate for lease rows), then count."""
        if table == RUN_LEASES:
            self.gate.wait(30)
            if self.fail:
                raise StoreError("injected outage", retryable=True)
        result = self.inner.write_batch(table, rows)
        if table == RUN_LEASES:
            self.lease_writes += 1
            if self.target and self.lease_writes >= self.target:
                self.reached.set()
        return result

    def run_sql(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegate."""
        return self.inner.run_sql(sql, params)


def _events(store: SQLiteStore) -> list[str]:
    rows = store.run_sql("SELECT event FROM {org_meta_run_leases} ORDER BY heartbeat_seq", {})
    return [r["event"] for r in rows]


def _keeper(store: Any, heartbeat: float = 0.02, **kwargs: Any) -> LeaseKeeper:
    return LeaseKeeper(
        store,
        pipeline_logging_id="run-1",
        org_slug="acme",
        pipeline_id="etl",
        settings=LeaseSettings(heartbeat_seconds=heartbeat, missed_heartbeats=4),
        **kwargs,
    )


class TestSettings:
    """Environment variables, defaults and clear errors."""

    def test_defaults(self) -> None:
        """15 s heartbeats, 4 missed make a 60 s lease."""
        settings = LeaseSettings.from_env({})
        assert (settings.heartbeat_seconds, settings.missed_heartbeats) == (15.0, 4)
        assert settings.lease_seconds == 60.0
        assert settings.enabled

    def test_env(self) -> None:
        """PIPESTATE_HEARTBEAT_SECONDS and PIPESTATE_LEASE_MISSED_HEARTBEATS are read."""
        env = {"PIPESTATE_HEARTBEAT_SECONDS": "0.5", "PIPESTATE_LEASE_MISSED_HEARTBEATS": "3"}
        assert LeaseSettings.from_env(env).lease_seconds == 1.5

    def test_zero_disables(self) -> None:
        """A heartbeat of 0 turns leases off."""
        assert not LeaseSettings.from_env({"PIPESTATE_HEARTBEAT_SECONDS": "0"}).enabled

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            (
                {"PIPESTATE_HEARTBEAT_SECONDS": "soon"},
                "PIPESTATE_HEARTBEAT_SECONDS must be a float",
            ),
            ({"PIPESTATE_HEARTBEAT_SECONDS": "-1"}, "heartbeat_seconds must be a finite number"),
            ({"PIPESTATE_LEASE_MISSED_HEARTBEATS": "1"}, "missed_heartbeats must be an int >= 2"),
        ],
    )
    def test_bad_values(self, env: dict[str, str], message: str) -> None:
        """Each bad value gets one error naming the setting and the value."""
        with pytest.raises(ValueError, match=message):
            LeaseSettings.from_env(env)


class TestLeaseRow:
    """lease_row: the row a keeper writes."""

    def test_id_is_the_stdlib_uuid5(self) -> None:
        """A row's id is uuid5(LEASE_NAMESPACE, "run:owner:seq") as the stdlib computes it."""
        import datetime as dt

        owner = LeaseOwner(host="h", pid=1, owner_id="owner-ü")
        row = lease_row(
            pipeline_logging_id="run-1",
            org_slug="acme",
            pipeline_id="p",
            event=ACQUIRED,
            owner=owner,
            seq=7,
            at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            lease_ms=1000,
        )
        expected = uuid.uuid5(LEASE_NAMESPACE, "run-1:owner-ü:7")
        assert row["lease_row_id"] == str(expected)


class TestProcessOwner:
    """A keeper without an owner uses the process's one, built once, not one per run."""

    def test_one_owner_per_process(self, tmp_path: Path) -> None:
        """process_owner() is the same object each call, with this host, pid and owner id."""
        import os
        import socket

        from persistence.watch.leases import OWNER_ID

        owner = process_owner()
        assert process_owner() is owner
        assert (owner.host, owner.pid, owner.owner_id) == (
            socket.gethostname(),
            os.getpid(),
            OWNER_ID,
        )
        store = SQLiteStore(tmp_path / "o.db")
        try:
            assert _keeper(store).owner is owner
        finally:
            store.close()


class TestKeeper:
    """The keeper writes ACQUIRED, heartbeats from its thread, RELEASED at stop."""

    def test_lifecycle_rows(self, tmp_path: Path) -> None:
        """ACQUIRED, then heartbeats, then RELEASED, each row with a growing sequence number."""
        store = CountingStore(SQLiteStore(tmp_path / "a.db"), target=3)
        keeper = _keeper(store, heartbeat=0.1)  # roomy: a loaded machine must not fence it
        keeper.start()
        assert store.reached.wait(10)
        keeper.stop()
        events = _events(store.inner)
        assert events[0] == "ACQUIRED"
        assert events[-1] == "RELEASED"
        assert set(events[1:-1]) == {"HEARTBEAT"}
        assert len(events) >= 4
        assert keeper.valid()

    def test_hung_store_fences_the_owner(self, tmp_path: Path) -> None:
        """A heartbeat stuck past the fencing window marks the lease lost and calls on_lost once."""
        store = CountingStore(SQLiteStore(tmp_path / "a.db"))
        lost_calls: list[int] = []
        called = threading.Event()
        keeper = _keeper(store, on_lost=lambda: (lost_calls.append(1), called.set()))
        keeper.start()
        store.gate.clear()  # the next heartbeat write hangs
        assert called.wait(10)
        assert not keeper.valid()
        assert keeper.lost.is_set()
        store.gate.set()
        keeper.stop()
        assert lost_calls == [1]
        assert "RELEASED" not in _events(store.inner)  # a lost lease writes nothing more

    def test_failing_writes_fence_too(self, tmp_path: Path) -> None:
        """Renewals that keep failing (store outage) end in a lost lease, not a crash."""
        store = CountingStore(SQLiteStore(tmp_path / "a.db"))
        keeper = _keeper(store)
        keeper.start()
        store.fail = True
        assert keeper.lost.wait(10)
        keeper.stop()
        assert not keeper.valid()

    def test_never_acquired_is_not_fenced(self, tmp_path: Path) -> None:
        """With no lease row ever written, nothing can recover the run, so it keeps going."""
        store = CountingStore(SQLiteStore(tmp_path / "a.db"))
        store.fail = True
        keeper = _keeper(store)
        keeper.start()
        assert keeper.valid()
        keeper.stop()
        assert keeper.counts["written"] == 0
        assert keeper.counts["failed"] >= 2
        assert not keeper.lost.is_set()
