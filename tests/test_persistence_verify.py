"""persistence.verify: shipped scenarios verify clean; every kind of corruption is found."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.runner import run_pipeline
from persistence.logger import MetadataLogger
from persistence.schema import load_table_specs
from persistence.stores.sqlite import SQLiteStore
from persistence.verify import VerifyReport, verify
from statemachine import InMemorySink, ManualClock, PipelineRun, StepRun

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# Every shipped config, plus a reference that does not exist (the seed's validation scenario).
REFS = sorted(str(p.relative_to(CONFIGS).with_suffix("")) for p in CONFIGS.rglob("*.yml"))
REFS.append("invalid/domain/pipeline")
T = "org_meta_state_transitions"


def _short_configs(tmp: Path) -> Path:
    """The shipped configs with the 6 s pipeline timeout cut to 0.3 s (same trail, faster)."""
    target = tmp / "configs"
    shutil.copytree(CONFIGS, target)
    timeout = target / "test/timeout/test_timeout.yml"
    timeout.write_text(
        timeout.read_text().replace("timeout_minutes: 0.1", "timeout_minutes: 0.005")
    )
    return target


def _run_scenarios(db: Path, configs: Path) -> None:
    async def go() -> None:
        store = SQLiteStore(db)
        try:
            async with MetadataLogger(store) as logger:
                for ref in REFS:
                    await run_pipeline(ref, org_slug="acme", logger=logger, config_dir=configs)
                await run_pipeline(
                    "test/dependency/test_dependency",
                    org_slug="other_org",
                    logger=logger,
                    config_dir=configs,
                    fail_fast=True,
                )
                await logger.flush()
        finally:
            store.close()

    asyncio.run(go())


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file holding the trail of every shipped scenario (and a fail_fast run)."""
    tmp = tmp_path_factory.mktemp("verify")
    db = tmp / "clean.db"
    _run_scenarios(db, _short_configs(tmp))
    return db


def _check(db: Path, **kwargs: object) -> VerifyReport:
    store = SQLiteStore(db)
    try:
        return verify(store, **kwargs)  # type: ignore[arg-type]
    finally:
        store.close()


