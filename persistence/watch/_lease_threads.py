"""The process's lease threads: one clock for every lease, one writer lane per store.

Before, every run started a heartbeat thread and a `threading.Timer` thread per lease write,
and its ACQUIRED and RELEASED rows were two single-row transactions on `to_thread` workers:
with 100 runs a second that is a stream of thread creations (each start blocks its caller
until the new thread holds the GIL) and of GIL hand-offs, and every dead thread left cyclic
garbage (Thread, Event, Condition, RLock) for the collector. Now:
- the clock: one daemon thread calls each lease's due callbacks (heartbeat, fence check) at
  their time; it never does I/O, so a hung store cannot stop a fence check;
- a lane per store: one daemon thread writes the lease rows waiting for that store, from any
  number of runs, in one write_batch (one transaction); a hung store holds up only its own
  lane. A lane idle for LANE_IDLE_SECONDS ends (and lets go of its store).
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

LANE_IDLE_SECONDS = 5.0


class LeaseWriter(Protocol):
    """What a lane asks of a lease: build its row, then hear how the write went."""

    def _row(self, event: str) -> dict[str, Any]: ...

    def _written(self, event: str, started: float, error: str | None) -> None: ...


class Clock:
    """One daemon thread calling callbacks at monotonic due times (entries can be cancelled)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []  # [due, seq, callback or None once cancelled/run]
        self._seq = itertools.count()
        self._dead = 0
        self._thread: threading.Thread | None = None

    def at(self, due: float, callback: Callable[[], None]) -> list[Any]:
        """Call `callback` on the clock thread at monotonic time `due`; returns a handle."""
        entry = [due, next(self._seq), callback]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pipestate-lease-clock", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is entry:  # earlier than what the thread sleeps towards
                self._cond.notify()
        return entry

    def cancel(self, entry: list[Any] | None) -> None:
        """Forget a pending callback (a no-op once it ran); drops its references at once."""
        if entry is None:
            return
        with self._cond:
            if entry[2] is None:
                return
            entry[2] = None
            self._dead += 1
            if self._dead > 64 and self._dead * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._dead = 0

    @property
    def pending(self) -> int:
        """Callbacks still to run (for tests and metrics)."""
        with self._cond:
            return len(self._heap) - self._dead

    def _next(self) -> Callable[[], None]:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                    self._dead -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                entry = heapq.heappop(self._heap)
                callback: Callable[[], None] = entry[2]
                entry[2] = None
                return callback

    def _run(self) -> None:
        while True:
            callback = self._next()
            try:
                callback()
            except Exception:  # one lease's bug must not stop every other lease
                continue


class Lane:
    """One store's lease writes: a thread writing every queued row in one batch."""

    def __init__(self, store: Any, key: int) -> None:
        self.store = store
        self.key = key
        self.cond = threading.Condition()
        self.queue: list[tuple[LeaseWriter, str, Future[None]]] = []
        self.thread = threading.Thread(target=self._run, name="pipestate-lease-writer", daemon=True)

    def _take(self) -> list[tuple[LeaseWriter, str, Future[None]]] | None:
        """Everything queued; None once idle long enough (the lane is then unregistered)."""
        with self.cond:
            if not self.queue:
                self.cond.wait(LANE_IDLE_SECONDS)
            if self.queue:
                batch, self.queue = self.queue, []
                return batch
        with _REGISTRY_LOCK, self.cond:  # submit() holds both: nothing can slip in between
            if self.queue:
                batch, self.queue = self.queue, []
                return batch
            if _LANES.get(self.key) is self:
                del _LANES[self.key]
            return None

    def _run(self) -> None:
        from persistence.stores.base import RUN_LEASES

        while (batch := self._take()) is not None:
            started = time.monotonic()
            outcome: dict[int, str | None] = {}  # index in batch -> error (None: landed)
            rows: dict[int, dict[str, Any]] = {}
            for index, (writer, event, _) in enumerate(batch):
                try:
                    rows[index] = writer._row(event)
                except Exception as exc:  # one lease's bad row must not stop the others
                    outcome[index] = f"lease row not built: {exc!r}"
            try:
                result = self.store.write_batch(RUN_LEASES, list(rows.values())) if rows else None
                rejected = {e.row_id: e.message for e in result.rejected} if result else {}
                for index, row in rows.items():
                    message = rejected.get(row["lease_row_id"])
                    outcome[index] = None if message is None else f"row rejected: {message}"
            except Exception as exc:  # a store outage must not kill the runs: each one counts it
                outcome.update(dict.fromkeys(rows, str(exc)))
            for index, (writer, event, future) in enumerate(batch):
                try:
                    writer._written(event, started, outcome[index])
                except Exception:  # a lease's bookkeeping bug must not stop the lane
                    pass
                finally:
                    future.set_result(None)


_REGISTRY_LOCK = threading.Lock()
_LANES: dict[int, Lane] = {}
CLOCK = Clock()


def submit(
    store: Any, writer: LeaseWriter, event: str, *, unless: Callable[[], bool] | None = None
) -> Future[None] | None:
    """Queue `event`'s row of `writer` on `store`'s lane; the future resolves once it was tried.

    `unless` is checked under the lane's lock, atomically with the queueing (None: skipped),
    so a heartbeat can never be queued behind its lease's RELEASED row.
    """
    future: Future[None] = Future()
    with _REGISTRY_LOCK:
        lane = _LANES.get(id(store))
        if lane is None or lane.store is not store:
            lane = _LANES[id(store)] = Lane(store, id(store))
            lane.thread.start()
        with lane.cond:
            if unless is not None and unless():
                return None
            lane.queue.append((writer, event, future))
            lane.cond.notify()
    return future


def _after_fork() -> None:
    """A forked child has none of the parent's threads: start from scratch."""
    global _REGISTRY_LOCK, CLOCK  # the module's singletons, reset in the child
    _REGISTRY_LOCK = threading.Lock()
    _LANES.clear()
    CLOCK = Clock()


os.register_at_fork(after_in_child=_after_fork)
