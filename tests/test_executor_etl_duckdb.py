"""Tests for executor.etl.duckdb_sql and the local billing example, on real DuckDB files."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import importlib.util
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from classifier.errors import ValidationError
from executor.etl.duckdb_sql import check_config, duckdb_sql
from executor.processors import ConfigProblem, ProcessorContext
from executor.runner import PipelineResult, run_pipeline
from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore
from tests.strategies.pipelines import read_rows

duckdb = pytest.importorskip("duckdb")
ROOT = Path(__file__).resolve().parent.parent
BILLING = ROOT / "configs/local/cost/billing.yml"


def _ctx(tmp_path: Path, step: str = "s") -> ProcessorContext:
    return ProcessorContext(
        pipeline_logging_id="run-1",
        pipeline_id="p",
        step_id=step,
        attempt=1,
        org_slug="o",
        config_source=str(tmp_path / "pipeline.yml"),
    )


def _sql(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    check_config(config)
    return asyncio.run(duckdb_sql(_ctx(tmp_path), config))


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class TestTargets:
    def test_create_then_append_then_replace(self, tmp_path: Path) -> None:
        """create makes the table, append adds rows, replace swaps them; counts are recorded."""
        base = {"database": "w.duckdb", "sql": "SELECT * FROM range($n) AS t(i)"}
        made = _sql(
            tmp_path, {**base, "params": {"n": 3}, "target": {"table": "t", "mode": "create"}}
        )
        assert (made["rows_affected"], made["target_table"], made["write_mode"]) == (
            3,
            "t",
            "create",
        )
        added = _sql(
            tmp_path, {**base, "params": {"n": 2}, "target": {"table": "t", "mode": "append"}}
        )
        assert added["rows_affected"] == 2
        assert _query(tmp_path / "w.duckdb", "SELECT count(*) FROM t") == [(5,)]
        _sql(tmp_path, {**base, "params": {"n": 4}, "target": {"table": "t", "mode": "replace"}})
        assert _query(tmp_path / "w.duckdb", "SELECT count(*) FROM t") == [(4,)]

    def test_append_creates_a_missing_table(self, tmp_path: Path) -> None:
        """append to a table that does not exist yet creates it with the query's columns."""
        out = _sql(
            tmp_path,
            {
                "database": "w.duckdb",
                "sql": "SELECT 1 AS a",
                "target": {"table": "new_t", "mode": "append"},
            },
        )
        assert out["rows_affected"] == 1
        assert _query(tmp_path / "w.duckdb", "SELECT a FROM new_t") == [(1,)]

    def test_create_refuses_an_existing_table(self, tmp_path: Path) -> None:
        """create on an existing table fails with DuckDB's own error and changes nothing."""
        config = {
            "database": "w.duckdb",
            "sql": "SELECT 1 AS a",
            "target": {"table": "t", "mode": "create"},
        }
        _sql(tmp_path, config)
        with pytest.raises(duckdb.CatalogException):
            _sql(tmp_path, config)
        assert _query(tmp_path / "w.duckdb", "SELECT count(*) FROM t") == [(1,)]


class TestParameters:
    def test_values_are_bound_never_formatted(self, tmp_path: Path) -> None:
        """A value that looks like SQL stays data: it is compared, not executed."""
        hostile = "x'); DROP TABLE t; --"
        _sql(tmp_path, {"database": "w.duckdb", "sql": "CREATE TABLE t AS SELECT 1 AS a"})
        out = _sql(
            tmp_path,
            {"database": "w.duckdb", "sql": "SELECT $v AS v", "params": {"v": hostile}},
        )
        assert out["rows_affected"] == 1
        assert _query(tmp_path / "w.duckdb", "SELECT count(*) FROM t") == [(1,)]

    def test_missing_parameter_is_named(self, tmp_path: Path) -> None:
        """A $name with no value is a ValidationError naming it and the known ones."""
        with pytest.raises(ValidationError, match=r"\$date has no value \(known: other"):
            _sql(tmp_path, {"sql": "SELECT $date::DATE", "params": {"other": 1}})

    def test_dollar_inside_a_string_is_not_a_parameter(self, tmp_path: Path) -> None:
        """'$5' inside a string literal is text, not a placeholder."""
        assert _sql(tmp_path, {"sql": "SELECT '$5' AS price"})["rows_affected"] == 1

    def test_files_resolve_against_the_pipeline_directory(self, tmp_path: Path) -> None:
        """A files: path is relative to the pipeline file and bound as a parameter."""
        (tmp_path / "in.csv").write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
        out = _sql(tmp_path, {"files": {"src": "in.csv"}, "sql": "SELECT * FROM read_csv($src)"})
        assert out["rows_affected"] == 2


