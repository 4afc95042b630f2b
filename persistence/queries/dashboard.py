"""The dashboard's aggregations as data: names, parameters, columns. SQL lives per dialect.

Same contract as the analysis catalog (persistence.queries.catalog): each dialect module
(dashboard_sqlite.DASHBOARD_SQLITE_SQL, dashboard_bigquery.DASHBOARD_BIGQUERY_SQL) maps every
name below to SQL that binds the resolved parameters by name and returns exactly the spec's
columns. Every query is scoped to one org (`org` is required): the dashboard shows one tenant at
a time. Values pulled out of `metadata` are returned as text (JSON_EXTRACT_SCALAR semantics) so
that both stores give identical answers whatever a processor put there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence.queries._run import normalise_rows, resolve_params
from persistence.queries.catalog import (
    AS_OF as _AS_OF,
)
from persistence.queries.catalog import (
    SINCE as _SINCE,
)
from persistence.queries.catalog import (
    QueryColumn,
    QueryParam,
    QuerySpec,
)
from persistence.queries.catalog import (
    days_param as _days,
)
from persistence.queries.catalog import (
    since_window as _since,
)
from persistence.queries.catalog import (
    stuck_window as _stuck,
)
from persistence.stores.base import Store

_ORG = QueryParam("org", "STRING", required=True, description="The org whose rows are read")
_RUN = QueryParam("pipeline_logging_id", "STRING", required=True, description="The run's id")
_RUN_COLUMNS = (
    QueryColumn("pipeline_logging_id", "STRING"),
    QueryColumn("pipeline_name", "STRING"),
    QueryColumn("state", "STRING"),
    QueryColumn("start_time", "TIMESTAMP"),
    QueryColumn("end_time", "TIMESTAMP"),
    QueryColumn("duration_seconds", "FLOAT64"),
    QueryColumn("error_type", "STRING"),
)

RUNS = QuerySpec(
    name="ui_runs",
    description="Recent runs of one org, newest first: state, start, end, duration, error type.",
    params=(
        _ORG,
        QueryParam("pipeline", "STRING", description="Only runs of this pipeline"),
        QueryParam("state", "STRING", description="Only runs whose latest state is this"),
        _days(),
        _AS_OF,
        QueryParam("limit", "INT64", 200, description="Maximum rows returned"),
        _SINCE,
    ),
    columns=_RUN_COLUMNS,
    derive=_since,
)

RUN = QuerySpec(
    name="ui_run",
    description="One run's header (same columns as ui_runs); no row when the org has no such run.",
    params=(_ORG, _RUN),
    columns=_RUN_COLUMNS,
)

RUN_PROGRESS = QuerySpec(
    name="ui_run_progress",
    description="How far one run's audit trail has got: transition count and latest time.",
    params=(_ORG, _RUN),
    columns=(QueryColumn("transitions", "INT64"), QueryColumn("last_time", "TIMESTAMP")),
)

_RUN_LIMIT = QueryParam(
    "limit", "INT64", 2000, description="Maximum rows returned (a page stays readable)"
)

SEGMENTS = QuerySpec(
    name="ui_run_segments",
    description=(
        "The Gantt bars of one run: each stay in RUNNING or RETRYING from its transition to the "
        "entity's next one (end NULL while it lasts), plus kind NOT_RUN for a step that failed "
        "from PENDING (dependency failed, timed out or cancelled before it started)."
    ),
    params=(_ORG, _RUN, _RUN_LIMIT),
    columns=(
        QueryColumn("entity_type", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("step_logging_id", "STRING"),
        QueryColumn("kind", "STRING"),
        QueryColumn("retry_count", "INT64"),
        QueryColumn("start_time", "TIMESTAMP"),
        QueryColumn("end_time", "TIMESTAMP"),
        QueryColumn("outcome", "STRING"),
        QueryColumn("error_type", "STRING"),
    ),
)

TRANSITIONS = QuerySpec(
    name="ui_run_transitions",
    description="The transitions of one run in time order (first `limit`), with error context.",
    params=(_ORG, _RUN, _RUN_LIMIT),
    columns=(
        QueryColumn("transition_time", "TIMESTAMP"),
        QueryColumn("entity_type", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("from_state", "STRING"),
        QueryColumn("to_state", "STRING"),
        QueryColumn("duration_seconds", "FLOAT64"),
        QueryColumn("retry_count", "INT64"),
        QueryColumn("reason", "STRING"),
        QueryColumn("error_type", "STRING"),
        QueryColumn("error_message", "STRING"),
        QueryColumn("stack_trace", "STRING"),
        QueryColumn("error_class", "STRING"),
        QueryColumn("is_retryable", "STRING"),
        QueryColumn("next_retry_delay_seconds", "STRING"),
    ),
)

ERRORS_OVER_TIME = QuerySpec(
    name="ui_errors_over_time",
    description="Failures per day and error_type in the window (cancellations excluded).",
    params=(_ORG, _days(), _AS_OF, _SINCE),
    columns=(
        QueryColumn("day", "DATE"),
        QueryColumn("error_type", "STRING"),
        QueryColumn("failures", "INT64"),
    ),
    derive=_since,
)

RETRY_SUCCESS = QuerySpec(
    name="ui_retry_success",
    description=(
        "Of the steps that retried in the window, how many then COMPLETED: by pipeline "
        "(dimension 'pipeline') and by the error type they retried on ('error_type')."
    ),
    params=(_ORG, _days(), _AS_OF, _SINCE),
    columns=(
        QueryColumn("dimension", "STRING"),
        QueryColumn("name", "STRING"),
        QueryColumn("retried_steps", "INT64"),
        QueryColumn("recovered_steps", "INT64"),
        QueryColumn("success_rate", "FLOAT64"),
    ),
    derive=_since,
)

TRANSITION_HEATMAP = QuerySpec(
    name="ui_transition_heatmap",
    description="Transition counts by from_state x to_state in the window (pipelines and steps).",
    params=(_ORG, _days(), _AS_OF, _SINCE),
    columns=(
        QueryColumn("from_state", "STRING"),
        QueryColumn("to_state", "STRING"),
        QueryColumn("transitions", "INT64"),
    ),
    derive=_since,
)

FAILURE_HEATMAP = QuerySpec(
    name="ui_failure_heatmap",
    description="Failures by UTC day x hour of day in the window (cancellations excluded).",
    params=(_ORG, _days(), _AS_OF, _SINCE),
    columns=(
        QueryColumn("day", "DATE"),
        QueryColumn("hour", "INT64"),
        QueryColumn("failures", "INT64"),
    ),
    derive=_since,
)

STUCK = QuerySpec(
    name="ui_stuck",
    description=(
        "The org's stuck list: the catalog's `stuck` query for one org, and long-running runs "
        "only within the last `days` days (the catalog looks at all history)."
    ),
    params=(
        _ORG,
        QueryParam("min_duration_ms", "INT64", 1_800_000, description="Long-RUNNING threshold"),
        QueryParam("running_for_ms", "INT64", None, description="Hung threshold"),
        QueryParam("now", "TIMESTAMP", description="Reference time (default: now, UTC)"),
        _days(),
        QueryParam("limit", "INT64", 50, description="Maximum rows returned"),
        QueryParam("running_since", "TIMESTAMP", derived=True, description="now - running_for"),
        QueryParam("since", "DATE", derived=True, description="date of now - days"),
    ),
    columns=(
        QueryColumn("kind", "STRING"),
        QueryColumn("entity_type", "STRING"),
        QueryColumn("pipeline_logging_id", "STRING"),
        QueryColumn("entity_name", "STRING"),
        QueryColumn("from_state", "STRING"),
        QueryColumn("to_state", "STRING"),
        QueryColumn("transition_time", "TIMESTAMP"),
        QueryColumn("duration_ms", "INT64"),
        QueryColumn("reason", "STRING"),
    ),
    derive=_stuck,
)

DASHBOARD: Mapping[str, QuerySpec] = {
    q.name: q
    for q in (
        RUNS,
        RUN,
        RUN_PROGRESS,
        SEGMENTS,
        TRANSITIONS,
        ERRORS_OVER_TIME,
        RETRY_SUCCESS,
        TRANSITION_HEATMAP,
        FAILURE_HEATMAP,
        STUCK,
    )
}
OVERVIEW_QUERIES = (
    "ui_errors_over_time",
    "ui_retry_success",
    "ui_transition_heatmap",
    "ui_failure_heatmap",
    "ui_stuck",
)


def run_dashboard_query(store: Store, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run one dashboard query on any store; JSON-ready rows with the spec's columns."""
    try:
        spec = DASHBOARD[name]
    except KeyError:
        raise ValueError(
            f"unknown dashboard query {name!r}; expected one of {sorted(DASHBOARD)}."
        ) from None
    return normalise_rows(spec, store.query(name, resolve_params(spec, params)))
