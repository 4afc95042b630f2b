"""MetadataLogger: settings, the emit sink, batching, the seed's log_* API and the lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from persistence.settings import ENV_VARS
from persistence.stores.base import PIPELINE_RUNS, STEP_LOGS
from statemachine import IllegalTransition
from tests.sqlite_support import table_rows as rows
from tests.strategies.records import BASE_TIME, GatedStore, RecordingStore, many_records

ROOT = Path(__file__).resolve().parent.parent
FAST = LoggerSettings(flush_interval_seconds=3600)  # only full batches, flush() or stop() write


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one async test body."""
    asyncio.run(body())


class TestLoggerSettings:
    """LoggerSettings defaults, validation and environment variables."""

    def test_defaults_are_the_seeds(self) -> None:
        """100 rows per batch, 5 s interval, 1000 per queue, 5 workers, 5 s put timeout."""
        s = LoggerSettings()
        assert (s.batch_size, s.flush_interval_seconds, s.queue_size, s.workers) == (
            100,
            5.0,
            1000,
            5,
        )
        assert s.put_timeout == 5.0

    @pytest.mark.parametrize(
        ("field", "raw", "value"),
        [
            ("batch_size", "200", 200),
            ("flush_interval_seconds", "2", 2.0),
            ("queue_size", "2000", 2000),
            ("workers", "10", 10),
            ("put_timeout", "0", 0.0),
        ],
    )
    def test_each_variable_is_read(self, field: str, raw: str, value: float) -> None:
        """Each METADATA_LOG_* variable sets its field."""
        assert getattr(LoggerSettings.from_env({ENV_VARS[field]: raw}), field) == value

    @pytest.mark.parametrize(
        ("variable", "raw"),
        [
            ("METADATA_LOG_BATCH_SIZE", "abc"),
            ("METADATA_LOG_WORKERS", "0"),
            ("METADATA_LOG_QUEUE_SIZE", "1.5"),
            ("METADATA_LOG_FLUSH_INTERVAL_SECONDS", "-1"),
            ("METADATA_LOG_PUT_TIMEOUT_SECONDS", "nan"),
        ],
    )
    def test_invalid_values_name_the_variable_and_value(self, variable: str, raw: str) -> None:
        """A bad value is a ValueError naming the variable and quoting the value."""
        with pytest.raises(ValueError, match=f"{variable}.*{raw!r}"):
            LoggerSettings.from_env({variable: raw})

    def test_batch_larger_than_queue_is_rejected(self) -> None:
        """batch_size > queue_size is refused, naming both and the variable that set it."""
        with pytest.raises(ValueError, match=r"batch_size.*queue_size.*METADATA_LOG_BATCH_SIZE"):
            LoggerSettings.from_env({"METADATA_LOG_BATCH_SIZE": "5000"})

    def test_overrides_win_over_the_environment(self) -> None:
        """Keyword overrides replace environment values."""
        s = LoggerSettings.from_env({"METADATA_LOG_WORKERS": "9"}, workers=2)
        assert s.workers == 2


