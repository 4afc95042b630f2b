"""The dashboard in a real headless Chromium: pages render their charts with no console errors,
links work, a running run updates live, hostile strings stay text, orgs stay apart, and the
static report renders offline from a file:// URL.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import SQLiteStore
from persistence.queries.dashboard import run_dashboard_query
from pipestate.ui.charts import _segment_style
from pipestate.ui.report import build_report
from statemachine.records import TransitionRecord
from tests.dashboard_data import HOSTILE_MESSAGE, HOSTILE_PIPELINE
from tests.test_persistence_parity import NOW
from tests.ui_server import KEYS, PageWatch, UIServer

ACME_KEY, GLOBEX_KEY = list(KEYS)
WINDOW = {"org": "acme", "days": 7, "as_of": NOW.date()}


def sign_in(watch: PageWatch, server: UIServer, key: str) -> None:
    """Enter the API key on the sign-in form, as a person would, and wait for the overview.

    Waits for the overview's load event, not only its commit: Chromium 156 can leave a
    page.close() issued while that navigation is still loading unanswered forever (seen
    about once in 15 runs of this module; it hung a CI run for 80 minutes).
    """
    watch.page.goto(f"{server.url}/ui/login")
    watch.page.fill("#api_key", key)
    watch.page.click("button[type=submit]")
    watch.page.wait_for_url("**/ui/overview", wait_until="load")


def expected_overview(db: Path) -> dict[str, list[tuple[Any, int]]]:
    """What each overview chart must hold, from the store's own aggregations."""
    store = SQLiteStore(db)
    try:
        errors = run_dashboard_query(store, "ui_errors_over_time", **WINDOW)
        retries = run_dashboard_query(store, "ui_retry_success", **WINDOW)
        heat = run_dashboard_query(store, "ui_transition_heatmap", **WINDOW)
    finally:
        store.close()
    by_type = collections.Counter(r["error_type"] or "(none)" for r in errors)
    dims = collections.Counter(r["dimension"] for r in retries)
    return {
        "fig-errors": sorted(by_type.items()),
        "fig-retries": [("by pipeline", dims["pipeline"]), ("by error type", dims["error_type"])],
        "fig-transitions": [(None, len({r["from_state"] for r in heat}))],
        "fig-failures": [(None, WINDOW["days"] + 1)],
    }


def assert_overview_charts(watch: PageWatch, db: Path) -> None:
    """Each overview chart has the expected traces and bar (or row) counts."""
    traces = watch.traces()
    expected = expected_overview(db)
    assert sorted((t["name"], t["points"]) for t in traces["fig-errors"]) == expected["fig-errors"]
    for chart in ("fig-retries", "fig-transitions", "fig-failures"):
        assert [(t["name"], t["points"]) for t in traces[chart]] == expected[chart], chart


def gantt_expected(db: Path, run_id: str) -> list[tuple[str, int]]:
    """The Gantt's traces: one per bar category present, with that category's bar count."""
    store = SQLiteStore(db)
    try:
        rows = run_dashboard_query(store, "ui_run_segments", org="acme", pipeline_logging_id=run_id)
    finally:
        store.close()
    counts = collections.Counter(_segment_style(r) for r in rows)
    return sorted(counts.items())


@pytest.fixture(scope="module")
def acme_context(chromium: Any, ui_server: UIServer) -> Iterator[Any]:
    """One browser context signed in as acme (its HTTP cache keeps plotly.js between pages)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        sign_in(PageWatch(page), ui_server, ACME_KEY)
        page.close()
        yield context
    finally:
        context.close()


@pytest.fixture
def acme_page(acme_context: Any) -> Iterator[PageWatch]:
    """A new page in acme's signed-in context, closed after the test."""
    page = acme_context.new_page()
    try:
        yield PageWatch(page)
    finally:
        page.close()


