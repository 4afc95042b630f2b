"""BigQueryStore and BigQuery bootstrap against the local BigQuery emulator (local-bigquery)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence.bootstrap import bootstrap
from persistence.queries import run_query
from persistence.schema import load_table_specs
from persistence.stores import open_store
from persistence.stores.base import (
    PIPELINE_RUNS,
    STATE_TRANSITIONS,
    STEP_LOGS,
    TABLES,
    Bootstrappable,
    Store,
    StoreError,
)
from persistence.stores.bigquery import BigQueryStore, is_retryable_error
from statemachine.records import TransitionRecord
from tests.bq_emulator import (
    BQEmulator,
    drop_dataset,
    emulator_client,
    free_port,
    run_emulator,
)

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)


def transition(index: int, **changes: Any) -> dict[str, Any]:
    """A valid org_meta_state_transitions row (TransitionRecord.to_row) with overrides."""
    record = TransitionRecord(
        transition_id=f"tr-{index:06d}",
        org_slug="acme",
        pipeline_logging_id="pl-1",
        step_logging_id=None,
        entity_type="PIPELINE",
        entity_name="billing",
        from_state="PENDING",
        to_state="RUNNING",
        transition_time=NOW + dt.timedelta(milliseconds=index),
        transition_date=NOW.date(),
        metadata={"index": index},
    )
    return {**record.to_row(), **changes}


def count_rows(emulator: BQEmulator, store: BigQueryStore, table: str) -> dict[str, int]:
    """Rows per insert key in a table, read with a separate client."""
    client = emulator_client(emulator)
    try:
        spec = next(s for s in load_table_specs() if s.name == table)
        sql = (
            f"SELECT {spec.id_column} AS id, COUNT(*) AS n FROM `{store.table_ref(table)}` "
            f"GROUP BY {spec.id_column}"
        )
        return {row["id"]: row["n"] for row in client.query(sql).result()}
    finally:
        client.close()


def new_store(emulator: BQEmulator, **kwargs: Any) -> BigQueryStore:
    """A store on a fresh dataset of the session's emulator."""
    return BigQueryStore(
        emulator.project,
        f"t_{uuid.uuid4().hex[:12]}",
        api_endpoint=emulator.endpoint,
        retry_timeout_seconds=10.0,
        **kwargs,
    )


@pytest.fixture
def empty_store(bq_emulator: BQEmulator) -> Iterator[BigQueryStore]:
    """A store whose dataset does not exist yet."""
    store = new_store(bq_emulator)
    yield store
    store.close()
    drop_dataset(bq_emulator, store.dataset)


@pytest.fixture
def bq_store(empty_store: BigQueryStore) -> BigQueryStore:
    """A store with its dataset and tables bootstrapped."""
    bootstrap(empty_store)
    return empty_store


class TestIdentifiers:
    """Identifiers are validated before any SQL or API call can see them."""

    @pytest.mark.parametrize(
        "dataset",
        ["org`s", "a;DROP TABLE x", "x'y", 'x"y', "a.b", "a b", "", "1abc", "a-b"],
    )
    def test_bad_dataset_rejected(self, dataset: str) -> None:
        """A dataset with quotes, backticks, semicolons, dots or spaces is refused, by name."""
        with pytest.raises(ValueError, match="BigQuery dataset") as info:
            BigQueryStore("test", dataset, api_endpoint="http://127.0.0.1:9")
        assert repr(dataset) in str(info.value)

    @pytest.mark.parametrize("project", ["Test", "p`x", "p;x", "p'x", "p x", "-p", ""])
    def test_bad_project_rejected(self, project: str) -> None:
        """A project that is not a lowercase GCP project id is a ValueError naming it."""
        with pytest.raises(ValueError, match="BigQuery project") as info:
            BigQueryStore(project, api_endpoint="http://127.0.0.1:9")
        assert repr(project) in str(info.value)

    def test_bad_table_rejected(self) -> None:
        """A table name with a backtick cannot become part of a table reference."""
        store = BigQueryStore("test", api_endpoint="http://127.0.0.1:9")
        with pytest.raises(ValueError, match="BigQuery table"):
            store.table_ref("x`; DROP TABLE y; --")
        assert store.table_ref(STEP_LOGS) == f"test.organizations.{STEP_LOGS}"

    def test_endpoint_needs_scheme(self) -> None:
        """An api_endpoint without http:// or https:// is refused with the value shown."""
        with pytest.raises(ValueError, match=r"127\.0\.0\.1:9050"):
            BigQueryStore("test", api_endpoint="127.0.0.1:9050")

    def test_unknown_table_is_permanent(self) -> None:
        """Writing to a table the schema files do not declare is a non-retryable StoreError."""
        store = BigQueryStore("test", api_endpoint="http://127.0.0.1:9")
        with pytest.raises(StoreError, match="unknown table") as info:
            store.write_batch("nope", [{"id": 1}])
        assert info.value.retryable is False


