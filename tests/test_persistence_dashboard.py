"""The dashboard's SQL aggregations: right answers on SQLite (checked against a Python oracle over
the same records), one org at a time, and identical answers from the BigQuery emulator.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from persistence import SQLiteStore
from persistence.queries import QueryError
from persistence.queries.dashboard import DASHBOARD, run_dashboard_query
from persistence.queries.dashboard_bigquery import DASHBOARD_BIGQUERY_SQL
from persistence.queries.dashboard_sqlite import DASHBOARD_SQLITE_SQL
from persistence.stores.bigquery import BigQueryStore
from statemachine.records import TransitionRecord
from tests.bq_emulator import BQEmulator, drop_dataset
from tests.dashboard_data import HOSTILE_PIPELINE, dashboard_history
from tests.test_persistence_parity import NOW, History, bq_store_for, load

WINDOW = {"org": "acme", "as_of": NOW.date(), "days": 7}
SINCE = NOW.date() - dt.timedelta(days=7)


def _in_window(r: TransitionRecord, org: str = "acme") -> bool:
    """The oracle's window: the org's rows dated since..as_of."""
    return r.org_slug == org and SINCE <= r.transition_date <= NOW.date()


def _is_failure(r: TransitionRecord) -> bool:
    """A FAILED row that is not a cancellation."""
    return r.to_state == "FAILED" and not (r.metadata or {}).get("cancelled")


@pytest.fixture(scope="module")
def sqlite_history(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SQLiteStore, History, dict[str, str]]]:
    """The dashboard history in a SQLite file."""
    history, ids = dashboard_history()
    store = SQLiteStore(tmp_path_factory.mktemp("dashboard") / "dash.db")
    load(store, history.records)
    yield store, history, ids
    store.close()


class TestOverviewQueries:
    """The overview's aggregations equal a direct count over the records."""

    def test_errors_over_time(self, sqlite_history: Any) -> None:
        """Failures per day and error type, cancellations left out, other orgs left out."""
        store, history, _ = sqlite_history
        oracle = collections.Counter(
            (r.transition_date.isoformat(), r.error_type)
            for r in history.records
            if _in_window(r) and _is_failure(r)
        )
        rows = run_dashboard_query(store, "ui_errors_over_time", **WINDOW)
        assert {(r["day"], r["error_type"]): r["failures"] for r in rows} == oracle
        assert "UNKNOWN" not in {r["error_type"] for r in rows}  # the cancelled run's type

    def test_transition_heatmap(self, sqlite_history: Any) -> None:
        """Every from x to pair is counted once per transition of the org in the window."""
        store, history, _ = sqlite_history
        oracle = collections.Counter(
            (r.from_state, r.to_state) for r in history.records if _in_window(r)
        )
        rows = run_dashboard_query(store, "ui_transition_heatmap", **WINDOW)
        assert {(r["from_state"], r["to_state"]): r["transitions"] for r in rows} == oracle

    def test_failure_heatmap(self, sqlite_history: Any) -> None:
        """Failures by UTC day and hour of day."""
        store, history, _ = sqlite_history
        oracle = collections.Counter(
            (r.transition_date.isoformat(), r.transition_time.hour)
            for r in history.records
            if _in_window(r) and _is_failure(r)
        )
        rows = run_dashboard_query(store, "ui_failure_heatmap", **WINDOW)
        assert {(r["day"], r["hour"]): r["failures"] for r in rows} == oracle

    def test_retry_success(self, sqlite_history: Any) -> None:
        """Of the steps that retried, the share that later COMPLETED, by pipeline and error type."""
        store, history, _ = sqlite_history
        names = {
            r.pipeline_logging_id: r.entity_name
            for r in history.records
            if r.entity_type == "PIPELINE"
        }
        completed = {r.step_logging_id for r in history.records if r.to_state == "COMPLETED"}
        retried = {
            (r.step_logging_id, r.error_type, names.get(r.pipeline_logging_id))
            for r in history.records
            if _in_window(r) and r.entity_type == "STEP" and r.to_state == "RETRYING"
        }
        oracle: dict[tuple[str, Any], list[set[Any]]] = collections.defaultdict(
            lambda: [set(), set()]
        )
        for step, error_type, pipeline in retried:
            for key in (("pipeline", pipeline), ("error_type", error_type)):
                oracle[key][0].add(step)
                if step in completed:
                    oracle[key][1].add(step)
        rows = run_dashboard_query(store, "ui_retry_success", **WINDOW)
        got = {
            (r["dimension"], r["name"]): (r["retried_steps"], r["recovered_steps"]) for r in rows
        }
        assert got == {k: (len(v[0]), len(v[1])) for k, v in oracle.items()}
        for row in rows:
            assert row["success_rate"] == round(row["recovered_steps"] / row["retried_steps"], 3)
        assert any(0 < r["success_rate"] < 1 for r in rows)

    def test_stuck_is_per_org(self, sqlite_history: Any) -> None:
        """The hung acme run is in acme's stuck list and in no other org's."""
        store, _, ids = sqlite_history
        acme = run_dashboard_query(store, "ui_stuck", org="acme", now=NOW)
        hung = [(r["pipeline_logging_id"], r["entity_name"]) for r in acme if r["kind"] == "hung"]
        assert (ids["running"], "transform") in hung
        assert (ids["running"], "hourly-sync") in hung
        other = run_dashboard_query(store, "ui_stuck", org="globex", now=NOW, running_for_ms=0)
        assert other
        assert ids["running"] not in {r["pipeline_logging_id"] for r in other}


