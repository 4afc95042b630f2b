"""The catalog's five queries on SQLiteStore, checked against hand-built rows with known answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import SQLiteStore
from persistence.queries import CATALOG, QUERY_NAMES, QueryError, dialect_sql, run_query
from persistence.stores.base import STATE_TRANSITIONS
from statemachine.records import TransitionRecord
from tests.strategies.records import BASE_TIME, record

NOW = BASE_TIME  # the reference time of every stuck query below
AS_OF = BASE_TIME.date()
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An empty SQLiteStore."""
    s = SQLiteStore(tmp_path / "q.db")
    yield s
    s.close()


def load(store: SQLiteStore, records: list[TransitionRecord]) -> None:
    """Write hand-built records."""
    result = store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
    assert result.rejected == ()


def failed(
    name: str, error_type: str | None, days_ago: int = 0, **fields: object
) -> TransitionRecord:
    """A RUNNING -> FAILED transition of a step, days_ago days before AS_OF."""
    fields.setdefault("entity_type", "STEP")
    fields.setdefault("step_logging_id", f"s-{name}")
    return record(
        entity_name=name,
        from_state="RUNNING",
        to_state="FAILED",
        error_type=error_type,
        at=BASE_TIME - dt.timedelta(days=days_ago),
        **fields,  # type: ignore[arg-type]
    )


class TestCatalog:
    """The catalog's shape and parameter validation."""

    def test_catalog_names_and_sqlite_dialect_are_complete(self) -> None:
        """The five seed queries exist and the SQLite dialect has SQL for each."""
        assert QUERY_NAMES == ("stuck", "failures", "steps", "retries", "timeline", "runs")
        assert set(dialect_sql("sqlite")) == set(CATALOG)

    def test_defaults_are_the_seeds(self) -> None:
        """Defaults: stuck 30 minutes, failures 7 days, steps 7 days / 20, retries 7 days / 50."""
        defaults = {
            name: {p.name: p.default for p in spec.caller_params} for name, spec in CATALOG.items()
        }
        assert defaults["stuck"]["min_duration_ms"] == 1_800_000
        assert defaults["failures"]["days"] == 7
        assert (defaults["steps"]["days"], defaults["steps"]["limit"]) == (7, 20)
        assert (defaults["retries"]["days"], defaults["retries"]["limit"]) == (7, 50)
        assert [p.name for p in CATALOG["timeline"].params if p.required] == ["pipeline_logging_id"]

    def test_unknown_query_names_the_known_ones(self, store: SQLiteStore) -> None:
        """An unknown query name is a QueryError listing the catalog."""
        with pytest.raises(QueryError, match=r"'nope'.*failures"):
            run_query(store, "nope")

    @pytest.mark.parametrize(
        ("name", "params", "match"),
        [
            ("failures", {"limit": 3}, "does not take.*limit"),
            ("failures", {"since": "2025-01-01"}, "does not take.*since"),
            ("timeline", {}, "needs parameter 'pipeline_logging_id'"),
            ("failures", {"days": "seven"}, "'days' must be an integer"),
            ("failures", {"days": -1}, "'days' must be >= 0"),
            ("failures", {"as_of": "tomorrow"}, "'as_of' must be a date"),
            ("stuck", {"now": 5}, "'now' must be a timestamp"),
            ("failures", {"include_cancelled": "maybe"}, "must be true or false"),
        ],
    )
    def test_bad_parameters_are_named(
        self, store: SQLiteStore, name: str, params: dict[str, object], match: str
    ) -> None:
        """Unknown, derived, missing or mistyped parameters raise QueryError naming them."""
        with pytest.raises(QueryError, match=match):
            run_query(store, name, **params)

    def test_string_parameters_from_a_cli_are_coerced(self, store: SQLiteStore) -> None:
        """Parameters given as text (as a CLI passes them) are converted to their types."""
        load(store, [failed("x", "TRANSIENT")])
        rows = run_query(store, "failures", days="1", as_of=AS_OF.isoformat())
        assert [r["failure_count"] for r in rows] == [1]


