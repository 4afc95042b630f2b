"""What each page shows, read from the store: every number is aggregated by the store's SQL.

These functions only call persistence.queries.dashboard queries (one org at a time) and bundle
their rows; charts and templates lay the rows out, they never count anything.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from persistence.queries.dashboard import run_dashboard_query
from persistence.stores.base import Store

TERMINAL_STATES = ("COMPLETED", "FAILED", "TIMEOUT")
RUN_STATES = ("RUNNING", *TERMINAL_STATES)
MAX_DAYS = 366


@attrs.frozen
class RunFilters:
    """The runs list's filters: pipeline name, latest state, date range (inclusive, UTC)."""

    pipeline: str | None = None
    state: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(RUN_STATES))
    )
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    limit: int = 200

    def window(self, today: dt.date) -> tuple[dt.date, int]:
        """(as_of, days) of the date range; 7 days up to today when not given."""
        as_of = self.date_to or today
        start = self.date_from or (as_of - dt.timedelta(days=7))
        if start > as_of:
            raise ValueError(f"date range: 'from' must not be after 'to' (got {start} > {as_of}).")
        return as_of, min((as_of - start).days, MAX_DAYS)


@attrs.frozen
class OverviewData:
    """The overview's rows: each field holds one dashboard query's answer."""

    org: str
    as_of: dt.date
    days: int
    errors_over_time: list[dict[str, Any]]
    retry_success: list[dict[str, Any]]
    transition_heatmap: list[dict[str, Any]]
    failure_heatmap: list[dict[str, Any]]
    stuck: list[dict[str, Any]]


@attrs.frozen
class RunData:
    """One run's header, Gantt bars and transitions; `generated_at` closes still-open bars."""

    org: str
    run: dict[str, Any]
    segments: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    progress: dict[str, Any]
    generated_at: str

    @property
    def live(self) -> bool:
        """True while the run has not reached a terminal state."""
        return self.run["state"] not in TERMINAL_STATES


def utc_today() -> dt.date:
    """Today's date in UTC."""
    return dt.datetime.now(dt.UTC).date()


def load_overview(
    store: Store, org: str, *, days: int = 7, as_of: dt.date | None = None
) -> OverviewData:
    """Run the overview's five aggregations for one org and window."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= MAX_DAYS:
        raise ValueError(f"days must be an int from 1 to {MAX_DAYS} (got {days!r}).")
    now = dt.datetime.now(dt.UTC)
    if as_of is not None:  # a past window: "stuck" as seen at the end of its last day
        now = min(now, dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC))
    as_of = as_of or now.date()
    window = {"org": org, "days": days, "as_of": as_of}
    return OverviewData(
        org=org,
        as_of=as_of,
        days=days,
        errors_over_time=run_dashboard_query(store, "ui_errors_over_time", **window),
        retry_success=run_dashboard_query(store, "ui_retry_success", **window),
        transition_heatmap=run_dashboard_query(store, "ui_transition_heatmap", **window),
        failure_heatmap=run_dashboard_query(store, "ui_failure_heatmap", **window),
        stuck=run_dashboard_query(store, "ui_stuck", org=org, days=days, now=now),
    )


def load_runs(store: Store, org: str, filters: RunFilters) -> list[dict[str, Any]]:
    """The org's runs matching the filters, newest first."""
    as_of, days = filters.window(utc_today())
    return run_dashboard_query(
        store,
        "ui_runs",
        org=org,
        pipeline=filters.pipeline or None,
        state=filters.state,
        as_of=as_of,
        days=days,
        limit=filters.limit,
    )


def load_progress(store: Store, org: str, run_id: str) -> dict[str, Any]:
    """How many transitions the run has and the latest one's time (what the live page polls)."""
    rows = run_dashboard_query(store, "ui_run_progress", org=org, pipeline_logging_id=run_id)
    return rows[0]


def load_run(store: Store, org: str, run_id: str) -> RunData | None:
    """One run of the org, or None when the org has no run with that id."""
    params = {"org": org, "pipeline_logging_id": run_id}
    header = run_dashboard_query(store, "ui_run", **params)
    if not header:
        return None
    return RunData(
        org=org,
        run=header[0],
        segments=run_dashboard_query(store, "ui_run_segments", **params),
        transitions=run_dashboard_query(store, "ui_run_transitions", **params),
        progress=load_progress(store, org, run_id),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
    )
