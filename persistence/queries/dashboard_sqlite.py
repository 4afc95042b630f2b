"""SQLite SQL of the dashboard queries (persistence.queries.dashboard), built from one template.

Timestamps are canonical fixed-width UTC text (see persistence.stores._sqlite_rows), so the hour
is characters 12-13 and a microsecond epoch is computable exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from persistence.queries._dashboard_sql import Dialect, build

_T = "org_meta_state_transitions"


def _json_scalar(path: str) -> str:
    """metadata's value at `path` as text, NULL for objects, arrays and null (BigQuery's rule)."""
    kind = f"json_type(metadata, '{path}')"
    return (
        f"(CASE WHEN {kind} IN ('object', 'array', 'null') THEN NULL"
        f" WHEN {kind} IN ('true', 'false') THEN {kind}"
        f" ELSE CAST(json_extract(metadata, '{path}') AS TEXT) END)"
    )


def _epoch_us(column: str) -> str:
    """Exact microseconds since the epoch of a canonical timestamp text."""
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
    )


SQLITE = Dialect(
    name="sqlite",
    table=_T,
    json_scalar=_json_scalar,
    hour=lambda column: f"CAST(substr({column}, 12, 2) AS INTEGER)",
    ms_between=lambda later, earlier: f"(({_epoch_us(later)} - {_epoch_us(earlier)}) / 1000)",
    nulls_first="",  # SQLite sorts NULL first in ascending order
    param_prefix=":",
    unindexed=lambda column: f"+{column}",
)

DASHBOARD_SQLITE_SQL: Mapping[str, str] = build(SQLITE)
