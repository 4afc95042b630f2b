"""ExportProcess and its child: one queue, one pipe for all isolated exporters; stop() ends all."""

from __future__ import annotations

import io
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings

from persistence._export_child import serve
from persistence._export_process import ExportProcess
from persistence._export_wire import pack, read_frame, unpack, write_frame
from persistence._export_worker import ExportWorker
from persistence.fanout import ExportSettings, FanoutSink
from statemachine import NullSink, TransitionRecord
from tests.http_receiver import receiving
from tests.strategies.records import transition_records
from tests.test_persistence_fanout import Recording, _records

FAST = ExportSettings(queue_size=256, batch_size=8, interval_seconds=0.05, stop_timeout_seconds=5)


def _gone(pid: int) -> bool:
    """True when no process has this id any more (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def receiver_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A receiver on 127.0.0.1 that both exporters' standard variables point at."""
    with receiving() as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OPENLINEAGE_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        yield receiver


class TestPacking:
    """A record crosses the pipe as one tuple of fields and comes back equal."""

    @settings(max_examples=50, deadline=None)
    @given(record=transition_records())
    def test_round_trip(self, record: TransitionRecord) -> None:
        """For every record: unpack(pack(record)) after a pickle round trip equals the record."""
        row = pickle.loads(pickle.dumps(pack(record), pickle.HIGHEST_PROTOCOL))
        assert unpack(row) == record


def _frames(*messages: Any) -> io.BytesIO:
    source = io.BytesIO()
    for message in messages:
        write_frame(source, message)
    source.seek(0)
    return source


def _answers(sink: io.BytesIO) -> list[Any]:
    sink.seek(0)
    answers = []
    while True:
        try:
            answers.append(read_frame(sink))
        except EOFError:
            return answers


class TestChildLoop:
    """The child's loop: every batch to every exporter, flush and stop answered with counts."""

    def test_batch_flush_stop(self) -> None:
        """Each exporter gets each record once; flush and stop report every one exported."""
        records = _records(5)
        first, second = Recording(), Recording()
        workers = {"a": ExportWorker(first, FAST), "b": ExportWorker(second, FAST)}
        for worker in workers.values():
            worker.start()
        rows = [pack(r) for r in records]
        source = _frames(("batch", rows[:3]), ("batch", rows[3:]), ("flush", 5.0), ("stop", 5.0))
        sink = io.BytesIO()
        serve(workers, source, sink)
        flushed, stopped = _answers(sink)
        ids = [r.transition_id for r in records]
        assert (
            [i for b in first.batches for i in b] == ids == [i for b in second.batches for i in b]
        )
        assert flushed[:2] == ("flushed", True)
        assert stopped[:2] == ("stopped", True)
        assert {k: (c["exported"], c["dropped"]) for k, c in stopped[2].items()} == {
            "a": (5, {}),
            "b": (5, {}),
        }

    def test_stuck_export_counted_at_stop(self) -> None:
        """An export stuck on its receiver at stop is reported dropped as "shutdown", the
        other exporter's records as exported, and the loop returns without waiting for it."""
        gate = threading.Event()
        stuck, fine = Recording(gate), Recording()
        workers = {"stuck": ExportWorker(stuck, FAST), "fine": ExportWorker(fine, FAST)}
        for worker in workers.values():
            worker.start()
        source = _frames(("batch", [pack(r) for r in _records(3)]), ("stop", 0.2))
        sink = io.BytesIO()
        try:
            serve(workers, source, sink)
        finally:
            gate.set()
        ((_, ok, counts),) = _answers(sink)
        assert ok is False
        assert counts["stuck"]["exported"] == 0
        assert counts["stuck"]["dropped"] == {"shutdown": 3}
        assert (counts["fine"]["exported"], counts["fine"]["dropped"]) == (3, {})