class TestStuck:
    """stuck: the seed's long-RUNNING rows plus hung entities that never left RUNNING."""

    def rows(self) -> list[TransitionRecord]:
        """Runs A..F around NOW; see each comment for what the query must say about it."""
        return [
            # A: completed after 40 min in RUNNING -> long_running (2,400,000 ms).
            record(pipeline_logging_id="A", at=NOW - 3 * 60 * MIN),
            record(
                pipeline_logging_id="A",
                from_state="RUNNING",
                to_state="COMPLETED",
                at=NOW - 140 * MIN,
                duration_in_state_ms=2_400_000,
            ),
            # B: completed after 1 minute -> nothing.
            record(pipeline_logging_id="B", at=NOW - 60 * MIN),
            record(
                pipeline_logging_id="B",
                from_state="RUNNING",
                to_state="COMPLETED",
                at=NOW - 59 * MIN,
                duration_in_state_ms=60_000,
            ),
            # C: hung for 2 hours, with a step hung for 50 minutes; neither has left RUNNING.
            record(pipeline_logging_id="C", at=NOW - 120 * MIN),
            record(
                pipeline_logging_id="C",
                entity_type="STEP",
                entity_name="extract",
                step_logging_id="C-1",
                at=NOW - 50 * MIN,
            ),
            # D: RUNNING for only 10 minutes -> not yet stuck.
            record(pipeline_logging_id="D", at=NOW - 10 * MIN),
            # E: failed after an hour in RUNNING -> long_running (3,600,000 ms), not hung.
            record(pipeline_logging_id="E", at=NOW - 180 * MIN),
            record(
                pipeline_logging_id="E",
                from_state="RUNNING",
                to_state="FAILED",
                at=NOW - 120 * MIN,
                duration_in_state_ms=3_600_000,
            ),
            # F: hung since 10 days ago -> outside the default 7-day window.
            record(pipeline_logging_id="F", at=NOW - dt.timedelta(days=10)),
        ]

    def test_long_running_and_hung_rows_in_duration_order(self, store: SQLiteStore) -> None:
        """A and E are long_running, C and its step are hung; B, D and F are not reported."""
        load(store, self.rows())
        got = run_query(store, "stuck", now=NOW)
        assert [(r["kind"], r["pipeline_logging_id"], r["entity_type"]) for r in got] == [
            ("hung", "C", "PIPELINE"),
            ("long_running", "E", "PIPELINE"),
            ("hung", "C", "STEP"),
            ("long_running", "A", "PIPELINE"),
        ]
        assert [r["duration_ms"] for r in got] == [7_200_000, 3_600_000, 3_000_000, 2_400_000]
        assert [r["duration_minutes"] for r in got] == [120.0, 60.0, 50.0, 40.0]
        assert got[0]["transition_time"] == (NOW - 120 * MIN).isoformat(timespec="microseconds")
        assert got[2]["step_logging_id"] == "C-1"
        assert list(got[0]) == list(CATALOG["stuck"].column_names)

    def test_thresholds_and_window_are_parameters(self, store: SQLiteStore) -> None:
        """A 5-minute hung threshold adds D; a 30-day window adds F; min_duration filters A."""
        load(store, self.rows())
        got = run_query(
            store, "stuck", now=NOW, running_for_ms=300_000, days=30, min_duration_ms=3_000_000
        )
        assert sorted((r["kind"], r["pipeline_logging_id"]) for r in got) == [
            ("hung", "C"),
            ("hung", "C"),
            ("hung", "D"),
            ("hung", "F"),
            ("long_running", "E"),
        ]

    def test_a_retried_step_back_in_running_is_hung(self, store: SQLiteStore) -> None:
        """A step whose latest transition is RETRYING -> RUNNING counts as hung from that time."""
        step = {"entity_type": "STEP", "entity_name": "load", "step_logging_id": "S"}
        load(
            store,
            [
                record(pipeline_logging_id="R", at=NOW - 90 * MIN, **step),
                record(
                    pipeline_logging_id="R",
                    from_state="RUNNING",
                    to_state="RETRYING",
                    at=NOW - 80 * MIN,
                    **step,
                ),
                record(
                    pipeline_logging_id="R",
                    from_state="RETRYING",
                    to_state="RUNNING",
                    at=NOW - 70 * MIN,
                    **step,
                ),
            ],
        )
        got = run_query(store, "stuck", now=NOW)
        assert [(r["kind"], r["from_state"], r["duration_ms"]) for r in got] == [
            ("hung", "RETRYING", 4_200_000)
        ]

    def test_leaving_running_at_the_same_instant_is_not_hung(self, store: SQLiteStore) -> None:
        """A RUNNING -> COMPLETED row with the same timestamp as the entry means it left."""
        at = NOW - 60 * MIN
        load(
            store,
            [
                record(pipeline_logging_id="Z", at=at),
                record(pipeline_logging_id="Z", from_state="RUNNING", to_state="COMPLETED", at=at),
            ],
        )
        assert run_query(store, "stuck", now=NOW) == []


