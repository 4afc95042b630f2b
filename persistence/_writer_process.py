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
import operator
import os
import select
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from persistence import _writer_pool
from persistence._frame import dump_group, expand_records, load_group
from persistence._frame import encode_parts as _encode_parts
from persistence._writer_child import _HEADER, _SIZE, _child_main, control_frame
from persistence._writer_link import GroupOutcome, Link, grow_pipe
from persistence._writer_stream import merged
from persistence.stores.base import RowError
from statemachine.records import RECORD_FIELDS, TransitionRecord

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
_record_values = operator.attrgetter(*RECORD_FIELDS)


def record_values(record: TransitionRecord) -> tuple[Any, ...]:
    """A record as its value tuple (RECORD_FIELDS order), which the frame encodes as the record.

    The logger queued this instead of the record for a pipelined store: the record object then
    dies in emit(), as under a NullSink, instead of living (and being promoted through the
    collector's generations) until its group is committed (benchmarks/executor.py's 1,000 x 10
    workload: young collections 251 -> 225, full ones 2 -> 1, the collector's CPU ~280 -> ~155
    ms per run). It now queues the record's wire tuple (persistence._frame.wire_record).
    """
    return _record_values(record)


def record_from_values(values: Sequence[Any]) -> TransitionRecord:
    """The record a value tuple was made from (record_values), checked like any record."""
    return TransitionRecord(**dict(zip(RECORD_FIELDS, values, strict=True)))


class EncodedParts(list[tuple[str, tuple[()]]]):
    """A group already encoded into its frame, to send (or resend) without its items.

    It reads as the parts' (table, ()) pairs, so a store can check the tables as for any
    group. The group committer encodes each group once, before its first send, and lets its
    items go (GroupCommitter._encode): until then a group's value tuples lived until the
    child's reply, hundreds of milliseconds in a burst, and every young and middle collection
    of the garbage collector walked them again (a value tuple holding the metadata dict is
    never untracked). A retry after the child died resends the frame.
    """

    def __init__(
        self,
        parts: Sequence[tuple[str, Sequence[Any]]],
        derive: bool,
        streamed: Streamed | None = None,
    ) -> None:
        frame, rejected = _encode_group(parts, derive, streamed.group_id if streamed else None)
        super().__init__((table, ()) for table, _ in parts)
        self.frame = frame
        self.rejected = rejected
        self.derive = derive
        # The group's rows sent ahead in data frames (persistence/_writer_stream.py), and the
        # child they went to: a send to any other child, or a resend, carries them again.
        self.streamed = bytes(streamed.frames) if streamed else b""
        self.streamed_to = streamed.link if streamed else None
        if streamed is not None and streamed.rejected:
            self.rejected[0] = [*streamed.rejected, *self.rejected[0]]

    def decoded(self) -> list[tuple[str, list[Any]]]:
        """The parts as sent: records as TransitionRecords, rows as dicts (for a drop count)."""
        encoded, _ = load_group(self.frame[_HEADER.size :])
        encoded = merged([load_group(p)[0] for p in split_frames(self.streamed)], encoded)
        parts = []
        for table, values, records in encoded:
            expand_records(values, records, record_from_values)
            parts.append((table, values))
        return parts


# Every client's parent-side pipe ends: a process forked later (another writer, a test's
# multiprocessing child) closes them, or a writer child would never see end-of-file.
_OPEN_CLIENTS: weakref.WeakSet[WriterProcess] = weakref.WeakSet()


def _encode_group(
    parts: Sequence[tuple[str, Sequence[Any]]], derive: bool, group_id: int | None = None
) -> tuple[bytes, list[list[RowError]]]:
    """A group's frame (header + payload, persistence/_frame.py), and the items refused."""
    if type(parts) is EncodedParts:
        if parts.derive != derive:
            raise ValueError(f"group encoded with derive={parts.derive}, sent with {derive}")
        return parts.frame, parts.rejected
    encoded, rejected = _encode_parts(parts)
    payload = dump_group(encoded, derive, group_id)
    return _HEADER.pack(len(payload)) + payload, rejected


