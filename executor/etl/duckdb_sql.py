"""`duckdb.sql`: run SQL in an embedded DuckDB database file, parameters bound, never formatted.

A step's config::

    processor: duckdb.sql
    config:
      database: warehouse.duckdb          # under $PIPESTATE_DATA_DIR or next to the pipeline
      files: {billing: data/billing.csv}  # paths bound as $billing (resolved like database)
      sql: |                              # or a list of statements, or sql_file: daily.sql
        SELECT service, SUM(cost) AS cost FROM read_csv_auto($billing)
        WHERE usage_date = $date::DATE GROUP BY service
      target: {table: daily_cost, mode: replace}   # create | replace | append
      params: {threshold: 2.5}            # static; run parameters (--param date=...) win

All statements run in one transaction: a failure leaves the database as it was. With a target,
the last statement must be a query; its rows go to the table. The COMPLETED transition records
rows affected, the target, the database and the elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from executor.etl._common import (
    allowed_keys,
    bind,
    resolve_output,
    resolve_path,
    run_params,
    static_params,
    target,
    text,
)
from executor.processors import ConfigProblem, ProcessorContext, processor

KEYS = ("database", "files", "sql", "sql_file", "target", "params")
MEMORY = ":memory:"


def check_config(config: Mapping[str, Any]) -> None:
    """Check a duckdb.sql step config when the pipeline is loaded."""
    allowed_keys(config, *KEYS)
    has_sql, has_file = "sql" in config, "sql_file" in config
    if has_sql == has_file:
        raise ConfigProblem("sql", "give exactly one of sql (a string or a list) and sql_file")
    if has_sql:
        _statements(config["sql"])
    else:
        text(config, "sql_file", required=True)
    text(config, "database")
    files = static_params(config, "files")
    for name, value in files.items():
        if not isinstance(value, str) or not value:
            raise ConfigProblem(f"files.{name}", f"expected a path, got {value!r}")
    static_params(config)
    target(config)


def _statements(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigProblem("sql", f"expected a statement or a list of statements, got {value!r}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise ConfigProblem(f"sql[{i}]", f"expected a non-empty statement, got {item!r}")
    return [str(s).strip().rstrip(";") for s in items]


def _wrap(statement: str, table: str, mode: str) -> str:
    """Turn the last query into a write to the target table (the name is validated, quoted)."""
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    if mode == "create":
        return f"CREATE TABLE {quoted} AS {statement}"
    if mode == "replace":
        return f"CREATE OR REPLACE TABLE {quoted} AS {statement}"
    return f"INSERT INTO {quoted} {statement}"


def _ensure_append_target(con: Any, statement: str, table: str, values: Mapping[str, Any]) -> None:
    """Append to a table that does not exist yet creates it empty with the query's columns."""
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quoted} AS SELECT * FROM ({statement}) LIMIT 0", values
    )


def _run_sync(
    database: str,
    statements: Sequence[str],
    values: Mapping[str, Any],
    out: tuple[str, str] | None,
    step: str,
    connections: list[Any],
) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(database)
    connections.append(con)
    try:
        con.begin()
        rows: int | None = None
        for i, statement in enumerate(statements):
            bound = bind(statement, values, step=step)
            if out is not None and i == len(statements) - 1:
                if out[1] == "append":
                    _ensure_append_target(con, statement, out[0], bound)
                statement = _wrap(statement, *out)
            cursor = con.execute(statement, bound)
            result = cursor.fetchall() if cursor.description else []
            if out is not None and i == len(statements) - 1:
                rows = int(result[0][0]) if result else 0
            else:
                rows = len(result)
        con.commit()
        return {"rows_affected": rows or 0}
    except BaseException:
        con.rollback()
        raise
    finally:
        con.close()


@processor("duckdb.sql", check_config=check_config)
async def duckdb_sql(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the step's SQL on its DuckDB database in a worker thread; return what it did."""
    import asyncio  # here: `pipestate validate` imports this module, not asyncio
    from pathlib import Path

    statements = (
        _statements(config["sql"])
        if "sql" in config
        else _statements(resolve_path(context, str(config["sql_file"])).read_text("utf-8"))
    )
    database = str(config.get("database") or MEMORY)
    if database != MEMORY:
        path = resolve_output(context, database)
        path.parent.mkdir(parents=True, exist_ok=True)
        database = str(path)
    files = {k: str(resolve_path(context, str(v))) for k, v in (config.get("files") or {}).items()}
    values = {**static_params(config), **files, **run_params(context)}
    out = target(config)
    connections: list[Any] = []
    started = time.perf_counter()
    try:
        done = await asyncio.to_thread(
            _run_sync, database, statements, values, out, context.step_id, connections
        )
    except asyncio.CancelledError:
        for con in connections:  # stop the query in its thread; the transaction rolls back
            con.interrupt()
        raise
    rows = done["rows_affected"]
    return {
        "rows_processed": rows,
        "rows_affected": rows,
        "target_table": out[0] if out else None,
        "write_mode": out[1] if out else None,
        "database": database if database == MEMORY else Path(database).name,
        "statements": len(statements),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
