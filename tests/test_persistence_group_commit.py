"""persistence._group_commit: local stores get every queued row at once, one commit at a time."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _group_commit
from persistence._derive import derive_run_rows
from persistence.outbox import OutboxStore
from persistence.stores.base import (
    PIPELINE_RUNS,
    STATE_TRANSITIONS,
    STEP_LOGS,
    StoreError,
    WriteResult,
)
from statemachine import InMemorySink, PipelineRun, StepRun
from tests.outbox_support import GatedRemote, outbox_ids
from tests.strategies.records import record

# A batch never fills and the timer never fires: only group commit can write these rows.
NEVER = LoggerSettings(batch_size=100, flush_interval_seconds=3600)


def stored_ids(path: Path, table: str = STATE_TRANSITIONS, column: str = "transition_id") -> set:
    """Ids in one table of a SQLite file, read with a separate connection."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}"')}


def derived_counts(records: Sequence[Any]) -> dict[str, int]:
    """Rows per table that a logger with derived rows writes for these records."""
    counts: collections.Counter[str] = collections.Counter({STATE_TRANSITIONS: len(records)})
    for rec in records:
        counts.update(table for table, _ in derive_run_rows(rec))
    return dict(counts)


class Tee:
    """A sink that hands each record to two sinks (the logger and a recording one)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def emit(self, record: Any) -> None:
        """Forward to every sink."""
        for sink in self.sinks:
            sink.emit(record)


class GatedGroupStore:
    """A group-commit front for SQLiteStore: records each write_many call (tables and row
    counts), holds the first call until `gate` is set, and can fail the next calls."""

    group_commit = True
    max_concurrent_writes = 1

    def __init__(self, inner: SQLiteStore, *, gated: bool = False) -> None:
        self.inner = inner
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.committed = threading.Event()  # set after the first successful write_many
        self.calls: list[dict[str, int]] = []
        self.fail_next: list[BaseException] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def write_many(self, parts: Sequence[tuple[str, Sequence[Any]]]) -> list[WriteResult]:
        """Record the call, wait for the gate on the first one, fail if told to, then write."""
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            first = not self.calls
            self.calls.append({table: len(items) for table, items in parts})
            failure = self.fail_next.pop(0) if self.fail_next else None
        try:
            if first:
                self.entered.set()
                self.gate.wait(30)
            if failure is not None:
                raise failure
            results = self.inner.write_many(parts)
            self.committed.set()
            return results
        finally:
            with self._lock:
                self.in_flight -= 1

    def write_records(self, table: str, items: Sequence[Any]) -> WriteResult:
        """Delegates (write_many is what the committer calls)."""
        return self.inner.write_records(table, items)

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Delegates."""
        return self.inner.write_batch(table, rows)

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegates."""
        return self.inner.query(name, params)

    def close(self) -> None:
        """Delegates."""
        self.inner.close()


class TestLightLoad:
    """A lone row is committed at once, without a full batch, a timer or flush()."""

    def test_one_row_lands_without_flush(self, tmp_path: Path) -> None:
        """With a one-hour interval and batches of 100, one emitted row reaches the file as
        soon as the committer runs; flush() is never called before it is checked."""
        path = tmp_path / "one.db"
        store = GatedGroupStore(SQLiteStore(path))
        rec = record(transition_id="alone")

        async def body() -> None:
            async with MetadataLogger(store, NEVER) as logger:
                logger.emit(rec)
                assert await asyncio.to_thread(store.committed.wait, 30)
                assert stored_ids(path) == {rec.transition_id}

        asyncio.run(body())
        store.close()

    def test_flush_ends_the_commit_delay(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With an hour-long commit delay, flush() still has the waiting row committed at once."""
        monkeypatch.setattr(_group_commit, "COMMIT_DELAY_SECONDS", 3600.0)
        path = tmp_path / "delay.db"
        store = SQLiteStore(path)
        settings = LoggerSettings(batch_size=5, flush_interval_seconds=7200)

        async def body() -> None:
            async with MetadataLogger(store, settings) as logger:
                for name in ("first", "second"):  # the delay starts again after each commit
                    logger.emit(record(transition_id=name))
                    assert await logger.flush(timeout=30)  # woke the committer's delay
                assert stored_ids(path) == {"first", "second"}

        asyncio.run(body())
        store.close()

    def test_tables_are_ready_after_start(self, tmp_path: Path) -> None:
        """start() creates the SQLite tables, so the first commit does not run the DDL."""
        path = tmp_path / "ready.db"
        store = SQLiteStore(path)

        async def body() -> None:
            async with MetadataLogger(store, NEVER):
                assert stored_ids(path) == set()  # the table exists (and is empty)

        asyncio.run(body())
        store.close()


