"""BigQuery SQL for the catalog's queries: `@name` parameters only, never formatted input.

Each statement names its table as the token `__TABLE__`; `render` swaps in a fully qualified
`project.dataset.table` reference that persistence.stores.bigquery has validated against a strict
identifier pattern, so no caller text ever reaches the SQL. Parameter values always travel as
BigQuery query parameters.

Differences from the seed's SQL, each for the sake of identical answers on every store:
- the date window is `transition_date BETWEEN @since AND @as_of` rather than
  `>= CURRENT_DATE() - 7`, so "today" is a parameter (run_query fills it in);
- steps' top_error_classes is an exact, deterministic top 5 (ARRAY_AGG ordered by count desc,
  then value, NULL first) instead of APPROX_TOP_COUNT, whose ties and approximations depend on
  the engine; it has the same shape, ARRAY<STRUCT<value, count>>;
- every ORDER BY ends in a unique key, and NULL placement is explicit;
- float columns are ROUND(x, 3), as in every dialect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from persistence.queries._scope import scope_bigquery

TABLE_TOKEN = "__TABLE__"
_PARAM = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")

# A transition that is the same entity as `t` (step_logging_id is NULL for pipelines).
_SAME_ENTITY = """later.pipeline_logging_id = t.pipeline_logging_id
            AND later.entity_type = t.entity_type
            AND (later.step_logging_id = t.step_logging_id
                 OR (later.step_logging_id IS NULL AND t.step_logging_id IS NULL))"""


def _cancelled(alias: str) -> str:
    """True when the row's metadata says the entity was cancelled (JSON true or "true")."""
    return f"(JSON_EXTRACT_SCALAR({alias}.metadata, '$.cancelled') = 'true')"


STUCK_SQL = f"""
SELECT kind, entity_type, pipeline_logging_id, step_logging_id, entity_name, from_state,
       to_state, transition_time, duration_ms,
       ROUND(duration_ms / 60000.0, 3) AS duration_minutes, reason
FROM (
    SELECT 'long_running' AS kind, entity_type, pipeline_logging_id, step_logging_id,
           entity_name, from_state, to_state, transition_time,
           duration_in_state_ms AS duration_ms, reason, transition_id
    FROM `{TABLE_TOKEN}`
    WHERE entity_type = 'PIPELINE'
      AND from_state = 'RUNNING'
      AND duration_in_state_ms > @min_duration_ms
    UNION ALL
    SELECT 'hung' AS kind, t.entity_type, t.pipeline_logging_id, t.step_logging_id,
           t.entity_name, t.from_state, t.to_state, t.transition_time,
           TIMESTAMP_DIFF(@now, t.transition_time, MILLISECOND) AS duration_ms,
           t.reason, t.transition_id
    FROM `{TABLE_TOKEN}` AS t
    WHERE t.to_state = 'RUNNING'
      AND t.transition_date >= @since
      AND t.transition_time <= @running_since
      AND NOT EXISTS (
          SELECT 1 FROM `{TABLE_TOKEN}` AS later
          WHERE {_SAME_ENTITY}
            AND later.transition_time >= t.transition_time
            AND later.transition_id <> t.transition_id
            AND (later.transition_time > t.transition_time OR later.from_state = 'RUNNING')
      )
)
ORDER BY duration_ms DESC, kind, pipeline_logging_id, entity_type, entity_name, transition_id
LIMIT @limit
"""

FAILURES_SQL = f"""
SELECT error_type,
       COUNT(*) AS failure_count,
       COUNT(DISTINCT pipeline_logging_id) AS pipelines_affected,
       ROUND(AVG(duration_in_state_ms) / 1000.0, 3) AS avg_duration_seconds
FROM `{TABLE_TOKEN}` AS t
WHERE to_state = 'FAILED'
  AND transition_date >= @since
  AND transition_date <= @as_of
  AND (@include_cancelled OR NOT COALESCE({_cancelled("t")}, FALSE))
  AND (t.entity_type = 'STEP' OR NOT EXISTS (
      SELECT 1 FROM `{TABLE_TOKEN}` AS s
      WHERE s.pipeline_logging_id = t.pipeline_logging_id
        AND s.entity_type = 'STEP'
        AND s.to_state = 'FAILED'
  ))
GROUP BY error_type
ORDER BY failure_count DESC, error_type ASC NULLS FIRST
"""

STEPS_SQL = f"""
WITH class_counts AS (
    SELECT entity_name, error_type,
           JSON_EXTRACT_SCALAR(metadata, '$.error_class') AS error_class,
           COUNT(*) AS n
    FROM `{TABLE_TOKEN}` AS t
    WHERE entity_type = 'STEP'
      AND to_state = 'FAILED'
      AND transition_date >= @since
      AND transition_date <= @as_of
      AND (@include_cancelled OR NOT COALESCE({_cancelled("t")}, FALSE))
    GROUP BY entity_name, error_type, error_class
)
SELECT entity_name AS step_name,
       error_type,
       SUM(n) AS failures,
       ARRAY_AGG(STRUCT(error_class AS value, n AS count)
                 ORDER BY n DESC, error_class ASC NULLS FIRST LIMIT 5) AS top_error_classes
FROM class_counts
GROUP BY entity_name, error_type
ORDER BY failures DESC, step_name, error_type ASC NULLS FIRST
LIMIT @limit
"""

