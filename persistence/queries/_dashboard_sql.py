"""The dashboard's SQL, written once; a Dialect fills in the few places SQLite and BigQuery differ.

Statements use `@name` parameters and the token __TABLE__; the SQLite dialect rewrites `@name`
to `:name`. Only constant SQL and bound parameters, never caller text. Every ORDER BY ends in a
unique key and places NULLs explicitly, so both stores return the same rows in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import attrs

TABLE_TOKEN = "__TABLE__"
_PARAM = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_TERMINAL = "('COMPLETED', 'FAILED', 'TIMEOUT')"


@attrs.frozen
class Dialect:
    """What differs between the stores' SQL: table syntax, JSON, hours, time differences."""

    name: str
    table: str  # how __TABLE__ is written in FROM clauses (the store swaps in the real name)
    json_scalar: Callable[[str], str]  # JSON path -> text of a scalar, like JSON_EXTRACT_SCALAR
    hour: Callable[[str], str]  # timestamp column -> hour of day (UTC) as an integer
    ms_between: Callable[[str, str], str]  # (later, earlier) -> whole milliseconds between
    nulls_first: str  # suffix of an ascending ORDER BY key that must put NULL first
    param_prefix: str
    # A column term the planner must not use an index for (SQLite: unary +, a no-op value).
    # SQLite has no statistics here and would pick the broad (org, date) index over the
    # selective partial ones; BigQuery has no indexes, so the term is the bare column.
    unindexed: Callable[[str], str] = lambda column: column


def _not_cancelled(d: Dialect) -> str:
    """A failure that was not a cancellation (the cross-issue rule: analyses exclude those)."""
    return f"COALESCE({d.json_scalar('$.cancelled')}, '') NOT IN ('true', '1')"


def _run_rows(d: Dialect, where: str) -> str:
    """Runs (latest pipeline transition per run) among the PIPELINE rows matching `where`."""
    return f"""
WITH p AS (
    SELECT pipeline_logging_id, entity_name, to_state, transition_time, error_type,
           duration_in_state_ms,
           ROW_NUMBER() OVER (PARTITION BY pipeline_logging_id
                              ORDER BY transition_time DESC, transition_id DESC) AS rn,
           MIN(transition_time) OVER (PARTITION BY pipeline_logging_id) AS started
    FROM {d.table}
    WHERE org_slug = @org AND entity_type = 'PIPELINE' AND {where}
)
SELECT pipeline_logging_id, entity_name AS pipeline_name, to_state AS state,
       started AS start_time,
       CASE WHEN to_state IN {_TERMINAL} THEN transition_time END AS end_time,
       CASE WHEN to_state IN {_TERMINAL}
            THEN ROUND(duration_in_state_ms / 1000.0, 3) END AS duration_seconds,
       error_type
FROM p
WHERE rn = 1"""


def _runs(d: Dialect) -> str:
    """ui_runs: filters on pipeline and window before ranking, on state after."""
    where = """transition_date >= @since AND transition_date <= @as_of
      AND (@pipeline IS NULL OR entity_name = @pipeline)"""
    return f"""{_run_rows(d, where)}
  AND (@state IS NULL OR to_state = @state)
ORDER BY start_time DESC, pipeline_logging_id
LIMIT @limit
"""


def _run(d: Dialect) -> str:
    """ui_run: one run's header."""
    return _run_rows(d, "pipeline_logging_id = @pipeline_logging_id") + "\n"


def _progress(d: Dialect) -> str:
    """ui_run_progress: the live page polls this and reloads when it changes."""
    return f"""
SELECT COUNT(*) AS transitions, MAX(transition_time) AS last_time
FROM {d.table}
WHERE org_slug = @org AND pipeline_logging_id = @pipeline_logging_id
"""


def _segments(d: Dialect) -> str:
    """ui_run_segments: each RUNNING / RETRYING stay until the entity's next transition."""
    return f"""
WITH t AS (
    SELECT entity_type, entity_name, step_logging_id, from_state, to_state, transition_time,
           error_type, retry_count, transition_id,
           LEAD(transition_time) OVER w AS next_time,
           LEAD(to_state) OVER w AS next_state,
           LEAD(error_type) OVER w AS next_error_type
    FROM {d.table}
    WHERE org_slug = @org AND pipeline_logging_id = @pipeline_logging_id
    WINDOW w AS (PARTITION BY entity_type, step_logging_id
                 ORDER BY transition_time, transition_id)
)
SELECT entity_type, entity_name, step_logging_id,
       CASE WHEN to_state IN ('RUNNING', 'RETRYING') THEN to_state ELSE 'NOT_RUN' END AS kind,
       retry_count,
       transition_time AS start_time,
       CASE WHEN to_state IN ('RUNNING', 'RETRYING') THEN next_time
            ELSE transition_time END AS end_time,
       CASE WHEN to_state IN ('RUNNING', 'RETRYING') THEN next_state ELSE to_state END AS outcome,
       CASE WHEN to_state IN ('RUNNING', 'RETRYING') THEN next_error_type
            ELSE error_type END AS error_type
FROM t
WHERE to_state IN ('RUNNING', 'RETRYING')
   OR (entity_type = 'STEP' AND from_state = 'PENDING' AND to_state = 'FAILED')
ORDER BY start_time, entity_type, entity_name, step_logging_id{d.nulls_first}, transition_id
LIMIT @limit
"""