class TestUnderLoad:
    """Rows that queue behind a running commit go out together, in every table at once."""

    def test_backlog_goes_in_one_commit_with_derived_rows(self, tmp_path: Path) -> None:
        """While the first commit is held, a 20-step run queues up; the next single commit
        holds all its transitions and every run and step row derived from them."""
        path = tmp_path / "backlog.db"
        store = GatedGroupStore(SQLiteStore(path), gated=True)
        emitted = InMemorySink()

        async def body() -> None:
            async with MetadataLogger(store, NEVER, derive_run_rows=True) as logger:
                sink = Tee(logger, emitted)
                run = PipelineRun.create("p", org_slug="acme", sink=sink)
                run.start()
                assert await asyncio.to_thread(store.entered.wait, 30)
                for i in range(20):
                    step = StepRun.create(f"s{i}", pipeline=run)
                    step.start()
                    step.complete()
                run.complete()
                store.gate.set()
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        store.close()
        first, *rest = emitted.records
        assert store.calls == [derived_counts([first]), derived_counts(rest)]
        assert store.most_in_flight == 1
        assert len(stored_ids(path)) == 42
        step_rows = derived_counts(emitted.records).get(STEP_LOGS, 0)
        assert step_rows >= 20  # at least one row per step attempt
        assert len(stored_ids(path, STEP_LOGS, "step_log_id")) == step_rows

    def test_batch_size_caps_each_commit(self, tmp_path: Path) -> None:
        """A store without a max_batch_rows hint gets at most METADATA_LOG_BATCH_SIZE rows of a
        table per commit; the backlog drains in several commits, each row exactly once."""
        path = tmp_path / "cap.db"
        store = GatedGroupStore(SQLiteStore(path), gated=True)
        settings = LoggerSettings(batch_size=10, flush_interval_seconds=3600)
        records = [record(transition_id=f"cap{i:03d}") for i in range(35)]

        async def body() -> None:
            async with MetadataLogger(store, settings) as logger:
                logger.emit(records[0])
                assert await asyncio.to_thread(store.entered.wait, 30)
                for rec in records[1:]:
                    logger.emit(rec)
                store.gate.set()
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        store.close()
        sizes = [call[STATE_TRANSITIONS] for call in store.calls]
        assert sizes == [1, 10, 10, 10, 4]
        assert stored_ids(path) == {r.transition_id for r in records}


class TestLongTurns:
    """A backlog built inside one turn of the event loop leaves before the turn ends."""

    def test_a_backlog_is_streamed_from_emit(self, tmp_path: Path) -> None:
        """Transitions emitted without an await leave for the writer child in data frames of
        STREAM_ROWS while they are queued; the rest (fewer than STREAM_ROWS) follow with the
        group's last frame at the flush, and every row lands exactly once."""
        path = tmp_path / "turn.db"
        store = SQLiteStore(path, writer_process=True)
        frames = 6
        total = frames * _group_commit.STREAM_ROWS + 24
        records = [record(transition_id=f"turn{i:04d}") for i in range(total)]
        seen: dict[str, int] = {}

        async def body() -> None:
            async with MetadataLogger(store, NEVER) as logger:
                for rec in records:  # one turn: no await in between
                    logger.emit(rec)
                seen.update(logger.get_queue_depths()["state_transition"])
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        store.close()
        assert seen["in_flight"] == frames * _group_commit.STREAM_ROWS
        assert seen["depth"] == 24
        assert stored_ids(path) == {r.transition_id for r in records}


