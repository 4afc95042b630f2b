"""`http.extract`: fetch JSON or CSV over HTTP(S) with httpx into a file or a DuckDB table.

A step's config::

    processor: http.extract
    config:
      url: https://api.example.com/v1/costs
      query: {date: $date, page_size: 500}   # a value "$name" is the run parameter `name`
      format: json                           # json | csv (default: from the Content-Type)
      output: data/costs.json                # under $PIPESTATE_DATA_DIR or next to the pipeline
      duckdb: {database: wh.duckdb, table: raw_costs, mode: replace}   # optional load
      timeout_seconds: 30
      max_bytes: 104857600

The body streams to a temporary file next to `output` and is renamed into place when complete, so
a failed or oversized download never leaves half a file. A 429 or 503 raises httpx's
HTTPStatusError, which the classifier calls TRANSIENT and the step's retry policy retries: there is
no second retry loop here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from executor.etl._common import (
    WRITE_MODES,
    allowed_keys,
    resolve_output,
    run_params,
    table_name,
    text,
)
from executor.processors import ConfigProblem, ProcessorContext, processor

if TYPE_CHECKING:
    from pathlib import Path

KEYS = ("url", "query", "format", "output", "duckdb", "timeout_seconds", "max_bytes")
FORMATS = ("json", "csv")
DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class ResponseTooLarge(ValueError):
    """The response body passed the step's max_bytes; nothing was kept."""


def check_config(config: Mapping[str, Any]) -> None:
    """Check an http.extract step config when the pipeline is loaded."""
    allowed_keys(config, *KEYS)
    url = text(config, "url", required=True) or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigProblem("url", f"expected an http:// or https:// URL, got {url!r}")
    text(config, "output", required=True)
    if config.get("format", "json") not in FORMATS:
        raise ConfigProblem("format", f"expected json or csv, got {config.get('format')!r}")
    query = config.get("query") or {}
    if not isinstance(query, Mapping):
        raise ConfigProblem("query", f"expected a mapping, got {query!r}")
    for key in ("timeout_seconds", "max_bytes"):
        value = config.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigProblem(key, f"expected a positive number, got {value!r}")
    load = config.get("duckdb")
    if load is not None:
        if not isinstance(load, Mapping):
            raise ConfigProblem("duckdb", f"expected a mapping, got {load!r}")
        allowed_keys(load, "database", "table", "mode")
        text(load, "database", required=True)
        table_name(load.get("table"), "duckdb.table")
        if load.get("mode", "replace") not in WRITE_MODES:
            raise ConfigProblem("duckdb.mode", f"expected one of {', '.join(WRITE_MODES)}")


def _query(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (config.get("query") or {}).items():
        if isinstance(value, str) and value.startswith("$"):
            name = value[1:]
            if name not in params:
                from classifier.errors import ValidationError

                raise ValidationError(f"query.{key}: run parameter {name!r} was not given")
            value = params[name]
        out[str(key)] = value
    return out


async def _download(
    url: str, query: Mapping[str, Any], dest: Path, seconds: float, limit: int
) -> tuple[int, str, int]:
    import httpx

    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client,
            client.stream("GET", url, params=dict(query)) as response,
        ):
            response.raise_for_status()
            with partial.open("wb") as fh:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLarge(
                            f"response from {response.url.host} passed max_bytes={limit}"
                        )
                    fh.write(chunk)
            content_type = response.headers.get("content-type", "")
            status = response.status_code
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return size, content_type, status


def _load(path: Path, fmt: str, database: Path, table: str, mode: str) -> int:
    import duckdb

    from executor.etl.duckdb_sql import _wrap

    reader = "read_json_auto" if fmt == "json" else "read_csv_auto"
    con = duckdb.connect(str(database))
    try:
        statement = _wrap(f"SELECT * FROM {reader}($path)", table, mode)
        if mode == "append":
            quoted = ".".join(f'"{p}"' for p in table.split("."))
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted} AS SELECT * FROM {reader}($path) LIMIT 0",
                {"path": str(path)},
            )
        row = con.execute(statement, {"path": str(path)}).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


@processor("http.extract", check_config=check_config)
async def http_extract(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """Download the URL to the output file (and optionally load it into DuckDB)."""
    import asyncio  # here: `pipestate validate` imports this module, not asyncio

    started = time.perf_counter()
    dest = resolve_output(context, str(config["output"]))
    dest.parent.mkdir(parents=True, exist_ok=True)
    size, content_type, status = await _download(
        str(config["url"]),
        _query(config, run_params(context)),
        dest,
        float(config.get("timeout_seconds", 30)),
        int(config.get("max_bytes", DEFAULT_MAX_BYTES)),
    )
    fmt = config.get("format") or ("csv" if "csv" in content_type else "json")
    result: dict[str, Any] = {
        "bytes": size,
        "http_status": status,
        "format": fmt,
        "output": dest.name,
    }
    load = config.get("duckdb")
    if load:
        database = resolve_output(context, str(load["database"]))
        rows = await asyncio.to_thread(
            _load, dest, fmt, database, str(load["table"]), str(load.get("mode", "replace"))
        )
        result.update(rows_processed=rows, target_table=str(load["table"]))
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return result