class TestFailures:
    """failures: transitions into FAILED by error_type over the window."""

    def test_counts_pipelines_and_average_durations(self, store: SQLiteStore) -> None:
        """Counts, distinct pipelines, mean seconds per error_type; old and future rows excluded."""
        load(
            store,
            [
                failed("a", "TRANSIENT", pipeline_logging_id="p1", duration_in_state_ms=1000),
                failed("b", "TRANSIENT", pipeline_logging_id="p1", duration_in_state_ms=2000),
                failed("c", "TRANSIENT", pipeline_logging_id="p2", duration_in_state_ms=3500),
                failed("d", "PERMANENT", pipeline_logging_id="p3", duration_in_state_ms=500),
                failed("e", None, pipeline_logging_id="p4", duration_in_state_ms=0),
                failed("old", "PERMANENT", days_ago=8),
                failed("future", "PERMANENT", days_ago=-1),
                record(to_state="COMPLETED", from_state="RUNNING"),
            ],
        )
        got = run_query(store, "failures", as_of=AS_OF)
        assert got == [
            {
                "error_type": "TRANSIENT",
                "failure_count": 3,
                "pipelines_affected": 2,
                "avg_duration_seconds": 2.167,
            },
            {
                "error_type": None,
                "failure_count": 1,
                "pipelines_affected": 1,
                "avg_duration_seconds": 0.0,
            },
            {
                "error_type": "PERMANENT",
                "failure_count": 1,
                "pipelines_affected": 1,
                "avg_duration_seconds": 0.5,
            },
        ]

    def test_window_is_days_back_from_as_of(self, store: SQLiteStore) -> None:
        """A failure 8 days ago counts with days=8 and not with the default 7."""
        load(store, [failed("old", "PERMANENT", days_ago=8)])
        assert run_query(store, "failures", as_of=AS_OF) == []
        assert [r["failure_count"] for r in run_query(store, "failures", as_of=AS_OF, days=8)] == [
            1
        ]


class TestSteps:
    """steps: step failures by step and error_type with the top error classes."""

    def rows(self) -> list[TransitionRecord]:
        """extract: 4 TRANSIENT; transform: 8 VALIDATION_ERROR over 7 classes; load: 1."""
        classes = ["ConnectionError", "ConnectionError", "TimeoutError", None]
        extract = [
            failed("extract", "TRANSIENT", metadata={} if c is None else {"error_class": c})
            for c in classes
        ]
        transform = [
            failed("transform", "VALIDATION_ERROR", metadata={"error_class": c})
            for c in ["c1", "c1", "c7", "c6", "c5", "c4", "c3", "c2"]
        ]
        load_ = [failed("load", "PERMANENT", metadata={"error_class": "KeyError"})]
        pipeline = [failed("billing", "TRANSIENT", entity_type="PIPELINE", step_logging_id=None)]
        return extract + transform + load_ + pipeline

    def test_top_error_classes_shape_and_order(self, store: SQLiteStore) -> None:
        """Steps by failures desc; top 5 classes by count desc then value, null first."""
        load(store, self.rows())
        got = run_query(store, "steps", as_of=AS_OF)
        assert [(r["step_name"], r["error_type"], r["failures"]) for r in got] == [
            ("transform", "VALIDATION_ERROR", 8),
            ("extract", "TRANSIENT", 4),
            ("load", "PERMANENT", 1),
        ]
        assert got[0]["top_error_classes"] == [
            {"value": "c1", "count": 2},
            {"value": "c2", "count": 1},
            {"value": "c3", "count": 1},
            {"value": "c4", "count": 1},
            {"value": "c5", "count": 1},
        ]
        assert got[1]["top_error_classes"] == [
            {"value": "ConnectionError", "count": 2},
            {"value": None, "count": 1},
            {"value": "TimeoutError", "count": 1},
        ]
        assert got[2]["top_error_classes"] == [{"value": "KeyError", "count": 1}]

    def test_limit(self, store: SQLiteStore) -> None:
        """limit=1 keeps only the step with the most failures."""
        load(store, self.rows())
        assert [r["step_name"] for r in run_query(store, "steps", as_of=AS_OF, limit=1)] == [
            "transform"
        ]