class TestEmit:
    """emit() is the TransitionSink: never blocks, never raises, from any thread."""

    def test_emitted_records_land_after_flush(self, tmp_path: Path) -> None:
        """Every emitted record is in the store once flush() returns True."""
        records = many_records(250, prefix="emit")

        async def body() -> None:
            store = SQLiteStore(tmp_path / "a.db")
            async with MetadataLogger(store, FAST) as logger:
                for r in records:
                    logger.emit(r)
                assert await logger.flush(timeout=30)
                assert sorted(x["transition_id"] for x in rows(tmp_path / "a.db")) == sorted(
                    r.transition_id for r in records
                )
                assert logger.get_queue_depths()["state_transition"]["rows_written"] == 250

        run(body)

    def test_emit_from_other_threads(self, tmp_path: Path) -> None:
        """Records emitted from four plain threads all land."""
        records = many_records(2000, prefix="thr")

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "t.db"), FAST) as logger:

                def work(k: int) -> None:
                    for r in records[k::4]:
                        logger.emit(r)

                threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
                for t in threads:
                    t.start()

                def join_all() -> None:
                    for t in threads:
                        t.join()

                await asyncio.to_thread(join_all)
                assert await logger.flush(timeout=30)
            assert len(rows(tmp_path / "t.db")) == 2000

        run(body)

    def test_emit_before_start_is_kept(self, tmp_path: Path) -> None:
        """Records emitted before start() are written once the logger runs."""
        logger = MetadataLogger(SQLiteStore(tmp_path / "b.db"), FAST)
        for r in many_records(5, prefix="early"):
            logger.emit(r)

        async def body() -> None:
            await logger.start()
            await logger.stop()

        run(body)
        assert len(rows(tmp_path / "b.db")) == 5

    def test_emit_after_stop_is_counted_not_raised(self, tmp_path: Path) -> None:
        """After stop(), emit drops the record as 'shutdown' and returns normally."""

        async def body() -> None:
            logger = MetadataLogger(SQLiteStore(tmp_path / "c.db"), FAST)
            await logger.start()
            await logger.stop()
            logger.emit(many_records(1, prefix="late")[0])
            assert logger.get_queue_depths()["state_transition"]["drops_by_reason"] == {
                "shutdown": 1
            }

        run(body)

    def test_emit_of_garbage_never_raises(self, tmp_path: Path) -> None:
        """An object that is not a record is rejected at flush time; emit itself returns."""

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "g.db"), FAST) as logger:
                logger.emit(object())  # type: ignore[arg-type]
                assert await logger.flush(timeout=30)
                depths = logger.get_queue_depths()["state_transition"]
                assert depths["drops_by_reason"] == {"store_rejected": 1}

        run(body)


class TestBatching:
    """Workers write when a batch is full or the interval has passed, whichever is first."""

    def test_full_batch_is_written_without_flush(self, tmp_path: Path) -> None:
        """With a one-hour interval, ten rows (one full batch) are written right away."""
        settings = LoggerSettings(batch_size=10, flush_interval_seconds=3600)

        async def body() -> None:
            store = RecordingStore(SQLiteStore(tmp_path / "f.db"), target=10)
            async with MetadataLogger(store, settings) as logger:
                for r in many_records(10, prefix="full"):
                    logger.emit(r)
                assert await asyncio.to_thread(store.reached.wait, 30)
                assert store.batches == [10]

        run(body)

    def test_partial_batch_is_written_after_the_interval(self, tmp_path: Path) -> None:
        """Three rows are written once the (short) interval passes, without flush()."""
        settings = LoggerSettings(batch_size=100, flush_interval_seconds=0.05)

        async def body() -> None:
            store = RecordingStore(SQLiteStore(tmp_path / "i.db"), target=3)
            async with MetadataLogger(store, settings) as logger:
                for r in many_records(3, prefix="int"):
                    logger.emit(r)
                assert await asyncio.to_thread(store.reached.wait, 30)
                assert store.batches == [3]

        run(body)

    def test_flush_sends_a_partial_batch_at_once(self, tmp_path: Path) -> None:
        """flush() does not wait for the interval: three rows land in one batch."""

        async def body() -> None:
            store = RecordingStore(SQLiteStore(tmp_path / "p.db"))
            async with MetadataLogger(store, FAST) as logger:
                for r in many_records(3, prefix="part"):
                    logger.emit(r)
                assert await logger.flush(timeout=30)
                assert store.batches == [3]

        run(body)

    def test_queue_depths_report_depth_capacity_and_seed_keys(self, tmp_path: Path) -> None:
        """A full queue shows depth == capacity and 100 % in the seed's flat key."""
        settings = LoggerSettings(batch_size=5, queue_size=10, workers=1, put_timeout=0)

        async def body() -> None:
            store = GatedStore(SQLiteStore(tmp_path / "d.db"))
            logger = MetadataLogger(store, settings)
            await logger.start()
            for r in many_records(10, prefix="depth"):
                logger.emit(r)  # no await in between: the workers have not run yet
            depths = logger.get_queue_depths()
            assert depths["state_transition_queue_utilization_pct"] == 100.0
            assert depths["state_transition"]["depth"] == depths["state_transition"]["capacity"]
            assert depths["pipeline_queue_depth"] == depths["step_queue_depth"] == 0
            store.gate.set()
            assert await logger.stop(timeout=30)
            assert logger.get_queue_depths()["state_transition"]["rows_written"] == 10

        run(body)