class TestExportProcess:
    """The parent half with a real child: accounting, a broken or dying child, stop() ends all."""

    def test_child_that_cannot_start_loses_batches(self) -> None:
        """An unknown exporter kind: the child says why, every record is export_failed, once."""
        process = ExportProcess(["nonsense"], FAST)
        process.start()
        assert process.wait_ready(60)
        for record in _records(3):
            process.offer(record)
        assert process.flush(30)
        assert process.stop(5)
        assert process.join(0)
        stats = process.exporter_stats()["nonsense"]
        assert (stats["exported"], stats["dropped"]) == (0, {"export_failed": 3})

    def test_both_exporters_in_one_child(self, receiver_env: Any) -> None:
        """Both exporters share one child: each exports every record, the receiver gets both
        standards, and once stop() returns the child's process id is gone."""
        process = ExportProcess(["openlineage", "otel"], FAST)
        fanout = FanoutSink(NullSink(), [process])
        fanout.start()
        assert process.wait_ready(60)
        pid = process.child_pid
        records = _records(21)
        for record in records:
            fanout.emit(record)
        assert fanout.stop(30)
        stats = fanout.stats()
        assert {k: (s["exported"], s["dropped_total"]) for k, s in stats.items()} == {
            "openlineage": (21, 0),
            "otel": (21, 0),
        }
        assert pid is not None
        assert _gone(pid)
        assert process.join(0)
        lineage = [json.loads(b) for b in receiver_env.bodies("/api/v1/lineage")]
        assert {e["run"]["facets"]["pipestate_transition"]["transitionId"] for e in lineage} == {
            r.transition_id for r in records
        }
        assert receiver_env.bodies("/v1/traces")

    @pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
    def test_child_threads_run_at_background_priority(self, receiver_env: Any) -> None:
        """Every thread of the ready child (exporters' workers included) is SCHED_IDLE, so a
        core it keeps busy still counts as idle when the pipeline's writer child is placed."""
        process = ExportProcess(["openlineage", "otel"], FAST)
        process.start()
        try:
            assert process.wait_ready(60)
            pid = process.child_pid
            assert pid is not None
            threads = os.listdir(f"/proc/{pid}/task")
            policies = {os.sched_getscheduler(int(tid)) for tid in threads}
        finally:
            assert process.stop(5)
        assert len(threads) >= 3  # the main thread and one worker thread per exporter
        assert policies == {os.SCHED_IDLE}
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the pipeline's process is untouched

    def test_dead_child_counted_and_replaced(self, receiver_env: Any) -> None:
        """A child killed mid-run: the batch it could not take is export_failed for each
        exporter, and the next batch goes to a new child that exports it."""
        process = ExportProcess(["otel"], FAST)
        process.start()
        assert process.wait_ready(60)
        first = process.child_pid
        assert first is not None
        records = _records(12)
        for record in records[:4]:
            process.offer(record)
        assert process.flush(30)
        pidfd = os.pidfd_open(first)
        try:
            os.kill(first, signal.SIGKILL)
            assert select.select([pidfd], [], [], 30)[0]  # readable once it has died
        finally:
            os.close(pidfd)
        for record in records[4:8]:
            process.offer(record)
        assert process.flush(30)
        for record in records[8:]:
            process.offer(record)
        assert process.flush(60)
        second = process.child_pid
        assert process.stop(10)
        stats = process.exporter_stats()["otel"]
        assert (stats["exported"], stats["dropped"]) == (8, {"export_failed": 4})
        assert second not in (None, first)

    def test_unpicklable_batch_lost_alone_and_frozen_child_killed(self, receiver_env: Any) -> None:
        """A record pickle refuses loses only its batch (export_failed); a child that stops
        answering (SIGSTOP) is killed by stop(), which returns soon after its timeout."""
        process = ExportProcess(["otel"], FAST)
        process.start()
        assert process.wait_ready(60)
        good = _records(6)
        process.offer(attrs.evolve(good[0], metadata={"lock": threading.Lock()}))
        assert process.flush(30)
        for record in good[1:]:
            process.offer(record)
        assert process.flush(30)
        pid = process.child_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        assert process.stop(0.5)  # all was exported before the freeze: nothing left to drop
        assert time.monotonic() - started < 0.5 + 3
        assert _gone(pid)
        stats = process.exporter_stats()["otel"]
        assert (stats["exported"], stats["dropped"]) == (5, {"export_failed": 1})


_ORPHAN_PARENT = """
import sys, threading
from persistence._export_process import ExportProcess
from persistence.fanout import ExportSettings
from tests.test_persistence_fanout import _records

process = ExportProcess(["otel"], ExportSettings(queue_size=64, batch_size=1))
process.start()
process.wait_ready(60)
for record in _records(4):
    process.offer(record)
print(process.child_pid, flush=True)
process.flush(600)  # the receiver holds the export: the child drains for up to 600 s
"""


class TestOrphan:
    """A child whose parent is killed never outlives it by more than a moment."""

    def test_child_exits_when_parent_killed_mid_drain(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The parent dies (SIGKILL) while its child drains a flush toward a receiver that
        holds every request 5 s: the child notices and exits long before the drain would end."""
        with receiving(delay=5.0) as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
            monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
            monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
            root = Path(__file__).resolve().parent.parent
            parent = subprocess.Popen(
                [sys.executable, "-c", _ORPHAN_PARENT],
                stdout=subprocess.PIPE,
                text=True,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert receiver.entered.acquire(timeout=30)  # the child is exporting, held
            pidfd = os.pidfd_open(child)
            try:
                parent.kill()
                parent.wait(10)
                ended = bool(select.select([pidfd], [], [], 3.0)[0])
            finally:
                os.close(pidfd)
                receiver.release.set()
            parent.stdout.close()
        assert ended
