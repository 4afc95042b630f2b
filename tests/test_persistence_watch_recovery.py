"""Orphan recovery: dead leases found, runs ended FAILED through the machines, races harmless."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence.bootstrap import bootstrap
from persistence.stores.base import Store
from persistence.stores.bigquery import BigQueryStore
from persistence.stores.sqlite import SQLiteStore
from persistence.verify import verify
from persistence.watch.leases import RELEASED
from persistence.watch.recovery import RECOVERY_ERROR_TYPE, find_orphans, sweep
from statemachine import ManualClock
from statemachine.rehydrate import deterministic_id
from statemachine.spec import PIPELINE, STEP
from tests.bq_emulator import BQEmulator, drop_dataset
from tests.watch_support import LIVE_OWNER, NOW, Runs, write_lease

LATER = NOW + dt.timedelta(minutes=5)


def _transitions(store: Store, run: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.run_sql(  # type: ignore[attr-defined]
        "SELECT * FROM {org_meta_state_transitions} WHERE pipeline_logging_id = @run"
        if getattr(store, "dialect", "") == "bigquery"
        else "SELECT * FROM {org_meta_state_transitions} WHERE pipeline_logging_id = :run",
        {"run": run},
    )
    return rows


def _terminal_rows(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many terminal rows each entity has."""
    counts: dict[str, int] = {}
    for row in rows:
        table = PIPELINE if row["entity_type"] == "PIPELINE" else STEP
        key = row["step_logging_id"] or "pipeline"
        counts.setdefault(key, 0)
        counts[key] += row["to_state"] in table.terminal
    return counts


def _crashed_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    runs = Runs()
    runs.crashed("dead", NOW - dt.timedelta(minutes=1))
    runs.crashed("alive", NOW - dt.timedelta(minutes=1))
    runs.finished("done", NOW - dt.timedelta(minutes=1))
    runs.write(store)
    write_lease(store, "dead", NOW)  # expired 4 s after NOW
    write_lease(store, "alive", LATER, owner=LIVE_OWNER)  # renewed just now
    write_lease(store, "done", NOW)  # expired, but the pipeline ended
    return store


class TestFindOrphans:
    """Only runs with a dead lease and a non-terminal pipeline are orphans."""

    def test_only_the_dead_run(self, tmp_path: Path) -> None:
        """An alive lease and a finished run are not orphans; the dead one is, with its owner."""
        store = _crashed_store(tmp_path / "a.db")
        (orphan,) = find_orphans(store, now=LATER)
        assert orphan.pipeline_logging_id == "dead"
        assert (orphan.owner_host, orphan.owner_pid) == ("worker-7", 4242)
        assert orphan.last_heartbeat == NOW

    def test_not_yet_expired(self, tmp_path: Path) -> None:
        """Before the lease's expires_at nothing is an orphan."""
        store = _crashed_store(tmp_path / "a.db")
        assert find_orphans(store, now=NOW + dt.timedelta(seconds=3)) == []

    def test_released_run_is_not_an_orphan(self, tmp_path: Path) -> None:
        """A run whose owner released its lease is never swept (the stuck alert covers it)."""
        store = SQLiteStore(tmp_path / "a.db")
        runs = Runs()
        runs.crashed("r", NOW - dt.timedelta(minutes=1))
        runs.write(store)
        write_lease(store, "r", NOW, event=RELEASED)
        assert find_orphans(store, now=LATER) == []


