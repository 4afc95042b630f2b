"""The store protocol: write a batch, run a named query, close. The logger knows nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

# Table names, as the seed and the bootstrap file spell them.
STATE_TRANSITIONS = "org_meta_state_transitions"
PIPELINE_RUNS = "org_meta_pipeline_runs"
STEP_LOGS = "org_meta_step_logs"
TABLES = (STATE_TRANSITIONS, PIPELINE_RUNS, STEP_LOGS)


@attrs.frozen
class RowError:
    """One row a store rejected for good, named by its insert key."""

    row_id: str
    message: str


@attrs.frozen
class WriteResult:
    """What happened to a batch: rows accepted and rows rejected (never silently dropped)."""

    written: int
    rejected: tuple[RowError, ...] = ()


class StoreError(Exception):
    """A store failed as a whole; `retryable` tells the logger whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Store(Protocol):
    """A destination for audit rows. Methods are synchronous; the logger calls them in a thread."""

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Insert rows idempotently (keyed by each table's id column); raise StoreError on outage."""

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one named analysis query with bound parameters and return its rows."""

    def close(self) -> None:
        """Release connections; safe to call twice."""
