"""Store decorators for logger tests: the logger is under test, so the store may misbehave on cue.

Each wraps a real SQLiteStore and delegates to it; none replaces the logger's own behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from persistence import SQLiteStore
from persistence.stores.base import StoreError, WriteResult


class RecordingStore:
    """Delegates, remembers each batch size, and sets `reached` once `target` rows were written."""

    def __init__(self, inner: SQLiteStore, target: int = 0) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.target = target
        self.reached = threading.Event()
        self._lock = threading.Lock()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Write, then count."""
        result = self.inner.write_batch(table, rows)
        with self._lock:
            self.batches.append(len(rows))
            if self.target and sum(self.batches) >= self.target:
                self.reached.set()
        return result

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegate."""
        return self.inner.query(name, params)

    def close(self) -> None:
        """Delegate."""
        self.inner.close()


class GatedStore(RecordingStore):
    """Blocks every write until `gate` is set (a store that hangs, then maybe recovers)."""

    def __init__(self, inner: SQLiteStore, target: int = 0) -> None:
        super().__init__(inner, target)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Wait for the gate (bounded, so a failed test never leaks a thread for long)."""
        self.entered.set()
        self.gate.wait(timeout=30)
        return super().write_batch(table, rows)


class FlakyStore(RecordingStore):
    """Fails the first `failures` writes with a retryable StoreError, then delegates.

    With after_write=True each failing call writes first and then raises, like a timeout on
    an insert that did land: a retry must not duplicate.
    """

    def __init__(
        self,
        inner: SQLiteStore,
        failures: int,
        *,
        retryable: bool = True,
        after_write: bool = False,
    ) -> None:
        super().__init__(inner)
        self.failures = failures
        self.retryable = retryable
        self.after_write = after_write
        self.calls = 0

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Fail on cue, otherwise delegate."""
        with self._lock:
            self.calls += 1
            fail = self.calls <= self.failures
        if fail:
            if self.after_write:
                self.inner.write_batch(table, rows)
            raise StoreError(f"injected failure {self.calls}", retryable=self.retryable)
        return super().write_batch(table, rows)


class DownStore:
    """A store that is down for good: every write raises a retryable error."""

    def __init__(self) -> None:
        self.calls = 0

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Always fail."""
        self.calls += 1
        raise StoreError("connection refused", retryable=True)

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Always fail."""
        raise StoreError("connection refused", retryable=True)

    def close(self) -> None:
        """Nothing to close."""