class TestRecover:
    """Recovery drives the state machines: legal edges, one row per entity, the contract."""

    def test_every_entity_ends_failed(self, tmp_path: Path) -> None:
        """Non-terminal steps then the pipeline move to FAILED; completed steps are untouched."""
        store = _crashed_store(tmp_path / "a.db")
        clock = ManualClock(start=LATER)
        (outcome,) = sweep(store, now=LATER, clock=clock)
        assert outcome.recovered
        assert outcome.entities == 3
        rows = _transitions(store, "dead")
        new = [r for r in rows if r["transition_time"] >= LATER.isoformat()]
        assert sorted((r["entity_name"], r["from_state"], r["to_state"]) for r in new) == [
            ("etl", "RUNNING", "FAILED"),
            ("flaky", "RETRYING", "FAILED"),
            ("load", "RUNNING", "FAILED"),
        ]
        assert _terminal_rows(rows) == {"pipeline": 1, "dead-s1": 1, "dead-s2": 1, "dead-s3": 1}
        report = verify(store, run="dead")  # the joint rules hold on the stored chain too
        assert report.clean, report.violations

    def test_rows_follow_the_cancellation_contract(self, tmp_path: Path) -> None:
        """Reason names the lost executor; metadata says cancelled by recovery and by whom."""
        store = _crashed_store(tmp_path / "a.db")
        sweep(store, now=LATER, clock=ManualClock(start=LATER))
        pipeline = next(
            r
            for r in _transitions(store, "dead")
            if r["entity_type"] == "PIPELINE" and r["to_state"] == "FAILED"
        )
        assert pipeline["transition_id"] == deterministic_id("dead", "recovered")
        assert pipeline["error_type"] == RECOVERY_ERROR_TYPE
        assert pipeline["reason"].startswith(
            "Cancelled by recovery: executor host worker-7 pid 4242"
        )
        assert NOW.isoformat() in pipeline["reason"]
        meta = json.loads(pipeline["metadata"])
        assert meta["cancelled"] is True
        assert meta["cancel_source"] == "recovery"
        assert meta["lost_executor"]["owner_id"] == "owner-dead"
        assert set(meta["recovered_by"]) == {"host", "pid", "owner_id"}
        assert pipeline["duration_in_state_ms"] == 6 * 60_000

    def test_idempotent(self, tmp_path: Path) -> None:
        """A second sweep finds nothing and writes nothing."""
        store = _crashed_store(tmp_path / "a.db")
        sweep(store, now=LATER, clock=ManualClock(start=LATER))
        before = len(_transitions(store, "dead"))
        assert sweep(store, now=LATER, clock=ManualClock(start=LATER)) == []
        assert len(_transitions(store, "dead")) == before

    def test_derived_run_rows_are_closed(self, tmp_path: Path) -> None:
        """The pipeline-run table gets the run's FAILED end row, like a normal ending."""
        store = _crashed_store(tmp_path / "a.db")
        sweep(store, now=LATER, clock=ManualClock(start=LATER))
        rows = store.run_sql(
            "SELECT status FROM {org_meta_pipeline_runs} WHERE pipeline_logging_id = 'dead'", {}
        )
        assert [r["status"] for r in rows] == ["FAILED"]

    def test_recently_active_run_is_left_alone(self, tmp_path: Path) -> None:
        """Transitions newer than a lease length mean the executor lived on: no recovery."""
        store = _crashed_store(tmp_path / "a.db")
        runs = Runs(id_prefix="late-")
        runs.add("dead", LATER - dt.timedelta(seconds=1), "load", "RUNNING", "RETRYING",
                 step="dead-s2", error_type="TRANSIENT")  # fmt: skip
        runs.write(store)
        (outcome,) = sweep(store, now=LATER, clock=ManualClock(start=LATER))
        assert not outcome.recovered
        assert outcome.detail == "run still writing rows"

    def test_broken_chain_is_skipped_with_a_reason(self, tmp_path: Path) -> None:
        """A run whose rows are incomplete is reported and not touched."""
        store = SQLiteStore(tmp_path / "a.db")
        runs = Runs()
        runs.add("gap", NOW - dt.timedelta(minutes=1), "etl", "PENDING", "RUNNING")
        runs.add("gap", NOW - dt.timedelta(minutes=1), "a", "RUNNING", "COMPLETED", step="g-a")
        runs.write(store)
        write_lease(store, "gap", NOW)
        (outcome,) = sweep(store, now=LATER, clock=ManualClock(start=LATER))
        assert not outcome.recovered
        assert "no stored transition leaves PENDING" in outcome.detail
        assert len(_transitions(store, "gap")) == 2


def _race(stores: list[Store]) -> list[Any]:
    barrier = threading.Barrier(len(stores))
    results: list[Any] = []
    lock = threading.Lock()

    def worker(store: Store) -> None:
        barrier.wait()
        outcome = sweep(store, now=LATER, clock=ManualClock(start=LATER))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


class TestRacingSweepers:
    """Two sweepers at once still leave exactly one terminal row per entity."""

    def test_sqlite_two_connections(self, tmp_path: Path) -> None:
        """Two stores (two connections) on one file sweep at the same moment."""
        path = tmp_path / "race.db"
        _crashed_store(path).close()
        stores: list[Store] = [SQLiteStore(path), SQLiteStore(path)]
        results = _race(stores)
        assert len(results) == 2
        rows = _transitions(stores[0], "dead")
        assert _terminal_rows(rows) == {"pipeline": 1, "dead-s1": 1, "dead-s2": 1, "dead-s3": 1}


@pytest.fixture
def bq_store(bq_emulator: BQEmulator) -> Iterator[BigQueryStore]:
    """A bootstrapped BigQueryStore on a fresh emulator dataset."""
    store = BigQueryStore(
        bq_emulator.project,
        f"watch_{uuid.uuid4().hex[:12]}",
        api_endpoint=bq_emulator.endpoint,
        retry_timeout_seconds=10.0,
    )
    bootstrap(store)
    yield store
    store.close()
    drop_dataset(bq_emulator, store.dataset)


@pytest.mark.bigquery
class TestBigQuery:
    """The same sweep on the BigQuery emulator: insertId makes racing sweepers safe."""

    def test_racing_sweepers(self, bq_store: BigQueryStore, bq_emulator: BQEmulator) -> None:
        """Two sweepers (two clients) recover the run; one terminal row per entity remains."""
        runs = Runs()
        runs.crashed("dead", NOW - dt.timedelta(minutes=1))
        runs.write(bq_store)
        write_lease(bq_store, "dead", NOW)
        other = BigQueryStore(
            bq_emulator.project, bq_store.dataset, api_endpoint=bq_emulator.endpoint
        )
        try:
            results = _race([bq_store, other])
        finally:
            other.close()
        assert any(o.recovered for result in results for o in result)
        rows = _transitions(bq_store, "dead")
        assert _terminal_rows(rows) == {"pipeline": 1, "dead-s1": 1, "dead-s2": 1, "dead-s3": 1}
        assert find_orphans(bq_store, now=LATER) == []
