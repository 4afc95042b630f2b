"""SQLite SQL for the catalog's queries; bound parameters only (`:name`), never formatted input.

Timestamps are stored as fixed-width canonical text ("YYYY-MM-DDTHH:MM:SS.ffffff+00:00", see
persistence.stores._sqlite_rows), so text comparison is time comparison and the microsecond
epoch of a value is computable exactly (strftime on the whole seconds plus the fraction).
"""

from __future__ import annotations

from collections.abc import Mapping

_T = "org_meta_state_transitions"


def _epoch_us(column: str) -> str:
    """Exact microseconds since the epoch of a canonical timestamp text."""
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
    )


# A row a cancellation wrote: metadata.cancelled is true (a "true" string counts too, since
# BigQuery's JSON_EXTRACT_SCALAR cannot tell them apart).
def _cancelled(alias: str) -> str:
    """True when the row's metadata says the entity was cancelled."""
    column = f"{alias}.metadata"
    return (
        f"COALESCE(json_type({column}, '$.cancelled') = 'true'"
        f" OR json_extract({column}, '$.cancelled') = 'true', 0)"
    )


STUCK_SQL = f"""
SELECT kind, entity_type, pipeline_logging_id, step_logging_id, entity_name, from_state,
       to_state, transition_time, duration_ms,
       ROUND(duration_ms / 60000.0, 3) AS duration_minutes, reason
FROM (
    SELECT 'long_running' AS kind, entity_type, pipeline_logging_id, step_logging_id,
           entity_name, from_state, to_state, transition_time,
           duration_in_state_ms AS duration_ms, reason, transition_id
    FROM {_T}
    WHERE entity_type = 'PIPELINE'
      AND from_state = 'RUNNING'
      AND duration_in_state_ms > :min_duration_ms
    UNION ALL
    SELECT 'hung', t.entity_type, t.pipeline_logging_id, t.step_logging_id, t.entity_name,
           t.from_state, t.to_state, t.transition_time,
           ({_epoch_us(":now")} - {_epoch_us("t.transition_time")}) / 1000,
           t.reason, t.transition_id
    FROM {_T} AS t
    WHERE t.to_state = 'RUNNING'
      AND t.transition_date >= :since
      AND t.transition_time <= :running_since
      AND NOT EXISTS (
          SELECT 1 FROM {_T} AS later
          WHERE later.pipeline_logging_id = t.pipeline_logging_id
            AND later.entity_type = t.entity_type
            AND later.step_logging_id IS t.step_logging_id
            AND later.transition_time >= t.transition_time
            AND later.transition_id <> t.transition_id
            AND (later.transition_time > t.transition_time OR later.from_state = 'RUNNING')
      )
)
ORDER BY duration_ms DESC, kind, pipeline_logging_id, entity_type, entity_name, transition_id
LIMIT :limit
"""

# A pipeline's FAILED row is counted only when no step of the run failed (a config error, a
# crash): otherwise it repeats the step failure that caused it.
FAILURES_SQL = f"""
SELECT error_type,
       COUNT(*) AS failure_count,
       COUNT(DISTINCT pipeline_logging_id) AS pipelines_affected,
       ROUND(AVG(duration_in_state_ms) / 1000.0, 3) AS avg_duration_seconds
FROM {_T} AS t
WHERE to_state = 'FAILED'
  AND transition_date >= :since
  AND transition_date <= :as_of
  AND (:include_cancelled OR NOT {_cancelled("t")})
  AND (t.entity_type = 'STEP' OR NOT EXISTS (
      SELECT 1 FROM {_T} AS s
      WHERE s.pipeline_logging_id = t.pipeline_logging_id
        AND s.entity_type = 'STEP'
        AND s.to_state = 'FAILED'
  ))
GROUP BY error_type
ORDER BY failure_count DESC, error_type
"""

