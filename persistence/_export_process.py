"""ExportProcess: every isolated exporter in one child process, fed by one queue and one thread.

The OpenLineage client and the OpenTelemetry SDK spend far more CPU per event than a
transition costs; in the pipeline's process that time would be taken from the pipeline,
whatever thread spent it (GIL). So they run in one child process, and the pipeline's process
pays only this: FanoutSink appends each record to one bounded queue (lock-free; one thread
wake-up per batch, not per record); one thread packs each batch once (a tuple of fields per
record, one pickle) and writes it to the child's stdin, for all exporters at once. The child
(persistence/_export_child.py) gives every exporter its own ExportWorker there, so a slow
receiver of one never holds up the other.

The child is a plain `python -m persistence._export_child` (not multiprocessing, which would
re-import the caller's __main__ script). It inherits the environment (OPENLINEAGE*, OTEL_*)
and working directory (openlineage.yml) of the moment it starts and runs at the lowest
priority in our own process group: the same session, hence the same scheduler autogroup, so
its niceness really yields the CPU to the pipeline (a new session would get an autogroup of
its own, competing as an equal); a separate process group, so a terminal's Ctrl-C does not
kill it mid-drain.

stop(timeout) guarantees: it returns within `timeout` plus a short grace; by then the child
has exited (it is killed if it has not reported in time) and this thread has ended, and every
record offered is counted once, as exported or as dropped by reason.
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from persistence._export_wire import child_command, encode_frame, pack, read_frame, write_frame
from statemachine._log import lazy_logger

if TYPE_CHECKING:
    from persistence.fanout import ExportSettings
    from statemachine.records import TransitionRecord

_log = lazy_logger("persistence.fanout")

# After a stop request the child gets the budget less this, to report before we give up on it.
_REPORT_MARGIN = 0.1
# How long stop() waits for a killed child and our thread to notice it.
_KILL_GRACE = 2.0


class _Counts:
    """One exporter's account in the child: exported and dropped by reason."""

    def __init__(self) -> None:
        self.exported = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.queued = 0
        self.in_flight = 0

    def settled(self) -> int:
        return self.exported + sum(self.dropped.values())