class TestRunQueries:
    """The runs list and one run's Gantt bars, transitions and progress."""

    def test_runs_list(self, sqlite_history: Any) -> None:
        """One row per run of the org in the window, newest first, state = latest transition."""
        store, history, ids = sqlite_history
        rows = run_dashboard_query(store, "ui_runs", **WINDOW)
        latest: dict[str, TransitionRecord] = {}
        for r in history.records:
            if _in_window(r) and r.entity_type == "PIPELINE":
                latest[r.pipeline_logging_id] = r
        assert {r["pipeline_logging_id"]: r["state"] for r in rows} == {
            pid: r.to_state for pid, r in latest.items()
        }
        starts = [r["start_time"] for r in rows]
        assert starts == sorted(starts, reverse=True)
        running = [r for r in rows if r["state"] == "RUNNING"]
        assert running
        assert all(r["end_time"] is None and r["duration_seconds"] is None for r in running)
        dep = next(r for r in rows if r["pipeline_logging_id"] == ids["dependency"])
        assert (dep["pipeline_name"], dep["duration_seconds"]) == (HOSTILE_PIPELINE, 9.0)

    def test_runs_filters(self, sqlite_history: Any) -> None:
        """The pipeline and state filters keep exactly the matching runs."""
        store, _, ids = sqlite_history
        only = run_dashboard_query(store, "ui_runs", pipeline=HOSTILE_PIPELINE, **WINDOW)
        assert [r["pipeline_logging_id"] for r in only] == [ids["dependency"]]
        failed = run_dashboard_query(store, "ui_runs", state="FAILED", **WINDOW)
        assert failed
        assert {r["state"] for r in failed} == {"FAILED"}

    def test_segments(self, sqlite_history: Any) -> None:
        """Attempt bars end at the next transition; RETRYING gaps and NOT_RUN steps are bars too."""
        store, _, ids = sqlite_history
        rows = run_dashboard_query(
            store, "ui_run_segments", org="acme", pipeline_logging_id=ids["dependency"]
        )
        shape = [(r["entity_name"], r["kind"], r["outcome"], r["error_type"]) for r in rows]
        assert shape == [
            (HOSTILE_PIPELINE, "RUNNING", "FAILED", "PERMANENT"),
            ("extract", "RUNNING", "RETRYING", "TRANSIENT"),
            ("extract", "RETRYING", "RUNNING", None),
            ("extract", "RUNNING", "FAILED", "PERMANENT"),
            ("load", "NOT_RUN", "FAILED", "DEPENDENCY_FAILURE"),
        ]
        for before, after in itertools.pairwise(rows[1:4]):
            assert before["end_time"] == after["start_time"]

    def test_transitions_carry_error_context(self, sqlite_history: Any) -> None:
        """The run's transitions come with error class, retryability and retry delay as text."""
        store, _, ids = sqlite_history
        rows = run_dashboard_query(
            store, "ui_run_transitions", org="acme", pipeline_logging_id=ids["dependency"]
        )
        retrying = next(r for r in rows if r["to_state"] == "RETRYING")
        assert (retrying["error_class"], retrying["is_retryable"]) == (
            "builtins.ConnectionError",
            "true",
        )
        assert retrying["next_retry_delay_seconds"] == "2.5"
        failed = next(
            r for r in rows if r["to_state"] == "FAILED" and r["entity_name"] == "extract"
        )
        assert failed["is_retryable"] == "false"
        assert failed["stack_trace"].startswith("Traceback")

    def test_run_rows_are_limited(self, sqlite_history: Any) -> None:
        """A huge run's bars and transitions stop at `limit`, keeping the first in time order."""
        store, _, ids = sqlite_history
        run = {"org": "acme", "pipeline_logging_id": ids["dependency"]}
        full = run_dashboard_query(store, "ui_run_transitions", **run)
        assert run_dashboard_query(store, "ui_run_transitions", limit=2, **run) == full[:2]
        bars = run_dashboard_query(store, "ui_run_segments", **run)
        assert run_dashboard_query(store, "ui_run_segments", limit=3, **run) == bars[:3]

    def test_other_org_sees_nothing(self, sqlite_history: Any) -> None:
        """Another org asking for acme's run id gets no header, no bars, no transitions."""
        store, _, ids = sqlite_history
        for name in ("ui_run", "ui_run_segments", "ui_run_transitions"):
            assert (
                run_dashboard_query(
                    store, name, org="globex", pipeline_logging_id=ids["dependency"]
                )
                == []
            ), name
        progress = run_dashboard_query(
            store, "ui_run_progress", org="globex", pipeline_logging_id=ids["dependency"]
        )
        assert progress == [{"transitions": 0, "last_time": None}]

    def test_org_is_required(self, sqlite_history: Any) -> None:
        """A dashboard query without an org is refused, naming the parameter."""
        store, _, _ = sqlite_history
        with pytest.raises(QueryError, match="'org'"):
            run_dashboard_query(store, "ui_runs")
        with pytest.raises(ValueError, match="unknown dashboard query"):
            run_dashboard_query(store, "nope", org="acme")


