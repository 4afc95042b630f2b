"""BigQuery SQL of the dashboard queries (persistence.queries.dashboard), built from one template.

The table is the token `__TABLE__`, swapped by `render` for a `project.dataset.table` reference
that persistence.stores.bigquery has validated; values travel as query parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping

from persistence.queries._dashboard_sql import TABLE_TOKEN, Dialect, build

BIGQUERY = Dialect(
    name="bigquery",
    table=f"`{TABLE_TOKEN}`",
    json_scalar=lambda path: f"JSON_EXTRACT_SCALAR(metadata, '{path}')",
    hour=lambda column: f"EXTRACT(HOUR FROM {column})",
    ms_between=lambda later, earlier: f"TIMESTAMP_DIFF({later}, {earlier}, MILLISECOND)",
    nulls_first=" ASC NULLS FIRST",
    param_prefix="@",
)

DASHBOARD_BIGQUERY_SQL: Mapping[str, str] = build(BIGQUERY)
