"""Forking the writer child safely: no SQLite call in progress, no connection closed meanwhile.

SQLite's global mutexes are copied by fork as they are: a child forked while another thread
is inside SQLite would wait for ever for a mutex nobody releases. quiet_fork() forks with
every registered SQLite user's lock held, and connections closed by the garbage collector
wait for (or are deferred past) a fork under way.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import weakref
from typing import Any

from persistence import _writer_pool

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
    """Declare an object whose `_lock` guards all its SQLite calls (see quiet_fork)."""
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


def quiet_fork(inherited: list[frozenset[tuple[int, int]] | None] | None = None) -> int:
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