# APPROX_TOP_COUNT(JSON_EXTRACT_SCALAR(metadata, '$.error_class'), 5) as a JSON array of
# {"value", "count"} objects, count desc then value (NULL first), exact rather than approximate.
STEPS_SQL = f"""
WITH failed AS (
    SELECT entity_name, error_type, json_extract(metadata, '$.error_class') AS error_class
    FROM {_T} AS t
    WHERE entity_type = 'STEP'
      AND to_state = 'FAILED'
      AND transition_date >= :since
      AND transition_date <= :as_of
      AND (:include_cancelled OR NOT {_cancelled("t")})
),
top_steps AS (
    SELECT entity_name, error_type, COUNT(*) AS failures
    FROM failed
    GROUP BY entity_name, error_type
    ORDER BY failures DESC, entity_name, error_type
    LIMIT :limit
),
class_counts AS (
    SELECT entity_name, error_type, error_class, COUNT(*) AS n,
           ROW_NUMBER() OVER (
               PARTITION BY entity_name, error_type ORDER BY COUNT(*) DESC, error_class
           ) AS rank
    FROM failed
    GROUP BY entity_name, error_type, error_class
)
SELECT s.entity_name AS step_name,
       s.error_type,
       s.failures,
       (SELECT json_group_array(json_object('value', c.error_class, 'count', c.n))
        FROM (SELECT error_class, n FROM class_counts AS cc
              WHERE cc.entity_name = s.entity_name AND cc.error_type IS s.error_type
                AND cc.rank <= 5
              ORDER BY cc.rank) AS c) AS top_error_classes
FROM top_steps AS s
ORDER BY s.failures DESC, s.entity_name, s.error_type
"""

# One row per step that was retried (went RUNNING -> RETRYING in the window): how many retries
# it made, the limit it had, all its transitions, the error type of its last failure and how
# it ended. Terminal states are absorbing, so "any COMPLETED row" is the outcome.
RETRIES_SQL = f"""
WITH retried AS (
    SELECT DISTINCT pipeline_logging_id, step_logging_id
    FROM {_T}
    WHERE entity_type = 'STEP'
      AND to_state = 'RETRYING'
      AND transition_date >= :since
      AND transition_date <= :as_of
),
rows_of AS (
    SELECT t.*,
           ROW_NUMBER() OVER (
               PARTITION BY t.pipeline_logging_id, t.step_logging_id
               ORDER BY CASE WHEN t.error_type IS NULL THEN 1 ELSE 0 END,
                        t.retry_count DESC, t.transition_time DESC, t.transition_id DESC
           ) AS error_rank
    FROM {_T} AS t
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
           MAX(CASE WHEN json_type(metadata, '$.max_retries') = 'integer'
                    THEN json_extract(metadata, '$.max_retries') END) AS max_retries,
           COUNT(*) AS transition_count,
           SUM(CASE WHEN to_state = 'COMPLETED' THEN 1 ELSE 0 END) AS completed,
           SUM(CASE WHEN to_state = 'FAILED' AND {_cancelled("rows_of")} THEN 1 ELSE 0 END)
               AS cancelled,
           SUM(CASE WHEN to_state = 'FAILED' THEN 1 ELSE 0 END) AS failed
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
LIMIT :limit
"""

# Recent runs from the PIPELINE transitions: one row per pipeline_logging_id.
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
           MAX(CASE WHEN {_cancelled("t")} THEN 1 ELSE 0 END) AS cancelled
    FROM {_T} AS t
    WHERE entity_type = 'PIPELINE'
      AND transition_date >= :since
      AND transition_date <= :as_of
      AND (:org_slug IS NULL OR org_slug = :org_slug)
      AND (:pipeline_id IS NULL OR entity_name = :pipeline_id)
    GROUP BY pipeline_logging_id
) AS runs
WHERE (:state IS NULL OR state = :state)
ORDER BY start_time DESC, pipeline_logging_id
LIMIT :limit
"""

TIMELINE_SQL = f"""
SELECT transition_time, entity_type, entity_name, from_state, to_state,
       ROUND(duration_in_state_ms / 1000.0, 3) AS duration_seconds, reason
FROM {_T}
WHERE pipeline_logging_id = :pipeline_logging_id
ORDER BY transition_time, transition_id
"""

SQLITE_SQL: Mapping[str, str] = {
    "stuck": STUCK_SQL,
    "failures": FAILURES_SQL,
    "steps": STEPS_SQL,
    "retries": RETRIES_SQL,
    "timeline": TIMELINE_SQL,
    "runs": RUNS_SQL,
}