def _transitions(d: Dialect) -> str:
    """ui_run_transitions: the run's table with the seed's error context fields."""
    return f"""
SELECT transition_time, entity_type, entity_name, from_state, to_state,
       ROUND(duration_in_state_ms / 1000.0, 3) AS duration_seconds, retry_count, reason,
       error_type, error_message, stack_trace_truncated AS stack_trace,
       {d.json_scalar("$.error_class")} AS error_class,
       {d.json_scalar("$.is_retryable")} AS is_retryable,
       {d.json_scalar("$.next_retry_delay_seconds")} AS next_retry_delay_seconds
FROM {d.table}
WHERE org_slug = @org AND pipeline_logging_id = @pipeline_logging_id
ORDER BY transition_time, transition_id
LIMIT @limit
"""


_WINDOW = "org_slug = @org AND transition_date >= @since AND transition_date <= @as_of"


def _window_unindexed(d: Dialect) -> str:
    """The window, leaving the index choice to the query's other terms (a partial index)."""
    org = d.unindexed("org_slug")
    return f"{org} = @org AND transition_date >= @since AND transition_date <= @as_of"


def _errors_over_time(d: Dialect) -> str:
    """ui_errors_over_time: the stacked bars."""
    return f"""
SELECT transition_date AS day, error_type, COUNT(*) AS failures
FROM {d.table}
WHERE to_state = 'FAILED' AND {_window_unindexed(d)} AND {_not_cancelled(d)}
GROUP BY transition_date, error_type
ORDER BY day, error_type{d.nulls_first}
"""


def _retry_success(d: Dialect) -> str:
    """ui_retry_success: a step recovered when it COMPLETED after retrying."""
    return f"""
WITH retried AS (
    SELECT pipeline_logging_id, step_logging_id, error_type
    FROM {d.table}
    WHERE entity_type = 'STEP' AND to_state = 'RETRYING' AND {_WINDOW}
    GROUP BY pipeline_logging_id, step_logging_id, error_type
),
recovered AS (
    SELECT DISTINCT pipeline_logging_id, step_logging_id
    FROM {d.table}
    WHERE pipeline_logging_id IN (SELECT pipeline_logging_id FROM retried)
      AND {d.unindexed("org_slug")} = @org AND entity_type = 'STEP' AND to_state = 'COMPLETED'
),
names AS (
    SELECT pipeline_logging_id, MIN(entity_name) AS pipeline_name
    FROM {d.table}
    WHERE pipeline_logging_id IN (SELECT pipeline_logging_id FROM retried)
      AND {d.unindexed("org_slug")} = @org AND entity_type = 'PIPELINE'
    GROUP BY pipeline_logging_id
),
tagged AS (
    SELECT r.step_logging_id, r.error_type, n.pipeline_name,
           CASE WHEN c.step_logging_id IS NULL THEN 0 ELSE 1 END AS ok
    FROM retried AS r
    LEFT JOIN names AS n ON n.pipeline_logging_id = r.pipeline_logging_id
    LEFT JOIN recovered AS c
      ON c.pipeline_logging_id = r.pipeline_logging_id
     AND c.step_logging_id = r.step_logging_id
),
grouped AS (
    SELECT 'pipeline' AS dimension, pipeline_name AS name,
           COUNT(DISTINCT step_logging_id) AS retried_steps,
           COUNT(DISTINCT CASE WHEN ok = 1 THEN step_logging_id END) AS recovered_steps
    FROM tagged
    GROUP BY pipeline_name
    UNION ALL
    SELECT 'error_type' AS dimension, error_type AS name,
           COUNT(DISTINCT step_logging_id) AS retried_steps,
           COUNT(DISTINCT CASE WHEN ok = 1 THEN step_logging_id END) AS recovered_steps
    FROM tagged
    GROUP BY error_type
)
SELECT dimension, name, retried_steps, recovered_steps,
       ROUND(recovered_steps / (retried_steps * 1.0), 3) AS success_rate
FROM grouped
ORDER BY dimension DESC, retried_steps DESC, name{d.nulls_first}
"""


