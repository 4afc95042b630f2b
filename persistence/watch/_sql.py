"""The watchdog's SQL, per dialect: orphan sweep, run chains, the four alert rules, incidents.

Tables are written `{table_name}`; each store's run_sql substitutes its own qualified name.
Parameters are bound (`:name` in SQLite, `@name` in BigQuery), never formatted in. Every
statement returns raw facts (times, counts); thresholds, rates and durations are computed in
Python, once, so both stores give the same answer from the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping

_T = "{org_meta_state_transitions}"
_L = "{org_meta_run_leases}"
_A = "{org_meta_alerts}"
_TERMINAL = "('COMPLETED', 'FAILED', 'TIMEOUT')"
_ENDED = "('RELEASED', 'RECOVERED')"


# "Not a cancelled row" (the cancellation contract: metadata.cancelled = true), per dialect.
_NOT_CANCELLED = {
    "sqlite": "COALESCE(json_extract(metadata, '$.cancelled'), 0) IN (0, 'false')",
    "bigquery": "COALESCE(JSON_EXTRACT_SCALAR(metadata, '$.cancelled'), 'false') <> 'true'",
}
_PARAM_MARK = {"sqlite": ":", "bigquery": "@"}


def _sql(template: str, dialect: str) -> str:
    """Turn a neutral template (`?name` parameters, __NOT_CANCELLED__) into one dialect."""
    out = template.replace("__NOT_CANCELLED__", _NOT_CANCELLED[dialect])
    return out.replace("?", _PARAM_MARK[dialect])


# Runs whose newest lease row expired, that no RELEASED/RECOVERED row ended and whose pipeline
# has no terminal row. Owner fields are constant per lease (one owner per run).
ORPHANS = f"""
WITH dead AS (
    SELECT pipeline_logging_id
    FROM {_L}
    WHERE lease_date >= ?since
    GROUP BY pipeline_logging_id
    HAVING MAX(CASE WHEN event IN {_ENDED} THEN 1 ELSE 0 END) = 0
       AND MAX(expires_at) < ?now
)
SELECT l.pipeline_logging_id AS pipeline_logging_id,
       MAX(l.org_slug) AS org_slug,
       MAX(l.pipeline_id) AS pipeline_id,
       MAX(l.owner_id) AS owner_id,
       MAX(l.owner_host) AS owner_host,
       MAX(l.owner_pid) AS owner_pid,
       MAX(l.heartbeat_at) AS last_heartbeat,
       MAX(l.expires_at) AS expires_at,
       MAX(l.lease_ms) AS lease_ms
FROM {_L} AS l
WHERE l.pipeline_logging_id IN (SELECT pipeline_logging_id FROM dead)
  AND l.lease_date >= ?since
  AND NOT EXISTS (
      SELECT 1 FROM {_T} AS t
      WHERE t.pipeline_logging_id = l.pipeline_logging_id
        AND t.entity_type = 'PIPELINE'
        AND t.to_state IN {_TERMINAL}
  )
GROUP BY l.pipeline_logging_id
ORDER BY expires_at, pipeline_logging_id
LIMIT ?limit
"""

RUN_CHAIN = f"""
SELECT transition_id, org_slug, pipeline_logging_id, step_logging_id, entity_type,
       entity_name, from_state, to_state, transition_time, retry_count, trigger_type, user_id
FROM {_T}
WHERE pipeline_logging_id = ?pipeline_logging_id
ORDER BY transition_time, transition_id
"""

# Entities whose newest transition entered RUNNING before ?running_since, in runs whose pipeline
# entered RUNNING within the lookback and has no terminal row, with their run's lease facts (NULL
# when the run never held one). Open runs first: a handful, found through a partial index, so
# the "no later transition" probe runs per entity of those runs only.
STUCK = f"""
WITH open_runs AS (
    SELECT p.pipeline_logging_id
    FROM {_T} AS p
    WHERE p.entity_type = 'PIPELINE'
      AND p.to_state = 'RUNNING'
      AND p.transition_date >= ?since
      AND NOT EXISTS (
          SELECT 1 FROM {_T} AS e
          WHERE e.pipeline_logging_id = p.pipeline_logging_id
            AND e.entity_type = 'PIPELINE'
            AND e.to_state IN {_TERMINAL}
      )
),
running AS (
    SELECT t.org_slug, t.pipeline_logging_id, t.step_logging_id, t.entity_type,
           t.entity_name, t.transition_time, t.transition_id
    FROM {_T} AS t
    WHERE t.pipeline_logging_id IN (SELECT pipeline_logging_id FROM open_runs)
      AND t.to_state = 'RUNNING'
      AND t.transition_time <= ?running_since
      AND NOT EXISTS (
          SELECT 1 FROM {_T} AS later
          WHERE later.pipeline_logging_id = t.pipeline_logging_id
            AND later.entity_type = t.entity_type
            AND COALESCE(later.step_logging_id, '') = COALESCE(t.step_logging_id, '')
            AND later.transition_time >= t.transition_time
            AND later.transition_id <> t.transition_id
            AND (later.transition_time > t.transition_time OR later.from_state = 'RUNNING')
      )
),
leases AS (
    SELECT l.pipeline_logging_id,
           MAX(l.expires_at) AS expires_at,
           MAX(CASE WHEN l.event IN {_ENDED} THEN 1 ELSE 0 END) AS ended,
           MAX(l.owner_host) AS owner_host,
           MAX(l.owner_pid) AS owner_pid
    FROM {_L} AS l
    WHERE l.pipeline_logging_id IN (SELECT pipeline_logging_id FROM running)
    GROUP BY l.pipeline_logging_id
)
SELECT r.org_slug, r.pipeline_logging_id, r.step_logging_id, r.entity_type, r.entity_name,
       r.transition_time AS running_since, l.expires_at AS lease_expires_at,
       l.ended AS lease_ended, l.owner_host, l.owner_pid
