"""Orphan recovery: runs whose lease died are ended FAILED through the state machines.

For each orphan (newest lease row expired, no RELEASED/RECOVERED row, pipeline not terminal) the
sweeper reads the run's chain, rebuilds its PipelineRun / StepRun objects
(statemachine/rehydrate.py), fails every non-terminal step, then the pipeline, and writes the
records. Every recovery row's transition_id is UUIDv5(entity id + "recovered"), so two sweepers
racing write the same ids and the store keeps one row per entity (INSERT OR IGNORE on SQLite,
insertId on BigQuery). A RECOVERED lease row (also a deterministic id) then takes the run out of
later sweeps.

Recovered rows follow the cancellation contract: the entity ends FAILED, metadata carries
"cancelled": true and "cancel_source": "recovery", the reason starts with "Cancelled". Their
error_type is TRANSIENT (see docs/operations.md: the executor vanished; re-running the pipeline
is the remedy, nothing in the data or the code is known to be wrong).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from persistence._derive import derive_run_rows
from persistence.stores.base import RUN_LEASES, STATE_TRANSITIONS, Store
from persistence.watch._sql import statement
from persistence.watch.leases import RECOVERED, LeaseOwner, lease_row
from statemachine.clock import SYSTEM_CLOCK, Clock
from statemachine.rehydrate import BrokenChain, deterministic_id, rebuild_run
from statemachine.sink import InMemorySink

RECOVERY_ERROR_TYPE = "TRANSIENT"
PURPOSE = "recovered"
_log = structlog.get_logger("pipestate.watch")


class ExecutorLost(Exception):
    """The executor that ran this pipeline stopped renewing its lease (crash, kill, lost host)."""


def as_utc(value: Any) -> dt.datetime:
    """A stored timestamp (text or datetime) as an aware UTC datetime."""
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC)


@attrs.frozen(kw_only=True)
class Orphan:
    """A run whose lease expired while its pipeline was not terminal."""

    pipeline_logging_id: str
    org_slug: str
    pipeline_id: str | None
    owner_id: str
    owner_host: str | None
    owner_pid: int | None
    last_heartbeat: dt.datetime
    expires_at: dt.datetime
    lease_ms: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Orphan:
        """Build from one `orphans` row (either dialect)."""
        pid = row.get("owner_pid")
        return cls(
            pipeline_logging_id=str(row["pipeline_logging_id"]),
            org_slug=str(row["org_slug"]),
            pipeline_id=row.get("pipeline_id"),
            owner_id=str(row["owner_id"]),
            owner_host=row.get("owner_host"),
            owner_pid=None if pid is None else int(pid),
            last_heartbeat=as_utc(row["last_heartbeat"]),
            expires_at=as_utc(row["expires_at"]),
            lease_ms=int(row["lease_ms"]),
        )

    def describe(self) -> str:
        """'host H pid P (owner O), last heartbeat T' for reasons and messages."""
        return (
            f"executor host {self.owner_host or '?'} pid {self.owner_pid or '?'} "
            f"(owner {self.owner_id}), last heartbeat {self.last_heartbeat.isoformat()}"
        )


@attrs.frozen(kw_only=True)
class RecoveryOutcome:
    """What the sweeper did with one orphan: recovered (rows written) or skipped (and why)."""

    pipeline_logging_id: str
    recovered: bool
    entities: int = 0
    detail: str = ""
    orphan: Orphan | None = None


def find_orphans(
    store: Store, *, now: dt.datetime | None = None, days: int = 7, limit: int = 1000
) -> list[Orphan]:
    """Runs with a dead lease and a non-terminal pipeline (leases of the last `days` days)."""
    now = now or dt.datetime.now(dt.UTC)
    params = {"now": now, "since": now.date() - dt.timedelta(days=days), "limit": limit}
    rows = store.run_sql(statement(store, "orphans"), params)  # type: ignore[attr-defined]
    return [Orphan.from_row(r) for r in rows]


def recover_run(
    store: Store,
    orphan: Orphan,
    *,
    recovered_by: LeaseOwner | None = None,
    clock: Clock | None = None,
) -> RecoveryOutcome:
    """End one orphan's non-terminal steps and pipeline FAILED; idempotent and race-safe."""
    clock = clock or SYSTEM_CLOCK
    by = recovered_by or LeaseOwner()
    run_id = orphan.pipeline_logging_id
    rows = store.run_sql(  # type: ignore[attr-defined]
        statement(store, "run_chain"), {"pipeline_logging_id": run_id}
    )
    now = clock.now()
    if rows:
        newest = max(as_utc(r["transition_time"]) for r in rows)
        # Rows newer than a lease's length mean the executor was alive after its last heartbeat
        # landed (heartbeat rows lag, transitions did not): not an orphan yet.
        if newest + dt.timedelta(milliseconds=orphan.lease_ms) > now:
            return RecoveryOutcome(
                pipeline_logging_id=run_id, recovered=False, detail="run still writing rows"
            )
    sink = InMemorySink()
    try:
        rebuilt = rebuild_run(rows, sink=sink, purpose=PURPOSE, clock=clock)
    except BrokenChain as exc:
        return RecoveryOutcome(pipeline_logging_id=run_id, recovered=False, detail=str(exc))
    pipeline = rebuilt.pipeline
    if pipeline.is_terminal or pipeline.state != "RUNNING":
        return RecoveryOutcome(
            pipeline_logging_id=run_id, recovered=False, detail=f"pipeline is {pipeline.state}"
        )
    reason = f"Cancelled by recovery: {orphan.describe()}; its lease expired"
    metadata = {
        "cancelled": True,
        "cancel_source": "recovery",
        "recovered_by": {"host": by.host, "pid": by.pid, "owner_id": by.owner_id},
        "lost_executor": {
            "host": orphan.owner_host,
            "pid": orphan.owner_pid,
            "owner_id": orphan.owner_id,
            "last_heartbeat": orphan.last_heartbeat.isoformat(),
        },
    }
    error = ExecutorLost(f"executor lost: {orphan.describe()}")
    for step in rebuilt.steps:
        if not step.is_terminal:
            step.fail(error, error_type=RECOVERY_ERROR_TYPE, reason=reason, metadata=metadata)
    pipeline.fail(error, error_type=RECOVERY_ERROR_TYPE, reason=reason, metadata=metadata)
    _write(store, sink.records)
    marker = lease_row(
        pipeline_logging_id=run_id,
        org_slug=orphan.org_slug,
        pipeline_id=orphan.pipeline_id,
        event=RECOVERED,
        owner=by,
        seq=0,
        at=now,
        lease_ms=0,
        metadata=metadata,
        row_id=deterministic_id(run_id, "lease-recovered"),
    )
    store.write_batch(RUN_LEASES, [marker])
    _log.warning(
        "run_recovered",
        pipeline_logging_id=run_id,
        pipeline_id=orphan.pipeline_id,
        entities=len(sink.records),
        lost_executor=orphan.describe(),
    )
    return RecoveryOutcome(
        pipeline_logging_id=run_id, recovered=True, entities=len(sink.records), orphan=orphan
    )


