"""Tests for executor.etl.bq_etl and the BigQuery billing example, on the local emulator."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from classifier.errors import ValidationError
from executor.etl.bq_etl import check_config, label, query_parameters
from executor.processors import ConfigProblem
from executor.runner import PipelineResult, run_pipeline
from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore
from tests.bq_emulator import BQEmulator, drop_dataset, emulator_client
from tests.strategies.pipelines import read_rows

ROOT = Path(__file__).resolve().parent.parent
BILLING = ROOT / "configs/gcp/cost/billing.yml"


class TestPieces:
    def test_parameter_types(self) -> None:
        """Dates, booleans, integers, floats and strings get their BigQuery types."""
        params = query_parameters(
            "SELECT @d, @b, @i, @f, @s, @d",
            {"d": "2025-12-01", "b": True, "i": 3, "f": 2.5, "s": "x", "unused": 1},
        )
        assert [(p.name, p.type_, p.value) for p in params] == [
            ("b", "BOOL", True),
            ("d", "DATE", "2025-12-01"),
            ("f", "FLOAT64", 2.5),
            ("i", "INT64", 3),
            ("s", "STRING", "x"),
        ]

    def test_missing_parameter_is_named(self) -> None:
        """An @name with no value is a ValidationError naming it."""
        with pytest.raises(ValidationError, match=r"@date has no value"):
            query_parameters("SELECT @date", {})

    def test_labels_are_valid_bigquery_labels(self) -> None:
        """Label values are lowercased, limited to [a-z0-9_-] and 63 characters."""
        assert label("Test.Org/ÄÖ" + "x" * 80) == ("test_org___" + "x" * 80)[:63]

    @pytest.mark.parametrize(
        ("config", "key"),
        [
            ({}, "query"),
            ({"query": "SELECT 1", "query_file": "a.sql"}, "query"),
            ({"query": "SELECT 1", "write_disposition": "WRITE_SOMETIMES"}, "write_disposition"),
            ({"query": "SELECT 1", "destination": "a b"}, "destination"),
            ({"query": "SELECT 1", "dry_run": "yes"}, "dry_run"),
        ],
    )
    def test_bad_configs_name_the_key(self, config: dict[str, Any], key: str) -> None:
        """Each mistake is refused at load time naming the key."""
        with pytest.raises(ConfigProblem) as info:
            check_config(config)
        assert info.value.key == key


@pytest.fixture
def billing_dataset(
    bq_emulator: BQEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BQEmulator, str]]:
    """A dataset holding the synthetic billing export as billing_export, dropped afterwards."""
    from google.cloud import bigquery

    dataset = "cost"  # the shipped SQL names cost.billing_export (the emulator needs it qualified)
    client = emulator_client(bq_emulator)
    client.create_dataset(f"{bq_emulator.project}.{dataset}")
    schema = [
        bigquery.SchemaField("usage_date", "DATE"),
        bigquery.SchemaField("project_id", "STRING"),
        bigquery.SchemaField("service", "STRING"),
        bigquery.SchemaField("sku", "STRING"),
        bigquery.SchemaField("region", "STRING"),
        bigquery.SchemaField("usage_amount", "FLOAT64"),
        bigquery.SchemaField("cost", "NUMERIC"),
        bigquery.SchemaField("currency", "STRING"),
    ]
    table = client.create_table(
        bigquery.Table(f"{bq_emulator.project}.{dataset}.billing_export", schema=schema)
    )
    with (ROOT / "configs/local/cost/data/billing_export.csv").open(encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    errors = client.insert_rows_json(table, records)
    assert errors == []
    monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", bq_emulator.endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", bq_emulator.project)
    try:
        yield bq_emulator, dataset
    finally:
        client.close()
        drop_dataset(bq_emulator, dataset)


def _run(
    tmp_path: Path, config: Path, dataset: str, **kwargs: Any
) -> tuple[PipelineResult, list[dict[str, Any]]]:
    pipeline = tmp_path / "billing.yml"
    pipeline.write_text(
        config.read_text(encoding="utf-8")
        .replace("default_dataset: cost", f"default_dataset: {dataset}")
        .replace("query_file: sql/", f"query_file: {config.parent}/sql/"),
        encoding="utf-8",
    )

    async def go() -> PipelineResult:
        store = SQLiteStore(tmp_path / "audit.db")
        try:
            async with MetadataLogger(store) as logger:
                return await run_pipeline(pipeline, org_slug="test_org", logger=logger, **kwargs)
        finally:
            store.close()

    result = asyncio.run(go())
    return result, read_rows(tmp_path / "audit.db", result.pipeline_logging_id)


def _expected_by_service(date: str) -> dict[str, Decimal]:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts/gen_billing_data.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    totals: dict[str, Decimal] = {}
    for row in gen.rows():
        if row[0] == date:
            totals[row[2]] = totals.get(row[2], Decimal(0)) + Decimal(row[6])
    return {k: v.quantize(Decimal("0.01")) for k, v in totals.items()}


@pytest.mark.bigquery
class TestBillingOnTheEmulator:
    def test_known_answers_labels_and_destinations(
        self, tmp_path: Path, billing_dataset: tuple[BQEmulator, str]
    ) -> None:
        """The BigQuery billing pipeline writes the same figures as the generator says, traced."""
        emulator, dataset = billing_dataset
        result, rows = _run(tmp_path, BILLING, dataset)
        assert result.state == "COMPLETED", result.error_message
        client = emulator_client(emulator)
        try:
            got = {
                r["service"]: Decimal(str(r["cost"])).quantize(Decimal("0.01"))
                for r in client.query(
                    f"SELECT service, cost FROM `{dataset}.daily_cost_by_service`"
                ).result()
            }
            anomalies = [
                (r["project_id"], r["service"])
                for r in client.query(
                    f"SELECT project_id, service FROM `{dataset}.cost_anomalies`"
                ).result()
            ]
            jobs = [j for j in client.list_jobs() if (j.labels or {}).get("pipeline_logging_id")]
        finally:
            client.close()
        assert got == _expected_by_service("2025-12-01")
        assert anomalies == [("analytics-prod", "BigQuery")]
        ours = [j for j in jobs if j.labels["pipeline_logging_id"] == result.pipeline_logging_id]
        assert {j.labels["step"] for j in ours} >= {
            "cost_by_service",
            "cost_by_project",
            "flag_anomalies",
        }
        assert all(j.labels["org"] == "test_org" for j in ours)
        assert {r["entity_name"] for r in rows if r["to_state"] == "COMPLETED"} == {
            "billing",
            "cost_by_service",
            "cost_by_project",
            "flag_anomalies",
        }

    def test_bad_column_is_a_classified_failure(
        self, tmp_path: Path, billing_dataset: tuple[BQEmulator, str]
    ) -> None:
        """A query naming a missing column fails with the classifier's verdict on BadRequest."""
        _, dataset = billing_dataset
        broken = tmp_path / "broken.yml"
        sql_dir = tmp_path / "sql"
        sql_dir.mkdir()
        for path in (BILLING.parent / "sql").iterdir():
            (sql_dir / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        (sql_dir / "cost_by_service.sql").write_text(
            "SELECT no_such_column FROM cost.billing_export WHERE usage_date = @date",
            encoding="utf-8",
        )
        broken.write_text(BILLING.read_text(encoding="utf-8"), encoding="utf-8")
        result, rows = _run(tmp_path, broken, dataset)
        assert result.state == "FAILED"
        failed = [
            r for r in rows if r["entity_name"] == "cost_by_service" and r["to_state"] == "FAILED"
        ]
        assert len(failed) == 1
        assert failed[0]["error_type"] in ("PERMANENT", "VALIDATION_ERROR")
        assert failed[0]["retry_count"] == 0
        assert "no_such_column" in failed[0]["error_message"]


@pytest.mark.bigquery
class TestCancellation:
    """The emulator runs a query inside jobs.insert, so a cancel cannot stop it mid-way there;
    these tests check what pipestate does: no job after a cancel, a cancel call for a live one."""

    def _config(self, emulator: BQEmulator) -> dict[str, Any]:
        return {"project": emulator.project, "api_endpoint": emulator.endpoint, "dry_run": False}

    def test_cancel_before_start_creates_no_job(self, bq_emulator: BQEmulator) -> None:
        """A step cancelled during its dry run never starts the real job."""
        from google.cloud import bigquery

        from executor.etl.bq_etl import _JobHandle, _run_job

        handle = _JobHandle()
        handle.cancel()
        marker = uuid.uuid4().hex
        job_config = bigquery.QueryJobConfig(labels={"marker": marker})
        with pytest.raises(RuntimeError, match="cancelled before its BigQuery job started"):
            _run_job(self._config(bq_emulator), "SELECT 1", job_config, None, handle)
        client = emulator_client(bq_emulator)
        try:
            assert [j for j in client.list_jobs() if (j.labels or {}).get("marker") == marker] == []
        finally:
            client.close()

    def test_cancel_reaches_a_started_job(self, bq_emulator: BQEmulator) -> None:
        """Cancelling after the job exists sends BigQuery's jobs.cancel for that job."""
        from google.cloud import bigquery

        from executor.etl.bq_etl import _JobHandle, _run_job

        handle = _JobHandle()
        done = _run_job(
            self._config(bq_emulator), "SELECT 1", bigquery.QueryJobConfig(), None, handle
        )
        assert handle.job is not None
        assert handle.job.job_id == done["job_id"]
        handle.cancel()  # jobs.cancel answered by the emulator: no exception
        assert handle.cancelled.is_set()