def step(
    name: str, from_state: str, to_state: str, retry_count: int = 0, **fields: object
) -> TransitionRecord:
    """One transition of step `name` in run r1 (its step_logging_id is s-<name>)."""
    fields.setdefault("pipeline_logging_id", "r1")
    return record(
        entity_type="STEP",
        entity_name=name,
        step_logging_id=f"s-{name}",
        from_state=from_state,
        to_state=to_state,
        retry_count=retry_count,
        **fields,  # type: ignore[arg-type]
    )


def retried_then(name: str, outcome: str, retries: int, **end: object) -> list[TransitionRecord]:
    """A step that failed transiently `retries` times (limit 3), then ended in `outcome`."""
    rows = [step(name, "PENDING", "RUNNING")]
    for n in range(retries):
        meta = {"max_retries": 3}
        rows.append(step(name, "RUNNING", "RETRYING", n, error_type="TRANSIENT", metadata=meta))
        rows.append(step(name, "RETRYING", "RUNNING", n + 1))
    rows.append(step(name, "RUNNING", outcome, retries, **end))
    return rows


class TestRetries:
    """retries: one row per retried step, with retries made, the limit and the outcome."""

    def test_retried_steps_and_their_outcomes(self, store: SQLiteStore) -> None:
        """Retried-then-completed and retried-then-failed steps; never-retried ones are absent."""
        load(
            store,
            [
                *retried_then("extract", "COMPLETED", 2),
                *retried_then("load", "FAILED", 3, error_type="TRANSIENT"),
                *retried_then("once", "FAILED", 0, error_type="PERMANENT"),
            ],
        )
        assert run_query(store, "retries", as_of=AS_OF) == [
            {
                "pipeline_logging_id": "r1",
                "entity_name": "load",
                "error_type": "TRANSIENT",
                "retries": 3,
                "max_retries": 3,
                "transition_count": 8,
                "outcome": "FAILED",
            },
            {
                "pipeline_logging_id": "r1",
                "entity_name": "extract",
                "error_type": "TRANSIENT",
                "retries": 2,
                "max_retries": 3,
                "transition_count": 6,
                "outcome": "COMPLETED",
            },
        ]

    def test_cancelled_while_retrying(self, store: SQLiteStore) -> None:
        """A retried step that was then cancelled has outcome CANCELLED."""
        cancel = {"cancelled": True, "cancel_source": "sigterm"}
        load(store, retried_then("x", "FAILED", 1, error_type="UNKNOWN", metadata=cancel))
        [row] = run_query(store, "retries", as_of=AS_OF)
        assert (row["outcome"], row["error_type"]) == ("CANCELLED", "UNKNOWN")


class TestFailureSemantics:
    """failures counts each failure once and leaves cancellations out by default."""

    def test_step_failure_counted_once(self, store: SQLiteStore) -> None:
        """A failed step and the pipeline it failed count as one failure."""
        load(
            store,
            [
                failed("extract", "PERMANENT", pipeline_logging_id="p1"),
                failed(
                    "billing",
                    "PERMANENT",
                    pipeline_logging_id="p1",
                    entity_type="PIPELINE",
                    step_logging_id=None,
                ),
                failed(
                    "bad-config",
                    "VALIDATION_ERROR",
                    pipeline_logging_id="p2",
                    entity_type="PIPELINE",
                    step_logging_id=None,
                ),
            ],
        )
        got = {
            r["error_type"]: r["failure_count"] for r in run_query(store, "failures", as_of=AS_OF)
        }
        assert got == {"PERMANENT": 1, "VALIDATION_ERROR": 1}

    def test_cancellations_excluded_unless_asked(self, store: SQLiteStore) -> None:
        """Cancelled rows are left out of failures and steps unless include_cancelled is set."""
        meta = {"cancelled": True, "cancel_source": "sigint"}
        load(
            store,
            [
                failed("a", "UNKNOWN", pipeline_logging_id="p1", metadata=meta),
                failed(
                    "billing",
                    "UNKNOWN",
                    pipeline_logging_id="p1",
                    entity_type="PIPELINE",
                    step_logging_id=None,
                    metadata=meta,
                ),
                failed("b", "TRANSIENT", pipeline_logging_id="p2"),
            ],
        )
        assert [r["error_type"] for r in run_query(store, "failures", as_of=AS_OF)] == ["TRANSIENT"]
        assert [r["step_name"] for r in run_query(store, "steps", as_of=AS_OF)] == ["b"]
        every = run_query(store, "failures", as_of=AS_OF, include_cancelled="true")
        assert {r["error_type"]: r["failure_count"] for r in every} == {
            "TRANSIENT": 1,
            "UNKNOWN": 1,
        }
        assert len(run_query(store, "steps", as_of=AS_OF, include_cancelled=True)) == 2


