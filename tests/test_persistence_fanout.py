"""FanoutSink and ExportWorker: never block the pipeline, count every drop, drain on stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from persistence._export_worker import ExportWorker
from persistence.exporters import build_exporters, enabled_from_env
from persistence.fanout import ExportFailed, ExportSettings, FanoutSink
from persistence.stores.base import STATE_TRANSITIONS
from statemachine import InMemorySink, PipelineRun, StepRun, TransitionRecord, TransitionSink
from tests.exporter_support import rows, run_logged, shipped_pipelines
from tests.http_receiver import receiving

SMALL = ExportSettings(queue_size=4, batch_size=2, interval_seconds=0.05, stop_timeout_seconds=1)


def _records(count: int) -> list[TransitionRecord]:
    """`count` real records: a pipeline start, then step start/complete pairs."""
    sink = InMemorySink()
    run = PipelineRun.create("p", org_slug="acme", sink=sink)
    run.start()
    while len(sink.records) < count:
        step = StepRun.create("s", pipeline=run)
        step.start()
        step.complete()
    return sink.records[:count]


class Recording:
    """An exporter that keeps what it gets; optionally gated, failing or partly failing."""

    name = "recording"

    def __init__(self, gate: threading.Event | None = None, fail: int | None = None) -> None:
        self.gate = gate
        self.fail = fail  # None: succeed; 0: fail the whole batch; n: n records lost
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.shut = threading.Event()

    def export(self, records: Sequence[TransitionRecord]) -> None:
        """Record the batch (after the gate opens), then fail as configured."""
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append([r.transition_id for r in records])
        if self.fail == 0:
            raise ConnectionError("receiver down")
        if self.fail:
            raise ExportFailed("partly lost", failed=self.fail)

    def shutdown(self, timeout: float) -> None:
        """Note the shutdown."""
        self.shut.set()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event that a blocked exporter waits on; always opened at the end."""
    event = threading.Event()
    yield event
    event.set()


class TestExportSettings:
    """Settings are checked when built; a bad environment value names its variable."""

    def test_batch_larger_than_queue_refused(self) -> None:
        """batch_size > queue_size is a ValueError naming both values."""
        with pytest.raises(ValueError, match=r"batch_size=9, queue_size=8"):
            ExportSettings(queue_size=8, batch_size=9)

    def test_from_env(self) -> None:
        """PIPESTATE_EXPORT_* override the defaults; a non-number names the variable."""
        env = {"PIPESTATE_EXPORT_QUEUE_SIZE": "100", "PIPESTATE_EXPORT_INTERVAL_SECONDS": "0.5"}
        settings = ExportSettings.from_env(env)
        assert (settings.queue_size, settings.interval_seconds) == (100, 0.5)
        with pytest.raises(ValueError, match="PIPESTATE_EXPORT_BATCH_SIZE must be an integer"):
            ExportSettings.from_env({"PIPESTATE_EXPORT_BATCH_SIZE": "many"})

    def test_switches_from_env(self) -> None:
        """PIPESTATE_LINEAGE / PIPESTATE_OTEL read as booleans; a typo is an error naming it."""
        assert enabled_from_env({"PIPESTATE_LINEAGE": "yes"}) == (True, False)
        with pytest.raises(ValueError, match="PIPESTATE_OTEL"):
            enabled_from_env({"PIPESTATE_OTEL": "sure"})

    def test_no_exporter_asked_builds_none(self) -> None:
        """build_exporters(False, False) returns no worker."""
        assert build_exporters(False, False) == []