class TestTransactions:
    def test_a_failing_statement_rolls_back_the_earlier_ones(self, tmp_path: Path) -> None:
        """All statements of a step commit together or not at all."""
        config = {
            "database": "w.duckdb",
            "sql": ["CREATE TABLE half AS SELECT 1 AS a", "SELECT nope FROM half"],
        }
        with pytest.raises(duckdb.BinderException):
            _sql(tmp_path, config)
        assert _query(
            tmp_path / "w.duckdb",
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'",
        ) == [(0,)]


class TestConfigChecks:
    @pytest.mark.parametrize(
        ("config", "key"),
        [
            ({"sql": "SELECT 1", "sql_file": "x.sql"}, "sql"),
            ({}, "sql"),
            ({"sql": []}, "sql"),
            ({"sql": "SELECT 1", "target": {"table": "a b"}}, "target.table"),
            ({"sql": "SELECT 1", "target": {"table": "t", "mode": "merge"}}, "target.mode"),
            ({"sql": "SELECT 1", "params": {"bad name": 1}}, "params"),
            ({"sql": "SELECT 1", "surprise": 1}, None),
        ],
    )
    def test_bad_configs_name_the_key(self, config: dict[str, Any], key: str | None) -> None:
        """Each mistake is refused at load time with the offending key."""
        with pytest.raises(ConfigProblem) as info:
            check_config(config)
        assert info.value.key == key


# -- the billing example ------------------------------------------------------------------------


def _expected(date: str) -> dict[str, Any]:
    """What the billing pipeline must compute, from the generator's own rows (not from SQL)."""
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts/gen_billing_data.py")
    assert spec
    assert spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    by_service: dict[str, Decimal] = defaultdict(Decimal)
    by_project: dict[str, Decimal] = defaultdict(Decimal)
    daily: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in gen.rows():
        day, project, service, cost = row[0], row[1], row[2], Decimal(row[6])
        daily[(day, project, service)] += cost
        if day == date:
            by_service[service] += cost
            by_project[project] += cost
    cents = Decimal("0.01")
    target = dt.date.fromisoformat(date)
    window = {(target - dt.timedelta(days=d)).isoformat() for d in range(1, 8)}
    anomalies = []
    for (day, project, service), cost in daily.items():
        if day != date:
            continue
        before = [daily[(d, project, service)] for d in window if (d, project, service) in daily]
        avg = sum(before) / len(before)
        if cost > 2 * avg:
            anomalies.append((project, service))
    return {
        "service": {k: v.quantize(cents, ROUND_HALF_EVEN) for k, v in by_service.items()},
        "project": {k: v.quantize(cents, ROUND_HALF_EVEN) for k, v in by_project.items()},
        "anomalies": anomalies,
    }


def _run_billing(
    tmp_path: Path, config: Path = BILLING
) -> tuple[PipelineResult, list[dict[str, Any]]]:
    async def go() -> PipelineResult:
        store = SQLiteStore(tmp_path / "audit.db")
        try:
            async with MetadataLogger(store) as logger:
                return await run_pipeline(config, org_slug="test_org", logger=logger)
        finally:
            store.close()

    result = asyncio.run(go())
    return result, read_rows(tmp_path / "audit.db", result.pipeline_logging_id)