class TestRuns:
    """runs: one row per pipeline run from its PIPELINE transitions, with filters."""

    def rows(self) -> list[TransitionRecord]:
        """r1 completed, r2 failed (TRANSIENT), r3 still running, r4 cancelled, other org."""
        later = BASE_TIME + MIN

        def run(pid: str, name: str, end: str | None, **fields: object) -> list[TransitionRecord]:
            org = str(fields.pop("org_slug", "acme"))
            out = [record(pipeline_logging_id=pid, entity_name=name, org_slug=org)]
            if end is not None:
                out.append(
                    record(
                        pipeline_logging_id=pid,
                        entity_name=name,
                        from_state="RUNNING",
                        to_state=end,
                        at=later,
                        duration_in_state_ms=60_000,
                        org_slug=org,
                        **fields,  # type: ignore[arg-type]
                    )
                )
            return out

        return [
            *run("r1", "billing", "COMPLETED"),
            *run("r2", "billing", "FAILED", error_type="TRANSIENT"),
            *run("r3", "orders", None),
            *run("r4", "orders", "FAILED", error_type="UNKNOWN", metadata={"cancelled": True}),
            *run("r5", "billing", "COMPLETED", org_slug="other"),
        ]

    def test_one_row_per_run(self, store: SQLiteStore) -> None:
        """Each run appears once with its state, times, duration, error type and cancel flag."""
        load(store, self.rows())
        got = {r["pipeline_logging_id"]: r for r in run_query(store, "runs", as_of=AS_OF)}
        assert {k: v["state"] for k, v in got.items()} == {
            "r1": "COMPLETED",
            "r2": "FAILED",
            "r3": "RUNNING",
            "r4": "FAILED",
            "r5": "COMPLETED",
        }
        assert got["r2"]["error_type"] == "TRANSIENT"
        assert got["r2"]["duration_seconds"] == 60.0
        assert got["r3"]["end_time"] is None
        assert [k for k, v in got.items() if v["cancelled"]] == ["r4"]

    def test_filters(self, store: SQLiteStore) -> None:
        """pipeline_id, state and org_slug narrow the list; limit caps it."""
        load(store, self.rows())

        def ids(**params: object) -> list[str]:
            return sorted(
                r["pipeline_logging_id"] for r in run_query(store, "runs", as_of=AS_OF, **params)
            )

        assert ids(pipeline_id="orders") == ["r3", "r4"]
        assert ids(state="FAILED") == ["r2", "r4"]
        assert ids(org_slug="other") == ["r5"]
        assert len(ids(limit=2)) == 2


class TestTimeline:
    """timeline: one run's transitions in time order."""

    def test_one_run_in_order(self, store: SQLiteStore) -> None:
        """Only the named run's rows, oldest first, durations in seconds."""
        load(
            store,
            [
                record(
                    pipeline_logging_id="T",
                    from_state="RUNNING",
                    to_state="COMPLETED",
                    at=NOW,
                    duration_in_state_ms=1500,
                    reason="done",
                ),
                record(pipeline_logging_id="T", at=NOW - MIN),
                record(pipeline_logging_id="other", at=NOW - MIN),
            ],
        )
        got = run_query(store, "timeline", pipeline_logging_id="T")
        assert [(r["from_state"], r["to_state"], r["duration_seconds"]) for r in got] == [
            ("PENDING", "RUNNING", 0.0),
            ("RUNNING", "COMPLETED", 1.5),
        ]
        assert got[1]["reason"] == "done"
        assert got[0]["transition_time"] == "2025-12-21T11:59:00.000000+00:00"

    def test_unknown_run_is_empty(self, store: SQLiteStore) -> None:
        """A run id with no rows returns an empty list."""
        assert run_query(store, "timeline", pipeline_logging_id="missing") == []
