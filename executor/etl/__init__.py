"""Real data processors: duckdb.sql (embedded ETL), http.extract, gcp.bq_etl (BigQuery jobs).

Importing this package registers the processors; each imports its engine (DuckDB, httpx, the
BigQuery client) only when a step runs, so a run that does not use them never loads them.
"""

from __future__ import annotations

from executor.etl import bq_etl, duckdb_sql, http_extract

__all__ = ["bq_etl", "duckdb_sql", "http_extract"]
