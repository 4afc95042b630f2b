"""Runs hold leases: healthy and loop-blocking runs are never recovered; a fenced run goes quiet."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from executor.config import parse_pipeline_config
from executor.lease import FencedSink, open_lease
from executor.processors import ProcessorContext, processor
from executor.runner import PipelineResult, run_pipeline
from persistence import LoggerSettings, MetadataLogger
from persistence.bootstrap import bootstrap
from persistence.stores.base import RUN_LEASES, WriteResult
from persistence.stores.sqlite import SQLiteStore
from persistence.watch import _lease_threads
from persistence.watch.leases import LeaseSettings
from persistence.watch.watcher import Watcher
from statemachine import InMemorySink, PipelineRun

# Short settings: a 1 s lease (0.2 s heartbeats, 5 missed; the owner fences after 0.8 s without
# a renewal, roomy enough for a loaded CI machine), sweeps every 0.05 s.
HEARTBEAT = 0.2
MISSED = 5
STEP_SECONDS = 3.0  # three times the lease


@processor("tests.block_loop")
async def block_loop(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Block the event loop with a synchronous sleep (a badly written processor)."""
    time.sleep(float(config["seconds"]))  # noqa: ASYNC251 - blocking the loop is the point


class GatedStore:
    """A SQLiteStore whose lease writes hang while `gate` is clear (a slow-but-alive executor)."""

    def __init__(self, inner: SQLiteStore) -> None:
        bootstrap(inner)  # tables first: DDL inside the first lease write eats the fence window
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.lease_writes = 0
        self.lease_write_entered = threading.Event()  # a lease write has started
        self.renewed = threading.Event()  # set once ACQUIRED and one heartbeat were written

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Hang lease writes on the gate; everything else goes straight through."""
        if table == RUN_LEASES:
            self.lease_writes += 1
            self.lease_write_entered.set()
            self.gate.wait(30)
            result = self.inner.write_batch(table, rows)
            if self.lease_writes >= 2:
                self.renewed.set()
            return result
        return self.inner.write_batch(table, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _config(steps: str) -> Any:
    return parse_pipeline_config(
        "pipeline_id: p\ntimeout_minutes: 1\nsteps:\n" + steps, source="t.yml"
    )


async def _run(store: Any, cfg: Any) -> PipelineResult:
    settings = LoggerSettings(flush_interval_seconds=0.05)
    async with MetadataLogger(store, settings) as logger:
        return await run_pipeline(cfg, org_slug="acme", logger=logger, store=store)


def _terminal_counts(store: SQLiteStore) -> dict[str, int]:
    rows = store.run_sql(
        "SELECT COALESCE(step_logging_id, 'pipeline') AS e, to_state FROM "
        "{org_meta_state_transitions}",
        {},
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts.setdefault(row["e"], 0)
        counts[row["e"]] += row["to_state"] in ("COMPLETED", "FAILED", "TIMEOUT")
    return counts


def _recovery_rows(store: SQLiteStore) -> list[dict[str, Any]]:
    rows = store.run_sql("SELECT metadata FROM {org_meta_state_transitions}", {})
    return [r for r in rows if json.loads(r["metadata"]).get("cancel_source") == "recovery"]


def _watched_run(tmp_path: Path, cfg: Any, monkeypatch: Any, gated: bool = False) -> Any:
    """Run `cfg` on a SQLite file while a watcher sweeps the same file every 0.05 s."""
    monkeypatch.setenv("PIPESTATE_HEARTBEAT_SECONDS", str(HEARTBEAT))
    monkeypatch.setenv("PIPESTATE_LEASE_MISSED_HEARTBEATS", str(MISSED))
    path = tmp_path / "run.db"
    store: Any = SQLiteStore(path)
    bootstrap(store)  # tables first: DDL inside the first lease write eats the fence window
    if gated:
        store = GatedStore(store)
    watcher_store = SQLiteStore(path)
    watcher = Watcher(watcher_store, interval_seconds=0.05, alerts=False)
    watcher.start()
    try:
        result = asyncio.run(_run(store, cfg))
    finally:
        watcher.stop()
    return result, watcher, watcher_store, store


class TestNeverRecovered:
    """A live run keeps its lease however long its step takes."""

    def test_long_healthy_step(self, tmp_path: Path, monkeypatch: Any) -> None:
        """A step 3x longer than the lease completes; the watcher swept all along, found nothing."""
        cfg = _config(
            "  - {step_id: s, processor: generic.slow_processor, "
            f"config: {{sleep_seconds: {STEP_SECONDS}}}}}\n"
        )
        result, watcher, store, _ = _watched_run(tmp_path, cfg, monkeypatch)
        assert result.state == "COMPLETED"
        assert watcher.cycles >= 10
        assert _recovery_rows(store) == []
        events = [r["event"] for r in store.run_sql("SELECT event FROM {org_meta_run_leases}", {})]
        assert events.count("HEARTBEAT") >= 5
        assert "RELEASED" in events

    def test_step_blocking_the_event_loop(self, tmp_path: Path, monkeypatch: Any) -> None:
        """A processor that blocks the loop for 3 lease lengths is not mistaken for a dead run."""
        cfg = _config(
            "  - {step_id: s, processor: tests.block_loop, "
            f"config: {{seconds: {STEP_SECONDS}}}}}\n"
        )
        result, watcher, store, _ = _watched_run(tmp_path, cfg, monkeypatch)
        assert result.state == "COMPLETED"
        assert watcher.cycles >= 10
        assert _recovery_rows(store) == []


class TestFencedExecutor:
    """An executor that cannot renew is recovered, stops, and writes nothing further."""

    def test_slow_but_alive_executor(self, tmp_path: Path, monkeypatch: Any) -> None:
        """Renewals hang: the watcher recovers the run, the executor drops its own endings."""
        cfg = _config(
            "  - {step_id: s, processor: generic.slow_processor, config: {sleep_seconds: 30}}\n"
        )
        path = tmp_path / "run.db"
        monkeypatch.setenv("PIPESTATE_HEARTBEAT_SECONDS", str(HEARTBEAT))
        monkeypatch.setenv("PIPESTATE_LEASE_MISSED_HEARTBEATS", str(MISSED))
        store = GatedStore(SQLiteStore(path))
        watcher_store = SQLiteStore(path)
        watcher = Watcher(watcher_store, interval_seconds=0.05, alerts=False)

        async def scenario() -> PipelineResult:
            task = asyncio.create_task(_run(store, cfg))
            assert await asyncio.to_thread(store.renewed.wait, 10)
            store.gate.clear()  # every later renewal hangs
            watcher.start()
            return await task

        started = time.monotonic()
        try:
            result = asyncio.run(scenario())
            # The executor fenced itself first; the watcher recovers once the lease expired.
            while not _recovery_rows(watcher_store) and time.monotonic() - started < 20:
                watcher.wait_for_cycles(watcher.cycles + 1, timeout=5)
        finally:
            store.gate.set()
            watcher.stop()
        assert time.monotonic() - started < 20  # ended by the lost lease, not the 30 s step
        assert result.state == "FAILED"
        recovered = _recovery_rows(watcher_store)
        assert len(recovered) == 2  # the step and the pipeline, written by the watcher
        assert _terminal_counts(watcher_store) == {"pipeline": 1, **_step_ids(watcher_store)}


def _step_ids(store: SQLiteStore) -> dict[str, int]:
    rows = store.run_sql(
        "SELECT DISTINCT step_logging_id FROM {org_meta_state_transitions} "
        "WHERE step_logging_id IS NOT NULL",
        {},
    )
    return {r["step_logging_id"]: 1 for r in rows}


class TestOpenLease:
    """open_lease wraps the sink only when a store and leases are there."""

    def test_no_store_no_lease(self) -> None:
        """Without a store there is nothing to hold a lease in."""
        run = PipelineRun.create("p", org_slug="acme", sink=InMemorySink())
        assert open_lease(None, run) is None

    def test_disabled(self, tmp_path: Path) -> None:
        """heartbeat_seconds 0 turns leases off and leaves the sink alone."""
        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        store = SQLiteStore(tmp_path / "a.db")
        assert open_lease(store, run, LeaseSettings(heartbeat_seconds=0)) is None
        assert run.sink is sink

    def test_fenced_sink_drops_after_loss(self, tmp_path: Path) -> None:
        """Once the lease is lost, records are counted and dropped, not forwarded."""
        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        lease = open_lease(SQLiteStore(tmp_path / "a.db"), run, LeaseSettings(heartbeat_seconds=1))
        assert lease is not None
        assert isinstance(run.sink, FencedSink)
        run.start()
        lease.keeper._lose()
        run.fail(error_type="TRANSIENT")
        assert [r.to_state for r in sink.records] == ["RUNNING"]
        assert lease.sink.dropped == 1


class TestCancelWhileTakingTheLease:
    """A cancel that arrives while the lease is being taken still leaves the run's rows."""

    def test_cancel_during_lease_acquisition(self, tmp_path: Path) -> None:
        """The run goes RUNNING, ends FAILED with the cancel's metadata, and releases the lease."""
        from executor.cancellation import request_cancel

        store = GatedStore(SQLiteStore(tmp_path / "run.db"))
        store.gate.clear()  # the ACQUIRED write hangs: the run is inside keeper.start
        cfg = _config("  - step_id: a\n    processor: generic.noop\n")

        async def scenario() -> PipelineResult | None:
            task = asyncio.create_task(_run(store, cfg))
            assert await asyncio.to_thread(store.lease_write_entered.wait, 10)
            assert request_cancel(task, source="api", by="key-1")  # the write still hangs
            store.gate.set()
            try:
                return await task
            except asyncio.CancelledError:
                return None

        assert asyncio.run(scenario()) is None  # the cancel reached the caller
        rows = store.inner.run_sql(
            "SELECT entity_type, from_state, to_state, metadata "
            "FROM {org_meta_state_transitions} ORDER BY transition_time",
            {},
        )
        pipeline = [
            (r["from_state"], r["to_state"]) for r in rows if r["entity_type"] == "PIPELINE"
        ]
        assert pipeline == [("PENDING", "RUNNING"), ("RUNNING", "FAILED")]
        last = json.loads(rows[-1]["metadata"])
        assert (last["cancelled"], last["cancel_source"], last["cancelled_by"]) == (
            True,
            "api",
            "key-1",
        )
        leases = store.inner.run_sql("SELECT * FROM {org_meta_run_leases}", {})
        assert leases, "the lease was taken"
        # Ended: no heartbeat or fence check is left on the clock, and no run has a thread of
        # its own (only the process's shared lease clock and writer lanes exist).
        assert _lease_threads.CLOCK.pending == 0
        shared = {"pipestate-lease-clock", "pipestate-lease-writer"}
        assert not [t for t in threading.enumerate() if "lease" in t.name and t.name not in shared]
