"""Test support for the outbox: a remote that fails on demand, and row factories."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persistence.stores.base import ID_COLUMNS, RowError, Store, StoreError, WriteResult
from statemachine.records import TransitionRecord

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def transition_row(i: int, prefix: str = "t") -> dict[str, Any]:
    """Return a valid org_meta_state_transitions row whose id is f'{prefix}{i:05d}'."""
    return TransitionRecord(
        transition_id=f"{prefix}{i:05d}",
        org_slug="acme",
        pipeline_logging_id="p-1",
        step_logging_id=f"s-{i}",
        entity_type="STEP",
        entity_name=f"step_{i}",
        from_state="PENDING",
        to_state="RUNNING",
        transition_time=T0,
        transition_date=T0.date(),
        metadata={"i": i},
    ).to_row()


def rows(n: int, prefix: str = "t", start: int = 0) -> list[dict[str, Any]]:
    """Return n transition rows with consecutive ids."""
    return [transition_row(i, prefix) for i in range(start, start + n)]


def outbox_ids(path: Path) -> list[str]:
    """Read the row ids waiting in an outbox file with a plain SQLite connection."""
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT row_id FROM outbox ORDER BY seq")]


def outbox_pending(path: Path) -> int:
    """Count rows waiting in an outbox file another process is writing (0 if not there yet)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.OperationalError:  # the child has not created the table yet
        return 0


class GatedRemote:
    """A Store that forwards to `inner` unless told to fail; counts what it received.

    - `outage`: raise StoreError(retryable=True) for every batch (the remote is down);
    - `refuse`: raise StoreError(retryable=False) for a batch holding any of these ids;
    - `poison`: reject exactly these row ids per row (WriteResult.rejected), accept the rest;
    - `lose_acks`: store the next N batches, then raise a retryable error as if the reply was lost.
    """

    def __init__(self, inner: Store | None = None) -> None:
        self.inner = inner
        self.outage = False
        self.refuse: set[str] = set()
        self.poison: set[str] = set()
        self.lose_acks = 0
        self.received: list[str] = []  # ids of rows the remote accepted, in arrival order
        self.calls = 0
        self.closed = False
        self._cond = threading.Condition()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Fail as configured, else forward the accepted rows to the inner store."""
        ids = [str(row[ID_COLUMNS[table]]) for row in rows]
        with self._cond:
            self.calls += 1
            if self.outage:
                raise StoreError("remote unavailable (503)", retryable=True)
            if self.refuse & set(ids):
                raise StoreError("remote refused the batch (400 invalid)", retryable=False)
        good = [row for row, row_id in zip(rows, ids, strict=True) if row_id not in self.poison]
        if good and self.inner is not None:
            self.inner.write_batch(table, good)
        rejected = tuple(RowError(row_id, "invalid row") for row_id in ids if row_id in self.poison)
        with self._cond:
            self.received.extend(row_id for row_id in ids if row_id not in self.poison)
            self._cond.notify_all()
            if self.lose_acks > 0:
                self.lose_acks -= 1
                raise StoreError("connection reset before the reply", retryable=True)
        return WriteResult(written=len(good), rejected=rejected)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Block until the remote accepted at least `count` rows; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Forward to the inner store, or answer with the received ids."""
        if self.inner is not None:
            return self.inner.query(name, params)
        return [{"row_id": row_id} for row_id in self.received]

    def close(self) -> None:
        """Remember the close; closing the inner store is the test's business."""
        self.closed = True