class ExportProcess:
    """A worker (offer/start/flush/stop/stats) whose exporters run together in a child process."""

    def __init__(
        self,
        kinds: Sequence[str],
        settings: ExportSettings | None = None,
        *,
        service_name: str | None = None,
    ) -> None:
        from persistence.fanout import ExportSettings

        self.kinds = tuple(kinds)
        self.name = "+".join(self.kinds)
        self.service_name = service_name
        self.settings = settings if settings is not None else ExportSettings()
        self._capacity = self.settings.queue_size
        self._batch_size = self.settings.batch_size
        self._queue: collections.deque[TransitionRecord] = collections.deque()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._taken = 0  # records taken off the queue (sent, or counted lost)
        self._drops: collections.Counter[str] = collections.Counter()  # before the child
        self._closed = False
        self._stop_deadline: float | None = None
        self._stopped = False
        self._flush_asked = 0  # flush requests made / answered (tokens)
        self._flush_done = 0
        self._flush_ok = False
        self._flush_deadline: float | None = None
        # What the child reported, per exporter: earlier children's totals + the current one's.
        self._done = {kind: _Counts() for kind in self.kinds}
        self._current = {kind: _Counts() for kind in self.kinds}
        self._sent = 0  # records written to the current child
        self._process: subprocess.Popen[bytes] | None = None
        self._broken: str | None = None  # the child could not start: why
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- producer side: one append, no lock; the thread is woken once per batch ----------------

    def offer(self, record: TransitionRecord) -> None:
        """Queue one record, or count it dropped ("queue_full" / "already_shutdown").

        Lock-free (deque.append is atomic): this runs on every transition. Two threads racing
        may overshoot the capacity by one record each; a record appended while stop() ends is
        still counted, as "already_shutdown" (see exporter_stats).
        """
        queue = self._queue
        if self._closed or len(queue) >= self._capacity:
            self._refuse()
            return
        queue.append(record)
        if len(queue) == self._batch_size:
            with self._lock:
                self._work.notify()

    def _refuse(self) -> None:
        with self._lock:
            self._drops["already_shutdown" if self._closed else "queue_full"] += 1

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread, which starts the child (idempotent)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            # Daemon: a child that never answers must not keep the process alive at exit.
            self._thread = threading.Thread(
                target=self._run, name=f"pipestate-export-{self.name}", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has started (or failed to)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued and wait until the child has settled it (True if in time).

        Settled: exported, or counted as dropped.
        """
        with self._lock:
            if self._stopped:
                return True
            if self._thread is None or not self._thread.is_alive():
                return not self._queue
            self._flush_asked += 1
            token = self._flush_asked
            self._flush_deadline = None if timeout is None else time.monotonic() + timeout
            self._work.notify()
            done = self._progress.wait_for(
                lambda: self._flush_done >= token or self._stopped, timeout
            )
            return done and (self._stopped or self._flush_ok)

    def stop(self, timeout: float | None = None) -> bool:
        """Refuse new records, drain within `timeout`, end the child; True if all was drained.

        When it returns, the child process and the thread are gone, whatever the receivers do.
        """
        limit = self.settings.stop_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._lock:
            if self._stopped:
                return True
            self._closed = True
            self._stop_deadline = deadline
            self._work.notify()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # the child did not report in time: end it, the thread follows
                self._kill()
                thread.join(_KILL_GRACE)
        with self._lock:
            leftover = 0
            while self._queue:  # popped one by one: an offer() racing with us is not lost
                self._queue.popleft()
                leftover += 1
            self._taken += leftover
            if leftover:
                self._drops["shutdown"] += leftover
            if thread is None or not thread.is_alive():
                self._close_account("shutdown")
            self._stopped = True
            self._progress.notify_all()
            alive = thread is not None and thread.is_alive()
        dropped = {kind: stats["dropped"] for kind, stats in self.exporter_stats().items()}
        drained = not any(counts.get("shutdown") for counts in dropped.values())
        if not drained or alive:
            _log.warning(
                "export_stop_incomplete", exporter=self.name, timeout=limit, dropped=dropped
            )
        return drained and not alive

    @property
    def child_pid(self) -> int | None:
        """The running child's process id (None before it starts and once it has ended)."""
        process = self._process
        return None if process is None else process.pid

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after stop()); True once it has and the child is gone."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        process = self._process
        return (thread is None or not thread.is_alive()) and (
            process is None or process.poll() is not None
        )

    # -- the thread ---------------------------------------------------------------------------

    def _start_child(self) -> None:
        """Start the child and wait for its "ready" (importing the libraries takes a while)."""
        command, env = child_command(self.kinds, self.settings, self.service_name)
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, process_group=0
            )
        except OSError as error:
            self._child_failed(f"{type(error).__name__}: {error}")
            return
        with self._lock:
            self._process = process
            self._sent = 0
            if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
                process.kill()  # stop() gave up while we were starting it
        assert process.stdout is not None
        try:
            status, detail = read_frame(process.stdout)
        except EOFError:
            status, detail = "error", f"exited with {process.wait()}"
        if status != "ready":
            self._end_child(process)
            with self._lock:
                self._process = None
                stopping = self._stop_deadline is not None
            if not stopping:  # killed by stop() while starting: not a broken configuration
                self._child_failed(str(detail))

    def _child_failed(self, detail: str) -> None:
        """The child could not start: its records are lost from now on (not retried)."""
        with self._lock:
            self._broken = detail
        _log.warning("export_child_failed", exporter=self.name, error=detail[:300])

    def _lost_reason(self) -> str:
        """Why records a child never accounted for are lost: stopping, or a broken child."""
        return "shutdown" if self._closed and self._broken is None else "export_failed"

    def _run(self) -> None:
        """Send batches as they fill (or the interval passes); serve flush; stop the child."""
        try:
            self._start_child()
        finally:
            self._ready.set()
        while True:
            with self._lock:
                queue = self._queue
                if (
                    len(queue) < self._batch_size
                    and self._flush_asked == self._flush_done
                    and self._stop_deadline is None
                ):
                    self._work.wait(self.settings.interval_seconds)
                count = len(queue)
                batch = [queue.popleft() for _ in range(count)]
                self._taken += count
                flush_to = self._flush_asked
                flush_deadline = self._flush_deadline
                stop_deadline = self._stop_deadline
            for start in range(0, len(batch), self._batch_size):
                self._send(batch[start : start + self._batch_size])
            if stop_deadline is not None:
                self._finish(stop_deadline)
                return
            if flush_to > self._flush_done:
                ok = self._request(("flush", _left(flush_deadline)))
                with self._lock:
                    self._flush_done = flush_to
                    self._flush_ok = ok
                    self._progress.notify_all()

    def _send(self, batch: list[TransitionRecord]) -> None:
        """Write one batch to the child; without a child, count it lost for every exporter."""
        process = self._process
        if process is None and self._broken is None and self._stop_deadline is None:
            self._start_child()  # the last child died: try a new one
            process = self._process
        if process is None or process.stdin is None:
            with self._lock:
                self._drops[self._lost_reason()] += len(batch)
            return
        try:
            data = encode_frame(("batch", [pack(record) for record in batch]))
        except Exception as error:  # a value pickle refuses: lose this batch, not the thread
            with self._lock:
                self._drops["export_failed"] += len(batch)
            _log.warning("export_encode_failed", exporter=self.name, error=repr(error)[:300])
            return
        try:
            process.stdin.write(data)
            process.stdin.flush()
        except (OSError, ValueError):  # the child died (broken pipe) or stop() killed it
            with self._lock:
                self._drops[self._lost_reason()] += len(batch)
            self._child_lost(process, self._lost_reason())
            return
        with self._lock:
            self._sent += len(batch)

    def _request(self, message: tuple[str, float | None]) -> bool:
        """Ask the child to flush or stop; take its account; True if all it got is settled."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            return True  # no child: every record sent so far is already counted as lost
        try:
            write_frame(process.stdin, message)
            _kind, ok, counts = read_frame(process.stdout)
        except (EOFError, OSError, ValueError):  # it died: what it held is counted as lost
            self._child_lost(process, self._lost_reason())
            return True
        with self._lock:
            for kind, figures in counts.items():
                current = self._current[kind]
                current.exported = figures["exported"]
                current.dropped = collections.Counter(figures["dropped"])
                current.queued = figures["queued"]
                current.in_flight = figures["in_flight"]
        return bool(ok)

    def _finish(self, deadline: float) -> None:
        """Stop the child with what is left of the budget; it reports, then exits."""
        process = self._process
        if process is None:
            return
        budget = max(0.0, deadline - time.monotonic() - _REPORT_MARGIN)
        self._request(("stop", budget))
        self._end_child(process, max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._close_account("shutdown")

    def _child_lost(self, process: subprocess.Popen[bytes], reason: str) -> None:
        """The child is gone: what it had not accounted for is lost, counted as `reason`."""
        self._end_child(process)
        with self._lock:
            self._close_account(reason)

    def _close_account(self, reason: str) -> None:
        """Fold the current child's account into the totals; its unaccounted records: `reason`.

        Called with the lock held.
        """
        for kind in self.kinds:
            current, done = self._current[kind], self._done[kind]
            lost = self._sent - current.settled()
            done.exported += current.exported
            done.dropped.update(current.dropped)
            if lost > 0:
                done.dropped[reason] += lost
            self._current[kind] = _Counts()
        self._sent = 0
        self._process = None

    @staticmethod
    def _end_child(process: subprocess.Popen[bytes], timeout: float = 0.0) -> None:
        """Close its stdin, give it `timeout` to exit, then kill it; reap it."""
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _kill(self) -> None:
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()

    # -- monitoring ---------------------------------------------------------------------------

    def exporter_stats(self) -> dict[str, dict[str, Any]]:
        """Per exporter: queued, capacity, submitted, exported, in flight, dropped by reason.

        The child's figures are as of its last report (each flush and the stop).
        """
        with self._lock:
            stats: dict[str, dict[str, Any]] = {}
            queued = len(self._queue)
            late = collections.Counter({"already_shutdown": queued} if self._stopped else {})
            if self._stopped:
                queued = 0  # appended by an offer() that raced with stop(): never sent
            for kind in self.kinds:
                current, done = self._current[kind], self._done[kind]
                dropped = self._drops + late + done.dropped + current.dropped
                stats[kind] = {
                    "queued": queued + current.queued,
                    "capacity": self._capacity,
                    "submitted": self._taken + queued,
                    "exported": done.exported + current.exported,
                    "in_flight": current.in_flight,
                    "dropped": dict(dropped),
                    "dropped_total": sum(dropped.values()),
                }
            return stats


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
