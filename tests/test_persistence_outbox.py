"""Tests for persistence.outbox: durable local outbox in front of a remote store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from classifier import RetryPolicy
from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from persistence.outbox import OutboxStore, with_outbox
from persistence.stores.base import STATE_TRANSITIONS, STEP_LOGS, Store, StoreError
from statemachine import PipelineRun, StepRun
from tests.outbox_support import GatedRemote, outbox_ids, rows, transition_row

# Zero backoff: unit tests drain synchronously and must not wait between attempts.
NO_WAIT = RetryPolicy(base_delay_seconds=0.0, max_delay_seconds=0.0)


def ids(found: list[dict[str, Any]]) -> list[str]:
    """Return the transition ids of rows."""
    return [row["transition_id"] for row in found]


def remote_ids(path: Path) -> list[str]:
    """Read every transition id stored in a SQLiteStore file (duplicates included)."""
    with sqlite3.connect(path) as conn:
        query = f"SELECT transition_id FROM {STATE_TRANSITIONS} ORDER BY transition_id"
        return [r[0] for r in conn.execute(query)]


def make(remote: Store, path: Path, **options: Any) -> OutboxStore:
    """Build an OutboxStore with test-friendly defaults (no backoff, long interval)."""
    options.setdefault("retry_policy", NO_WAIT)
    options.setdefault("upload_interval_seconds", 3600.0)
    options.setdefault("query_drain_timeout", 0.0)
    return OutboxStore(remote, path, **options)


@pytest.fixture
def remote() -> GatedRemote:
    """A recording remote with no inner store."""
    return GatedRemote()


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    """Where the test's outbox file lives."""
    return tmp_path / "outbox.db"