def _transition_heatmap(d: Dialect) -> str:
    """ui_transition_heatmap: from x to counts."""
    return f"""
SELECT from_state, to_state, COUNT(*) AS transitions
FROM {d.table}
WHERE {_WINDOW}
GROUP BY from_state, to_state
ORDER BY from_state, to_state
"""


def _failure_heatmap(d: Dialect) -> str:
    """ui_failure_heatmap: day x hour counts."""
    hour = d.hour("transition_time")
    return f"""
SELECT transition_date AS day, {hour} AS hour, COUNT(*) AS failures
FROM {d.table}
WHERE to_state = 'FAILED' AND {_window_unindexed(d)} AND {_not_cancelled(d)}
GROUP BY transition_date, {hour}
ORDER BY day, hour
"""


def _no_later(d: Dialect) -> str:
    """The entity `t` has no transition after the one that put it in RUNNING (still there)."""
    return f"""NOT EXISTS (
          SELECT 1 FROM {d.table} AS later
          WHERE later.pipeline_logging_id = t.pipeline_logging_id
            AND later.entity_type = t.entity_type
            AND later.step_logging_id IS NOT DISTINCT FROM t.step_logging_id
            AND later.transition_time >= t.transition_time
            AND later.transition_id <> t.transition_id
            AND (later.transition_time > t.transition_time OR later.from_state = 'RUNNING')
      )"""


def _stuck(d: Dialect) -> str:
    """ui_stuck: long-running runs and hung pipelines of one org, with their hung steps.

    Unlike the catalog's `stuck`, hung steps are looked for only inside hung pipelines (the
    engine never ends a pipeline while a step still runs: it fails them first), which turns a
    probe per RUNNING step of the window into a probe per RUNNING pipeline; long-running runs
    are limited to the window.
    """
    hung = f"""t.transition_time <= @running_since
      AND {_no_later(d)}"""
    return f"""
WITH hung_pipelines AS (
    SELECT t.entity_type, t.pipeline_logging_id, t.entity_name, t.from_state, t.to_state,
           t.transition_time, t.reason, t.transition_id
    FROM {d.table} AS t
    WHERE t.org_slug = @org AND t.entity_type = 'PIPELINE' AND t.to_state = 'RUNNING'
      AND t.transition_date >= @since
      AND {hung}
)
SELECT kind, entity_type, pipeline_logging_id, entity_name, from_state, to_state,
       transition_time, duration_ms, reason
FROM (
    SELECT 'long_running' AS kind, entity_type, pipeline_logging_id, entity_name, from_state,
           to_state, transition_time, duration_in_state_ms AS duration_ms, reason, transition_id
    FROM {d.table}
    WHERE {d.unindexed("org_slug")} = @org AND entity_type = 'PIPELINE'
      AND from_state = 'RUNNING' AND duration_in_state_ms > @min_duration_ms
      AND transition_date >= @since
    UNION ALL
    SELECT 'hung' AS kind, entity_type, pipeline_logging_id, entity_name, from_state, to_state,
           transition_time, {d.ms_between("@now", "transition_time")} AS duration_ms, reason,
           transition_id
    FROM hung_pipelines
    UNION ALL
    SELECT 'hung' AS kind, t.entity_type, t.pipeline_logging_id, t.entity_name, t.from_state,
           t.to_state, t.transition_time,
           {d.ms_between("@now", "t.transition_time")} AS duration_ms, t.reason, t.transition_id
    FROM {d.table} AS t
    WHERE t.pipeline_logging_id IN (SELECT pipeline_logging_id FROM hung_pipelines)
      AND {d.unindexed("t.org_slug")} = @org AND t.entity_type = 'STEP'
      AND t.to_state = 'RUNNING' AND {hung}
)
ORDER BY duration_ms DESC, kind, pipeline_logging_id, entity_type, entity_name, transition_id
LIMIT @limit
"""


_BUILDERS: Mapping[str, Callable[[Dialect], str]] = {
    "ui_runs": _runs,
    "ui_run": _run,
    "ui_run_progress": _progress,
    "ui_run_segments": _segments,
    "ui_run_transitions": _transitions,
    "ui_errors_over_time": _errors_over_time,
    "ui_retry_success": _retry_success,
    "ui_transition_heatmap": _transition_heatmap,
    "ui_failure_heatmap": _failure_heatmap,
    "ui_stuck": _stuck,
}


def build(dialect: Dialect) -> dict[str, str]:
    """Every dashboard statement in one dialect, parameters written with its prefix."""
    out = {}
    for name, builder in _BUILDERS.items():
        sql = builder(dialect)
        out[name] = _PARAM.sub(lambda m: dialect.param_prefix + m.group(1), sql)
    return out
