"""The `runs` query (recent pipeline runs, latest state first) and org scoping of any query.

Kept apart from the seed's five so that each dialect module only maps the name to this SQL.

Org scoping: every catalog query takes an optional `org_slug`. When it is given, each store reads
the transitions table through `(SELECT * FROM <table> WHERE org_slug = <param>)` instead of the
table itself (`scope_sqlite` / `scope_bigquery`), so one rule filters every query, present and
future, to one organisation; the HTTP service always passes it.
"""

from __future__ import annotations

import functools
import re

ORG_PARAM = "org_slug"
_T = "org_meta_state_transitions"
_TERMINAL = "('COMPLETED', 'FAILED', 'TIMEOUT')"


def _runs_sql(table: str, p: str) -> str:
    """The runs query over `table`, with parameters written `<p>name` (':' or '@')."""
    return f"""
SELECT pipeline_logging_id, pipeline_id, org_slug, state, started_at, ended_at, error_type
FROM (
    SELECT pipeline_logging_id, entity_name AS pipeline_id, org_slug, to_state AS state,
           error_type,
           MIN(transition_time) OVER (PARTITION BY pipeline_logging_id) AS started_at,
           CASE WHEN to_state IN {_TERMINAL} THEN transition_time END AS ended_at,
           ROW_NUMBER() OVER (
               PARTITION BY pipeline_logging_id
               ORDER BY CASE WHEN to_state IN {_TERMINAL} THEN 1 ELSE 0 END DESC,
                        transition_time DESC, transition_id DESC
           ) AS rn
    FROM {table}
    WHERE entity_type = 'PIPELINE'
      AND transition_date >= {p}since
      AND transition_date <= {p}as_of
) AS latest
WHERE rn = 1
  AND ({p}state IS NULL OR state = {p}state)
  AND ({p}pipeline_id IS NULL OR pipeline_id = {p}pipeline_id)
ORDER BY started_at DESC, pipeline_logging_id
LIMIT {p}limit
"""


RUNS_SQLITE = _runs_sql(_T, ":")
RUNS_BIGQUERY = _runs_sql("`__TABLE__`", "@")

_SQLITE_TABLE = re.compile(rf"\b(FROM|JOIN)\s+{_T}\b")


@functools.cache
def scope_sqlite(sql: str) -> str:
    """SQLite SQL reading only the transitions of `:org_slug`."""
    return _SQLITE_TABLE.sub(rf"\1 (SELECT * FROM {_T} WHERE org_slug = :{ORG_PARAM})", sql)


@functools.cache
def scope_bigquery(template: str) -> str:
    """A BigQuery template (table token in backticks) reading only the rows of `@org_slug`."""
    return template.replace(
        "`__TABLE__`", f"(SELECT * FROM `__TABLE__` WHERE org_slug = @{ORG_PARAM})"
    )
