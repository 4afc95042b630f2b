"""The logger under failure: retries land rows once, outages are bounded, drops are exact."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from persistence.stores.base import STATE_TRANSITIONS
from statemachine.records import TransitionRecord
from tests.strategies.records import BASE_TIME, DownStore, FlakyStore, GatedStore, many_records


def quick(**fields: Any) -> LoggerSettings:
    """Settings that retry quickly, so failing stores do not slow the suite."""
    return LoggerSettings(retry_base_delay_seconds=0.01, retry_max_delay_seconds=0.05, **fields)


GUARD_SECONDS = 60  # a hung logger fails the test instead of hanging the suite


def ids(path: Path) -> list[str]:
    """Every transition_id in the file, duplicates included."""
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute(f"SELECT transition_id FROM {STATE_TRANSITIONS}")]
    finally:
        conn.close()


class TestRetries:
    """A store failing with retryable errors, then recovering."""

    def test_every_row_lands_exactly_once_after_failures(self, tmp_path: Path) -> None:
        """Four failed writes, then recovery: each of 500 ids is stored exactly once."""
        records = many_records(500, prefix="flaky")
        settings = quick(flush_interval_seconds=3600)

        async def body() -> None:
            store = FlakyStore(SQLiteStore(tmp_path / "f.db"), failures=4)
            async with asyncio.timeout(GUARD_SECONDS):
                async with MetadataLogger(store, settings) as logger:
                    for r in records:
                        logger.emit(r)
                    assert await logger.flush()
                    depths = logger.get_queue_depths()["state_transition"]
            assert depths["flush_failures"] == 4
            assert depths["rows_written"] == 500
            assert depths["rows_dropped"] == 0
            assert "injected failure" in depths["last_flush_error"]

        asyncio.run(body())
        stored = ids(tmp_path / "f.db")
        assert sorted(stored) == sorted(r.transition_id for r in records)

    def test_a_failure_after_the_rows_landed_does_not_duplicate(self, tmp_path: Path) -> None:
        """Writes that land and then report an error are retried without duplicating a row."""
        records = many_records(300, prefix="landed")
        settings = quick(flush_interval_seconds=3600)

        async def body() -> None:
            store = FlakyStore(SQLiteStore(tmp_path / "d.db"), failures=3, after_write=True)
            async with asyncio.timeout(GUARD_SECONDS):
                async with MetadataLogger(store, settings) as logger:
                    for r in records:
                        logger.emit(r)
            depths = logger.get_queue_depths()["state_transition"]
            assert (depths["rows_written"], depths["rows_dropped"]) == (300, 0)

        asyncio.run(body())
        stored = ids(tmp_path / "d.db")
        assert len(stored) == len(set(stored)) == 300

    def test_permanent_errors_are_not_retried(self, tmp_path: Path) -> None:
        """A non-retryable StoreError drops its batch as store_rejected after one attempt."""
        settings = quick(flush_interval_seconds=3600)

        async def body() -> None:
            store = FlakyStore(SQLiteStore(tmp_path / "p.db"), failures=1, retryable=False)
            async with MetadataLogger(store, settings) as logger:
                for r in many_records(10, prefix="perm"):
                    logger.emit(r)
                assert await logger.flush(timeout=GUARD_SECONDS)
                depths = logger.get_queue_depths()["state_transition"]
            assert store.calls == 1
            assert depths["drops_by_reason"] == {"store_rejected": 10}

        asyncio.run(body())

    def test_rejected_rows_are_counted_and_the_rest_land(self, tmp_path: Path) -> None:
        """Rows the store rejects are dropped by id as store_rejected; good rows are written."""
        good = many_records(20, prefix="good")
        bad = {**many_records(1, prefix="bad")[0].to_row(), "org_slug": None}

        async def body() -> None:
            settings = LoggerSettings(flush_interval_seconds=3600)
            async with MetadataLogger(SQLiteStore(tmp_path / "r.db"), settings) as logger:
                for r in good:
                    logger.emit(r)
                logger.channels[STATE_TRANSITIONS].submit()
                logger.channels[STATE_TRANSITIONS].put(bad)
                assert await logger.flush(timeout=GUARD_SECONDS)
                depths = logger.get_queue_depths()["state_transition"]
            assert depths["rows_written"] == 20
            assert depths["drops_by_reason"] == {"store_rejected": 1}

        asyncio.run(body())
        assert len(ids(tmp_path / "r.db")) == 20


class TestOutages:
    """A store that is down for good, or hangs, never holds the pipeline or stop() hostage."""

    def test_store_down_for_good(self) -> None:
        """Calls return, drops and failures are counted, and stop() returns within its timeout."""
        settings = quick(
            batch_size=10,
            queue_size=20,
            flush_interval_seconds=0.01,
            put_timeout=0.05,
            max_flush_retries=2,
        )

        async def body() -> None:
            store = DownStore()
            logger = MetadataLogger(store, settings, org_slug="acme")
            await logger.start()
            async with asyncio.timeout(GUARD_SECONDS):
                for r in many_records(200, prefix="down"):
                    logger.emit(r)
                for i in range(5):
                    await logger.log_pipeline_start(pipeline_logging_id=f"r{i}", pipeline_id="p")
            async with asyncio.timeout(5 + 10):  # stop(timeout=5) must not overrun much
                await logger.stop(timeout=5)
            depths = logger.get_queue_depths()
            transitions = depths["state_transition"]
            assert transitions["rows_written"] == 0
            assert transitions["rows_dropped"] == 200
            assert transitions["flush_failures"] >= 1
            assert set(transitions["drops_by_reason"]) <= {
                "queue_full",
                "store_unavailable",
                "shutdown",
            }
            assert depths["pipeline"]["rows_dropped"] == 5
            assert "connection refused" in transitions["last_flush_error"]
            assert store.calls >= 1

        asyncio.run(body())

    def test_hung_store_stop_returns_after_its_timeout(self, tmp_path: Path) -> None:
        """With every write blocked, stop(timeout) gives up, counting the rows as 'shutdown'."""

        async def body() -> None:
            store = GatedStore(SQLiteStore(tmp_path / "h.db"))
            logger = MetadataLogger(store, LoggerSettings(flush_interval_seconds=3600))
            await logger.start()
            for r in many_records(30, prefix="hung"):
                logger.emit(r)
            try:
                async with asyncio.timeout(GUARD_SECONDS):
                    drained = await logger.stop(timeout=0.2)
            finally:
                store.gate.set()  # release the blocked worker thread
            depths = logger.get_queue_depths()["state_transition"]
            assert drained is False
            assert depths["drops_by_reason"] == {"shutdown": 30}
            assert depths["rows_submitted"] == 30

        asyncio.run(body())


class TestOverflow:
    """Backpressure: a full queue drops (put_timeout=0) or parks rows for at most put_timeout."""

    def test_put_timeout_zero_drops_are_counted_exactly(self, tmp_path: Path) -> None:
        """Queue of 10, 100 emits without yielding: 10 are kept, exactly 90 dropped."""
        settings = LoggerSettings(batch_size=5, queue_size=10, workers=1, put_timeout=0)

        async def body() -> None:
            store = GatedStore(SQLiteStore(tmp_path / "o.db"))
            logger = MetadataLogger(store, settings)
            await logger.start()
            for r in many_records(100, prefix="over"):
                logger.emit(r)  # returns at once although the store is blocked
            depths = logger.get_queue_depths()["state_transition"]
            assert depths["drops_by_reason"] == {"queue_full": 90}
            store.gate.set()
            assert await logger.stop(timeout=GUARD_SECONDS)
            assert logger.get_queue_depths()["state_transition"]["rows_written"] == 10

        asyncio.run(body())
        assert len(ids(tmp_path / "o.db")) == 10

    def test_parked_rows_expire_after_put_timeout(self, tmp_path: Path) -> None:
        """With writes blocked, rows beyond the queue wait put_timeout, then drop as queue_full."""
        settings = LoggerSettings(batch_size=5, queue_size=10, workers=1, put_timeout=0.05)

        async def body() -> None:
            store = GatedStore(SQLiteStore(tmp_path / "x.db"))
            logger = MetadataLogger(store, settings)
            await logger.start()
            for r in many_records(40, prefix="park"):
                logger.emit(r)  # 10 queued, 30 parked
            channel = logger.channels[STATE_TRANSITIONS]
            # The single worker holds one blocked batch and the batcher a second; only the 30
            # parked rows can settle while the gate is shut, and only by expiring.
            async with asyncio.timeout(GUARD_SECONDS):
                await logger._wait_processed({channel: 30})
            assert channel.snapshot()["drops_by_reason"] == {"queue_full": 30}
            store.gate.set()
            assert await logger.stop(timeout=GUARD_SECONDS)
            assert channel.snapshot()["rows_written"] == 10

        asyncio.run(body())
        assert len(ids(tmp_path / "x.db")) == 10

    def test_parked_rows_land_when_room_frees_in_time(self, tmp_path: Path) -> None:
        """A burst three times the queue size, with a generous put_timeout, loses nothing."""
        settings = LoggerSettings(batch_size=10, queue_size=20, put_timeout=30)

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "b.db"), settings) as logger:
                for r in many_records(60, prefix="burst"):
                    logger.emit(r)
                assert await logger.flush(timeout=GUARD_SECONDS)
                assert logger.get_queue_depths()["state_transition"]["rows_dropped"] == 0

        asyncio.run(body())
        assert len(ids(tmp_path / "b.db")) == 60


_RETRY_CYCLE = (("PENDING", "RUNNING"), ("RUNNING", "RETRYING"), ("RETRYING", "RUNNING"))


class TestScale:
    """100,000 transitions from 1,000 concurrent producers at default settings."""

    def test_none_lost_none_duplicated(self, tmp_path: Path) -> None:
        """Every one of 100,000 ids from 1,000 producers is stored exactly once, none dropped."""
        producers, per_producer = 1000, 100

        async def produce(logger: MetadataLogger, k: int) -> None:
            for i in range(per_producer):
                # A step's legal chain: PENDING -> RUNNING, then RETRYING <-> RUNNING.
                source, dest = _RETRY_CYCLE[0 if i == 0 else 2 - i % 2]
                await logger.log_state_transition(
                    transition_id=f"p{k}-{i}",
                    org_slug="acme",
                    pipeline_logging_id=f"run-{k}",
                    step_logging_id=f"step-{k}",
                    from_state=source,
                    to_state=dest,
                    entity_type="STEP",
                    entity_name="billing",
                    transition_time=BASE_TIME,
                )

        async def body() -> None:
            async with asyncio.timeout(600):
                async with MetadataLogger(SQLiteStore(tmp_path / "s.db")) as logger:
                    await asyncio.gather(*(produce(logger, k) for k in range(producers)))
                depths = logger.get_queue_depths()["state_transition"]
            assert depths["rows_dropped"] == 0
            assert depths["rows_written"] == producers * per_producer

        asyncio.run(body())
        stored = ids(tmp_path / "s.db")
        expected = {f"p{k}-{i}" for k in range(producers) for i in range(per_producer)}
        assert len(stored) == len(expected)
        assert set(stored) == expected
        assert not [i for i, n in Counter(stored).items() if n > 1]


def test_records_are_transition_records() -> None:
    """The bulk builder used above yields real TransitionRecords (guards the fixtures)."""
    assert all(isinstance(r, TransitionRecord) for r in many_records(3))
