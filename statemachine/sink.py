"""Where transition records go: a one-method protocol and an in-memory sink for tests."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from statemachine.records import TransitionRecord


@runtime_checkable
class TransitionSink(Protocol):
    """Receives each TransitionRecord; emit must never block or await."""

    def emit(self, record: TransitionRecord) -> None:
        """Accept one record without blocking the caller."""


class InMemorySink:
    """Keeps every emitted record in a list (thread-safe); for tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[TransitionRecord] = []

    def emit(self, record: TransitionRecord) -> None:
        """Append the record."""
        with self._lock:
            self.records.append(record)


class NullSink:
    """Discards every record; the baseline for logging-overhead benchmarks."""

    def emit(self, record: TransitionRecord) -> None:
        """Drop the record."""