class TestServedPages:
    """The served pages in Chromium."""

    def test_overview(self, acme_page: PageWatch, ui_server: UIServer, dashboard_db: Any) -> None:
        """The overview draws its four charts with the store's numbers and logs no error."""
        acme_page.page.goto(f"{ui_server.url}/ui/overview?to={NOW.date()}")
        acme_page.rendered()
        assert_overview_charts(acme_page, dashboard_db[0])
        assert acme_page.page.locator("#stuck tbody tr").count() > 0
        assert acme_page.errors == []

    def test_runs_list_links_to_run(
        self, acme_page: PageWatch, ui_server: UIServer, dashboard_db: Any
    ) -> None:
        """Clicking a run opens its Gantt; hostile names and messages show as text, run nothing."""
        run_id = dashboard_db[1]["dependency"]
        page = acme_page.page
        page.goto(f"{ui_server.url}/ui/runs?from=2026-02-20&to={NOW.date()}")
        acme_page.rendered()
        page.click(f"tr[data-run='{run_id}'] a")
        page.wait_for_url(f"**/ui/runs/{run_id}")
        acme_page.rendered()
        traces = acme_page.traces()["fig-gantt"]
        assert sorted((t["name"], t["points"]) for t in traces) == gantt_expected(
            dashboard_db[0], run_id
        )
        assert "dependency failed" in [t["name"] for t in traces]
        # The run's pipeline is named <script>alert(1)</script>; its error message is HTML.
        assert page.locator("h1").inner_text().startswith(HOSTILE_PIPELINE)
        assert page.locator(".message").first.inner_text() == HOSTILE_MESSAGE
        assert page.locator("img").count() == 0
        ticks = page.locator("#fig-gantt .ytick text").all_text_contents()
        assert f"pipeline: {HOSTILE_PIPELINE}" in ticks
        assert acme_page.dialogs == []
        assert acme_page.errors == []

    def test_live_run_updates(
        self, acme_page: PageWatch, ui_server: UIServer, dashboard_db: Any
    ) -> None:
        """A RUNNING run's page changes by itself when a new transition lands in the store."""
        run_id = dashboard_db[1]["running"]
        page = acme_page.page
        page.goto(f"{ui_server.url}/ui/runs/{run_id}")
        acme_page.rendered()
        assert page.locator("#live").count() == 1
        before = page.locator("#transitions tbody tr").count()
        store = SQLiteStore(ui_server.db)
        try:
            when = dt.datetime.now(dt.UTC)
            record = TransitionRecord(
                transition_id=f"live-{run_id}",
                org_slug="acme",
                pipeline_logging_id=run_id,
                step_logging_id=f"{run_id}-s1",
                entity_type="STEP",
                entity_name="transform",
                from_state="RUNNING",
                to_state="COMPLETED",
                transition_time=when,
                transition_date=when.date(),
                duration_in_state_ms=1000,
            )
            assert store.write_batch("org_meta_state_transitions", [record.to_row()]).written == 1
        finally:
            store.close()
        # The page polls, sees a new transition count and reloads with one more row.
        page.locator("#transitions tbody tr").nth(before).wait_for(timeout=30_000)
        acme_page.rendered()
        names = [t["name"] for t in acme_page.traces()["fig-gantt"]]
        assert "completed" in names
        assert acme_page.errors == []

    def test_other_org_cannot_reach_run(
        self, browser_page: PageWatch, ui_server: UIServer, dashboard_db: Any
    ) -> None:
        """Signed in as globex, acme's run is not found and acme's runs are not listed."""
        run_id = dashboard_db[1]["dependency"]
        sign_in(browser_page, ui_server, GLOBEX_KEY)
        page = browser_page.page
        response = page.goto(f"{ui_server.url}/ui/runs/{run_id}")
        assert response is not None
        assert response.status == 404
        assert HOSTILE_PIPELINE not in page.content()
        page.goto(f"{ui_server.url}/ui/runs?from=2026-02-20&to={NOW.date()}")
        assert page.locator(f"tr[data-run='{run_id}']").count() == 0
        assert page.locator("tr[data-run]").count() > 0


class TestStaticReport:
    """The report file works offline."""

    def test_report_renders_offline(
        self, browser_page: PageWatch, dashboard_db: Any, tmp_path: Path
    ) -> None:
        """From file:// with every network request blocked, every chart renders, no errors."""
        store = SQLiteStore(dashboard_db[0])
        try:
            html = build_report(store, "acme", as_of=NOW.date())
            run_html = build_report(store, "acme", run_id=dashboard_db[1]["dependency"])
        finally:
            store.close()
        blocked: list[str] = []
        page = browser_page.page
        page.context.set_offline(True)
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (blocked.append(route.request.url), route.abort())
            ),
        )
        for name, text in (("overview", html), ("run", run_html)):
            path = tmp_path / f"{name}.html"
            path.write_text(text, encoding="utf-8")
            page.goto(path.as_uri())
            browser_page.rendered()
            if name == "overview":
                assert_overview_charts(browser_page, dashboard_db[0])
            else:
                assert browser_page.traces()["fig-gantt"]
        assert blocked == []
        assert browser_page.errors == []
        assert browser_page.dialogs == []
