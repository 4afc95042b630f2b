"""The seed's five analysis queries (and `runs`) as data: names, parameters, columns.

SQL lives per dialect.

Every dialect module (persistence/queries/sqlite.py -> SQLITE_SQL, persistence/queries/bigquery.py
-> BIGQUERY_SQL) maps each catalog name to SQL that binds the *resolved* parameters below by name
(`:name` in SQLite, `@name` in BigQuery) and returns exactly `QuerySpec.columns`, in that order
and with those names. run_query normalises values afterwards, so dialects may return TIMESTAMP
as text or datetime, JSON as text or as a parsed list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from persistence.stores.base import STATE_TRANSITIONS

PARAM_TYPES = ("INT64", "DATE", "TIMESTAMP", "STRING", "BOOL")
COLUMN_TYPES = ("STRING", "INT64", "FLOAT64", "TIMESTAMP", "DATE", "JSON", "BOOL")


@attrs.frozen
class QueryParam:
    """One bound parameter: BigQuery scalar type, default, and whether the caller may set it.

    `derived` parameters are computed by run_query from the others (never passed by callers);
    dialects receive them like any other parameter. A default of None on a non-required,
    non-derived parameter means "filled in at run time" (today for as_of, now for now).
    """

    name: str
    type: str = attrs.field(validator=attrs.validators.in_(PARAM_TYPES))
    default: Any = None
    required: bool = False
    derived: bool = False
    description: str = ""


@attrs.frozen
class QueryColumn:
    """One output column, with the type run_query normalises its values to."""

    name: str
    type: str = attrs.field(validator=attrs.validators.in_(COLUMN_TYPES))


@attrs.frozen
class QuerySpec:
    """A named analysis query: what it answers, its parameters and its output columns."""

    name: str
    description: str
    params: tuple[QueryParam, ...]
    columns: tuple[QueryColumn, ...]
    derive: Callable[[dict[str, Any]], dict[str, Any]] = attrs.field(
        default=lambda p: {}, eq=False, repr=False
    )
    table: str = STATE_TRANSITIONS

    @property
    def column_names(self) -> tuple[str, ...]:
        """Output column names, in order."""
        return tuple(c.name for c in self.columns)

    @property
    def caller_params(self) -> tuple[QueryParam, ...]:
        """Parameters a caller may pass (everything but the derived ones)."""
        return tuple(p for p in self.params if not p.derived)


def _utc_now() -> dt.datetime:
    """Current time, UTC, microsecond precision."""
    return dt.datetime.now(dt.UTC)


def since_window(params: dict[str, Any]) -> dict[str, Any]:
    """First date of the window: as_of minus `days` days (the seed's CURRENT_DATE() - N)."""
    return {"since": params["as_of"] - dt.timedelta(days=params["days"])}


def stuck_window(params: dict[str, Any]) -> dict[str, Any]:
    """Hung cut-off: now - running_for_ms (default min_duration_ms); window: now's date - days."""
    running_for = params["running_for_ms"]
    if running_for is None:
        running_for = params["min_duration_ms"]
    return {
        "running_for_ms": running_for,
        "running_since": params["now"] - dt.timedelta(milliseconds=running_for),
        "since": params["now"].date() - dt.timedelta(days=params["days"]),
    }


AS_OF = QueryParam("as_of", "DATE", description="'Today' for the date window (default: UTC today)")
SINCE = QueryParam("since", "DATE", derived=True, description="as_of - days")


def days_param(default: int = 7) -> QueryParam:
    """The window length parameter."""
    return QueryParam("days", "INT64", default, description="Look back this many days")


# Cancelled runs and steps (metadata.cancelled) end FAILED but are not failures of the pipeline.
_INCLUDE_CANCELLED = QueryParam(
    "include_cancelled",
    "BOOL",
    False,
    description="Count cancelled runs and steps (metadata.cancelled) as failures too",
)


def _limit(default: int) -> QueryParam:
    """The row limit parameter."""
    return QueryParam("limit", "INT64", default, description="Maximum rows returned")


STUCK = QuerySpec(
    name="stuck",
    description=(
        "Stuck pipelines: long RUNNING durations (kind 'long_running', the seed's query) plus "
        "pipelines and steps whose latest transition entered RUNNING before now - running_for_ms "
        "(within the last `days` days) and never left it (kind 'hung')."
    ),
    params=(
        QueryParam("min_duration_ms", "INT64", 1_800_000, description="Long-RUNNING threshold"),
        QueryParam(
            "running_for_ms",
            "INT64",
            None,
            description="Hung threshold: still RUNNING after this long (default min_duration_ms)",
        ),
        QueryParam("now", "TIMESTAMP", description="Reference time (default: current UTC time)"),
        QueryParam(
            "days", "INT64", 7, description="Hung: look at RUNNING entries of the last N days"
        ),
        _limit(100),
        QueryParam("running_since", "TIMESTAMP", derived=True, description="now - running_for_ms"),
        QueryParam("since", "DATE", derived=True, description="date of now - days"),
    ),
    columns=(
        QueryColumn("kind", "STRING"),
        QueryColumn("entity_type", "STRING"),
        QueryColumn("pipeline_logging_id", "STRING"),
        QueryColumn("step_logging_id", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("from_state", "STRING"),
        QueryColumn("to_state", "STRING"),
        QueryColumn("transition_time", "TIMESTAMP"),
        QueryColumn("duration_ms", "INT64"),
        QueryColumn("duration_minutes", "FLOAT64"),
        QueryColumn("reason", "STRING"),
    ),
    derive=stuck_window,
)

FAILURES = QuerySpec(
    name="failures",
    description=(
        "Failure patterns by error_type over the last N days: each failed step counts once, and "
        "a failed pipeline counts only when no step of it failed (a config error, a crash); "
        "cancellations are left out unless include_cancelled."
    ),
    params=(days_param(), _INCLUDE_CANCELLED, AS_OF, SINCE),
    columns=(
        QueryColumn("error_type", "STRING"),
        QueryColumn("failure_count", "INT64"),
        QueryColumn("pipelines_affected", "INT64"),
        QueryColumn("avg_duration_seconds", "FLOAT64"),
    ),
    derive=since_window,
)

STEPS = QuerySpec(
    name="steps",
    description=(
        "Step-level failures by step and error_type, with the top 5 metadata.error_class values "
        "as a list of {value, count} (count desc, then value; null first); cancelled steps are "
        "left out unless include_cancelled."
    ),
    params=(days_param(), _limit(20), _INCLUDE_CANCELLED, AS_OF, SINCE),
    columns=(
        QueryColumn("step_name", "STRING"),
        QueryColumn("error_type", "STRING"),
        QueryColumn("failures", "INT64"),
        QueryColumn("top_error_classes", "JSON"),
    ),
    derive=since_window,
)

RETRIES = QuerySpec(
    name="retries",
    description=(
        "Retry behaviour: one row per step retried in the last N days: retries made, the "
        "max_retries it was allowed, all its transitions, the error type of its last failure "
        "and its outcome (COMPLETED after retrying, FAILED, CANCELLED or IN_PROGRESS)."
    ),
    params=(days_param(), _limit(50), AS_OF, SINCE),
    columns=(
        QueryColumn("pipeline_logging_id", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("error_type", "STRING"),
        QueryColumn("retries", "INT64"),
        QueryColumn("max_retries", "INT64"),
        QueryColumn("transition_count", "INT64"),
        QueryColumn("outcome", "STRING"),
    ),
    derive=since_window,
)

TIMELINE = QuerySpec(
    name="timeline",
    description="Every transition of one pipeline run, in time order.",
    params=(
        QueryParam("pipeline_logging_id", "STRING", required=True, description="The run's id"),
    ),
    columns=(
        QueryColumn("transition_time", "TIMESTAMP"),
        QueryColumn("entity_type", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("from_state", "STRING"),
        QueryColumn("to_state", "STRING"),
        QueryColumn("duration_seconds", "FLOAT64"),
        QueryColumn("reason", "STRING"),
    ),
)

RUNS = QuerySpec(
    name="runs",
    description=(
        "Recent pipeline runs, newest first: id, pipeline, org, state (RUNNING while live), "
        "start, end, duration, error type, and whether the run was cancelled."
    ),
    params=(
        days_param(),
        _limit(20),
        QueryParam("pipeline_id", "STRING", description="Only runs of this pipeline"),
        QueryParam("state", "STRING", description="Only runs in this state (e.g. FAILED)"),
        QueryParam("org_slug", "STRING", description="Only runs of this organisation"),
        AS_OF,
        SINCE,
    ),
    columns=(
        QueryColumn("pipeline_logging_id", "STRING"),
        QueryColumn("pipeline_id", "STRING"),
        QueryColumn("org_slug", "STRING"),
        QueryColumn("state", "STRING"),
        QueryColumn("start_time", "TIMESTAMP"),
        QueryColumn("end_time", "TIMESTAMP"),
        QueryColumn("duration_seconds", "FLOAT64"),
        QueryColumn("error_type", "STRING"),
        QueryColumn("cancelled", "BOOL"),
    ),
    derive=since_window,
)

CATALOG: Mapping[str, QuerySpec] = {
    q.name: q for q in (STUCK, FAILURES, STEPS, RETRIES, TIMELINE, RUNS)
}
QUERY_NAMES = tuple(CATALOG)
# Float columns are ROUND(x, 3) in every dialect so that answers compare exactly.
FLOAT_DIGITS = 3
