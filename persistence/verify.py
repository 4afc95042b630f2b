"""`pipestate verify`: check every stored chain against the tables and the joint rules.

On BigQuery the checks run as one SQL statement inside the store; on SQLite the rows stream in
run order (its index gives that order without a sort) through the same checks in Python, one
run in memory at a time. Either way the table is never loaded: only the violations found (at
most `max_per_kind` of each kind) and the counts come back.

What it proves: every stored row is a legal edge, each entity's stored rows chain from
PENDING without gaps or duplicates, durations agree with timestamps, retry counts agree with
the retries, step rows lie within their pipeline's RUNNING interval and every step of a finished
run ended as the joint rules demand. What it cannot prove: that a row was written at all (a lost
row at the end of a chain looks like a step still running, and a run whose rows were never
written is invisible), nor anything about rows outside the chosen org, run or dates.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from persistence._verify_sql import VIOLATION_KINDS, summary_sql, violations_sql
from persistence._verify_stream import check_rows, stream_sql
from persistence.stores.base import STATE_TRANSITIONS, StoreError

DEFAULT_TOLERANCE_MS = 1000
DEFAULT_MAX_PER_KIND = 1000


@attrs.frozen
class Violation:
    """One broken check on one stored row."""

    kind: str
    pipeline_logging_id: str
    step_logging_id: str | None
    transition_id: str
    entity_name: str | None
    transition_time: str
    detail: str

    def render(self) -> str:
        """One line: kind, ids, entity and what is wrong."""
        step = f" step {self.step_logging_id}" if self.step_logging_id else ""
        return (
            f"{self.kind}: run {self.pipeline_logging_id}{step} {self.entity_name!r} "
            f"row {self.transition_id} at {self.transition_time}: {self.detail}"
        )


@attrs.frozen
class VerifyReport:
    """What was checked, how many violations of each kind, and the violations listed."""

    rows: int
    runs: int
    finished_runs: int
    steps: int
    counts: dict[str, int]
    violations: tuple[Violation, ...]

    @property
    def clean(self) -> bool:
        """True when no check broke."""
        return not self.counts

    def render(self) -> str:
        """The summary, then one line per violation listed."""
        total = sum(self.counts.values())
        lines = [
            f"Checked {self.rows} rows: {self.runs} runs ({self.finished_runs} finished, "
            f"{self.runs - self.finished_runs} still open or never closed), {self.steps} steps.",
            "No violations." if self.clean else f"{total} violation(s):",
        ]
        for kind, count in self.counts.items():
            shown = sum(1 for v in self.violations if v.kind == kind)
            more = f" (first {shown} listed)" if shown < count else ""
            lines.append(f"  {kind}: {count}{more} - {VIOLATION_KINDS[kind]}")
        lines += [v.render() for v in self.violations]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "rows": self.rows,
            "runs": self.runs,
            "finished_runs": self.finished_runs,
            "steps": self.steps,
            "clean": self.clean,
            "counts": dict(self.counts),
            "violations": [attrs.asdict(v) for v in self.violations],
        }


def verify(
    store: Any,
    *,
    org: str | None = None,
    run: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
    max_per_kind: int = DEFAULT_MAX_PER_KIND,
    in_sql: bool = False,
) -> VerifyReport:
    """Check the transitions in `store` (optionally one org, one run, runs with rows in a date
    range) and return the report; the store is only read.

    On SQLite the rows stream in run order through the checks (about 3x faster than SQLite's
    window functions); `in_sql=True` runs them as the one SQL statement BigQuery always runs.
    """
    if tolerance_ms < 0 or max_per_kind < 1:
        raise ValueError(
            f"tolerance_ms must be >= 0 and max_per_kind >= 1 "
            f"(got {tolerance_ms!r}, {max_per_kind!r})."
        )
    dates = since is not None or until is not None
    params: dict[str, Any] = {
        "org": org,
        "run": run,
        "since": since or dt.date(1, 1, 1),
        "until": until or dt.date(9999, 12, 31),
        "tolerance_ms": tolerance_ms,
        "max_per_kind": max_per_kind,
    }
    flags = {"org": org is not None, "run": run is not None, "dates": dates}
    dialect = getattr(store, "dialect", None)
    if dialect == "sqlite":
        summary, found = _run_sqlite(store.path, flags, params, in_sql=in_sql)
    elif dialect == "bigquery":
        summary, found = _run_bigquery(store, flags, params)
    else:
        raise StoreError(f"verify reads SQLite or BigQuery stores (got {store!r})", retryable=False)
    counts: dict[str, int] = {}
    violations = []
    for row in found:
        counts[row["kind"]] = int(row["kind_total"])
        violations.append(
            Violation(
                kind=row["kind"],
                pipeline_logging_id=row["pipeline_logging_id"],
                step_logging_id=row["step_logging_id"],
                transition_id=row["transition_id"],
                entity_name=row["entity_name"],
                transition_time=str(row["transition_time"]),
                detail=row["detail"],
            )
        )
    return VerifyReport(
        rows=int(summary["row_count"]),
        runs=int(summary["run_count"]),
        finished_runs=int(summary["finished_run_count"]),
        steps=int(summary["step_count"]),
        counts=counts,
        violations=tuple(violations),
    )


def _run_sqlite(
    path: str, flags: dict[str, bool], params: dict[str, Any], *, in_sql: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Both statements on a read-only connection: an auditor's check never writes."""
    if not Path(path).is_file():
        raise StoreError(f"no SQLite store at {path!r}", retryable=False)
    bound = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in params.items()}
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path!r} read-only: {exc}", retryable=False) from exc
    try:
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB for the window sort of 1M rows
        if not in_sql:
            sql = stream_sql(STATE_TRANSITIONS, **flags)
            cursor = conn.execute(sql, {k: v for k, v in bound.items() if f"@{k}" in sql})
            summary: dict[str, int] = {}
            counts, listed = check_rows(
                cursor,
                tolerance_ms=params["tolerance_ms"],
                max_per_kind=params["max_per_kind"],
                summary=summary,
            )
            return summary, [_found_row(v, counts) for v in listed]
        out = []
        for sql in (
            summary_sql("sqlite", STATE_TRANSITIONS, **flags),
            violations_sql("sqlite", STATE_TRANSITIONS, **flags),
        ):
            cursor = conn.execute(sql, {k: v for k, v in bound.items() if f"@{k}" in sql})
            names = [d[0] for d in cursor.description]
            out.append([dict(zip(names, row, strict=True)) for row in cursor])
    except sqlite3.Error as exc:
        raise StoreError(f"verify on {path!r} failed: {exc}", retryable=False) from exc
    finally:
        conn.close()
    return out[0][0], out[1]


