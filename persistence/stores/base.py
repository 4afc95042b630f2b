"""The store protocol: write a batch, run a named query, close. The logger knows nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from persistence.schema import TableSpec

# Table names, as the seed and the bootstrap file spell them.
STATE_TRANSITIONS = "org_meta_state_transitions"
PIPELINE_RUNS = "org_meta_pipeline_runs"
STEP_LOGS = "org_meta_step_logs"
RUN_LEASES = "org_meta_run_leases"  # watchdog: persistence/watch
ALERTS = "org_meta_alerts"  # watchdog: persistence/watch
# The HTTP service's org API keys (hashes only), kept next to the audit trail it protects.
API_KEYS = "org_api_keys"
TABLES = (STATE_TRANSITIONS, PIPELINE_RUNS, STEP_LOGS, RUN_LEASES, ALERTS, API_KEYS)

# The insert key of each table (bootstrap.yml's id_column); every store de-duplicates on it.
ID_COLUMNS = {
    STATE_TRANSITIONS: "transition_id",
    PIPELINE_RUNS: "run_log_id",
    STEP_LOGS: "step_log_id",
    RUN_LEASES: "lease_row_id",
    ALERTS: "alert_id",
    API_KEYS: "event_id",
}


@attrs.frozen
class RowError:
    """One row a store rejected for good, named by its insert key."""

    row_id: str
    message: str


@attrs.frozen
class WriteResult:
    """What happened to a batch: rows accepted and rows rejected (never silently dropped).

    `written` counts rows that are now in the store, including rows that were already there
    (a retried batch is accepted again, not rejected), so written + len(rejected) == len(rows).
    """

    written: int
    rejected: tuple[RowError, ...] = ()


class StoreError(Exception):
    """A store failed as a whole; `retryable` tells the logger whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Store(Protocol):
    """A destination for audit rows. Methods are synchronous; the logger calls them in a thread.

    Optional extras the logger uses when present (SQLiteStore has all three):
    - write_records(table, items) -> WriteResult: like write_batch, but items may be
      TransitionRecords as well as row mappings (the store skips building dicts);
    - max_batch_rows: int: a backlog is written up to this many rows per call (default: the
      logger's batch size);
    - max_concurrent_writes: int: at most this many writes per table in flight (default: the
      logger's worker count);
    - group_commit: bool: a local store (SQLite, the outbox file) whose rows are written as
      soon as the previous write is done, not when a batch fills or the interval passes;
    - prepare_writes() -> None: open connections and create tables; the logger calls it (in a
      thread) from start(), so the first rows do not wait for the set-up.
    """

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Insert rows idempotently (keyed by each table's id column); StoreError on outage."""

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one named analysis query (persistence.queries catalog) with bound parameters.

        `params` is already validated and complete (defaults and derived values filled in by
        persistence.queries.run_query); values are int, str, datetime.date or an aware UTC
        datetime.datetime. Each store runs its own dialect's SQL for `name`.
        """

    def close(self) -> None:
        """Release connections; safe to call twice."""


@runtime_checkable
class Bootstrappable(Protocol):
    """A store that can create its dataset and tables from the schema files."""

    def ensure_tables(self, specs: Sequence[TableSpec], *, dry_run: bool) -> list[str]:
        """Create whatever is missing (nothing when dry_run) and return one line per action.

        An empty list means nothing was (or would be) changed. Each action is a short sentence
        starting with a verb; an action that creates table T is "create table " followed by T's
        name, bare or qualified, then anything: "create table org_meta_step_logs (17 columns)",
        "create table proj.organizations.org_meta_step_logs (...)". Other actions: "create
        dataset ...", "create index ...", "add column ...". Idempotent.
        """
