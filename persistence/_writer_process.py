"""The writer process of local SQLite files: the logger's commits run in a forked child.

Used by SQLiteStore and OutboxStore (group commit) unless PIPESTATE_SQLITE_WRITER=thread, or
for a small `pipestate run` on SQLite (writer_process_for_steps: a thread is cheaper there).

Why a process: a commit costs ~8 us of GIL-bound Python per row (row preparation, timestamp
text, parameter binding) plus the run/step rows derived from each record; in a thread that work
competes with the event loop for the one GIL, so logging slowed every step by ~100 %. The child
does all of it on the other core: the parent only turns each record into a plain tuple (one C
call) and pickles a group (C), and its writer thread then waits on a pipe with the GIL released.

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

import collections
import contextlib
import operator
import os
import pickle
import select
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import IO, Any

from persistence._writer_child import _child_main, _read_frame, _write_frame
from persistence.stores.base import RowError, StoreError, WriteResult
from statemachine.records import RECORD_FIELDS, TransitionRecord

WRITER_ENV = "PIPESTATE_SQLITE_WRITER"
# A `pipestate run` of at most this many steps commits from a thread in its own process
# (docs/reliability.md): the fork, its copy-on-write faults and the child's exit cost such a
# run ~15 ms of CPU, ~10 % of it, while its whole trail (two transitions per step, two for the
# run, more only after retry back-offs, when the thread is idle anyway) is a backlog the thread
# commits within ~8 ms of a burst's end. Past this size the burst outgrows the thread: its
# commits wait behind the event loop for the GIL and the oldest uncommitted row ages ~0.09 ms
# per chained step, towards the 50 ms loss window; the process keeps it at ~6 ms at any size.
THREAD_WRITER_MAX_STEPS = 50
_record_values = operator.attrgetter(*RECORD_FIELDS)
# Every client's parent-side pipe ends: a process forked later (another writer, a test's
# multiprocessing child) closes them, or a writer child would never see end-of-file.
_OPEN_CLIENTS: weakref.WeakSet[WriterProcess] = weakref.WeakSet()

# (results, derived (table, result) pairs, derive failures) of one group.
GroupOutcome = tuple[list[WriteResult], list[tuple[str, WriteResult]], int]


def _encode_parts(
    parts: Sequence[tuple[str, Sequence[Any]]],
) -> tuple[list[tuple[str, list[Any], list[int]]], list[list[RowError]]]:
    """Parts as picklable lists: records as value tuples (their indexes noted), rows as dicts.

    An item that is neither is rejected here, as to_rows() would.
    """
    encoded = []
    rejected: list[list[RowError]] = []
    for table, items in parts:
        values: list[Any] = []
        records: list[int] = []
        bad: list[RowError] = []
        for item in items:
            if type(item) is TransitionRecord:
                records.append(len(values))
                values.append(_record_values(item))
            elif isinstance(item, Mapping):
                values.append(dict(item))
            else:
                bad.append(RowError(f"<{type(item).__name__}>", "not a TransitionRecord or row"))
        encoded.append((table, values, records))
        rejected.append(bad)
    return encoded, rejected


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
    path: str, factory: Callable[[], Any], enabled: bool | None
) -> WriterProcess | None:
    """The writer process for `path` (None: writes stay in this process); None = the default."""
    if enabled is None:
        enabled = writer_process_default()
    return WriterProcess(path, factory) if enabled else None


# Locks of every object in this process that calls into SQLite (SQLiteStore, OutboxDB). A fork
# copies SQLite's global mutexes as they are: forking while another thread is inside SQLite
# (opening a file, allocating) would leave the child waiting for a mutex nobody will release.
# The fork therefore happens with all these locks held, i.e. with no SQLite call in progress.
_SQLITE_USERS: weakref.WeakSet[Any] = weakref.WeakSet()


def register_sqlite_user(owner: Any) -> None:
    """Declare an object whose `_lock` guards all its SQLite calls (see _quiet_fork)."""
    _SQLITE_USERS.add(owner)


def _quiet_fork() -> int:
    """os.fork() while no registered object is inside SQLite (their locks held meanwhile)."""
    parent = os.getpid()
    held = []
    owners = list(_SQLITE_USERS)  # a snapshot: the set may change while we wait
    try:
        for owner in sorted(owners, key=id):
            lock = owner._lock
            if lock.acquire(timeout=30):
                held.append(lock)
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() with threads running: the child here only uses
            # its own store object, with every SQLite user's lock held across the fork.
            warnings.simplefilter("ignore", DeprecationWarning)
            return os.fork()
    finally:
        if os.getpid() == parent:  # the child never uses the parent's objects
            for lock in held:
                lock.release()


def _close_inherited_pipes() -> None:
    """In any forked child: drop the parent's writer pipes (see _OPEN_CLIENTS)."""
    for client in list(_OPEN_CLIENTS):
        client._forget_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork and no writer process
    os.register_at_fork(after_in_child=_close_inherited_pipes)


