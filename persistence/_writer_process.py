"""The writer process of local SQLite files: the logger's commits run in a forked child.

Used by SQLiteStore and OutboxStore (group commit) unless PIPESTATE_SQLITE_WRITER=thread, or
for a small `pipestate run` on SQLite (writer_process_for_steps: a thread is cheaper there).

Why a process: a commit costs ~8 us of GIL-bound Python per row (row preparation, timestamp
text, parameter binding) plus the run/step rows derived from each record; in a thread that work
competes with the event loop for the one GIL, so logging slowed every step by ~100 %. The child
does all of it on the other core: the parent only turns each record into plain values and
marshals a group (persistence/_frame.py), and writes it into a pipe.

Why fork: the child needs the store's modules already imported; exec'ing a fresh interpreter
costs ~250 ms of imports before the first commit, while fork costs the parent ~1-3 ms (page
tables) on the logger's writer thread, never on the event loop. The child uses nothing of the
parent but code: its own store object and SQLite connection, no threads.

Crash behaviour: a group is written into the pipe before its commit is awaited. If the parent
dies (even SIGKILL), the child still reads and commits everything already in the pipe, then
sees end-of-file and exits; it ignores SIGINT/SIGTERM for the same reason (a Ctrl-C reaches the
whole process group; the parent's stop() drains, then closes the pipe). The parent reaps the
child in close(); a writer dropped without close() only closes the pipe (its reader thread
reaps the child), so a GC pass never blocks. The child's side is persistence/_writer_child.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from persistence import _writer_pool
from persistence._fork_guard import quiet_fork
from persistence._writer_child import _child_main, control_frame
from persistence._writer_link import GroupOutcome, Link, grow_pipe
from persistence._writer_parts import EncodedParts, _encode_group

if TYPE_CHECKING:
    import asyncio

    from persistence._writer_link import AnyFuture

WRITER_ENV = "PIPESTATE_SQLITE_WRITER"
# Bytes of frames waiting in memory for room in the pipe beyond which rows are no longer sent
# ahead (stream_link): they wait in the logger's bounded queues instead, which is where
# backpressure (parking, queue_full drops) is decided.
STREAM_BACKLOG_BYTES = 256 * 1024
# A `pipestate run` of at most this many steps commits from a thread in its own process
# (docs/reliability.md): the fork, its copy-on-write faults and the child's exit cost such a
# run ~15 ms of CPU, ~10 % of it, while its whole trail (two transitions per step, two for the
# run, more only after retry back-offs, when the thread is idle anyway) is a backlog the thread
# commits within ~8 ms of a burst's end. Past this size the burst outgrows the thread: its
# commits wait behind the event loop for the GIL and the oldest uncommitted row ages ~0.09 ms
# per chained step, towards the 50 ms loss window; the process keeps it at ~6 ms at any size.
THREAD_WRITER_MAX_STEPS = 50


# Every client's parent-side pipe ends: a process forked later (another writer, a test's
# multiprocessing child) closes them, or a writer child would never see end-of-file.
_OPEN_CLIENTS: weakref.WeakSet[WriterProcess] = weakref.WeakSet()


def writer_process_default() -> bool:
    """A writer process where fork exists, unless PIPESTATE_SQLITE_WRITER=thread."""
    choice = os.environ.get(WRITER_ENV, "process").strip().lower()
    if choice not in ("process", "thread"):
        raise ValueError(f"{WRITER_ENV} must be process or thread (got {choice!r}).")
    return choice == "process" and hasattr(os, "fork")


def writer_process_for_steps(steps: int) -> bool | None:
    """The writer of a run of `steps` steps: a thread (False) when small, else None (default).

    PIPESTATE_SQLITE_WRITER, when set, decides for every run (None: writer_process_default).
    """
    if os.environ.get(WRITER_ENV, "").strip():
        return None
    return False if steps <= THREAD_WRITER_MAX_STEPS else None


def open_writer(
    path: str,
    factory: Callable[[], Any],
    enabled: bool | None,
    *,
    before_fork: Callable[[], None] | None = None,
) -> WriterProcess | None:
    """The writer process for `path` (None: writes stay in this process); None = the default.

    before_fork: the writer is pooled (persistence/_writer_pool.py): its child is parked at
    close() and a later writer reuses a parked one; before_fork runs before each real fork
    (SQLiteStore closes its own connection there: see the pool's rules). `factory` must then
    pickle (it is sent to a parked child).
    """
    if enabled is None:
        enabled = writer_process_default()
    return WriterProcess(path, factory, before_fork=before_fork) if enabled else None


def _close_inherited_pipes() -> None:
    """In any forked child: drop the parent's writer pipes (see _OPEN_CLIENTS)."""
    for client in list(_OPEN_CLIENTS):
        client._forget_in_child()
    _writer_pool.forget_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork and no writer process
    os.register_at_fork(after_in_child=_close_inherited_pipes)


def _release_child(child: Link) -> None:
    """Close the request pipe only: the child commits what it has and exits; it is reaped by
    whoever reads its end-of-file."""
    if child.owner == os.getpid():
        # Nobody may be left to read its replies (and reap it) otherwise; at interpreter exit
        # no thread starts: the child still commits what it has and is reaped by init.
        with contextlib.suppress(RuntimeError):
            child.read_in_thread()
        child.close_send()


class WriterProcess:
    """The parent's handle on the writer child: send groups (pipelined), get their outcomes."""

    def __init__(
        self,
        path: str,
        factory: Callable[[], Any],
        *,
        before_fork: Callable[[], None] | None = None,
    ) -> None:
        self.path = path  # the file the child writes (for messages)
        self.factory = factory  # builds the child's own store (thread mode) after the fork
        # Pooled (see open_writer): close() parks the child, a start reuses a parked one.
        self.pooled = before_fork is not None
        self.before_fork = before_fork
        # Frames enter the pipe whole and in pending order; re-entered by _finish_child.
        self._send_lock = threading.RLock()
        self._child: Link | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        child = self._child
        return child.pid if child is not None and child.alive else None

    def start(self) -> None:
        """Fork the child unless it runs (called from the logger's writer thread)."""
        with self._send_lock:
            self._running_child()

    def _running_child(self) -> Link:
        """The live child, forked now if there is none; the caller holds the send lock."""
        child = self._child
        if child is not None and child.alive and child.owner == os.getpid():
            return child
        if child is not None and child.owner == os.getpid():
            child.finish(5.0, self._send_lock)  # a dead child: close its pipe, reap it
            self._child = None  # a fork now must not close its (reused) descriptors
        parked = _writer_pool.take(self.path) if self.pooled else None
        if parked is not None:
            child = Link(parked.pid, parked.send_fd, parked.receive_fd, self.path)
            child.inherited = parked.inherited
            child.queue_open(control_frame(("open", self.factory)))
            return self._adopt(child)
        if self.before_fork is not None:
            with contextlib.suppress(Exception):
                self.before_fork()
        return self._adopt(self._fork())

    def _fork(self) -> Link:
        """A new child, forked now; the caller holds the send lock."""
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        grow_pipe(requests_w)
        for stream in (sys.stdout, sys.stderr):  # buffered output must not be written twice
            with contextlib.suppress(Exception):
                stream.flush()
        inherited: list[frozenset[tuple[int, int]] | None] = []
        pid = quiet_fork(inherited if self.pooled else None)
        if pid == 0:  # the child
            code = 0
            try:
                os.close(requests_w)
                os.close(replies_r)
                idle = _writer_pool.IDLE_SECONDS if self.pooled else None
                _child_main(self.factory, requests_r, replies_w, idle)
            except BaseException:
                code = 1
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(replies_w)
        os.set_blocking(requests_w, False)  # see Link: the parent never blocks on a pipe
        os.set_blocking(replies_r, False)
        child = Link(pid, requests_w, replies_r, self.path)
        if inherited:
            child.inherited = inherited[0]
        return child

    def _adopt(self, child: Link) -> Link:
        """Make `child` this writer's (forked or taken from the pool); the caller holds the lock."""
        self._child = child
        _OPEN_CLIENTS.add(self)
        if self._finalizer is not None:
            self._finalizer.detach()
        # Dropped without close(): end the child without blocking (a GC pass must not wait).
        self._finalizer = weakref.finalize(self, _release_child, child)
        return child

    def submit(
        self, parts: Sequence[tuple[str, Sequence[Any]]], derive: bool
    ) -> Future[GroupOutcome]:
        """Send one group to the child now; the future resolves once it is committed there.

        Groups are pipelined: a burst is in the pipe (and survives the parent's death) while
        the child is still committing earlier groups. The call blocks only while the pipe is
        full. A child that died fails its pending groups with a retryable StoreError. Replies
        are read by a thread (or a running event loop that reads them already).
        """
        future: Future[GroupOutcome] = Future()
        child = self._send(parts, derive, future)
        child.read_in_thread()
        while True:  # wait for room without the lock: the event loop may send meanwhile
            with self._send_lock:
                child.pump()
                if not child.out or child.send_closed:
                    return future
            with contextlib.suppress(OSError, ValueError):
                select.select([], [child.send_fd], [], 1.0)

    def submit_nowait(
        self,
        parts: Sequence[tuple[str, Sequence[Any]]],
        derive: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Future[GroupOutcome] | None:
        """submit() from the event loop, which it never blocks; None when no child runs.

        The loop encodes the group, writes it into the pipe and reads the reply itself: a
        hand-off to a thread has to wait for the GIL, which a busy loop keeps for up to the
        5 ms switch interval, so the rows would reach the child (and safety) late and in
        lumps. What the pipe cannot take now waits in memory (bounded by the caller's groups
        in flight) and add_writer sends it as the child reads. Forking a child is a thread's
        job: with none running the caller uses submit() from a thread.
        """
        with self._send_lock:
            child = self._child
            if child is None or not child.alive or child.send_closed:
                return None
            if child.owner != os.getpid():
                return None
            future: asyncio.Future[GroupOutcome] = loop.create_future()
            self._send(parts, derive, future)
            child.watch_room(loop, functools.partial(self._room_ready, child))
            child.read_on(loop)
        return future

    def stream_link(self) -> Link | None:
        """The child a data frame can go to now: running, this process's, its pipe not backed up."""
        child = self._child
        if child is None or not child.alive or child.send_closed or child.owner != os.getpid():
            return None
        return child if len(child.out) <= STREAM_BACKLOG_BYTES else None

    def stream_nowait(self, link: Link, frame: bytes, loop: asyncio.AbstractEventLoop) -> bool:
        """Send a data frame (rows of a group still gathered) to `link`, if still the child."""
        with self._send_lock:
            if link is not self._child or not link.alive or link.send_closed:
                return False
            link.out += frame
            link.pump()
            link.watch_room(loop, functools.partial(self._room_ready, link))
        return True

    def _room_ready(self, child: Link) -> None:
        """add_writer callback: the request pipe has room for more of `out`."""
        with self._send_lock:
            child.room_ready()

    def _send(
        self, parts: Sequence[tuple[str, Sequence[Any]]], derive: bool, future: AnyFuture
    ) -> Link:
        """Encode a group, register its future and send it (as far as the pipe takes it now)."""
        frame, rejected = _encode_group(parts, derive)
        with self._send_lock:  # the frame enters `out` in the order of `pending`
            child = self._running_child()
            if type(parts) is EncodedParts and parts.streamed:
                if parts.streamed_to is not child:  # sent to another child, or rolled back
                    frame = parts.streamed + frame
                parts.streamed_to = None  # a retry resends them all
            child.queue(future, frame, rejected)
        return child

    def write(self, parts: Sequence[tuple[str, Sequence[Any]]], derive: bool) -> GroupOutcome:
        """Commit one group in the child and wait for the outcome (reading it here if need be)."""
        future: Future[GroupOutcome] = Future()
        child = self._send(parts, derive, future)
        while True:
            with self._send_lock:
                child.pump()
                if not child.out or child.send_closed:
                    break
            with contextlib.suppress(OSError, ValueError):
                select.select([], [child.send_fd], [], 1.0)
        return child.wait_for(future)

    def close(self, timeout: float = 60.0) -> None:
        """Let the child commit what it has, then park it (pooled) or reap it (bounded)."""
        with self._send_lock:
            child, self._child = self._child, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            _OPEN_CLIENTS.discard(self)
        if child is None:
            return
        deadline = time.monotonic() + timeout
        parks = self.pooled and _writer_pool.worth_parking(self.path, child.inherited)
        if parks and _writer_pool.detach(child, self._send_lock, deadline):
            return
        child.finish(max(1.0, deadline - time.monotonic()), self._send_lock)

    def _forget_in_child(self) -> None:
        """In a forked process: close the inherited pipe ends without touching the child."""
        child, self._child = self._child, None
        if child is not None:
            child.forget()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