class TestDialects:
    """Both dialects implement every dashboard query with the same parameters."""

    def test_same_queries_and_parameters(self) -> None:
        """A query or parameter added to one dialect only is caught without an emulator."""
        assert set(DASHBOARD_SQLITE_SQL) == set(DASHBOARD_BIGQUERY_SQL) == set(DASHBOARD)
        for name, sql in DASHBOARD_SQLITE_SQL.items():
            names = {p.name for p in DASHBOARD[name].params}
            assert "@" not in sql
            assert ":org" in sql, name
            assert "`__TABLE__`" in DASHBOARD_BIGQUERY_SQL[name]
            for param in names:
                assert (f":{param}" in sql) == (f"@{param}" in DASHBOARD_BIGQUERY_SQL[name])


def _cases(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every dashboard query with parameters that find rows."""
    run = {"org": "acme", "pipeline_logging_id": ids["dependency"]}
    cases: list[tuple[str, dict[str, Any]]] = [
        (name, WINDOW)
        for name in (
            "ui_runs",
            "ui_errors_over_time",
            "ui_retry_success",
            "ui_transition_heatmap",
            "ui_failure_heatmap",
        )
    ]
    cases += [(n, run) for n in ("ui_run", "ui_run_segments", "ui_run_transitions")]
    cases += [
        ("ui_run_progress", run),
        ("ui_runs", {**WINDOW, "org": "globex", "state": "COMPLETED", "limit": 5}),
        ("ui_stuck", {"org": "acme", "now": NOW, "min_duration_ms": 60_000}),
        ("ui_run_segments", {"org": "acme", "pipeline_logging_id": ids["running"]}),
    ]
    return cases


@pytest.mark.bigquery
def test_parity_with_bigquery(
    bq_emulator: BQEmulator, sqlite_history: tuple[SQLiteStore, History, dict[str, str]]
) -> None:
    """Every dashboard query returns identical, non-empty rows from SQLite and BigQuery."""
    sqlite, history, ids = sqlite_history
    bigquery: BigQueryStore = bq_store_for(bq_emulator)
    try:
        load(bigquery, history.records)
        for name, params in _cases(ids):
            expected = run_dashboard_query(sqlite, name, **params)
            assert expected, f"{name} {params} found nothing: the case tests nothing"
            assert run_dashboard_query(bigquery, name, **params) == expected, name
    finally:
        bigquery.close()
        drop_dataset(bq_emulator, bigquery.dataset)