def _sql(db: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def _row(db: Path, where: str) -> str:
    """The transition_id of the first row (by time) matching `where`."""
    rows = _sql(db, f"SELECT transition_id FROM {T} WHERE {where} ORDER BY transition_time")
    assert rows, where
    return str(rows[0][0])


# Each corruption edits a copy of the clean file and returns the transition_id it damaged.
def _illegal_edge(db: Path) -> str:
    tid = _row(db, "entity_name = 'load_cache' AND to_state = 'COMPLETED'")
    _sql(db, f"UPDATE {T} SET to_state = 'TIMEOUT' WHERE transition_id = ?", (tid,))
    return tid


def _broken_chain(db: Path) -> str:
    gone = _row(db, "entity_name = 'fetch_api' AND to_state = 'RETRYING'")
    _sql(db, f"DELETE FROM {T} WHERE transition_id = ?", (gone,))
    return _row(db, "entity_name = 'fetch_api' AND from_state = 'RETRYING'")


def _duplicate(db: Path) -> str:
    tid = _row(db, "entity_name = 'extract_data' AND to_state = 'RUNNING'")
    columns = [r[1] for r in _sql(db, f"PRAGMA table_info({T})")]
    others = ", ".join(c for c in columns if c != "transition_id")
    _sql(
        db,
        f"INSERT INTO {T} (transition_id, {others}) "
        f"SELECT 'copy-' || transition_id, {others} FROM {T} WHERE transition_id = ?",
        (tid,),
    )
    return "copy-" + tid + "|" + tid  # either of the twins may be the one flagged


def _duration(db: Path) -> str:
    tid = _row(db, "entity_name = 'load_warehouse' AND to_state = 'COMPLETED'")
    _sql(db, f"UPDATE {T} SET duration_in_state_ms = 3600000 WHERE transition_id = ?", (tid,))
    return tid


def _retry_count(db: Path) -> str:
    tid = _row(db, "entity_name = 'fetch_api' AND to_state = 'COMPLETED'")
    _sql(db, f"UPDATE {T} SET retry_count = 7 WHERE transition_id = ?", (tid,))
    return tid


def _identity(db: Path) -> str:
    tid = _row(db, "entity_type = 'PIPELINE' AND entity_name = 'test-retry'")
    _sql(db, f"UPDATE {T} SET step_logging_id = 'stray' WHERE transition_id = ?", (tid,))
    return tid


def _outside_run(db: Path) -> str:
    tid = _row(db, "entity_name = 'audit_report' AND to_state = 'COMPLETED'")
    later = "2999-01-01T00:00:00.000000+00:00"
    _sql(db, f"UPDATE {T} SET transition_time = ? WHERE transition_id = ?", (later, tid))
    return tid


def _unfinished_step(db: Path) -> str:
    gone = _row(db, "entity_name = 'load_cache' AND to_state = 'COMPLETED'")
    _sql(db, f"DELETE FROM {T} WHERE transition_id = ?", (gone,))
    return _row(db, "entity_name = 'load_cache' AND to_state = 'RUNNING'")


def _failed_under_completed(db: Path) -> str:
    tid = _row(db, "entity_name = 'load_cache' AND to_state = 'COMPLETED'")
    _sql(db, f"UPDATE {T} SET to_state = 'FAILED' WHERE transition_id = ?", (tid,))
    return tid


CORRUPTIONS: list[tuple[str, Callable[[Path], str]]] = [
    ("illegal-edge", _illegal_edge),
    ("broken-chain", _broken_chain),
    ("duplicate", _duplicate),
    ("duration", _duration),
    ("retry-count", _retry_count),
    ("identity", _identity),
    ("outside-run", _outside_run),
    ("unfinished-step", _unfinished_step),
    ("unfinished-step", _failed_under_completed),
]


class TestCleanTrails:
    """Trails written by the engine break no check."""

    def test_every_shipped_scenario_is_clean(self, clean_db: Path) -> None:
        """All shipped scenarios' rows verify clean, every run counted and finished."""
        report = _check(clean_db)
        assert report.clean, report.render()
        assert _check(clean_db, in_sql=True) == report
        assert report.rows == _sql(clean_db, f"SELECT COUNT(*) FROM {T}")[0][0]
        assert report.runs == len(REFS) + 1
        assert report.finished_runs == report.runs
        assert "No violations." in report.render()

    def test_filters_pick_rows(self, clean_db: Path) -> None:
        """--org, --run and the date range narrow what is checked to whole runs."""
        [(run_id, count)] = _sql(
            clean_db,
            f"SELECT pipeline_logging_id, COUNT(*) FROM {T} WHERE entity_name = 'test-retry' "
            "OR pipeline_logging_id IN (SELECT pipeline_logging_id FROM "
            f"{T} WHERE entity_name = 'test-retry') GROUP BY pipeline_logging_id",
        )
        assert _check(clean_db, run=run_id).rows == count
        assert _check(clean_db, org="other_org").runs == 1
        assert _check(clean_db, org="nobody").rows == 0
        today = dt.datetime.now(dt.UTC).date()
        assert _check(clean_db, since=today - dt.timedelta(days=1)).runs == len(REFS) + 1
        assert _check(clean_db, until=dt.date(2000, 1, 1)).rows == 0


class TestCorruptedTrails:
    """Each kind of hand-made corruption is found and named with the damaged row's ids."""

    @pytest.mark.parametrize(
        ("kind", "corrupt"), CORRUPTIONS, ids=[f"{k}-{f.__name__}" for k, f in CORRUPTIONS]
    )
    def test_corruption_is_found(
        self, clean_db: Path, tmp_path: Path, kind: str, corrupt: Callable[[Path], str]
    ) -> None:
        """Verify reports the corruption's kind on the damaged row; the rest stays clean."""
        db = tmp_path / "bad.db"
        shutil.copy(clean_db, db)
        twins = set(corrupt(db).split("|"))
        report = _check(db)
        # The streaming checks (SQLite's default) and the SQL statement (BigQuery's) agree.
        assert _check(db, in_sql=True) == report
        assert not report.clean
        [damaged] = twins & {v.transition_id for v in report.violations if v.kind == kind}
        line = next(v for v in report.violations if v.transition_id == damaged).render()
        assert damaged in line
        assert kind in report.render()
        [(run_id,)] = _sql(
            db, f"SELECT pipeline_logging_id FROM {T} WHERE transition_id = ?", (damaged,)
        )
        others = [v for v in report.violations if v.pipeline_logging_id != run_id]
        assert others == [], "a corruption in one run must not flag another"

    def test_listing_is_capped_but_counts_are_not(self, clean_db: Path, tmp_path: Path) -> None:
        """With max_per_kind=1, five broken rows of one kind are counted 5 and listed once."""
        db = tmp_path / "many.db"
        shutil.copy(clean_db, db)
        _sql(
            db,
            f"UPDATE {T} SET duration_in_state_ms = 9999999 "
            "WHERE entity_name = 'fetch_api' AND from_state <> 'PENDING'",
        )
        report = _check(db, max_per_kind=1)
        assert _check(db, max_per_kind=1, in_sql=True) == report
        assert report.counts["duration"] == 5
        assert [v.kind for v in report.violations].count("duration") == 1
        assert "first 1 listed" in report.render()

    def test_hand_logged_rows_are_checked_for_continuity(self, tmp_path: Path) -> None:
        """log_state_transition accepts a legal edge that continues no chain; verify flags it."""
        db = tmp_path / "hand.db"

        async def go() -> None:
            async with MetadataLogger(SQLiteStore(db), org_slug="acme") as logger:
                run = PipelineRun.create("p", org_slug="acme", sink=logger)
                run.start()
                step = StepRun.create("s", pipeline=run)
                step.start()
                step.complete()
                run.complete()
                await logger.log_state_transition(
                    pipeline_logging_id=run.pipeline_logging_id,
                    step_logging_id=step.step_logging_id,
                    from_state="RUNNING",
                    to_state="COMPLETED",
                    entity_type="STEP",
                    entity_name="s",
                    transition_id="hand-1",
                )

        asyncio.run(go())
        report = _check(db)
        kinds = {v.kind for v in report.violations if v.transition_id == "hand-1"}
        assert "broken-chain" in kinds
        assert "outside-run" in kinds


def test_bad_arguments_are_refused(clean_db: Path) -> None:
    """A negative tolerance or a zero listing cap raises ValueError naming both fields."""
    with pytest.raises(ValueError, match="tolerance_ms"):
        _check(clean_db, tolerance_ms=-1)
    with pytest.raises(ValueError, match="max_per_kind"):
        _check(clean_db, max_per_kind=0)


_STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "RETRYING", "BANANA"]
_EDITS = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 60)),
    st.tuples(st.just("dup"), st.integers(0, 60)),
    st.tuples(st.just("from_state"), st.integers(0, 60), st.sampled_from(_STATES)),
    st.tuples(st.just("to_state"), st.integers(0, 60), st.sampled_from(_STATES)),
    st.tuples(st.just("shift_ms"), st.integers(0, 60), st.integers(-5_000, 5_000)),
    st.tuples(st.just("retry_count"), st.integers(0, 60), st.integers(0, 3)),
    st.tuples(st.just("duration_in_state_ms"), st.integers(0, 60), st.integers(-1, 9_000)),
    st.tuples(st.just("step_logging_id"), st.integers(0, 60), st.none()),
)