def _write(store: Store, records: list[Any]) -> None:
    """Transitions first (the run stays an orphan until they land), then derived run rows."""
    result = store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
    if result.rejected:
        raise ValueError(f"recovery rows rejected: {result.rejected[0].message}")
    derived: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for table, row in derive_run_rows(record):
            derived.setdefault(table, []).append(row)
    for table, rows in derived.items():
        store.write_batch(table, rows)


def sweep(
    store: Store,
    *,
    now: dt.datetime | None = None,
    recovered_by: LeaseOwner | None = None,
    clock: Clock | None = None,
) -> list[RecoveryOutcome]:
    """Find every orphan and recover it; one run's failure does not stop the others."""
    clock = clock or SYSTEM_CLOCK
    outcomes = []
    for orphan in find_orphans(store, now=now or clock.now()):
        try:
            outcomes.append(recover_run(store, orphan, recovered_by=recovered_by, clock=clock))
        except Exception as exc:  # a store error on one run: report it, try the next
            _log.error(
                "recovery_failed", pipeline_logging_id=orphan.pipeline_logging_id, error=str(exc)
            )
            outcomes.append(
                RecoveryOutcome(
                    pipeline_logging_id=orphan.pipeline_logging_id,
                    recovered=False,
                    detail=f"error: {exc}",
                    orphan=orphan,
                )
            )
    return outcomes