class TestFailures:
    """Retries, give-ups and row rejections settle every row exactly once."""

    def test_retryable_failure_is_retried_and_lands_once(self, tmp_path: Path) -> None:
        """A commit that fails with a retryable error is retried; every row lands once."""
        path = tmp_path / "retry.db"
        store = GatedGroupStore(SQLiteStore(path))
        store.fail_next = [StoreError("disk busy", retryable=True)] * 2
        settings = LoggerSettings(
            flush_interval_seconds=3600, retry_base_delay_seconds=0.0, retry_max_delay_seconds=0.0
        )
        records = [record(transition_id=f"r{i}") for i in range(5)]

        async def body() -> dict[str, Any]:
            async with MetadataLogger(store, settings) as logger:
                for rec in records:
                    logger.emit(rec)
                assert await logger.flush(timeout=30)
                depths: dict[str, Any] = logger.get_queue_depths()["state_transition"]
                return depths

        depths = asyncio.run(body())
        store.close()
        assert depths["rows_written"] == 5
        assert depths["rows_dropped"] == 0
        assert depths["flush_failures"] == 2
        assert stored_ids(path) == {r.transition_id for r in records}

    def test_permanent_failure_drops_and_counts_every_table(self, tmp_path: Path) -> None:
        """A commit refused for good drops its rows as store_rejected, counted per table."""
        store = GatedGroupStore(SQLiteStore(tmp_path / "perm.db"), gated=True)
        store.fail_next = [StoreError("read-only file", retryable=False)]

        async def body() -> dict[str, Any]:
            async with MetadataLogger(store, NEVER, derive_run_rows=True) as logger:
                run = PipelineRun.create("p", org_slug="acme", sink=logger)
                run.start()
                run.complete()  # a finished run: its row is derived in every version
                store.gate.set()
                assert await logger.flush(timeout=30)
                return logger.get_queue_depths()

        depths = asyncio.run(body())
        store.close()
        assert depths["state_transition"]["drops_by_reason"] == {"store_rejected": 2}
        assert depths["pipeline"]["drops_by_reason"]["store_rejected"] >= 1
        assert depths["pipeline"]["rows_written"] == 0

    def test_a_refused_row_rejects_itself_only(self, tmp_path: Path) -> None:
        """In one group, a row SQLite cannot bind (an int over 64 bits) is rejected by id and
        every other row of every table lands."""
        path = tmp_path / "bad.db"
        store = SQLiteStore(path)
        good = [record(transition_id="g1"), record(transition_id="g2")]
        huge = {
            "step_log_id": "bad:0:start",
            "step_logging_id": "bad",
            "pipeline_logging_id": "p",
            "org_slug": "acme",
            "step_name": "s",
            "attempt": 2**70,
            "status": "RUNNING",
            "start_time": "2025-12-21T12:00:00.000000+00:00",
            "run_date": "2025-12-21",
        }
        results = store.write_many([(STATE_TRANSITIONS, good), (STEP_LOGS, [huge])])
        store.close()
        assert [r.written for r in results] == [2, 0]
        assert [e.row_id for e in results[1].rejected] == ["bad:0:start"]
        assert stored_ids(path) == {"g1", "g2"}


class TestOutbox:
    """The outbox takes a group in one commit of its file."""

    def test_group_lands_in_the_outbox_file(self, tmp_path: Path) -> None:
        """Transitions and derived rows of a run all reach the outbox through group commit."""
        remote = GatedRemote()
        remote.outage = True  # nothing ships: every row stays in the file
        path = tmp_path / "outbox.db"
        store = OutboxStore(remote, path, upload_interval_seconds=3600)

        emitted = InMemorySink()

        async def body() -> None:
            async with MetadataLogger(store, NEVER, derive_run_rows=True) as logger:
                run = PipelineRun.create("p", org_slug="acme", sink=Tee(logger, emitted))
                run.start()
                step = StepRun.create("s", pipeline=run)
                step.start()
                step.complete()
                run.complete()
                assert await logger.flush(timeout=30)

        asyncio.run(body())
        ids = outbox_ids(path)
        store.close(timeout=0)
        expected = derived_counts(emitted.records)
        assert len(ids) == sum(expected.values())
        assert set(expected) >= {STATE_TRANSITIONS, PIPELINE_RUNS, STEP_LOGS}