class TestSeedAPI:
    """log_pipeline_*, log_step_* and log_state_transition, as the seed calls them."""

    def test_pipeline_rows_have_deterministic_ids(self, tmp_path: Path) -> None:
        """Start and end rows are keyed '<id>:start' / '<id>:end'; logging twice stores once."""
        start = BASE_TIME
        end = BASE_TIME + dt.timedelta(seconds=90)

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "r.db"), FAST, org_slug="acme") as lg:
                for _ in range(2):
                    await lg.log_pipeline_start(
                        pipeline_logging_id="run-1", pipeline_id="billing", start_time=start
                    )
                    await lg.log_pipeline_end(
                        pipeline_logging_id="run-1",
                        pipeline_id="billing",
                        status="COMPLETED",
                        start_time=start,
                        end_time=end,
                    )

        run(body)
        got = {r["run_log_id"]: r for r in rows(tmp_path / "r.db", PIPELINE_RUNS)}
        assert sorted(got) == ["run-1:end", "run-1:start"]
        assert got["run-1:end"]["duration_ms"] == 90_000
        assert got["run-1:end"]["status"] == "COMPLETED"
        assert got["run-1:start"]["status"] == "RUNNING"
        assert got["run-1:start"]["run_date"] == "2025-12-21"
        assert got["run-1:start"]["org_slug"] == "acme"

    def test_step_end_merges_error_context_into_metadata(self, tmp_path: Path) -> None:
        """error_context lands under metadata['error_context'], next to the caller's metadata."""
        ctx = {"error_type": "TRANSIENT", "error_class": "ConnectionError", "is_retryable": True}

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "s.db"), FAST, org_slug="acme") as lg:
                await lg.log_step_start(
                    step_logging_id="s-1",
                    pipeline_logging_id="run-1",
                    step_name="extract_data",
                    step_type="gcp.bq_etl",
                    step_index=0,
                    start_time=BASE_TIME,
                )
                await lg.log_step_end(
                    step_logging_id="s-1",
                    pipeline_logging_id="run-1",
                    step_name="extract_data",
                    step_type="gcp.bq_etl",
                    step_index=0,
                    status="FAILED",
                    start_time=BASE_TIME,
                    error_message="Connection timeout",
                    error_context=ctx,
                    metadata={"rows": 3},
                )

        run(body)
        got = {r["step_log_id"]: r for r in rows(tmp_path / "s.db", STEP_LOGS)}
        assert sorted(got) == ["s-1:0:end", "s-1:0:start"]
        assert json.loads(got["s-1:0:end"]["metadata"]) == {"rows": 3, "error_context": ctx}
        assert got["s-1:0:end"]["error_message"] == "Connection timeout"
        assert json.loads(got["s-1:0:start"]["metadata"]) == {}

    def test_log_state_transition_takes_the_seeds_kwargs(self, tmp_path: Path) -> None:
        """The seed's call becomes one row; the stack trace is cut to 2000 chars and redacted."""

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "x.db"), FAST, org_slug="acme") as lg:
                await lg.log_state_transition(
                    pipeline_logging_id="run-1",
                    step_logging_id="s-1",
                    from_state="RUNNING",
                    to_state="FAILED",
                    entity_type="STEP",
                    entity_name="extract_data",
                    reason="Step failed with builtins.ConnectionError",
                    error_type="TRANSIENT",
                    error_message="cannot reach postgres://bob:hunter2@db/x",
                    stack_trace="x" * 5000,
                    retry_count=0,
                    duration_in_state_ms=5000,
                    trigger_type="api",
                    user_id="u-1",
                    metadata={"error_class": "builtins.ConnectionError", "is_retryable": True},
                )

        run(body)
        [row] = rows(tmp_path / "x.db")
        assert (row["from_state"], row["to_state"], row["entity_type"]) == (
            "RUNNING",
            "FAILED",
            "STEP",
        )
        assert len(row["stack_trace_truncated"]) == 2000
        assert "hunter2" not in row["error_message"]
        assert json.loads(row["metadata"])["is_retryable"] is True
        assert row["duration_in_state_ms"] == 5000

    def test_bad_calls_are_counted_never_raised(self, tmp_path: Path) -> None:
        """A legal transition or a run row missing org_slug is dropped as 'invalid'."""

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "v.db"), FAST) as lg:
                await lg.log_state_transition(
                    pipeline_logging_id="r",
                    from_state="PENDING",
                    to_state="RUNNING",
                    entity_type="PIPELINE",
                    entity_name="n",
                )
                await lg.log_pipeline_start(pipeline_logging_id="r", pipeline_id="p")
                depths = lg.get_queue_depths()
                assert depths["state_transition"]["drops_by_reason"] == {"invalid": 1}
                assert depths["pipeline"]["drops_by_reason"] == {"invalid": 1}

        run(body)

    @pytest.mark.parametrize(
        ("entity_type", "from_state", "to_state", "rule"),
        [
            ("JOB", "PENDING", "RUNNING", "known-entity-type"),
            ("STEP", "RUNNING", "BANANA", "known-state"),
            ("PIPELINE", "RETRYING", "RUNNING", "known-state"),
            ("PIPELINE", "COMPLETED", "RUNNING", "legal-edge"),
            ("STEP", "PENDING", "COMPLETED", "legal-edge"),
            ("STEP", "RUNNING", "TIMEOUT", "known-state"),
        ],
    )
    def test_illegal_hand_logged_transition_is_refused(
        self, tmp_path: Path, entity_type: str, from_state: str, to_state: str, rule: str
    ) -> None:
        """A transition no machine could make raises IllegalTransition naming the broken rule
        and the states, and nothing reaches the table; a legal one after it still lands."""
        db = tmp_path / "i.db"

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(db), FAST, org_slug="acme") as lg:
                with pytest.raises(IllegalTransition) as info:
                    await lg.log_state_transition(
                        pipeline_logging_id="r",
                        step_logging_id="s",
                        from_state=from_state,
                        to_state=to_state,
                        entity_type=entity_type,
                        entity_name="extract",
                    )
                assert info.value.rule == rule
                assert to_state in str(info.value) or entity_type in str(info.value)
                assert "extract" in str(info.value)
                await lg.log_state_transition(
                    pipeline_logging_id="r",
                    step_logging_id="s",
                    from_state="PENDING",
                    to_state="RUNNING",
                    entity_type="STEP",
                    entity_name="extract",
                )

        run(body)
        assert [(r["entity_type"], r["to_state"]) for r in rows(db)] == [("STEP", "RUNNING")]