class Streamed:
    """Rows of a group sent ahead in data frames, while the group committer still gathers it."""

    __slots__ = ("derive", "frames", "group_id", "link", "rejected", "rows")

    def __init__(self, group_id: int, link: Link, derive: bool) -> None:
        self.group_id = group_id
        self.link = link  # the child that has them (a group streams to one child only)
        self.derive = derive
        self.frames = bytearray()  # the data frames as sent: a resend sends them again
        self.rows = 0  # items taken from the queue for them (refused ones included)
        self.rejected: list[RowError] = []  # items encode_parts refused

    def add(self, frame: bytes, rows: int, rejected: list[RowError]) -> None:
        """Note a data frame sent: its bytes, the items it took, the items refused."""
        self.frames += frame
        self.rows += rows
        self.rejected += rejected


def split_frames(frames: bytes) -> list[bytes]:
    """The payloads of concatenated frames (data frames kept for a resend)."""
    payloads = []
    offset = 0
    while offset < len(frames):
        (size,) = _HEADER.unpack_from(frames, offset)
        offset += _HEADER.size
        payloads.append(frames[offset : offset + (size & _SIZE)])
        offset += size & _SIZE
    return payloads


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


# Locks of every object in this process that calls into SQLite (SQLiteStore, OutboxDB). A fork
# copies SQLite's global mutexes as they are: forking while another thread is inside SQLite
# (opening a file, allocating) would leave the child waiting for a mutex nobody will release.
# The fork therefore happens with all these locks held, i.e. with no SQLite call in progress.
_SQLITE_USERS: weakref.WeakSet[Any] = weakref.WeakSet()


# Held across os.fork() and around every connection closed because its owner was collected:
# that close runs in whichever thread the garbage collector ran, outside the owner's `_lock`
# (the owner is gone), and inside SQLite's file mutex. A fork then would leave the writer child
# waiting for that mutex in its first sqlite3.connect for ever (seen in the test suite).
_FORK_GUARD = threading.RLock()


def register_sqlite_user(owner: Any) -> None:
    """Declare an object whose `_lock` guards all its SQLite calls (see _quiet_fork)."""
    _SQLITE_USERS.add(owner)


def close_when_collected(owner: Any, conn: Any) -> None:
    """Close `conn` when `owner` is garbage collected, never while a writer is being forked."""
    weakref.finalize(owner, _close_guarded, conn)


# Connections a finalizer could not close at once (a fork was under way): closed when it ends.
_DEFERRED_CLOSES: list[Any] = []


def _close_guarded(conn: Any) -> None:
    """Close a collected store's connection now, or after the fork under way: never block.

    A finalizer runs inside whatever code the collector interrupted, which may hold a lock
    os.fork()'s own at-fork handlers take (concurrent.futures' global shutdown lock is held
    by ThreadPoolExecutor.submit): waiting there for _FORK_GUARD, held by a thread inside
    os.fork() that waits for that lock, hung the process for ever.
    """
    if not _FORK_GUARD.acquire(blocking=False):
        _DEFERRED_CLOSES.append(conn)
        return
    try:
        with contextlib.suppress(Exception):
            conn.close()
    finally:
        _FORK_GUARD.release()


def _close_deferred() -> None:
    """Close the connections finalizers left while a fork was under way (see _close_guarded)."""
    while _DEFERRED_CLOSES:
        conn = _DEFERRED_CLOSES.pop()
        with _FORK_GUARD, contextlib.suppress(Exception):
            conn.close()


def _quiet_fork(inherited: list[frozenset[tuple[int, int]] | None] | None = None) -> int:
    """os.fork() while no registered object is inside SQLite (their locks held meanwhile).

    inherited: gets the files the child inherits open (_writer_pool.open_files), listed
    with the same locks held.
    """
    parent = os.getpid()
    held = []
    owners = list(_SQLITE_USERS)  # a snapshot: the set may change while we wait
    try:
        for owner in sorted(owners, key=id):
            lock = owner._lock
            if lock.acquire(timeout=30):
                held.append(lock)
        with warnings.catch_warnings(), _FORK_GUARD:
            # Python 3.12+ warns about fork() with threads running: the child here only uses
            # its own store object, with every SQLite user's lock held across the fork.
            warnings.simplefilter("ignore", DeprecationWarning)
            if inherited is not None:
                inherited.append(_writer_pool.open_files())
            return os.fork()
    finally:
        if os.getpid() == parent:  # the child never uses the parent's objects
            for lock in held:
                lock.release()
            _close_deferred()


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
        pid = _quiet_fork(inherited if self.pooled else None)
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