class TestDroppedDerivedRows:
    """A group given up counts the run and step rows it implied as dropped too."""

    def test_value_tuples_count_their_derived_rows(self) -> None:
        """Records queued as value tuples (a pipelined store) imply the same dropped run and
        step rows as the records themselves."""
        from persistence._channel import Channel
        from persistence._writer_parts import record_values
        from persistence.logger import QUEUE_NAMES

        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        run.start()
        step = StepRun.create("s", pipeline=run)
        step.start()
        step.complete()
        run.complete()
        channels = [Channel(table, short, 100, 1.0) for table, short in QUEUE_NAMES.items()]
        store = SQLiteStore(":memory:", writer_process=False)
        committer = _group_commit.GroupCommitter(channels, store, NEVER, stop_deadline=lambda: None)
        values = [record_values(r) for r in sink.records]
        committer._drop_derived([(STATE_TRANSITIONS, values)], "store_rejected")
        dropped = {c.table: c.drops["store_rejected"] for c in channels if c.drops}
        expected = {
            table: rows
            for table, rows in derived_counts(sink.records).items()
            if table != STATE_TRANSITIONS
        }
        assert dropped == expected
        assert expected == {PIPELINE_RUNS: 1, STEP_LOGS: 1}  # the run and its step

    def test_an_encoded_group_counts_its_derived_rows(self) -> None:
        """A group whose items were let go after encoding (a writer process's) still counts the
        run and step rows its records implied, read back from its frame."""
        from persistence._channel import Channel
        from persistence._writer_parts import EncodedParts, record_values
        from persistence.logger import QUEUE_NAMES

        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        run.start()
        for name in ("a", "b"):
            step = StepRun.create(name, pipeline=run)
            step.start()
            step.complete()
        run.complete()
        channels = [Channel(table, short, 100, 1.0) for table, short in QUEUE_NAMES.items()]
        store = SQLiteStore(":memory:", writer_process=False)
        committer = _group_commit.GroupCommitter(channels, store, NEVER, stop_deadline=lambda: None)
        values = [record_values(r) for r in sink.records]
        committer._drop_derived(
            EncodedParts([(STATE_TRANSITIONS, values)], True), "store_unavailable"
        )
        dropped = {c.table: c.drops["store_unavailable"] for c in channels if c.drops}
        assert dropped == {PIPELINE_RUNS: 1, STEP_LOGS: 2}


class TestEncodeOnce:
    """A writer process's group is encoded before its first send, and its items let go."""

    def test_a_writer_process_group_lets_its_items_go(self, tmp_path: Path) -> None:
        """_encode gives a writer process's group as its frame and empties each batch but its
        length; a store without a writer process gets the group's items as they are."""
        from persistence._channel import Channel
        from persistence._writer_parts import EncodedParts, record_from_values, record_values
        from persistence.logger import QUEUE_NAMES

        values = [record_values(record(transition_id=f"g{i}")) for i in range(3)]
        for writer, encoded in ((True, True), (False, False)):
            store = SQLiteStore(tmp_path / f"{writer}.db", writer_process=writer)
            try:
                channels = [Channel(t, short, 100, 1.0) for t, short in QUEUE_NAMES.items()]
                committer = _group_commit.GroupCommitter(
                    channels, store, NEVER, stop_deadline=lambda: None
                )
                batch = list(values)
                parts = committer._encode([(channels[0], batch)], True)
            finally:
                store.close()
            assert isinstance(parts, EncodedParts) is encoded
            if encoded:
                assert batch == [()] * 3
                assert parts.decoded()[0][1] == [record_from_values(v) for v in values]
            else:
                assert parts == [(STATE_TRANSITIONS, values)]