class TestOutboxStore:
    """OutboxStore: durable before accepted, ordered, deleted only after the remote accepted."""

    def test_rows_are_on_disk_when_write_batch_returns(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """write_batch reports every row written, and a separate connection already sees them."""
        remote.outage = True
        store = make(remote, outbox_path)
        result = store.write_batch(STATE_TRANSITIONS, rows(3))
        assert result.written == 3
        assert result.rejected == ()
        assert outbox_ids(outbox_path) == ["t00000", "t00001", "t00002"]
        store.close(timeout=0)

    def test_drain_ships_in_write_order(self, remote: GatedRemote, outbox_path: Path) -> None:
        """Rows reach the remote in the order they were written, across batches."""
        store = make(remote, outbox_path, batch_size=4)
        for start in range(0, 10, 3):
            store.write_batch(STATE_TRANSITIONS, rows(3, start=start))
        assert store.drain(timeout=10) == 0
        assert remote.received == ids(rows(12))
        store.close()

    def test_rows_stay_until_the_remote_accepts(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """While the remote is down nothing is deleted; once it is back everything ships once."""
        remote.outage = True
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(5))
        assert store.drain(timeout=0) == 5
        assert len(outbox_ids(outbox_path)) == 5
        assert store.status()["last_error"] == "StoreError: remote unavailable (503)"
        remote.outage = False
        assert store.drain(timeout=10) == 0
        assert remote.received == ids(rows(5))
        assert outbox_ids(outbox_path) == []
        store.close()

    def test_outage_never_dead_letters(self, remote: GatedRemote, outbox_path: Path) -> None:
        """Retryable failures, however many, keep the rows pending instead of dead-lettering."""
        remote.outage = True
        store = make(remote, outbox_path, max_attempts=1)
        store.write_batch(STATE_TRANSITIONS, rows(2))
        for _ in range(5):
            store.drain(timeout=0)
        status = store.status()
        assert status["pending_total"] == 2
        assert status["dead_letters_total"] == 0
        assert status["remote_failures"] == 5
        store.close(timeout=0)

    def test_rejected_rows_go_to_dead_letters(self, remote: GatedRemote, outbox_path: Path) -> None:
        """A row the remote rejects is kept in dead letters with its error; the rest ship."""
        remote.poison = {"t00001"}
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(3))
        assert store.drain(timeout=10) == 0
        assert remote.received == ["t00000", "t00002"]
        status = store.status()
        assert status["dead_letters"] == {STATE_TRANSITIONS: 1}
        assert status["rows_dead_lettered"] == 1
        [dead] = store.dead_letters()
        assert (dead["row_id"], dead["error"]) == ("t00001", "invalid row")
        store.close()

    def test_refused_batch_isolates_the_bad_row(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """A batch refused as a whole is retried row by row; only the bad row is dead-lettered."""
        remote.refuse = {"t00002"}
        store = make(remote, outbox_path, max_attempts=2)
        store.write_batch(STATE_TRANSITIONS, rows(4))
        while store.drain(timeout=10):
            pass
        assert remote.received == ["t00000", "t00001", "t00003"]
        [dead] = store.dead_letters()
        assert dead["row_id"] == "t00002"
        assert dead["attempts"] == 2
        assert "refused" in dead["error"]
        store.close()

    def test_requeued_dead_letters_ship_after_the_fix(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """requeue_dead_letters puts dead rows back; they ship once the remote accepts them."""
        remote.poison = {"t00000"}
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(1))
        store.drain(timeout=10)
        remote.poison = set()
        assert store.requeue_dead_letters() == 1
        assert store.drain(timeout=10) == 0
        assert remote.received == ["t00000"]
        assert store.status()["dead_letters_total"] == 0
        store.close()

    def test_leftovers_ship_before_new_rows_after_restart(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """Rows left in the file by an earlier process reach the remote before newer rows."""
        remote.outage = True
        first = make(remote, outbox_path)
        first.write_batch(STATE_TRANSITIONS, rows(3, prefix="old"))
        first.close(timeout=0)
        assert len(outbox_ids(outbox_path)) == 3
        remote.outage = False
        second = make(remote, outbox_path, batch_size=2)
        second.write_batch(STATE_TRANSITIONS, rows(2, prefix="new"))
        assert second.drain(timeout=10) == 0
        assert remote.received == ids(rows(3, prefix="old")) + ids(rows(2, prefix="new"))
        second.close()

    def test_uploader_ships_in_the_background(self, remote: GatedRemote, outbox_path: Path) -> None:
        """A full batch wakes the uploader thread, which ships without any drain call."""
        store = make(remote, outbox_path, batch_size=10)
        store.write_batch(STATE_TRANSITIONS, rows(10))
        assert remote.wait_for(10, timeout=30)
        assert store.status()["uploader_running"] is True
        store.close()
        assert remote.received == ids(rows(10))

    def test_start_ships_leftovers_without_new_writes(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """start() alone ships rows an earlier process left behind."""
        remote.outage = True
        first = make(remote, outbox_path)
        first.write_batch(STATE_TRANSITIONS, rows(4))
        first.close(timeout=0)
        remote.outage = False
        second = make(remote, outbox_path)
        second.start()
        assert remote.wait_for(4, timeout=30)
        second.close()

    def test_tables_ship_separately_and_all_arrive(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """Rows of different tables are shipped in per-table batches and none is lost."""
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(2))
        step_rows = [{"step_log_id": f"sl{i}", "status": "RUNNING"} for i in range(2)]
        store.write_batch(STEP_LOGS, step_rows)
        store.write_batch(STATE_TRANSITIONS, rows(1, start=2))
        assert store.drain(timeout=10) == 0
        assert remote.received == ["t00000", "t00001", "t00002", "sl0", "sl1"]
        store.close()

    def test_status_reports_pending_age_and_counters(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """status() counts pending rows per table, their age, and what was shipped."""
        remote.outage = True
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(3))
        status = store.status()
        assert status["pending"] == {STATE_TRANSITIONS: 3}
        assert status["oldest_pending_age_seconds"] >= 0
        assert status["rows_enqueued"] == 3
        remote.outage = False
        store.drain(timeout=10)
        status = store.status()
        assert status["pending_total"] == 0
        assert status["oldest_pending_age_seconds"] is None
        assert status["rows_shipped"] == 3
        store.close()

    def test_close_keeps_unshipped_rows_and_closes_the_remote(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """close() with the remote down keeps rows in the file, closes the remote, is idempotent."""
        remote.outage = True
        store = make(remote, outbox_path)
        store.write_batch(STATE_TRANSITIONS, rows(2))
        store.close(timeout=0)
        store.close(timeout=0)
        assert remote.closed
        assert len(outbox_ids(outbox_path)) == 2
        with pytest.raises(StoreError, match="closed"):
            store.write_batch(STATE_TRANSITIONS, rows(1))

    def test_query_ships_pending_rows_first(self, remote: GatedRemote, outbox_path: Path) -> None:
        """query() drains pending rows before asking the remote, so it reads its own writes."""
        store = make(remote, outbox_path, query_drain_timeout=10.0)
        store.write_batch(STATE_TRANSITIONS, rows(2))
        assert [r["row_id"] for r in store.query("timeline", {})] == ["t00000", "t00001"]
        store.close()

    @pytest.mark.parametrize(
        ("option", "value"),
        [("batch_size", 0), ("upload_interval_seconds", 0.0), ("max_attempts", 0)],
    )
    def test_bad_options_are_rejected(
        self, remote: GatedRemote, outbox_path: Path, option: str, value: Any
    ) -> None:
        """Invalid settings fail at construction, naming the option."""
        with pytest.raises(ValueError, match=option):
            OutboxStore(remote, outbox_path, **{option: value})

    def test_bad_synchronous_mode_is_rejected(self, remote: GatedRemote, outbox_path: Path) -> None:
        """Only FULL and NORMAL durability are allowed."""
        with pytest.raises(ValueError, match="synchronous"):
            OutboxStore(remote, outbox_path, synchronous="OFF")


class TestOutboxWithSQLiteRemote:
    """OutboxStore in front of a real SQLiteStore: rows land once, whatever the retries."""

    def test_rows_land_in_the_remote_file(self, tmp_path: Path) -> None:
        """Every row written through the outbox is in the remote SQLite table after a drain."""
        inner = SQLiteStore(tmp_path / "remote.db")
        store = make(GatedRemote(inner), tmp_path / "outbox.db")
        store.write_batch(STATE_TRANSITIONS, rows(120))
        assert store.drain(timeout=30) == 0
        store.close()
        assert remote_ids(tmp_path / "remote.db") == ids(rows(120))
        inner.close()

    def test_lost_acknowledgement_never_duplicates(self, tmp_path: Path) -> None:
        """A batch stored but not acknowledged is shipped again, and the remote keeps one copy."""
        inner = SQLiteStore(tmp_path / "remote.db")
        remote = GatedRemote(inner)
        remote.lose_acks = 2
        store = make(remote, tmp_path / "outbox.db", batch_size=10)
        store.write_batch(STATE_TRANSITIONS, rows(25))
        assert store.drain(timeout=30) == 0
        store.close()
        assert len(remote.received) == 25 + 20  # two batches of 10 were sent twice
        assert remote_ids(tmp_path / "remote.db") == ids(rows(25))
        inner.close()

    def test_row_without_id_is_dead_lettered_not_lost(self, tmp_path: Path) -> None:
        """A row the remote rejects for lacking its id is kept as a dead letter, not deleted."""
        inner = SQLiteStore(tmp_path / "remote.db")
        store = make(inner, tmp_path / "outbox.db")
        bad = {**transition_row(1), "transition_id": None}
        store.write_batch(STATE_TRANSITIONS, [transition_row(0), bad])
        assert store.drain(timeout=30) == 0
        [dead] = store.dead_letters()
        store.close()
        assert dead["row_id"] is None
        assert "transition_id" in dead["error"]
        assert remote_ids(tmp_path / "remote.db") == ["t00000"]

    def test_bootstrap_creates_the_remote_tables(self, tmp_path: Path) -> None:
        """bootstrap() through an OutboxStore creates the tables in the remote store."""
        from persistence.bootstrap import bootstrap

        inner = SQLiteStore(tmp_path / "remote.db")
        store = make(inner, tmp_path / "outbox.db")
        assert store.dialect == "sqlite"
        bootstrap(store)
        store.close()
        assert remote_ids(tmp_path / "remote.db") == []


class TestUnwritableOutbox:
    """An outbox that cannot be written: a clear, non-retryable error, counted, never a crash."""

    def test_path_under_a_file_fails_clearly(self, remote: GatedRemote, tmp_path: Path) -> None:
        """A path whose parent is a regular file (ENOTDIR, even for root) raises StoreError."""
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        store = make(remote, blocker / "outbox.db")
        with pytest.raises(StoreError, match="not writable") as info:
            store.write_batch(STATE_TRANSITIONS, rows(1))
        assert info.value.retryable is False
        assert str(blocker / "outbox.db") in str(info.value)
        status = store.status()
        assert status["enqueue_errors"] == 1
        assert "not writable" in status["outbox_error"]
        store.close(timeout=0)

    def test_with_outbox_on_a_bad_path_does_not_raise(
        self, remote: GatedRemote, tmp_path: Path
    ) -> None:
        """with_outbox() never crashes its caller; the error surfaces on write_batch."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        store = with_outbox(remote, blocker / "o.db", retry_policy=NO_WAIT)
        with pytest.raises(StoreError):
            store.write_batch(STATE_TRANSITIONS, rows(1))
        store.close(timeout=0)

    def test_full_disk_fails_clearly_and_keeps_earlier_rows(
        self, remote: GatedRemote, outbox_path: Path
    ) -> None:
        """When the file cannot grow (SQLITE_FULL), writes fail; rows already written still ship."""
        remote.outage = True
        store = make(remote, outbox_path, max_bytes=64 * 1024)
        written, error = 0, None
        for start in range(0, 10_000, 10):
            try:
                written += store.write_batch(STATE_TRANSITIONS, rows(10, start=start)).written
            except StoreError as exc:
                error = exc
                break
        assert error is not None
        assert "full" in str(error)
        assert error.retryable is False
        assert store.status()["enqueue_errors"] == 1
        assert written > 0
        remote.outage = False
        assert store.drain(timeout=30) == 0
        assert remote.received == ids(rows(written))
        # Once space is free again, writes succeed.
        assert store.write_batch(STATE_TRANSITIONS, rows(1, prefix="again")).written == 1
        store.close()

    def test_unwritable_outbox_keeps_the_pipeline_running(
        self, remote: GatedRemote, tmp_path: Path
    ) -> None:
        """With an unwritable outbox, a pipeline still completes and the logger counts the loss."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        store = make(remote, blocker / "outbox.db")

        async def pipeline() -> tuple[str, dict[str, Any]]:
            async with MetadataLogger(store, LoggerSettings(max_flush_retries=0)) as logger:
                run = PipelineRun.create("unwritable", org_slug="acme", sink=logger)
                run.start()
                for i in range(5):
                    step = StepRun.create(f"step_{i}", pipeline=run)
                    step.start()
                    step.complete()
                run.complete()
                await logger.flush()
                return run.state, logger.get_queue_depths()["state_transition"]

        state, depths = asyncio.run(pipeline())
        assert state == "COMPLETED"
        assert depths["rows_written"] == 0
        assert depths["rows_dropped"] == 12
        assert "not writable" in depths["last_flush_error"]
        assert store.status()["enqueue_errors"] >= 1
        assert remote.received == []
        store.close(timeout=0)


class TestWithOutbox:
    """with_outbox(): the wiring open_store uses to put an outbox in front of BigQuery."""

    def test_path_comes_from_the_environment(
        self, remote: GatedRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a path, $PIPESTATE_OUTBOX names the file, and leftovers there ship at once."""
        path = tmp_path / "env-outbox.db"
        remote.outage = True
        first = make(remote, path)
        first.write_batch(STATE_TRANSITIONS, rows(2))
        first.close(timeout=0)
        remote.outage = False
        monkeypatch.setenv("PIPESTATE_OUTBOX", str(path))
        store = with_outbox(remote, retry_policy=NO_WAIT)
        assert store.path == str(path)
        assert remote.wait_for(2, timeout=30)
        store.close()