class TestFromEnv:
    """from_env reads PIPESTATE_BQ_* and lets keyword overrides win."""

    def test_reads_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Project, dataset, location and endpoint come from the environment."""
        monkeypatch.setenv("PIPESTATE_BQ_PROJECT", "my-proj")
        monkeypatch.setenv("PIPESTATE_BQ_DATASET", "audit")
        monkeypatch.setenv("PIPESTATE_BQ_LOCATION", "EU")
        monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", "http://127.0.0.1:9")
        store = BigQueryStore.from_env()
        assert (store.project, store.dataset, store.location, store.api_endpoint) == (
            "my-proj",
            "audit",
            "EU",
            "http://127.0.0.1:9",
        )

    def test_overrides_win_and_dataset_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Keyword arguments beat the environment; the dataset defaults to organizations."""
        monkeypatch.setenv("PIPESTATE_BQ_PROJECT", "env-proj")
        monkeypatch.delenv("PIPESTATE_BQ_DATASET", raising=False)
        store = BigQueryStore.from_env(project="kw-proj", api_endpoint="http://127.0.0.1:9")
        assert (store.project, store.dataset) == ("kw-proj", "organizations")

    def test_open_store_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """open_store('bigquery:PROJECT.DATASET') builds a BigQueryStore with the env endpoint."""
        monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", "http://127.0.0.1:9")
        store = open_store("bigquery:my-proj.audit", outbox=False)
        assert isinstance(store, BigQueryStore)
        assert (store.project, store.dataset, store.api_endpoint) == (
            "my-proj",
            "audit",
            "http://127.0.0.1:9",
        )
        store.close()

    def test_missing_project_names_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a project the error names PIPESTATE_BQ_PROJECT."""
        monkeypatch.delenv("PIPESTATE_BQ_PROJECT", raising=False)
        with pytest.raises(ValueError, match="PIPESTATE_BQ_PROJECT"):
            BigQueryStore.from_env()


class TestRetryClassification:
    """Whole-request failures are retryable exactly when trying again can help."""

    def test_server_errors_and_network_are_retryable(self) -> None:
        """HTTP 429/503 and a deadline spent on connection errors are retryable."""
        from google.api_core import exceptions as gexc

        assert is_retryable_error(gexc.ServiceUnavailable("backend down"))
        assert is_retryable_error(gexc.TooManyRequests("slow down"))
        assert is_retryable_error(gexc.RetryError("deadline", ConnectionError("refused")))

    def test_client_errors_are_permanent(self) -> None:
        """A malformed request or a denied permission is not retried."""
        from google.api_core import exceptions as gexc

        assert not is_retryable_error(gexc.BadRequest("invalid field"))
        assert not is_retryable_error(gexc.Forbidden("permission denied"))


@pytest.mark.bigquery
class TestBootstrap:
    """Bootstrap creates the dataset and every table once, as the schema files declare them."""

    def test_creates_dataset_and_tables(
        self, bq_emulator: BQEmulator, empty_store: BigQueryStore
    ) -> None:
        """Every table appears partitioned and clustered as specified, with a JSON column."""
        assert isinstance(empty_store, Bootstrappable)
        report = bootstrap(empty_store, partition_expiration_days=30)
        assert set(report.created) == set(TABLES)
        assert report.actions[0].startswith("create dataset ")
        client = emulator_client(bq_emulator)
        try:
            for spec in load_table_specs():
                table = client.get_table(empty_store.table_ref(spec.name))
                assert table.time_partitioning.type_ == "DAY"
                assert table.time_partitioning.field == spec.partition_field
                # The key table never expires (bootstrap.yml: partition_expiration_days: null).
                days = None if spec.expiration_days is None else 30
                assert table.time_partitioning.expiration_ms == (days and days * 86_400_000)
                assert table.clustering_fields == list(spec.clustering)
                assert table.description == spec.description
                types = {f.name: (f.field_type, f.mode) for f in table.schema}
                assert types == {f.name: (f.type, f.mode) for f in spec.fields}
                if "metadata" in types:  # the audit tables (not the key table)
                    assert types["metadata"] == ("JSON", "NULLABLE")
        finally:
            client.close()

    def test_second_run_changes_nothing(self, empty_store: BigQueryStore) -> None:
        """Running bootstrap again reports every table as existing and no action."""
        bootstrap(empty_store)
        again = bootstrap(empty_store)
        assert again.actions == ()
        assert set(again.existing) == set(TABLES)
        assert "Nothing to do" in again.render()

    def test_dry_run_creates_nothing(
        self, bq_emulator: BQEmulator, empty_store: BigQueryStore
    ) -> None:
        """A dry run lists the dataset and every table but the dataset still does not exist."""
        from google.api_core.exceptions import NotFound

        report = bootstrap(empty_store, dry_run=True)
        assert report.dry_run
        assert len(report.actions) == 1 + len(TABLES)  # the dataset, then every table
        client = emulator_client(bq_emulator)
        try:
            with pytest.raises(NotFound):
                client.get_dataset(f"{empty_store.project}.{empty_store.dataset}")
        finally:
            client.close()

    def test_dry_run_after_bootstrap_is_empty(self, bq_store: BigQueryStore) -> None:
        """On a bootstrapped dataset a dry run has nothing to propose."""
        assert bootstrap(bq_store, dry_run=True).actions == ()


@pytest.mark.bigquery
class TestWriteBatch:
    """Streaming inserts land every good row exactly once and name every rejected row."""

    def test_is_a_store(self, bq_store: BigQueryStore) -> None:
        """BigQueryStore satisfies the Store protocol."""
        assert isinstance(bq_store, Store)

    def test_retried_batch_does_not_duplicate(
        self, bq_emulator: BQEmulator, bq_store: BigQueryStore
    ) -> None:
        """Sending the same batch twice leaves one row per transition_id (insertId)."""
        rows = [transition(i) for i in range(10)]
        first = bq_store.write_batch(STATE_TRANSITIONS, rows)
        second = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert (first.written, first.rejected) == (10, ())
        assert (second.written, second.rejected) == (10, ())
        assert count_rows(bq_emulator, bq_store, STATE_TRANSITIONS) == {
            row["transition_id"]: 1 for row in rows
        }

    def test_bad_row_rejected_rest_lands(
        self, bq_emulator: BQEmulator, bq_store: BigQueryStore
    ) -> None:
        """A row missing a REQUIRED field comes back as a RowError with its id; others land."""
        rows = [transition(i) for i in range(5)]
        rows[2] = {k: v for k, v in rows[2].items() if k != "org_slug"}
        result = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert result.written == 4
        assert [e.row_id for e in result.rejected] == ["tr-000002"]
        assert "org_slug" in result.rejected[0].message
        landed = count_rows(bq_emulator, bq_store, STATE_TRANSITIONS)
        assert sorted(landed) == ["tr-000000", "tr-000001", "tr-000003", "tr-000004"]

    def test_unknown_column_and_bad_json_rejected(self, bq_store: BigQueryStore) -> None:
        """An unknown column and non-JSON metadata text are each rejected by row id."""
        rows = [transition(0, surprise=1), transition(1, metadata="{not json"), transition(2)]
        result = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert result.written == 1
        messages = {e.row_id: e.message for e in result.rejected}
        assert set(messages) == {"tr-000000", "tr-000001"}
        assert "surprise" in messages["tr-000000"]
        assert "metadata" in messages["tr-000001"]

    def test_unsendable_value_rejected_by_id(self, bq_store: BigQueryStore) -> None:
        """A value JSON cannot carry (a set) rejects its row, by id, not the whole batch."""
        rows = [transition(0, reason={"a"}), transition(1)]
        result = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert result.written == 1
        assert [e.row_id for e in result.rejected] == ["tr-000000"]
        assert "reason" in result.rejected[0].message

    def test_row_without_id_is_rejected_by_position(self, bq_store: BigQueryStore) -> None:
        """A row with no insert key cannot be de-duplicated, so it is rejected, never sent."""
        rows = [transition(0), {**transition(1), "transition_id": None}]
        result = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert result.written == 1
        assert [e.row_id for e in result.rejected] == ["<row 1 without transition_id>"]

    def test_large_batch_is_chunked(self, bq_emulator: BQEmulator, bq_store: BigQueryStore) -> None:
        """1,201 rows (three requests of at most 500) all land once."""
        rows = [transition(i) for i in range(1201)]
        result = bq_store.write_batch(STATE_TRANSITIONS, rows)
        assert (result.written, result.rejected) == (1201, ())
        landed = count_rows(bq_emulator, bq_store, STATE_TRANSITIONS)
        assert len(landed) == 1201
        assert set(landed.values()) == {1}

    def test_run_and_step_tables_use_their_ids(
        self, bq_emulator: BQEmulator, bq_store: BigQueryStore
    ) -> None:
        """Pipeline-run and step-log rows de-duplicate on run_log_id and step_log_id."""
        run = {
            "run_log_id": "pl-1:start",
            "pipeline_logging_id": "pl-1",
            "org_slug": "acme",
            "pipeline_id": "billing",
            "status": "RUNNING",
            "start_time": NOW,
            "run_date": NOW.date(),
            "metadata": {"trigger": "api"},
        }
        step = {
            "step_log_id": "st-1:0:end",
            "step_logging_id": "st-1",
            "pipeline_logging_id": "pl-1",
            "org_slug": "acme",
            "step_name": "extract",
            "attempt": 0,
            "status": "FAILED",
            "start_time": NOW,
            "end_time": NOW + dt.timedelta(seconds=3),
            "run_date": NOW.date(),
            "duration_ms": 3000,
            "metadata": json.dumps({"error_context": {"error_type": "TRANSIENT"}}),
        }
        for _ in range(2):
            assert bq_store.write_batch(PIPELINE_RUNS, [run]).written == 1
            assert bq_store.write_batch(STEP_LOGS, [step]).written == 1
        assert count_rows(bq_emulator, bq_store, PIPELINE_RUNS) == {"pl-1:start": 1}
        assert count_rows(bq_emulator, bq_store, STEP_LOGS) == {"st-1:0:end": 1}

    def test_missing_table_is_a_permanent_store_error(self, empty_store: BigQueryStore) -> None:
        """Writing before bootstrap fails as a whole, not retryable (the table is missing)."""
        with pytest.raises(StoreError, match="insert of 1 rows") as info:
            empty_store.write_batch(STATE_TRANSITIONS, [transition(0)])
        assert info.value.retryable is False

    def test_closed_store_refuses_work(self, bq_store: BigQueryStore) -> None:
        """After close() (twice), writes fail with a non-retryable StoreError."""
        bq_store.close()
        bq_store.close()
        with pytest.raises(StoreError, match="closed") as info:
            bq_store.write_batch(STATE_TRANSITIONS, [transition(0)])
        assert info.value.retryable is False


@pytest.mark.bigquery
class TestQueries:
    """Catalog queries run as parameterised BigQuery SQL."""

    def test_parameters_are_never_sql(self, bq_store: BigQueryStore) -> None:
        """An id crafted as SQL matches nothing and breaks nothing; the real id still works."""
        bq_store.write_batch(STATE_TRANSITIONS, [transition(0), transition(1)])
        evil = "pl-1' OR '1'='1"
        assert run_query(bq_store, "timeline", pipeline_logging_id=evil) == []
        assert len(run_query(bq_store, "timeline", pipeline_logging_id="pl-1")) == 2

    def test_unknown_query_is_permanent(self, bq_store: BigQueryStore) -> None:
        """Asking the store for a query it has no SQL for is a non-retryable StoreError."""
        with pytest.raises(StoreError, match="unknown query") as info:
            bq_store.query("drop_everything", {})
        assert info.value.retryable is False


@pytest.mark.bigquery
class TestOutage:
    """An unreachable BigQuery fails fast with a retryable StoreError."""

    def test_dead_port_is_retryable_store_error(self) -> None:
        """Nothing listening: write_batch raises a retryable StoreError within the deadline."""
        store = BigQueryStore(
            "test",
            api_endpoint=f"http://127.0.0.1:{free_port()}",
            retry_timeout_seconds=1.0,
        )
        with pytest.raises(StoreError) as info:
            store.write_batch(STATE_TRANSITIONS, [transition(0)])
        assert info.value.retryable is True
        store.close()

    def test_emulator_stopped_mid_life(self, bq_emulator: BQEmulator, tmp_path: Path) -> None:
        """A store whose emulator stops raises retryable StoreErrors for writes and queries."""
        with run_emulator(tmp_path) as short_lived:
            store = BigQueryStore(
                short_lived.project,
                "outage",
                api_endpoint=short_lived.endpoint,
                retry_timeout_seconds=1.0,
            )
            bootstrap(store)
            assert store.write_batch(STATE_TRANSITIONS, [transition(0)]).written == 1
        with pytest.raises(StoreError) as write_error:
            store.write_batch(STATE_TRANSITIONS, [transition(1)])
        with pytest.raises(StoreError) as query_error:
            store.query("timeline", {"pipeline_logging_id": "pl-1"})
        assert write_error.value.retryable
        assert query_error.value.retryable
        store.close()
