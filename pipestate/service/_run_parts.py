"""Small parts of the run manager (runs.py): run ids, timeline rows, wait wake-ups, versions."""

from __future__ import annotations

import asyncio
import datetime as dt
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


# One transition as a live run keeps it: (time, entity type, entity name, from, to,
# duration ms, reason), atoms only.
Step = tuple[dt.datetime, str, str, str, str, int, "str | None"]


def timeline_step(record: TransitionRecord) -> Step:
    """What a run's timeline needs of a record, as a tuple of atoms.

    Not the record itself: a frozen attrs record stays tracked by the cyclic collector, and the
    recent runs hold ~44,000 of them, walked by every full collection (38-46 ms pauses). A tuple
    of atoms is untracked by the first young collection it survives (issue 13).
    """
    return (
        record.transition_time,
        record.entity_type,
        record.entity_name,
        record.from_state,
        record.to_state,
        record.duration_in_state_ms,
        record.reason,
    )


def timeline_row(step: Step) -> dict[str, Any]:
    """One transition as the run's timeline shows it (the store's timeline query's columns)."""
    time, entity_type, entity_name, from_state, to_state, duration_ms, reason = step
    return {
        "transition_time": time.isoformat(timespec="microseconds"),
        "entity_type": entity_type,
        "entity_name": entity_name,
        "from_state": from_state,
        "to_state": to_state,
        "duration_seconds": round(duration_ms / 1000.0, 3),
        "reason": reason,
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
