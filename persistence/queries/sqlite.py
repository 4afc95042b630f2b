"""SQLite SQL for the catalog's queries; bound parameters only (`:name`), never formatted input.

Timestamps are stored as fixed-width canonical text ("YYYY-MM-DDTHH:MM:SS.ffffff+00:00", see
persistence.stores._sqlite_rows), so text comparison is time comparison and the microsecond
epoch of a value is computable exactly (strftime on the whole seconds plus the fraction).
"""

from __future__ import annotations

from collections.abc import Mapping

from persistence.queries._runs import RUNS_SQLITE

_T = "org_meta_state_transitions"


def _epoch_us(column: str) -> str:
    """Exact microseconds since the epoch of a canonical timestamp text."""
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
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

FAILURES_SQL = f"""
SELECT error_type,
       COUNT(*) AS failure_count,
       COUNT(DISTINCT pipeline_logging_id) AS pipelines_affected,
       ROUND(AVG(duration_in_state_ms) / 1000.0, 3) AS avg_duration_seconds
FROM {_T}
WHERE to_state = 'FAILED'
  AND transition_date >= :since
  AND transition_date <= :as_of
GROUP BY error_type
ORDER BY failure_count DESC, error_type
"""

# APPROX_TOP_COUNT(JSON_EXTRACT_SCALAR(metadata, '$.error_class'), 5) as a JSON array of
# {"value", "count"} objects, count desc then value (NULL first), exact rather than approximate.
STEPS_SQL = f"""
WITH failed AS (
    SELECT entity_name, error_type, json_extract(metadata, '$.error_class') AS error_class
    FROM {_T}
    WHERE entity_type = 'STEP'
      AND to_state = 'FAILED'
      AND transition_date >= :since
      AND transition_date <= :as_of
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

RETRIES_SQL = f"""
SELECT pipeline_logging_id, entity_name, error_type,
       MAX(retry_count) AS max_retries,
       COUNT(*) AS transition_count
FROM {_T}
WHERE to_state = 'FAILED'
  AND retry_count > 0
  AND transition_date >= :since
  AND transition_date <= :as_of
GROUP BY pipeline_logging_id, entity_name, error_type
ORDER BY max_retries DESC, pipeline_logging_id, entity_name, error_type
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
    "runs": RUNS_SQLITE,
}
