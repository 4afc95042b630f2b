"""BigQueryStore: audit rows streamed into BigQuery with insertId de-duplication.

Configuration (keyword arguments win; `BigQueryStore.from_env()` reads the environment):

- PIPESTATE_BQ_PROJECT   project id (required by from_env)
- PIPESTATE_BQ_DATASET   dataset (default `organizations`, as bootstrap.yml says)
- PIPESTATE_BQ_LOCATION  dataset location, e.g. `EU` (default: BigQuery's)
- PIPESTATE_BQ_ENDPOINT  API endpoint with its scheme, e.g. `http://127.0.0.1:9050` for the local
                         emulator; with an endpoint and no credentials the client is anonymous.

Credentials default to Application Default Credentials. Every API call carries a retry deadline
(`retry_timeout_seconds`) so an unreachable endpoint fails in seconds, not Google's 10 minutes.

Writes use `insert_rows_json(..., row_ids=[id column values])` so BigQuery's insertId makes a
retried batch land once; requests stay under 500 rows and 5 MB. Rows BigQuery rejects come back
as RowError(row_id, message) while the rest of the batch lands (skip_invalid_rows); a request
that fails as a whole raises StoreError, retryable as the classifier (plus HTTP status) says.

google-cloud-bigquery is imported only when a store is constructed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from persistence.queries import bigquery as bq_sql
from persistence.queries._scope import ORG_PARAM
from persistence.queries.catalog import CATALOG
from persistence.queries.dashboard import DASHBOARD
from persistence.queries.dashboard_bigquery import DASHBOARD_BIGQUERY_SQL
from persistence.schema import DEFAULT_DATASET, TableSpec, load_table_specs
from persistence.stores import _bigquery_rows as rows_
from persistence.stores._select import where_clause
from persistence.stores.base import RowError, StoreError, WriteResult

ENV_PROJECT = "PIPESTATE_BQ_PROJECT"
ENV_DATASET = "PIPESTATE_BQ_DATASET"
ENV_LOCATION = "PIPESTATE_BQ_LOCATION"
ENV_ENDPOINT = "PIPESTATE_BQ_ENDPOINT"
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable_error(exc: BaseException) -> bool:
    """Decide whether a failed BigQuery call is worth retrying.

    HTTP 408/429/5xx and network failures are retryable by definition; everything else goes to
    the classifier. A RetryError (deadline spent) is judged by the last error it wraps.
    """
    import requests
    from google.api_core import exceptions as gexc

    cause: BaseException = exc
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        cause = exc.cause
    code = getattr(cause, "code", None)
    if isinstance(code, int) and code in _RETRYABLE_STATUS:
        return True
    network = (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout)
    if isinstance(cause, network):
        return True
    from classifier import classify_error, is_retryable

    return is_retryable(classify_error(cause, str(cause)))


def _failure(action: str, exc: BaseException) -> StoreError:
    """Wrap a google/network exception in StoreError with a classified `retryable`."""
    message = f"BigQuery {action} failed: {type(exc).__name__}: {exc}"
    return StoreError(message, retryable=is_retryable_error(exc))


class BigQueryStore:
    """A Store (and Bootstrappable) on one BigQuery dataset."""

    dialect = "bigquery"

    def __init__(
        self,
        project: str,
        dataset: str = DEFAULT_DATASET,
        *,
        location: str | None = None,
        credentials: Any = None,
        api_endpoint: str | None = None,
        client: Any = None,
        retry_timeout_seconds: float = 30.0,
        query_timeout_seconds: float = 300.0,
    ) -> None:
        self.project = rows_.validate_project(project)
        self.dataset = rows_.validate_name("dataset", dataset)
        if api_endpoint is not None and not api_endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"api_endpoint must start with http:// or https:// (got {api_endpoint!r})."
            )
        if retry_timeout_seconds <= 0 or query_timeout_seconds <= 0:
            raise ValueError(
                "retry_timeout_seconds and query_timeout_seconds must be > 0 "
                f"(got {retry_timeout_seconds!r}, {query_timeout_seconds!r})."
            )
        self.location = location
        self.api_endpoint = api_endpoint
        self._timeout = float(retry_timeout_seconds)
        self._query_timeout = float(query_timeout_seconds)
        self._specs = {spec.name: spec for spec in load_table_specs()}
        self._owns_client = client is None
        self._client: Any = client or self._make_client(credentials)
        self._retry = self._deadline_retry(self._timeout)
        self._closed = False

    def __repr__(self) -> str:
        endpoint = f", api_endpoint={self.api_endpoint!r}" if self.api_endpoint else ""
        return f"BigQueryStore({self.project!r}, {self.dataset!r}{endpoint})"

    @classmethod
    def from_env(cls, **overrides: Any) -> BigQueryStore:
        """Build a store from PIPESTATE_BQ_* variables; keyword overrides win."""
        env = os.environ
        project = overrides.pop("project", None) or env.get(ENV_PROJECT)
        if not project:
            raise ValueError(f"{ENV_PROJECT} must name a BigQuery project (got nothing).")
        dataset = overrides.pop("dataset", None) or env.get(ENV_DATASET) or DEFAULT_DATASET
        overrides.setdefault("location", env.get(ENV_LOCATION) or None)
        overrides.setdefault("api_endpoint", env.get(ENV_ENDPOINT) or None)
        return cls(project, dataset, **overrides)

    # -- client -------------------------------------------------------------------------------

    def _make_client(self, credentials: Any) -> Any:
        """Create the google client (the only place google-cloud-bigquery is imported)."""
        from google.cloud import bigquery

        options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
        if credentials is None and self.api_endpoint:
            from google.auth.credentials import AnonymousCredentials

            # emulators take no credentials
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return bigquery.Client(
            project=self.project,
            credentials=credentials,
            location=self.location,
            client_options=options,
        )

    @staticmethod
    def _deadline_retry(seconds: float) -> Any:
        """google's default retry policy, bounded by our deadline instead of 10 minutes."""
        from google.cloud.bigquery.retry import DEFAULT_RETRY

        with_timeout = getattr(DEFAULT_RETRY, "with_timeout", None) or DEFAULT_RETRY.with_deadline
        return with_timeout(seconds)

    @property
    def client(self) -> Any:
        """The google BigQuery client, for read-only tools such as `pipestate verify`."""
        self._check_open()
        return self._client

    def _check_open(self) -> None:
        """Refuse work after close() with a non-retryable error."""
        if self._closed:
            raise StoreError(f"{self!r} is closed", retryable=False)

    def table_ref(self, table: str) -> str:
        """The validated `project.dataset.table` identifier of a table."""
        rows_.validate_name("table", table)
        return f"{self.project}.{self.dataset}.{table}"

    def _spec(self, table: str) -> TableSpec:
        """The spec of a known table, or a non-retryable StoreError naming the known ones."""
        try:
            return self._specs[table]
        except KeyError:
            raise StoreError(
                f"unknown table {table!r}; expected one of {sorted(self._specs)}", retryable=False
            ) from None

    # -- Store protocol -----------------------------------------------------------------------

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Stream rows keyed by their id column; bad rows are rejected by id, the rest land."""
        self._check_open()
        spec = self._spec(table)
        rejected: list[RowError] = []
        keyed: list[dict[str, Any]] = []
        ids: list[str] = []
        for index, row in enumerate(rows):
            key = rows_.row_id(spec, row)
            if key is None:
                label = rows_.missing_id_label(spec, index)
                rejected.append(RowError(label, f"{table}: {spec.id_column} is missing or empty"))
                continue
            try:
                keyed.append(rows_.prepare_row(spec, row))
            except ValueError as exc:
                rejected.append(RowError(key, f"{table}: {exc}"))
                continue
            ids.append(key)
        ref = self.table_ref(spec.name)
        for chunk, chunk_ids in rows_.chunks(keyed, ids):
            rejected.extend(self._insert(ref, chunk, chunk_ids))
        return WriteResult(written=len(rows) - len(rejected), rejected=tuple(rejected))

    def _insert(
        self, ref: str, chunk: list[dict[str, Any]], ids: list[str], *, resend: bool = True
    ) -> list[RowError]:
        """One insertAll request; rows only 'stopped' by a bad neighbour are sent once more."""
        from google.api_core import exceptions as gexc

        table = ref.rsplit(".", 1)[-1]
        try:
            errors = self._client.insert_rows_json(
                ref,
                chunk,
                row_ids=ids,
                skip_invalid_rows=True,
                retry=self._retry,
                timeout=self._timeout,
            )
        except gexc.BadRequest as exc:
            # The request as a whole was refused (e.g. malformed JSON in one row): halve the
            # chunk until the culprit stands alone, so one bad row cannot sink its neighbours.
            if len(chunk) == 1:
                return [RowError(ids[0], f"{table}: {exc.message}")]
            middle = len(chunk) // 2
            return self._insert(ref, chunk[:middle], ids[:middle]) + self._insert(
                ref, chunk[middle:], ids[middle:]
            )
        except (gexc.GoogleAPIError, OSError, TimeoutError) as exc:
            raise _failure(f"insert of {len(chunk)} rows into {ref}", exc) from exc
        rejected, stopped = rows_.split_insert_errors(table, ids, errors)
        if stopped and resend:
            again = [chunk[i] for i in stopped]
            rejected += self._insert(ref, again, [ids[i] for i in stopped], resend=False)
        elif stopped:
            rejected += [RowError(ids[i], f"{table}: held back by other rows") for i in stopped]
        return rejected

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the named catalog query's BigQuery SQL with query parameters only."""
        self._check_open()
        if name in DASHBOARD:  # the dashboard's aggregations (persistence.queries.dashboard)
            spec = DASHBOARD[name]
            sql = DASHBOARD_BIGQUERY_SQL[name].replace(
                bq_sql.TABLE_TOKEN, self.table_ref(spec.table)
            )
        elif name in bq_sql.BIGQUERY_SQL and name in CATALOG:
            spec = CATALOG[name]
            scoped = params.get(ORG_PARAM) is not None
            sql = bq_sql.render(name, self.table_ref(spec.table), org_scoped=scoped)
        else:
            raise StoreError(
                f"unknown query {name!r}; expected one of {sorted(bq_sql.BIGQUERY_SQL)}",
                retryable=False,
            )
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        types = {p.name: p.type for p in spec.params}
        parameters = []
        for param in bq_sql.parameter_names(sql):
            if param not in params:
                raise StoreError(
                    f"query {name!r} needs parameter {param!r} (got {sorted(params)})",
                    retryable=False,
                )
            parameters.append(
                bigquery.ScalarQueryParameter(param, types.get(param, "STRING"), params[param])
            )
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        try:
            job = self._client.query(
                sql,
                job_config=config,
                retry=self._retry,
                timeout=self._timeout,
                # No job retry: with one, the client wraps jobs.insert in its own fixed
                # multi-minute retry and a dead endpoint holds the query that long. API calls
                # still retry within our deadline; a failed job is the caller's to re-run.
                job_retry=None,
            )
            result = job.result(retry=self._retry, job_retry=None, timeout=self._query_timeout)
            return [dict(row.items()) for row in result]
        except (gexc.GoogleAPIError, OSError, TimeoutError) as exc:
            raise _failure(f"query {name!r}", exc) from exc

    def run_sql(self, template: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one engine-owned SQL statement (tables as {table_name}) with query parameters.

        For engine modules that keep their own SQL (persistence/watch); never for caller text.
        Parameter types follow the Python values (int, float, bool, str, date, datetime).
        """
        self._check_open()
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        sql = template.format_map({name: f"`{self.table_ref(name)}`" for name in self._specs})
        parameters = [
            bigquery.ScalarQueryParameter(name, rows_.scalar_type(value), value)
            for name, value in params.items()
            if f"@{name}" in sql
        ]
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        try:
            job = self._client.query(
                sql, job_config=config, retry=self._retry, timeout=self._timeout, job_retry=None
            )
            result = job.result(retry=self._retry, job_retry=None, timeout=self._query_timeout)
            return [dict(row.items()) for row in result]
        except (gexc.GoogleAPIError, OSError, TimeoutError) as exc:
            raise _failure("engine query", exc) from exc

    def select_rows(
        self, table: str, where: Mapping[str, str], *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rows of a known table whose STRING columns equal `where`'s values (query parameters)."""
        self._check_open()
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        spec = self._spec(table)
        clause = where_clause(spec, where, lambda i: f"@p{i}").replace('"', "`")
        sql = f"SELECT * FROM `{self.table_ref(spec.name)}` WHERE {clause} LIMIT {int(limit)}"
        parameters = [
            bigquery.ScalarQueryParameter(f"p{i}", "STRING", value)
            for i, value in enumerate(where.values())
        ]
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        try:
            job = self._client.query(
                sql, job_config=config, retry=self._retry, timeout=self._timeout, job_retry=None
            )
            result = job.result(retry=self._retry, job_retry=None, timeout=self._query_timeout)
            return [dict(row.items()) for row in result]
        except (gexc.GoogleAPIError, OSError, TimeoutError) as exc:
            raise _failure(f"read of {spec.name}", exc) from exc

    def close(self) -> None:
        """Close the HTTP session of a client this store created; safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                self._client.close()

    # -- bootstrap ----------------------------------------------------------------------------

    def ensure_tables(self, specs: Sequence[TableSpec], *, dry_run: bool) -> list[str]:
        """Create the dataset and missing tables; a dry run only reads, then reports."""
        self._check_open()
        from google.api_core import exceptions as gexc

        from persistence.stores._bigquery_ddl import dataset_action, table_action, to_table

        dataset_id = f"{self.project}.{self.dataset}"
        actions: list[str] = []
        try:
            dataset_exists = self._exists(self._client.get_dataset, dataset_id)
            if not dataset_exists:
                actions.append(dataset_action(dataset_id, self.location))
                if not dry_run:
                    from google.cloud import bigquery

                    dataset = bigquery.Dataset(dataset_id)
                    if self.location:
                        dataset.location = self.location
                    self._client.create_dataset(
                        dataset, exists_ok=True, retry=self._retry, timeout=self._timeout
                    )
            for spec in specs:
                ref = self.table_ref(spec.name)
                if dataset_exists and self._exists(self._client.get_table, ref):
                    continue
                actions.append(table_action(ref, spec))
                if not dry_run:
                    self._client.create_table(
                        to_table(ref, spec),
                        exists_ok=True,
                        retry=self._retry,
                        timeout=self._timeout,
                    )
        except (gexc.GoogleAPIError, OSError, TimeoutError) as exc:
            raise _failure(f"bootstrap of {dataset_id}", exc) from exc
        return actions

    def _exists(self, getter: Any, ref: str) -> bool:
        """True when the dataset or table exists (a NotFound is the only 'no')."""
        from google.api_core import exceptions as gexc

        try:
            getter(ref, retry=self._retry, timeout=self._timeout)
        except gexc.NotFound:
            return False
        return True