class TestBillingExample:
    def test_export_file_matches_its_generator(self) -> None:
        """The shipped CSV is exactly what scripts/gen_billing_data.py writes (2,800 rows)."""
        spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts/gen_billing_data.py")
        assert spec
        assert spec.loader
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
        shipped = (ROOT / "configs/local/cost/data/billing_export.csv").read_text(encoding="utf-8")
        assert shipped == gen.render()
        assert len(list(csv.reader(shipped.splitlines()))) == 2801

    def test_known_answers(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Cost per service and project and the planted anomaly match the generator's figures."""
        monkeypatch.setenv("PIPESTATE_DATA_DIR", str(tmp_path))
        result, rows = _run_billing(tmp_path)
        assert result.state == "COMPLETED", result.error_message
        expected = _expected("2025-12-01")
        db = tmp_path / "billing.duckdb"
        assert (
            dict(_query(db, "SELECT service, cost FROM daily_cost_by_service"))
            == expected["service"]
        )
        assert (
            dict(_query(db, "SELECT project_id, cost FROM daily_cost_by_project"))
            == expected["project"]
        )
        anomalies = _query(db, "SELECT project_id, service FROM cost_anomalies")
        assert anomalies == expected["anomalies"] == [("analytics-prod", "BigQuery")]
        done = {r["entity_name"]: r for r in rows if r["to_state"] == "COMPLETED"}
        assert set(done) == {
            "billing",
            "load_export",
            "cost_by_service",
            "cost_by_project",
            "flag_anomalies",
        }

    def test_bad_column_fails_with_the_classifiers_verdict(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A query naming a missing column fails its step (DuckDB's BinderException, no retry)."""
        monkeypatch.setenv("PIPESTATE_DATA_DIR", str(tmp_path))
        broken = tmp_path / "billing.yml"
        text = BILLING.read_text(encoding="utf-8").replace(
            "sql/cost_by_service.sql", str(tmp_path / "bad.sql")
        )
        broken.write_text(
            text.replace("files: {export: data/", f"files: {{export: {BILLING.parent}/data/"),
            encoding="utf-8",
        )
        (tmp_path / "bad.sql").write_text(
            "SELECT no_such_column FROM raw_billing", encoding="utf-8"
        )
        result, rows = _run_billing(tmp_path, broken)
        assert result.state == "FAILED"
        failed = [
            r for r in rows if r["entity_name"] == "cost_by_service" and r["to_state"] == "FAILED"
        ]
        assert len(failed) == 1
        assert failed[0]["error_type"] in ("PERMANENT", "VALIDATION_ERROR")
        assert failed[0]["retry_count"] == 0
        assert "no_such_column" in failed[0]["error_message"]

    def test_missing_input_file_fails_the_load(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A missing export file fails load_export; its dependents fail as DEPENDENCY_FAILURE."""
        monkeypatch.setenv("PIPESTATE_DATA_DIR", str(tmp_path))
        broken = tmp_path / "billing.yml"
        text = BILLING.read_text(encoding="utf-8").replace(
            "data/billing_export.csv", "data/nope.csv"
        )
        broken.write_text(
            text.replace("sql_file: sql/", f"sql_file: {BILLING.parent}/sql/"), encoding="utf-8"
        )
        result, rows = _run_billing(tmp_path, broken)
        assert result.state == "FAILED"
        ends = {r["entity_name"]: r for r in rows if r["to_state"] == "FAILED"}
        assert "No files found" in ends["load_export"]["error_message"]
        assert ends["cost_by_service"]["error_type"] == "DEPENDENCY_FAILURE"


class _KillOnRetry:
    """A sink that forwards records and stops the lock holder when a step goes RETRYING."""

    def __init__(self, inner: Any, holder: Any) -> None:
        self.inner = inner
        self.holder = holder
        self.retried: list[str] = []

    def emit(self, record: Any) -> None:
        self.inner.emit(record)
        if record.to_state == "RETRYING":
            self.retried.append(record.entity_name)
            self.holder.kill()
            self.holder.wait()


class TestLockIsRetried:
    def test_database_locked_by_another_process_is_transient_and_retried(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A DuckDB file locked by another process fails the step TRANSIENT; the retry succeeds."""
        import subprocess
        import sys

        monkeypatch.setenv("PIPESTATE_DATA_DIR", str(tmp_path))
        db = tmp_path / "billing.duckdb"
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                "print('locked', flush=True); time.sleep(60)",
                str(db),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"

            async def go() -> PipelineResult:
                store = SQLiteStore(tmp_path / "audit.db")
                try:
                    async with MetadataLogger(store) as logger:
                        sink = _KillOnRetry(logger, holder)
                        return await run_pipeline(BILLING, org_slug="test_org", logger=sink)
                finally:
                    store.close()

            result = asyncio.run(go())
        finally:
            holder.kill()
            holder.wait()
        rows = read_rows(tmp_path / "audit.db", result.pipeline_logging_id)
        assert result.state == "COMPLETED", result.error_message
        load = [
            (r["from_state"], r["to_state"], r["error_type"])
            for r in rows
            if r["entity_name"] == "load_export"
        ]
        assert load[:3] == [
            ("PENDING", "RUNNING", None),
            ("RUNNING", "RETRYING", "TRANSIENT"),
            ("RETRYING", "RUNNING", None),
        ]
        assert load[-1][1] == "COMPLETED"
