"""Small parts of the run manager (runs.py): run ids, timeline rows, wait wake-ups, versions."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statemachine import TransitionRecord

_ID_POOL_BYTES = 16 * 256  # run ids drawn per os.urandom call


class RunIds:
    """Random (version 4) UUID strings, drawn from a pool refilled by one os.urandom call.

    uuid.uuid4() calls os.urandom for every id, and each call releases the GIL: on the API
    thread, getting it back from a busy runner thread can take a switch interval (5 ms). The
    pool makes that one call per 256 ids; the bytes come from the same source.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        """A new random run id."""
        with self._lock:
            if self._at + 16 > len(self._pool):
                self._pool, self._at = os.urandom(_ID_POOL_BYTES), 0
            chunk = self._pool[self._at : self._at + 16]
            self._at += 16
        return str(uuid.UUID(bytes=chunk, version=4))


def timeline_row(record: TransitionRecord) -> dict[str, Any]:
    """One transition as the run's timeline shows it (the store's timeline query's columns)."""
    return {
        "transition_time": record.transition_time.isoformat(timespec="microseconds"),
        "entity_type": record.entity_type,
        "entity_name": record.entity_name,
        "from_state": record.from_state,
        "to_state": record.to_state,
        "duration_seconds": round(record.duration_in_state_ms / 1000.0, 3),
        "reason": record.reason,
    }


def resolve_wait(waiter: asyncio.Future[None]) -> None:
    """End a wait (on its loop): the run ended or the wait's bound passed, whichever is first."""
    if not waiter.done():
        waiter.set_result(None)


def version_of(path: Path) -> tuple[str, int, int] | None:
    """(path, mtime, size) of a config file, None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size)
