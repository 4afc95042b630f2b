"""Audit ids: time-ordered UUIDv7 strings (RFC 9562) for transitions, runs and steps.

transition_id, pipeline_logging_id and step_logging_id are UUIDv7: still canonical UUID
strings (and BigQuery's insertId), but they sort by creation time, so a time-partitioned audit
table and SQLite's primary-key B-tree take new rows at their right edge instead of at random
pages (a random uuid4 key touched a different index page per row).

The generator is uuid-utils' uuid7(), the Rust `uuid` crate's now_v7(): a 48-bit millisecond
timestamp, a 42-bit counter that keeps ids generated within one millisecond in creation order
(one shared, locked context per process, so across threads too) and 32 random bits. It reseeds
its RNG in a forked child, and the counter starts at a random value each millisecond, so
processes never collide in practice. On Python 3.14+ the standard library's uuid.uuid7() has
the same layout; it is used only where uuid-utils is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def _uuid7_source() -> Callable[[], object]:
    """uuid-utils' uuid7, else (Python 3.14+) the standard library's, made thread-safe."""
    try:
        from uuid_utils import uuid7

        return uuid7
    except ImportError:  # pragma: no cover - only where uuid-utils is not installed
        import threading
        import uuid

        stdlib_uuid7 = uuid.uuid7  # type: ignore[attr-defined,unused-ignore]
        lock = threading.Lock()  # its counter state is module-global: take turns

        def locked() -> object:
            with lock:
                return stdlib_uuid7()

        return locked


_uuid7 = _uuid7_source()

IdSource = Callable[[], str]

_BATCH = 256
_pool: list[str] = []


def uuid7_str() -> str:
    """Return a new time-ordered RFC 9562 version-7 UUID string (monotonic within a process)."""
    return str(_uuid7())


def _refill() -> None:
    raw = os.urandom(16 * _BATCH).hex()
    fresh = []
    for i in range(0, 32 * _BATCH, 32):
        h = raw[i : i + 32]
        # Version nibble 4 and RFC 4122 variant bits 10xx, exactly as uuid.uuid4() sets them.
        fresh.append(
            f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        )
    _pool.extend(fresh)


def uuid4_str() -> str:
    """Return a random RFC 4122 version-4 UUID string (kept for callers that want random ids)."""
    while True:
        try:
            # list.pop is atomic, so threads never get the same id; a racing refill adds more.
            return _pool.pop()
        except IndexError:
            _refill()


# A forked child must not hand out the uuid4s its parent still holds.
os.register_at_fork(after_in_child=_pool.clear)

# The id every entity and record gets unless a caller supplies its own id_source.
new_id: IdSource = uuid7_str
