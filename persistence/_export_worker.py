"""ExportWorker: one exporter's bounded queue and worker thread (in the exporter child process,
or in the pipeline's process for an exporter object passed in).

Modelled on OpenTelemetry's BatchProcessor: the worker wakes when a batch fills, on a timer, on
flush() or on stop(); drops are counted by reason ("queue_full", "already_shutdown",
"export_failed", "shutdown"); stop() drains within its timeout. A thread, not an asyncio task:
exporters do blocking network I/O and records arrive from any thread (sync processors run in
threads), and a thread keeps working whatever the caller's event loop is doing.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from statemachine._log import lazy_logger

if TYPE_CHECKING:
    from persistence.fanout import Exporter, ExportSettings
    from statemachine.records import TransitionRecord

_log = lazy_logger("persistence.fanout")
# A dead receiver fails every batch: warn on the first failure, then once per this many.
_WARN_EVERY = 100


class ExportWorker:
    """Queues records for one exporter and exports them in batches from a daemon thread."""

    def __init__(self, exporter: Exporter, settings: ExportSettings | None = None) -> None:
        from persistence.fanout import ExportSettings

        self.exporter = exporter
        self.name: str = exporter.name
        self.settings = settings if settings is not None else ExportSettings()
        self._capacity = self.settings.queue_size
        self._batch_size = self.settings.batch_size
        self._queue: collections.deque[TransitionRecord] = collections.deque()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._accepted = 0
        self._settled = 0
        self._exported = 0
        self._in_flight = 0
        self._failures = 0
        self._drops: collections.Counter[str] = collections.Counter()
        self._urgent = 0
        self._closed = False
        self._stopping = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- producer side (any thread, never blocks for long) ---------------------------------

    def offer(self, record: TransitionRecord) -> None:
        """Queue one record, or count it dropped ("queue_full" / "already_shutdown")."""
        with self._lock:
            if self._closed:
                self._drops["already_shutdown"] += 1
                return
            queue = self._queue
            if len(queue) >= self._capacity:
                self._drops["queue_full"] += 1
                return
            queue.append(record)
            self._accepted += 1
            # Once per batch: the worker checks the length itself before it waits again.
            if len(queue) == self._batch_size:
                self._work.notify()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            # Daemon: a receiver that never answers must not keep the process alive at exit.
            self._thread = threading.Thread(
                target=self._run, name=f"pipestate-export-{self.name}", daemon=True
            )
            self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted so far is exported or dropped (True if so in time)."""
        with self._lock:
            target = self._accepted
            if self._settled >= target:
                return True
            if self._thread is None or not self._thread.is_alive():
                return False
            self._urgent += 1
            self._work.notify()
            try:
                return self._progress.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._urgent -= 1

    def stop(self, timeout: float | None = None) -> bool:
        """Refuse new records, drain within `timeout`, count the rest as "shutdown" drops."""
        limit = self.settings.stop_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._lock:
            if self._stopped:
                return True
            self._closed = True
        drained = self.flush(limit)
        with self._lock:
            self._stopping = True
            self._work.notify()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftover = len(self._queue)
            self._queue.clear()
            if leftover:
                self._drops["shutdown"] += leftover
                self._settled += leftover
            self._stopped = True
            self._progress.notify_all()
            alive = thread is not None and thread.is_alive()
        if thread is None:
            self._shutdown_exporter(limit)  # never started: nobody else will release it
        if not drained or alive:
            _log.warning(
                "export_stop_incomplete",
                exporter=self.name,
                timeout=limit,
                still_exporting=alive,
                dropped=dict(self._drops),
            )
        return drained and not alive

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to end (after stop()); True once it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    # -- the worker thread --------------------------------------------------------------------

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the exporter's optional prepare() (e.g. starting its process) has run."""
        return self._ready.wait(timeout)

    def _prepare(self) -> None:
        """Let the exporter get ready (connect, start its process) before the first batch."""
        prepare = getattr(self.exporter, "prepare", None)
        try:
            if prepare is not None:
                prepare()
        except Exception as error:  # export() will try again and count what it loses
            _log.warning("export_prepare_failed", exporter=self.name, error=repr(error)[:300])
        finally:
            self._ready.set()

    def _run(self) -> None:
        """Collect a batch (full, urgent or interval passed), export it; repeat until stopped."""
        self._prepare()
        while True:
            with self._lock:
                queue = self._queue
                if not queue or (
                    len(queue) < self._batch_size and not self._urgent and not self._stopping
                ):
                    self._work.wait(self.settings.interval_seconds)
                if not queue:
                    if self._stopping:
                        break
                    continue
                count = min(self._batch_size, len(queue))
                batch = [queue.popleft() for _ in range(count)]
                self._in_flight = count
            self._export(batch)
        # The worker owns the exporter: releasing it here never races an export in flight.
        self._shutdown_exporter(self.settings.stop_timeout_seconds)

    def _export(self, batch: Sequence[TransitionRecord]) -> None:
        """Export one batch; a raising exporter loses the batch, counted as "export_failed"."""
        failed = 0
        try:
            self.exporter.export(batch)
        except Exception as error:
            # An exporter may say how many records of the batch were lost (ExportFailed.failed).
            reported = getattr(error, "failed", None)
            failed = len(batch)
            if isinstance(reported, int) and 0 < reported <= len(batch):
                failed = reported
            self._failures += 1
            if self._failures % _WARN_EVERY == 1:
                _log.warning(
                    "export_failed",
                    exporter=self.name,
                    records=len(batch),
                    failures=self._failures,
                    error=repr(error)[:300],
                )
        with self._lock:
            self._exported += len(batch) - failed
            if failed:
                self._drops["export_failed"] += failed
            self._settled += len(batch)
            self._in_flight = 0
            self._progress.notify_all()

    def _shutdown_exporter(self, timeout: float) -> None:
        try:
            self.exporter.shutdown(timeout)
        except Exception as error:
            _log.warning("export_shutdown_failed", exporter=self.name, error=repr(error)[:300])

    # -- monitoring ---------------------------------------------------------------------------

    def exporter_stats(self) -> dict[str, dict[str, Any]]:
        """{exporter name: stats()} (FanoutSink merges these over all its workers)."""
        return {self.name: self.stats()}

    def stats(self) -> dict[str, Any]:
        """Queued, capacity, accepted, exported, in flight and dropped (by reason and total)."""
        with self._lock:
            drops = dict(self._drops)
            return {
                "queued": len(self._queue),
                "capacity": self._capacity,
                "submitted": self._accepted,
                "exported": self._exported,
                "in_flight": self._in_flight,
                "dropped": drops,
                "dropped_total": sum(drops.values()),
            }