FROM running AS r
LEFT JOIN leases AS l ON l.pipeline_logging_id = r.pipeline_logging_id
ORDER BY r.transition_time, r.pipeline_logging_id, r.entity_type, r.transition_id
LIMIT ?limit
"""

# Pipeline outcomes in the window, per error type (NULL error_type: the COMPLETED runs).
FAILURE_RATE = f"""
SELECT error_type, COUNT(*) AS n
FROM {_T}
WHERE entity_type = 'PIPELINE'
  AND to_state IN {_TERMINAL}
  AND transition_date >= ?since
  AND transition_time >= ?window_start
  AND (?pipeline = '' OR entity_name = ?pipeline)
  AND __NOT_CANCELLED__
GROUP BY error_type
"""

RETRIES_EXHAUSTED = f"""
SELECT org_slug, pipeline_logging_id, step_logging_id, entity_name, error_type, retry_count,
       transition_time
FROM {_T}
WHERE entity_type = 'STEP'
  AND to_state = 'FAILED'
  AND from_state = 'RUNNING'
  AND error_type IN ('TRANSIENT', 'TIMEOUT')
  AND retry_count >= ?min_retries
  AND transition_date >= ?since
  AND transition_time >= ?window_start
  AND __NOT_CANCELLED__
ORDER BY transition_time, step_logging_id
LIMIT ?limit
"""

PERMANENT_FAILURE = f"""
SELECT org_slug, pipeline_logging_id, entity_name, error_type, error_message, transition_time
FROM {_T}
WHERE entity_type = 'PIPELINE'
  AND to_state = 'FAILED'
  AND error_type = ?error_type
  AND transition_date >= ?since
  AND transition_time >= ?window_start
  AND __NOT_CANCELLED__
ORDER BY transition_time, pipeline_logging_id
LIMIT ?limit
"""

# Incidents still open: a FIRED row and no RESOLVED row with the same incident_id.
OPEN_INCIDENTS = f"""
SELECT incident_id, MAX(dedup_key) AS dedup_key, MAX(rule_name) AS rule_name,
       MIN(alert_time) AS fired_at, MAX(alert_time) AS last_notified_at,
       SUM(CASE WHEN event = 'REMINDED' THEN 1 ELSE 0 END) AS reminders,
       MAX(summary) AS summary
FROM {_A}
WHERE alert_date >= ?since
GROUP BY incident_id
HAVING SUM(CASE WHEN event = 'RESOLVED' THEN 1 ELSE 0 END) = 0
   AND SUM(CASE WHEN event = 'FIRED' THEN 1 ELSE 0 END) > 0
ORDER BY fired_at, incident_id
"""

_TEMPLATES: Mapping[str, str] = {
    "orphans": ORPHANS,
    "run_chain": RUN_CHAIN,
    "stuck": STUCK,
    "failure_rate": FAILURE_RATE,
    "retries_exhausted": RETRIES_EXHAUSTED,
    "permanent_failure": PERMANENT_FAILURE,
    "open_incidents": OPEN_INCIDENTS,
}
SQL: Mapping[str, Mapping[str, str]] = {
    dialect: {name: _sql(text, dialect) for name, text in _TEMPLATES.items()}
    for dialect in ("sqlite", "bigquery")
}


def statement(store: object, name: str) -> str:
    """The SQL of statement `name` in the store's dialect (ValueError for an unknown dialect)."""
    dialect = getattr(store, "dialect", None)
    if dialect not in SQL:
        raise ValueError(
            f"the watchdog needs a sqlite or bigquery store (got {store!r}, dialect {dialect!r})."
        )
    return SQL[str(dialect)][name]
