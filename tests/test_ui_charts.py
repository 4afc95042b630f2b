"""Chart layout: rows become the right traces, open bars close at render time, names escaped."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import SQLiteStore
from persistence.stores.base import STATE_TRANSITIONS
from pipestate.ui import charts
from pipestate.ui.data import OverviewData, RunData
from statemachine.records import TransitionRecord
from tests.strategies.records import transition_records

T0 = "2026-03-02T10:00:00.000000+00:00"
T1 = "2026-03-02T10:00:03.000000+00:00"
T2 = "2026-03-02T10:00:05.000000+00:00"


def segment(
    name: str, kind: str, start: str, end: str | None, outcome: str | None
) -> dict[str, Any]:
    """One ui_run_segments row."""
    return {
        "entity_type": "STEP",
        "entity_name": name,
        "step_logging_id": name,
        "kind": kind,
        "retry_count": 0,
        "start_time": start,
        "end_time": end,
        "outcome": outcome,
        "error_type": "DEPENDENCY_FAILURE" if kind == "NOT_RUN" else None,
    }


def run_data(segments: list[dict[str, Any]]) -> RunData:
    """A RunData around some segments, rendered at T2."""
    run = {
        "state": "RUNNING",
        "pipeline_logging_id": "r",
        "pipeline_name": "p",
        "start_time": T0,
        "end_time": None,
        "duration_seconds": None,
        "error_type": None,
    }
    return RunData("acme", run, segments, [], {"transitions": 1, "last_time": T0}, T2)


class TestGantt:
    """The Gantt chart's traces."""

    def test_bar_categories_and_lengths(self) -> None:
        """Each bar lands in its outcome's trace; an open bar runs to the render time."""
        fig = charts.gantt(
            run_data(
                [
                    segment("a", "RUNNING", T0, T1, "RETRYING"),
                    segment("a", "RETRYING", T1, T2, "RUNNING"),
                    segment("a", "RUNNING", T2, None, None),
                    segment("<b>b</b>", "NOT_RUN", T1, T1, "FAILED"),
                ]
            )
        )
        traces = {t.name: t for t in fig.data}
        assert set(traces) == {
            "failed, retried",
            "waiting to retry",
            "running",
            "dependency failed",
        }
        assert list(traces["failed, retried"].x) == [3000.0]
        assert list(traces["waiting to retry"].x) == [2000.0]
        assert list(traces["running"].x) == [0.0]
        assert list(traces["dependency failed"].y) == ["&lt;b&gt;b&lt;/b&gt;"]

    def test_empty_run_says_so(self) -> None:
        """A run without bars gets a note instead of an empty plot."""
        fig = charts.gantt(run_data([]))
        assert fig.layout.annotations[0].text == "no steps recorded"


class TestOverviewCharts:
    """The overview's figures keep every store row and fill the whole window."""

    def test_failure_heatmap_covers_the_window(self) -> None:
        """days + 1 rows of 24 hours; each store row lands in its cell."""
        as_of = dt.date(2026, 3, 2)
        data = OverviewData(
            "acme", as_of, 3, [], [], [], [{"day": "2026-03-01", "hour": 5, "failures": 4}], []
        )
        heat = charts.failure_heatmap(data).data[0]
        assert list(heat.y) == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
        assert heat.z[2][5] == 4
        assert sum(map(sum, heat.z)) == 4

    def test_errors_stacked_by_type(self) -> None:
        """One trace per error type, None shown as a placeholder."""
        rows = [
            {"day": "2026-03-01", "error_type": "TRANSIENT", "failures": 2},
            {"day": "2026-03-02", "error_type": None, "failures": 1},
            {"day": "2026-03-02", "error_type": "TRANSIENT", "failures": 5},
        ]
        data = OverviewData("acme", dt.date(2026, 3, 2), 7, rows, [], [], [], [])
        fig = charts.errors_over_time(data)
        assert {t.name: list(t.y) for t in fig.data} == {"TRANSIENT": [2, 5], "(none)": [1]}
        assert fig.layout.barmode == "stack"


class TestRunPage:
    """The run page says when it shows only part of a huge run."""

    def test_truncation_is_stated(self) -> None:
        """With fewer transitions shown than the run has, the page says how many of how many."""
        from pipestate.ui import render

        transition = {
            "transition_time": T0,
            "entity_type": "STEP",
            "entity_name": "a",
            "from_state": "PENDING",
            "to_state": "RUNNING",
            "duration_seconds": 0.0,
            "retry_count": 0,
            "reason": None,
            "error_type": None,
        }
        data = run_data([])
        data = RunData(data.org, data.run, [], [transition], {"transitions": 5000}, T2)
        page = render.page_for(served=False, org="acme", section="run")
        html = render.render_run(data, page)
        assert "Showing the first 1 of 5000 transitions" in html


class TestAnyRecords:
    """Whatever the stored rows, every page builds (no crash on odd states, names or metadata)."""

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records=st.lists(transition_records(id_prefix="ui"), min_size=1, max_size=20))
    def test_pages_build_for_any_rows(self, records: list[TransitionRecord]) -> None:
        """For arbitrary valid records, the overview and every run's page render to HTML."""
        from pipestate.ui import render
        from pipestate.ui.data import load_overview, load_run

        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "any.db")
            try:
                assert store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records]).written
                for org in {records[0].org_slug}:  # one overview per example keeps this fast
                    as_of = max(r.transition_date for r in records)
                    data = load_overview(store, org, days=366, as_of=as_of)
                    page = render.page_for(
                        served=True,
                        org=org,
                        section="overview",
                        figures=render.overview_figures(data),
                    )
                    assert "fig-errors" in render.render_overview(data, page, None)
                for r in records:
                    run = load_run(store, r.org_slug, r.pipeline_logging_id)
                    if run is None:  # a run without PIPELINE rows has no header
                        assert r.pipeline_logging_id not in {
                            x.pipeline_logging_id
                            for x in records
                            if x.entity_type == "PIPELINE" and x.org_slug == r.org_slug
                        }
                        continue
                    figures = [render.figure("fig-gantt", charts.gantt(run))]
                    page = render.page_for(
                        served=True, org=r.org_slug, section="run", figures=figures
                    )
                    assert "fig-gantt" in render.render_run(run, page)
            finally:
                store.close()