@st.composite
def _trail(draw: st.DrawFn) -> list[dict[str, object]]:
    """The rows of one engine-written run: 1-3 steps, random retries, outcomes and pauses."""
    sink, clock = InMemorySink(), ManualClock()
    run = PipelineRun.create("p", org_slug="acme", sink=sink, clock=clock)
    run.start()
    for i in range(draw(st.integers(1, 3))):
        step = StepRun.create(f"s{i}", pipeline=run)
        clock.advance(ms=draw(st.integers(0, 2_000)))
        step.start()
        for _ in range(draw(st.integers(0, 2))):
            clock.advance(ms=draw(st.integers(0, 2_000)))
            step.retry(ConnectionError("reset"))
            clock.advance(ms=draw(st.integers(0, 2_000)))
            step.start()
        clock.advance(ms=draw(st.integers(0, 2_000)))
        step.complete() if draw(st.booleans()) else step.fail(ValueError("bad"))
    if all(s.state == "COMPLETED" for s in run.steps):
        run.complete()
    else:
        run.fail(ValueError("bad"))
    return [r.to_row() for r in sink.records]


def _edit(rows: list[dict[str, object]], edit: tuple[object, ...]) -> None:
    op, index = edit[0], int(edit[1]) % len(rows)  # type: ignore[call-overload]
    row = rows[index]
    if op == "delete":
        rows.pop(index)
    elif op == "dup":
        rows.append({**row, "transition_id": f"dup-{len(rows)}-{row['transition_id']}"})
    elif op == "shift_ms":
        when = dt.datetime.fromisoformat(str(row["transition_time"]))
        row["transition_time"] = when + dt.timedelta(milliseconds=int(edit[2]))  # type: ignore[call-overload]
    else:
        row[str(op)] = edit[2]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_trail(), edits=st.lists(_EDITS, max_size=3))
def test_stream_and_sql_agree_on_random_corruption(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[dict[str, object]],
    edits: list[tuple[object, ...]],
) -> None:
    """For any engine-written run with up to three random edits (rows deleted, duplicated,
    re-stated, moved in time, recounted), the streaming checks and the SQL statement report
    exactly the same violations; with no edit both find none."""
    for edit in edits:
        if rows:
            _edit(rows, edit)
    db = tmp_path_factory.mktemp("prop") / "p.db"
    store = SQLiteStore(db)
    try:
        store.ensure_tables(load_table_specs(), dry_run=False)
        if rows:
            store.write_batch(T, rows)
    finally:
        store.close()
    streamed = _check(db)
    assert _check(db, in_sql=True) == streamed
    if not edits:
        assert streamed.clean, streamed.render()
