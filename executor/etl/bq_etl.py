"""`gcp.bq_etl`: a BigQuery query job into a destination table, traced back to its run.

A step's config::

    processor: gcp.bq_etl
    config:
      project: my-project                   # default: the client's (ADC) project
      query: |                              # or query_file: daily_cost.sql
        SELECT service, SUM(cost) AS cost FROM `billing.export`
        WHERE usage_date = @date GROUP BY service
      default_dataset: my-project.cost      # unqualified tables in the query and destination
      destination: daily_cost               # or project.dataset.table
      write_disposition: WRITE_TRUNCATE     # WRITE_APPEND | WRITE_EMPTY
      params: {threshold: 2.5}              # static; run parameters (--param date=...) win
      location: US
      dry_run: true                         # estimate bytes processed first (default true)

Query parameters are bound (`@name`), never formatted: a string that looks like YYYY-MM-DD is a
DATE, booleans BOOL, integers INT64, floats FLOAT64, everything else STRING. Job labels carry the
org, the pipeline, the step and the pipeline_logging_id, so a job in the BigQuery console leads
back to its run. The job timeout is the step's timeout; a cancelled or timed-out step cancels its
job. The emulator endpoint comes from `api_endpoint` or PIPESTATE_BQ_ENDPOINT (anonymous
credentials, as the BigQuery store does).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from executor.etl._common import (
    allowed_keys,
    resolve_path,
    run_params,
    static_params,
    table_name,
    text,
)
from executor.processors import ConfigProblem, ProcessorContext, processor

KEYS = (
    "project",
    "query",
    "query_file",
    "destination",
    "default_dataset",
    "write_disposition",
    "params",
    "location",
    "dry_run",
    "api_endpoint",
)
DISPOSITIONS = ("WRITE_TRUNCATE", "WRITE_APPEND", "WRITE_EMPTY")
_PARAM_RE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def check_config(config: Mapping[str, Any]) -> None:
    """Check a gcp.bq_etl step config when the pipeline is loaded."""
    allowed_keys(config, *KEYS)
    if ("query" in config) == ("query_file" in config):
        raise ConfigProblem("query", "give exactly one of query and query_file")
    text(config, "query")
    text(config, "query_file")
    if "destination" in config:
        table_name(config["destination"], "destination")
    if "default_dataset" in config:
        table_name(config["default_dataset"], "default_dataset")
    disposition = config.get("write_disposition", "WRITE_TRUNCATE")
    if disposition not in DISPOSITIONS:
        raise ConfigProblem(
            "write_disposition", f"expected one of {', '.join(DISPOSITIONS)}, got {disposition!r}"
        )
    for key in ("project", "location", "api_endpoint"):
        text(config, key)
    if not isinstance(config.get("dry_run", True), bool):
        raise ConfigProblem("dry_run", f"expected true or false, got {config.get('dry_run')!r}")
    static_params(config)


def label(value: str) -> str:
    """A BigQuery label value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return _LABEL_BAD.sub("_", value.lower())[:63]


def query_parameters(sql: str, values: Mapping[str, Any]) -> list[Any]:
    """Typed ScalarQueryParameters for the `@name`s the query uses; missing ones are an error."""
    from google.cloud import bigquery

    wanted = sorted(set(_PARAM_RE.findall(sql)))
    missing = [name for name in wanted if name not in values]
    if missing:
        from classifier.errors import ValidationError

        raise ValidationError(
            f"query parameter {', '.join('@' + m for m in missing)} has no value "
            f"(known: {', '.join(sorted(values)) or 'none'}; pass it with --param or params:)"
        )
    out = []
    for name in wanted:
        value = values[name]
        if isinstance(value, bool):
            kind = "BOOL"
        elif isinstance(value, int):
            kind = "INT64"
        elif isinstance(value, float):
            kind = "FLOAT64"
        elif isinstance(value, dt.date) or (isinstance(value, str) and _DATE_RE.match(value)):
            kind, value = "DATE", str(value)
        else:
            kind, value = "STRING", str(value)
        out.append(bigquery.ScalarQueryParameter(name, kind, value))
    return out