class TestLifecycle:
    """start/stop, the context manager and the exit warning."""

    def test_stop_drains_everything(self, tmp_path: Path) -> None:
        """Leaving the context writes every row, although no batch filled and no flush ran."""

        async def body() -> None:
            async with MetadataLogger(SQLiteStore(tmp_path / "l.db"), FAST) as logger:
                for r in many_records(42, prefix="drain"):
                    logger.emit(r)

        run(body)
        assert len(rows(tmp_path / "l.db")) == 42

    def test_stop_twice_and_stop_without_start(self, tmp_path: Path) -> None:
        """stop() is idempotent and harmless before start()."""

        async def body() -> None:
            logger = MetadataLogger(SQLiteStore(tmp_path / "n.db"), FAST)
            assert await logger.stop()
            fresh = MetadataLogger(SQLiteStore(tmp_path / "m.db"), FAST)
            await fresh.start()
            assert await fresh.stop()
            assert await fresh.stop()

        run(body)

    @pytest.mark.parametrize(("stop", "warned"), [(False, True), (True, False)])
    def test_exit_without_stop_warns_once(self, tmp_path: Path, stop: bool, warned: bool) -> None:
        """A process that exits after start() without stop() prints one warning; else none."""
        script = (
            "import asyncio, sys\n"
            "from persistence import MetadataLogger, SQLiteStore\n"
            "async def main():\n"
            "    lg = MetadataLogger(SQLiteStore(sys.argv[1]))\n"
            "    await lg.start()\n"
            "    if sys.argv[2] == '1':\n"
            "        await lg.stop()\n"
            "asyncio.run(main())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "e.db"), "1" if stop else "0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert (out.stdout + out.stderr).count("metadata_logger_not_stopped") == int(warned)