RETRIES_SQL = f"""
WITH retried AS (
    SELECT DISTINCT pipeline_logging_id, step_logging_id
    FROM `{TABLE_TOKEN}`
    WHERE entity_type = 'STEP'
      AND to_state = 'RETRYING'
      AND transition_date >= @since
      AND transition_date <= @as_of
),
rows_of AS (
    SELECT t.pipeline_logging_id, t.step_logging_id, t.entity_name, t.error_type,
           t.retry_count, t.to_state, t.metadata,
           ROW_NUMBER() OVER (
               PARTITION BY t.pipeline_logging_id, t.step_logging_id
               ORDER BY CASE WHEN t.error_type IS NULL THEN 1 ELSE 0 END,
                        t.retry_count DESC, t.transition_time DESC, t.transition_id DESC
           ) AS error_rank
    FROM `{TABLE_TOKEN}` AS t
    JOIN retried AS r
      ON t.pipeline_logging_id = r.pipeline_logging_id
     AND t.step_logging_id = r.step_logging_id
    WHERE t.entity_type = 'STEP'
),
per_step AS (
    SELECT pipeline_logging_id, step_logging_id,
           MAX(entity_name) AS entity_name,
           MAX(CASE WHEN error_rank = 1 THEN error_type END) AS error_type,
           MAX(retry_count) AS retries,
           MAX(SAFE_CAST(JSON_EXTRACT_SCALAR(metadata, '$.max_retries') AS INT64))
               AS max_retries,
           COUNT(*) AS transition_count,
           COUNTIF(to_state = 'COMPLETED') AS completed,
           COUNTIF(to_state = 'FAILED' AND COALESCE({_cancelled("rows_of")}, FALSE))
               AS cancelled,
           COUNTIF(to_state = 'FAILED') AS failed
    FROM rows_of
    GROUP BY pipeline_logging_id, step_logging_id
)
SELECT pipeline_logging_id, entity_name, error_type, retries, max_retries, transition_count,
       CASE WHEN completed > 0 THEN 'COMPLETED'
            WHEN cancelled > 0 THEN 'CANCELLED'
            WHEN failed > 0 THEN 'FAILED'
            ELSE 'IN_PROGRESS' END AS outcome
FROM per_step
ORDER BY retries DESC, pipeline_logging_id, entity_name, step_logging_id
LIMIT @limit
"""

RUNS_SQL = f"""
SELECT pipeline_logging_id, pipeline_id, org_slug, state, start_time, end_time,
       duration_seconds, error_type, cancelled
FROM (
    SELECT pipeline_logging_id,
           MAX(entity_name) AS pipeline_id,
           MAX(org_slug) AS org_slug,
           COALESCE(
               MAX(CASE WHEN to_state IN ('COMPLETED', 'FAILED', 'TIMEOUT') THEN to_state END),
               MAX(CASE WHEN to_state = 'RUNNING' THEN 'RUNNING' END),
               'PENDING'
           ) AS state,
           MIN(CASE WHEN to_state = 'RUNNING' THEN transition_time END) AS start_time,
           MAX(CASE WHEN from_state = 'RUNNING' THEN transition_time END) AS end_time,
           ROUND(MAX(CASE WHEN from_state = 'RUNNING' THEN duration_in_state_ms END) / 1000.0, 3)
               AS duration_seconds,
           MAX(CASE WHEN from_state = 'RUNNING' THEN error_type END) AS error_type,
           MAX(CASE WHEN COALESCE({_cancelled("t")}, FALSE) THEN 1 ELSE 0 END) AS cancelled
    FROM `{TABLE_TOKEN}` AS t
    WHERE entity_type = 'PIPELINE'
      AND transition_date >= @since
      AND transition_date <= @as_of
      AND (@org_slug IS NULL OR org_slug = @org_slug)
      AND (@pipeline_id IS NULL OR entity_name = @pipeline_id)
    GROUP BY pipeline_logging_id
) AS runs
WHERE (@state IS NULL OR state = @state)
ORDER BY start_time DESC, pipeline_logging_id
LIMIT @limit
"""

TIMELINE_SQL = f"""
SELECT transition_time, entity_type, entity_name, from_state, to_state,
       ROUND(duration_in_state_ms / 1000.0, 3) AS duration_seconds, reason
FROM `{TABLE_TOKEN}`
WHERE pipeline_logging_id = @pipeline_logging_id
ORDER BY transition_time, transition_id
"""

BIGQUERY_SQL: Mapping[str, str] = {
    "stuck": STUCK_SQL,
    "failures": FAILURES_SQL,
    "steps": STEPS_SQL,
    "retries": RETRIES_SQL,
    "timeline": TIMELINE_SQL,
    "runs": RUNS_SQL,
}


def render(name: str, table_ref: str, *, org_scoped: bool = False) -> str:
    """Return query `name`'s SQL reading from `table_ref` (an already validated identifier).

    org_scoped: read only the rows of `@org_slug` (see persistence.queries._scope).
    """
    if "`" in table_ref:
        raise ValueError(f"table reference must not contain backticks (got {table_ref!r}).")
    template = BIGQUERY_SQL[name]
    if org_scoped:
        template = scope_bigquery(template)
    return template.replace(TABLE_TOKEN, table_ref)


def parameter_names(sql: str) -> tuple[str, ...]:
    """The distinct `@name` parameters a statement uses, in first-use order."""
    return tuple(dict.fromkeys(_PARAM.findall(sql)))