def _qualify(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(project.dataset, project.dataset.table): bare names take the config's or env's project."""
    dataset = config.get("default_dataset")
    destination = config.get("destination")
    if dataset and "." not in dataset:
        project = config.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            from classifier.errors import ValidationError

            raise ValidationError(
                "default_dataset: give project.dataset, or set project: (or GOOGLE_CLOUD_PROJECT)"
            )
        dataset = f"{project}.{dataset}"
    if destination and "." not in destination:
        if not dataset:
            from classifier.errors import ValidationError

            raise ValidationError("destination: a bare table name needs default_dataset")
        destination = f"{dataset}.{destination}"
    return dataset, destination


def _client(config: Mapping[str, Any]) -> Any:
    from google.cloud import bigquery

    endpoint = config.get("api_endpoint") or os.environ.get("PIPESTATE_BQ_ENDPOINT")
    if not endpoint:
        return bigquery.Client(project=config.get("project"), location=config.get("location"))
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(
        project=config.get("project"),
        location=config.get("location"),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=str(endpoint)),
    )


class _JobHandle:
    """What the event loop needs to stop the job that a worker thread runs."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.job: Any = None

    def cancel(self) -> None:
        """Stop a job not yet started, and cancel one that is running."""
        self.cancelled.set()
        if self.job is not None:
            self.job.cancel()


def _run_job(
    config: Mapping[str, Any],
    sql: str,
    job_config: Any,
    timeout: float | None,
    handle: _JobHandle,
) -> dict[str, Any]:
    from google.cloud import bigquery

    client = _client(config)  # owned by this thread: closed here whatever the loop does
    try:
        estimate = None
        if config.get("dry_run", True):
            probe = bigquery.QueryJobConfig(
                dry_run=True, use_query_cache=False, query_parameters=job_config.query_parameters
            )
            estimate = client.query(sql, job_config=probe).total_bytes_processed
        if handle.cancelled.is_set():
            raise RuntimeError("step cancelled before its BigQuery job started")
        handle.job = client.query(sql, job_config=job_config)
        result = handle.job.result(timeout=timeout)
        return {
            "job_id": handle.job.job_id,
            "rows": int(result.total_rows or 0),
            "bytes_processed": handle.job.total_bytes_processed,
            "estimated_bytes_processed": estimate,
            "dml_affected_rows": handle.job.num_dml_affected_rows,
        }
    finally:
        client.close()


@processor("gcp.bq_etl", check_config=check_config)
async def bq_etl(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the step's query as a BigQuery job in a worker thread; cancel the job on cancel."""
    import asyncio  # here: `pipestate validate` imports this module, not asyncio

    from google.cloud import bigquery

    sql = (
        str(config["query"])
        if "query" in config
        else resolve_path(context, str(config["query_file"])).read_text("utf-8")
    )
    values = {**static_params(config), **run_params(context)}
    timeout = context.timeout_seconds
    job_config = bigquery.QueryJobConfig(
        query_parameters=query_parameters(sql, values),
        labels={
            "org": label(context.org_slug),
            "pipeline": label(context.pipeline_id),
            "step": label(context.step_id),
            "pipeline_logging_id": label(context.pipeline_logging_id),
        },
    )
    if timeout is not None:
        job_config.job_timeout_ms = int(timeout * 1000)
    dataset, destination = _qualify(config)
    if dataset:
        job_config.default_dataset = dataset
    if destination:
        job_config.destination = str(destination)
        job_config.write_disposition = config.get("write_disposition", "WRITE_TRUNCATE")
    handle = _JobHandle()
    started = time.perf_counter()
    try:
        done = await asyncio.to_thread(_run_job, config, sql, job_config, timeout, handle)
    except asyncio.CancelledError:
        # The job would otherwise run (and bill) on after the step is gone.
        await asyncio.shield(asyncio.to_thread(handle.cancel))
        raise
    return {
        **done,
        "rows_processed": done["rows"],
        "destination": destination,
        "write_disposition": job_config.write_disposition if destination else None,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