def _found_row(found: tuple[Any, ...], counts: dict[str, int]) -> dict[str, Any]:
    """A streamed violation in the shape the SQL statement returns."""
    kind, run_id, step_id, transition_id, name, when, detail = found
    return {
        "kind": kind,
        "pipeline_logging_id": run_id,
        "step_logging_id": step_id,
        "transition_id": transition_id,
        "entity_name": name,
        "transition_time": when,
        "detail": detail,
        "kind_total": counts[kind],
    }


_BQ_TYPES = {
    "org": "STRING",
    "run": "STRING",
    "since": "DATE",
    "until": "DATE",
    "tolerance_ms": "INT64",
    "max_per_kind": "INT64",
}


def _run_bigquery(
    store: Any, flags: dict[str, bool], params: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Both statements as BigQuery query jobs with query parameters."""
    from google.cloud import bigquery

    table = f"`{store.table_ref(STATE_TRANSITIONS)}`"
    out = []
    for sql in (
        summary_sql("bigquery", table, **flags),
        violations_sql("bigquery", table, **flags),
    ):
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, _BQ_TYPES[name], value)
                for name, value in params.items()
                if f"@{name}" in sql
            ]
        )
        try:
            rows = store.client.query(sql, job_config=config).result()
        except Exception as exc:  # google errors vary; the message names the cause
            raise StoreError(f"verify on {store!r} failed: {exc}", retryable=False) from exc
        out.append([dict(row.items()) for row in rows])
    return out[0][0], out[1]
