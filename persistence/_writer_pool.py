"""Parked writer children: a SQLiteStore's writer outlives its store, for the next one to reuse.

Why: a process that runs pipeline after pipeline with a new store and logger each time (an
Airflow or Celery worker, a test suite, benchmarks/executor.py) forked a writer per logger.
Each fork write-protects the parent's whole heap: the event loop's first write to every page
then faults (~250 faults, ~0.75 ms per 100-step chain), and the new child starts with a cold
heap. A store's close() now detaches its child instead (it commits, closes the file, answers;
_writer_child._serve) and parks it here; the next writer of this process sends it "open" and
the new store's factory instead of forking. Once the parent has written its pages after the
first fork they are its own: later runs pay no copy-on-write faults at all.

Rules:
- At most POOL_SIZE children are parked; a parked child exits after IDLE_SECONDS without an
  "open" (its own timer), at end-of-file when this process exits or is killed, and when
  pruned here; it is never reused past IDLE_REUSE of its timeout (it might be exiting).
- A child that died while parked is reaped and never reused (take() checks first).
- A child is not reused for a file this process held open when it was forked (`inherited`):
  SQLite keeps one lock and wal-index state per file and process (matched by device and
  inode), and the child's copy of that state is the parent's at the fork, stale since.
  SQLiteStore closes its own connection before a fork for this reason (before_fork).
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import attrs

from persistence._writer_child import control_frame

if TYPE_CHECKING:
    from persistence._writer_link import Link

POOL_SIZE = 2
IDLE_SECONDS = 30.0
IDLE_REUSE = 0.8  # a child parked longer than this share of its timeout is not taken again
_DETACH_POLL_SECONDS = 0.01  # detach(): how often to look whether another reader got the answer


@attrs.frozen
class Parked:
    """One parked writer child: its pid, the parent's pipe ends, what it must not open."""

    pid: int
    send_fd: int
    receive_fd: int
    inherited: frozenset[tuple[int, int]]  # (st_dev, st_ino) of files open at its fork
    reuse_until: float  # time.monotonic() after which it is pruned, not taken
    owner: int = attrs.field(factory=os.getpid)


_PARKED: list[Parked] = []
_LOCK = threading.Lock()


def open_files() -> frozenset[tuple[int, int]] | None:
    """(device, inode) of every regular file this process has open (a fork inherits them).

    None where /proc/self/fd cannot be listed: then no child of this fork is ever parked.
    """
    found = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            info = os.fstat(int(name))
            if stat.S_ISREG(info.st_mode):
                found.add((info.st_dev, info.st_ino))
    return frozenset(found)


def _file_key(path: str) -> tuple[int, int] | None:
    """The (device, inode) of path, None if it does not exist yet (a new file is no one's)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def worth_parking(path: str, inherited: frozenset[tuple[int, int]] | None) -> bool:
    """True when the pool has room and a child with these inherited files could reopen path.

    A child that may not reopen the file it just served (another connection of this process
    held it open at the fork: a service's query store) would most likely wait unused; one
    whose inherited files are unknown (None) is never parked.
    """
    if inherited is None:
        return False
    key = _file_key(path)
    if key is not None and key in inherited:
        return False
    with _LOCK:
        _prune()
        return len(_PARKED) < POOL_SIZE


def detach(child: Link, send_lock: threading.RLock, deadline: float) -> bool:
    """Have the child commit what it has and close its file, then park it (True if so).

    False (nothing parked; the caller ends the child as before): the child is dead, another
    process's, of unknown inherited files, or it did not answer by `deadline`.
    """
    inherited = child.inherited
    if child.owner != os.getpid() or inherited is None:
        return False
    answer: Future[Any] = Future()
    with send_lock:
        if not child.alive or child.send_closed:
            return False
        child.queue(answer, control_frame(("detach",)), None)
    while child.alive and time.monotonic() < deadline:
        with send_lock:
            child.pump()
            if not child.out:
                break
        with contextlib.suppress(OSError, ValueError):
            select.select([], [child.send_fd], [], max(0.0, deadline - time.monotonic()))
    if child.reply_thread is None:  # no reader thread: read here too (bounded)
        while not answer.done() and child.alive and time.monotonic() < deadline:
            # In slices: a running event loop (add_reader) may read the answer first, and
            # then this pipe stays empty (seen with `pipestate serve --runner loop`).
            with contextlib.suppress(OSError, ValueError):
                select.select([child.receive_fd], [], [], _DETACH_POLL_SECONDS)
            child.read_available()
    with contextlib.suppress(Exception):
        answer.result(max(0.0, deadline - time.monotonic()))
    if not answer.done() or answer.exception() is not None:
        return False
    with send_lock:
        handed = child.retire()
    if handed is None:
        return False
    park(*handed, inherited)
    return True


def park(pid: int, send_fd: int, receive_fd: int, inherited: frozenset[tuple[int, int]]) -> None:
    """Keep a detached child for the next writer (or end it if the pool filled meanwhile)."""
    until = time.monotonic() + IDLE_SECONDS * IDLE_REUSE
    child = Parked(pid, send_fd, receive_fd, inherited, until)
    with _LOCK:
        _prune()
        if len(_PARKED) < POOL_SIZE:
            _PARKED.append(child)
            return
    _end(child)


def take(path: str) -> Parked | None:
    """The most recently parked live child that may open `path`, removed from the pool."""
    key = _file_key(path)
    with _LOCK:
        _prune()
        for index in range(len(_PARKED) - 1, -1, -1):
            child = _PARKED[index]
            if key is None or key not in child.inherited:
                del _PARKED[index]
                return child
    return None


def parked_pids() -> list[int]:
    """The pids parked now (oldest first)."""
    with _LOCK:
        _prune()
        return [child.pid for child in _PARKED]


def clear() -> None:
    """End every parked child (they exit at end-of-file) without waiting for them."""
    with _LOCK:
        children = list(_PARKED)
        _PARKED.clear()
    for child in children:
        _end(child)


def _prune() -> None:
    """Drop children that exited (reaped now), timed out here, or belong to another process."""
    now = time.monotonic()
    keep = []
    for child in _PARKED:
        if child.owner != os.getpid():
            continue  # a forked process's copy: forget_in_child closed its descriptors
        if now > child.reuse_until or _exited(child.pid):
            _end(child)
        else:
            keep.append(child)
    _PARKED[:] = keep


def _exited(pid: int) -> bool:
    """Reap `pid` if it has exited (never waits); True if it is gone."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _end(child: Parked) -> None:
    """Close a parked child's pipes (it exits at end-of-file) and reap it, never blocking."""
    for fd in (child.send_fd, child.receive_fd):
        with contextlib.suppress(OSError):
            os.close(fd)
    if not _exited(child.pid):
        from persistence._writer_link import _wait

        threading.Thread(target=_wait, args=(child.pid, 60.0), daemon=True).start()


def forget_in_child() -> None:
    """In a forked process: close the inherited pipe ends of the parked children (no reaping)."""
    global _LOCK
    _LOCK = threading.Lock()  # another thread may have held it across the fork
    for child in _PARKED:
        for fd in (child.send_fd, child.receive_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
    _PARKED.clear()
