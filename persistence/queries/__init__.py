"""The seed's analysis queries (stuck, failures, steps, retries, timeline) on any store."""

from persistence.queries._run import (
    QueryError,
    dialect_sql,
    get_query,
    normalise_rows,
    resolve_params,
    run_query,
)
from persistence.queries.catalog import (
    CATALOG,
    QUERY_NAMES,
    QueryColumn,
    QueryParam,
    QuerySpec,
)

__all__ = [
    "CATALOG",
    "QUERY_NAMES",
    "QueryColumn",
    "QueryError",
    "QueryParam",
    "QuerySpec",
    "dialect_sql",
    "get_query",
    "normalise_rows",
    "resolve_params",
    "run_query",
]