class _Child:
    """One forked writer: its pipes, the groups awaiting a reply (in send order), a reader."""

    def __init__(self, pid: int, send: IO[bytes], receive: IO[bytes], path: str) -> None:
        self.pid = pid
        self.owner = os.getpid()
        self.send = send
        self.receive = receive
        self.path = path
        self.alive = True
        # The child answers in the order it read: the oldest pending group gets the next reply.
        self.pending: collections.deque[tuple[Future[GroupOutcome], list[list[RowError]]]] = (
            collections.deque()
        )
        self.pending_lock = threading.Lock()
        self.reader = threading.Thread(
            target=self._read_replies, name="pipestate-sqlite-replies", daemon=True
        )
        self.reader.start()

    def _read_replies(self) -> None:
        """Resolve each pending group with its reply; at end-of-file fail the rest and reap."""
        while True:
            try:
                payload = _read_frame(self.receive)
            except (OSError, ValueError):
                payload = None
            if payload is None:
                break
            with self.pending_lock:
                future, rejected = self.pending.popleft()
            try:
                future.set_result(_outcome(pickle.loads(payload), rejected))
            except Exception as error:
                future.set_exception(error)
        with self.pending_lock:
            self.alive = False
            left = list(self.pending)
            self.pending.clear()
        for future, _ in left:
            future.set_exception(
                StoreError(
                    f"writer process for {self.path!r} exited; the group is retried",
                    retryable=True,
                )
            )
        with contextlib.suppress(OSError):
            self.receive.close()
        _wait(self.pid, 60.0)

    def forget(self) -> None:
        """In a forked process: close the inherited pipe ends (no thread runs here)."""
        for stream in (self.send, self.receive):
            with contextlib.suppress(OSError):
                os.close(stream.fileno())
        self.alive = False


def _outcome(reply: Any, rejected: list[list[RowError]]) -> GroupOutcome:
    """A child's reply as a GroupOutcome (rows refused in the parent added), or raise."""
    if reply[0] == "error":
        _, kind, message, retryable = reply
        if retryable is None:
            raise StoreError(f"{kind}: {message}", retryable=False)
        raise StoreError(message, retryable=retryable)
    results, derived, failures = reply[1]
    results = [
        WriteResult(r.written, (*r.rejected, *bad)) if bad else r
        for r, bad in zip(results, rejected, strict=True)
    ]
    return results, derived, failures


def _finish_child(child: _Child, timeout: float) -> None:
    """Close the request pipe: the child commits what it has read, answers, exits, is reaped."""
    if child.owner != os.getpid():
        return
    with contextlib.suppress(OSError):
        child.send.close()
    child.reader.join(timeout)
    if child.reader.is_alive():  # a child that will not finish: kill it; the reader reaps it
        _signal(child.pid, signal.SIGKILL)
        child.reader.join()


def _release_child(child: _Child) -> None:
    """Close the request pipe only: the child commits what it has and exits; its reader reaps."""
    if child.owner == os.getpid():
        with contextlib.suppress(OSError):
            child.send.close()


class WriterProcess:
    """The parent's handle on the writer child: send groups (pipelined), get their outcomes."""

    def __init__(self, path: str, factory: Callable[[], Any]) -> None:
        self.path = path  # the file the child writes (for messages)
        self.factory = factory  # builds the child's own store (thread mode) after the fork
        self._send_lock = threading.Lock()  # frames are written whole and in pending order
        self._child: _Child | None = None
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

    def _running_child(self) -> _Child:
        """The live child, forked now if there is none; the caller holds the send lock."""
        child = self._child
        if child is not None and child.alive and child.owner == os.getpid():
            return child
        if child is not None and child.owner == os.getpid():
            _finish_child(child, 5.0)  # a dead child: close its pipe, let its reader reap it
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        _grow_pipe(requests_w)
        for stream in (sys.stdout, sys.stderr):  # buffered output must not be written twice
            with contextlib.suppress(Exception):
                stream.flush()
        pid = _quiet_fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(requests_w)
                os.close(replies_r)
                _child_main(self.factory, requests_r, replies_w)
            except BaseException:
                code = 1
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(replies_w)
        child = _Child(pid, os.fdopen(requests_w, "wb"), os.fdopen(replies_r, "rb"), self.path)
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
        full. A child that died fails its pending groups with a retryable StoreError.
        """
        encoded, rejected = _encode_parts(parts)
        payload = pickle.dumps((encoded, derive), pickle.HIGHEST_PROTOCOL)
        future: Future[GroupOutcome] = Future()
        with self._send_lock:
            child = self._running_child()
            with child.pending_lock:
                if not child.alive:  # died since: the next submit forks a new one
                    future.set_exception(
                        StoreError(f"writer process for {self.path!r} exited", retryable=True)
                    )
                    return future
                child.pending.append((future, rejected))
            try:
                _write_frame(child.send, payload)
            except (OSError, ValueError):  # the child is gone: its reader fails the group
                _signal(child.pid, signal.SIGKILL)
        return future

    def write(self, parts: Sequence[tuple[str, Sequence[Any]]], derive: bool) -> GroupOutcome:
        """Commit one group in the child and wait for the outcome."""
        return self.submit(parts, derive).result()

    def close(self, timeout: float = 60.0) -> None:
        """Let the child commit what it has, then reap it (bounded by timeout)."""
        with self._send_lock:
            child, self._child = self._child, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            _OPEN_CLIENTS.discard(self)
        if child is not None:
            _finish_child(child, timeout)

    def _forget_in_child(self) -> None:
        """In a forked process: close the inherited pipe ends without touching the child."""
        child, self._child = self._child, None
        if child is not None:
            child.forget()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait(pid: int, timeout: float) -> None:
    """Reap the child; kill it if it has not exited within `timeout` seconds."""

    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: wait without a bound
        pidfd = None
    if pidfd is not None:
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not ready:
            _signal(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _grow_pipe(fd: int) -> None:
    """Let the request pipe hold ~1 MiB (Linux): a burst sent before a crash waits there."""
    import fcntl

    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:
        return
    # Above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default 64 KiB.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setter, 1 << 20)