class TestExportWorker:
    """One exporter's queue: bounded, ordered, drained on stop, drops counted by reason."""

    def test_order_kept_and_flush_waits(self) -> None:
        """Every record is exported once, in order, by the time flush() returns True."""
        exporter = Recording()
        worker = ExportWorker(exporter, ExportSettings(queue_size=64, batch_size=4))
        worker.start()
        records = _records(23)
        for record in records:
            worker.offer(record)
        assert worker.flush(10)
        assert [i for batch in exporter.batches for i in batch] == [
            r.transition_id for r in records
        ]
        assert all(len(batch) <= 4 for batch in exporter.batches)
        assert worker.stop(5)
        assert exporter.shut.is_set()
        assert worker.stats()["exported"] == 23

    def test_blocked_exporter_fills_queue_then_drops(self, gate: threading.Event) -> None:
        """With the exporter stuck: queue_full beyond capacity, shutdown for the queued rest,
        already_shutdown after stop; the in-flight batch still completes once released."""
        exporter = Recording(gate)
        worker = ExportWorker(exporter, SMALL)
        worker.start()
        records = _records(10)
        worker.offer(records[0])
        worker.offer(records[1])  # a full batch wakes the worker, which blocks in export
        assert exporter.entered.wait(5)
        for record in records[2:]:
            worker.offer(record)
        assert worker.stats()["dropped"] == {"queue_full": 4}
        assert worker.stop(0.05) is False
        worker.offer(records[0])
        stats = worker.stats()
        assert stats["dropped"] == {"queue_full": 4, "shutdown": 4, "already_shutdown": 1}
        assert stats["in_flight"] == 2
        gate.set()
        assert worker.join(5)
        assert worker.stats()["exported"] == 2
        assert exporter.shut.is_set()

    @pytest.mark.parametrize(("fail", "lost"), [(0, 3), (1, 1)])
    def test_export_failures_counted(self, fail: int, lost: int) -> None:
        """A raising exporter loses its batch (or ExportFailed.failed of it) as export_failed."""
        worker = ExportWorker(Recording(fail=fail), ExportSettings(queue_size=8, batch_size=3))
        worker.start()
        for record in _records(3):
            worker.offer(record)
        assert worker.flush(5)
        worker.stop(5)
        stats = worker.stats()
        assert (stats["dropped"], stats["exported"]) == ({"export_failed": lost}, 3 - lost)

    def test_stop_without_start_releases_exporter(self) -> None:
        """A worker never started drops its queue as shutdown and still shuts the exporter."""
        exporter = Recording()
        worker = ExportWorker(exporter, SMALL)
        worker.offer(_records(1)[0])
        assert worker.stop(0.1) is False
        assert worker.stats()["dropped"] == {"shutdown": 1}
        assert exporter.shut.is_set()


class TestFanoutSink:
    """The primary sink first, then every exporter; nothing it feeds can break a transition."""

    def test_primary_and_exporters_get_everything(self) -> None:
        """The primary sink and each exporter see every record; FanoutSink is a TransitionSink."""
        primary, first, second = InMemorySink(), Recording(), Recording()
        fanout = FanoutSink(primary, [ExportWorker(first), ExportWorker(second)])
        assert isinstance(fanout, TransitionSink)
        with fanout:
            run = PipelineRun.create("p", org_slug="acme", sink=fanout)
            run.start()
            run.complete()
            assert fanout.flush(5)
        ids = [r.transition_id for r in primary.records]
        assert len(ids) == 2
        assert (
            [i for b in first.batches for i in b] == ids == [i for b in second.batches for i in b]
        )

    def test_raising_primary_does_not_starve_exporters(self) -> None:
        """A primary sink that raises is logged; the exporters still get the record."""

        class Broken:
            def emit(self, record: TransitionRecord) -> None:
                raise RuntimeError("broken sink")

        exporter = Recording()
        fanout = FanoutSink(Broken(), [ExportWorker(exporter)])
        fanout.start()
        run = PipelineRun.create("p", org_slug="acme", sink=fanout)
        run.start()
        assert fanout.stop(5)
        assert fanout.stats()["recording"]["exported"] == 1


class TestSlowReceiver:
    """A receiver that takes 5 s per request never slows the pipeline; what it misses is counted."""

    DELAY = 5.0

    def test_pipeline_does_not_wait(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Both exporters (one child) to a 5 s receiver: the run ends long before one request
        would; once stop() returns, the child and the thread have ended while the receiver
        still holds its requests, and every transition is counted exported or dropped."""
        pipeline = shipped_pipelines(tmp_path)["success"]
        tiny = ExportSettings(queue_size=2, batch_size=1, interval_seconds=0.05)
        with receiving(delay=self.DELAY) as receiver:
            monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
            for name in (
                "OTEL_TRACES_EXPORTER",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OPENLINEAGE_CONFIG",
            ):
                monkeypatch.delenv(name, raising=False)
            workers = build_exporters(True, True, settings=tiny)
            started = time.perf_counter()
            result, stats = run_logged(pipeline, tmp_path / "slow.db", workers, stop_timeout=0.1)
            elapsed = time.perf_counter() - started
            ended = [worker.join(0) for worker in workers]
            held = not receiver.release.is_set()
        assert result.state == "COMPLETED"
        assert elapsed < self.DELAY / 2
        assert held
        assert ended == [True]
        transitions = len(rows(tmp_path / "slow.db", STATE_TRANSITIONS, result.pipeline_logging_id))
        for name in ("openlineage", "otel"):
            dropped = stats[name]["dropped"]
            assert dropped.get("queue_full", 0) + dropped.get("shutdown", 0) > 0, stats
            assert stats[name]["exported"] + stats[name]["dropped_total"] == transitions, stats
