"""The static report: one self-contained HTML file (Plotly inlined) that opens offline."""

from __future__ import annotations

import datetime as dt

from persistence.stores.base import Store
from pipestate.ui import charts, render
from pipestate.ui.data import RunFilters, load_overview, load_run, load_runs


class UnknownRun(LookupError):
    """The org has no run with the requested id."""


def build_report(
    store: Store,
    org: str,
    *,
    run_id: str | None = None,
    days: int = 7,
    as_of: dt.date | None = None,
) -> str:
    """The report's HTML: one run's page with `run_id`, else the overview and recent runs."""
    if run_id is not None:
        data = load_run(store, org, run_id)
        if data is None:
            raise UnknownRun(f"org {org!r} has no run {run_id!r}.")
        figures = [render.figure("fig-gantt", charts.gantt(data))]
        page = render.page_for(served=False, org=org, section="run", figures=figures)
        return render.render_run(data, page)
    overview = load_overview(store, org, days=days, as_of=as_of)
    end = overview.as_of
    runs = load_runs(
        store, org, RunFilters(date_from=end - dt.timedelta(days=days), date_to=end, limit=100)
    )
    page = render.page_for(
        served=False, org=org, section="overview", figures=render.overview_figures(overview)
    )
    return render.render_overview(overview, page, runs)
