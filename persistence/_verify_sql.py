"""The SQL of `pipestate verify`: every check runs inside the database, one pass over the rows.

One statement per dialect, assembled from fixed fragments (never from caller text): filters are
bound parameters (`@name` works in SQLite and BigQuery alike), the legal edges come from the
specification tables. Each entity's rows are ordered by time; rows stamped in the same
microsecond fall back to the engine's own order (retry_count, then the edge's place in an
attempt, see _TIE), then to transition_id.
"""

from __future__ import annotations

from collections.abc import Iterable

from statemachine.spec import PIPELINE, STEP, TABLES

VIOLATION_KINDS: dict[str, str] = {
    "illegal-edge": "a row whose entity type, states or edge is not in the tables",
    "broken-chain": "an entity's rows do not chain from PENDING, each from where the last ended",
    "duplicate": "the same transition stored twice (same id, or same entity, edge and time)",
    "duration": "duration_in_state_ms disagrees with the time since the entity's previous row",
    "retry-count": "retry_count differs from the number of RETRYING -> RUNNING rows so far",
    "identity": "a STEP row without step_logging_id, or a PIPELINE row with one",
    "outside-run": "a step row outside its pipeline's RUNNING interval (rules 1, 4, 5)",
    "unfinished-step": "a finished run whose step ends non-terminal, or not COMPLETED under a "
    "COMPLETED run (rules 2, 3)",
}


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


_LEGAL = _quoted(f"{k}:{e.source}>{e.dest}" for k, t in TABLES.items() for e in t.edges)
_PIPELINE_END = _quoted(PIPELINE.terminal)
_STEP_END = _quoted(STEP.terminal)


def _epoch_us(dialect: str) -> str:
    """Microseconds since the epoch of transition_time (an integer, cheap to subtract)."""
    if dialect == "bigquery":
        return "UNIX_MICROS(transition_time)"
    # SQLite keeps canonical fixed-width UTC text (see persistence.queries.sqlite).
    return (
        "(CAST(strftime('%s', substr(transition_time, 1, 19)) AS INTEGER) * 1000000"
        " + CAST(substr(transition_time, 21, 6) AS INTEGER))"
    )


def _scope(org: bool, run: bool, dates: bool) -> list[str]:
    """The conditions picking the rows (of whole runs) to check."""
    own = []
    if org:
        own.append("org_slug = @org")
    if run:
        own.append("pipeline_logging_id = @run")
    if dates:
        # A date range picks runs with a row in the range, then checks all of their rows.
        own.append(
            "pipeline_logging_id IN (SELECT pipeline_logging_id FROM {table} "
            "WHERE transition_date >= @since AND transition_date <= @until)"
        )
    return own


def _where(table: str, conditions: list[str]) -> str:
    return ("WHERE " + " AND ".join(conditions)).replace("{table}", table) if conditions else ""


def _last_step_rows(dialect: str, table: str, scope: list[str]) -> str:
    """One row per step: its first and last time, and its last row's state, id and time."""
    return f"""
    SELECT pipeline_logging_id, step_logging_id, first_us, last_us, to_state, transition_id,
           transition_time
    FROM (
        SELECT pipeline_logging_id, step_logging_id, to_state, transition_id, transition_time,
               MIN(t_us) OVER p AS first_us,
               MAX(t_us) OVER p AS last_us,
               ROW_NUMBER() OVER (
                   p ORDER BY t_us DESC, retry_count DESC, tie DESC, transition_id DESC
               ) AS back
        FROM (
            SELECT pipeline_logging_id, step_logging_id, to_state, transition_id,
                   transition_time, retry_count, {_epoch_us(dialect)} AS t_us, {_TIE} AS tie
            FROM {table}
            {_where(table, [*scope, "entity_type = 'STEP'"])}
        ) AS s
        WINDOW p AS (PARTITION BY pipeline_logging_id, step_logging_id)
    ) AS ranked
    WHERE back = 1"""


# Rows of one entity stamped in the same microsecond are ordered by attempt (retry_count), then
# along an attempt: PENDING -> x opens the chain, RETRYING -> RUNNING opens an attempt,
# RUNNING -> x ends it, RETRYING -> FAILED abandons the wait. That is the engine's own order.
_TIE = (
    "CASE WHEN from_state = 'PENDING' THEN 0 "
    "WHEN from_state = 'RETRYING' AND to_state = 'RUNNING' THEN 1 "
    "WHEN from_state = 'RUNNING' THEN 2 ELSE 3 END"
)


def violations_sql(dialect: str, table: str, *, org: bool, run: bool, dates: bool) -> str:
    """Every violation (at most @max_per_kind of each kind, with the kind's total).

    One sort of the rows in scope feeds every per-row check through one window of LAGs (each
    row against its entity's previous row); the run-level checks compare each step's first and
    last rows with its run's start and end. SQLite's primary key already refuses a second row
    with the same transition_id, so only BigQuery counts ids.
    """
    scope = _scope(org, run, dates)
    text = "TEXT" if dialect == "sqlite" else "STRING"
    materialized = "MATERIALIZED " if dialect == "sqlite" else ""
    epoch = _epoch_us(dialect)
    dup_ids = ""
    if dialect == "bigquery":
        dup_ids = f"""
    UNION ALL
    SELECT 'duplicate', transition_id, MIN(pipeline_logging_id), MIN(step_logging_id),
           MIN(transition_time),
           'transition_id stored ' || CAST(COUNT(*) AS {text}) || ' times'
    FROM {table}
    {_where(table, scope)}
    GROUP BY transition_id
    HAVING COUNT(*) > 1"""
    gap = "(t_us - prev_us) / 1000"
    return f"""
WITH runs AS {materialized}(
    SELECT pipeline_logging_id,
           MIN(CASE WHEN to_state = 'RUNNING' THEN {epoch} END) AS started,
           MAX(CASE WHEN to_state IN ({_PIPELINE_END}) THEN {epoch} END) AS ended,
           MAX(CASE WHEN to_state IN ({_PIPELINE_END}) THEN to_state END) AS end_state
    FROM {table}
    {_where(table, [*scope, "entity_type = 'PIPELINE'"])}
    GROUP BY pipeline_logging_id
),
bad AS {materialized}(
    SELECT *,
           (seq > 1 AND from_state = prev_from AND to_state = prev_to AND t_us = prev_us)
               AS is_dup,
           CASE WHEN from_state = 'RETRYING' AND to_state = 'RUNNING' THEN 1 ELSE 0 END
               AS restart
    FROM (
        SELECT v.*,
               ROW_NUMBER() OVER e AS seq,
               LAG(from_state) OVER e AS prev_from,
               LAG(to_state) OVER e AS prev_to,
               LAG(t_us) OVER e AS prev_us,
               LAG(retry_count) OVER e AS prev_retries
        FROM (
            SELECT transition_id, pipeline_logging_id, step_logging_id, entity_type,
                   from_state, to_state, transition_time, retry_count, duration_in_state_ms,
                   {epoch} AS t_us, {_TIE} AS tie
            FROM {table}
            {_where(table, scope)}
        ) AS v
        -- NULL step ids (pipeline rows) share one partition per run and entity type.
        WINDOW e AS (PARTITION BY pipeline_logging_id, entity_type, step_logging_id
                     ORDER BY t_us, retry_count, tie, transition_id)
    ) AS w
    WHERE entity_type || ':' || from_state || '>' || to_state NOT IN ({_LEGAL})
       OR (seq = 1 AND from_state <> 'PENDING')
       OR (seq > 1 AND from_state <> prev_to)
       OR duration_in_state_ms < 0
       OR (seq > 1 AND ABS(duration_in_state_ms - {gap}) > @tolerance_ms + {gap} / 100)
       OR retry_count <> COALESCE(prev_retries, 0)
                         + CASE WHEN from_state = 'RETRYING' AND to_state = 'RUNNING'
                                THEN 1 ELSE 0 END
       OR (entity_type = 'STEP' AND step_logging_id IS NULL)
       OR (entity_type = 'PIPELINE' AND step_logging_id IS NOT NULL)
),
steps AS (
    SELECT s.*, r.started, r.ended, r.end_state
    FROM ({_last_step_rows(dialect, table, scope)}
    ) AS s
    LEFT JOIN runs AS r ON r.pipeline_logging_id = s.pipeline_logging_id
),
violations AS (
    SELECT 'illegal-edge' AS kind, transition_id, pipeline_logging_id, step_logging_id,
           transition_time,
           entity_type || ' ' || from_state || ' -> ' || to_state || ' is not in the tables'
               AS detail
    FROM bad
    WHERE entity_type || ':' || from_state || '>' || to_state NOT IN ({_LEGAL})
    UNION ALL
    SELECT 'broken-chain', transition_id, pipeline_logging_id, step_logging_id,
           transition_time,
           CASE WHEN seq = 1
                THEN 'first row starts at ' || from_state || ', not PENDING'
                ELSE 'starts at ' || from_state || ' but the previous row ended at ' || prev_to
           END
    FROM bad
    WHERE (seq = 1 AND from_state <> 'PENDING')
       OR (seq > 1 AND from_state <> prev_to AND NOT is_dup)
    UNION ALL
    SELECT 'duplicate', transition_id, pipeline_logging_id, step_logging_id, transition_time,
           'same ' || from_state || ' -> ' || to_state || ' at the same time as the row before'
    FROM bad
    WHERE is_dup{dup_ids}
    UNION ALL
    SELECT 'duration', transition_id, pipeline_logging_id, step_logging_id, transition_time,
           'duration_in_state_ms ' || CAST(duration_in_state_ms AS {text})
               || CASE WHEN seq > 1
                       THEN ' but ' || CAST({gap} AS {text})
                            || ' ms passed since the previous row'
                       ELSE ' is negative' END
    FROM bad
    WHERE duration_in_state_ms < 0
       OR (seq > 1 AND NOT is_dup
           AND ABS(duration_in_state_ms - {gap}) > @tolerance_ms + {gap} / 100)
    UNION ALL
    SELECT 'retry-count', transition_id, pipeline_logging_id, step_logging_id, transition_time,
           'retry_count ' || CAST(retry_count AS {text}) || ' where '
               || CAST(COALESCE(prev_retries, 0) + restart AS {text}) || ' was due'
    FROM bad
    WHERE retry_count <> COALESCE(prev_retries, 0) + restart AND NOT is_dup
    UNION ALL
    SELECT 'identity', transition_id, pipeline_logging_id, step_logging_id, transition_time,
           CASE WHEN entity_type = 'STEP' THEN 'STEP row without step_logging_id'
                ELSE 'PIPELINE row with a step_logging_id' END
    FROM bad
    WHERE (entity_type = 'STEP' AND step_logging_id IS NULL)
       OR (entity_type = 'PIPELINE' AND step_logging_id IS NOT NULL)
    UNION ALL
    SELECT 'outside-run', transition_id, pipeline_logging_id, step_logging_id, transition_time,
           CASE WHEN started IS NULL THEN 'step rows in a run that never started'
                WHEN first_us < started THEN 'step rows before its pipeline started'
                ELSE 'step rows after its pipeline ended ' || end_state END
    FROM steps
    WHERE started IS NULL OR first_us < started OR last_us > ended
    UNION ALL
    SELECT 'unfinished-step', transition_id, pipeline_logging_id, step_logging_id,
           transition_time, 'step ends ' || to_state || ' in a run that ended ' || end_state
    FROM steps
    WHERE end_state IS NOT NULL
      AND (to_state NOT IN ({_STEP_END})
           OR (end_state = 'COMPLETED' AND to_state <> 'COMPLETED'))
),
listed AS (
    SELECT *
    FROM (
        SELECT violations.*,
               COUNT(*) OVER (PARTITION BY kind) AS kind_total,
               ROW_NUMBER() OVER (PARTITION BY kind
                                  ORDER BY pipeline_logging_id, transition_time, transition_id)
                   AS rn
        FROM violations
    ) AS numbered
    WHERE rn <= @max_per_kind
)
SELECT l.kind, l.pipeline_logging_id, l.step_logging_id, l.transition_id,
       (SELECT MIN(t.entity_name) FROM {table} AS t WHERE t.transition_id = l.transition_id)
           AS entity_name,
       l.transition_time, l.detail, l.kind_total
FROM listed AS l
ORDER BY l.kind, l.rn
"""


def summary_sql(dialect: str, table: str, *, org: bool, run: bool, dates: bool) -> str:
    """Rows, runs, finished runs and step entities in scope."""
    return f"""
SELECT COUNT(*) AS row_count,
       COUNT(DISTINCT pipeline_logging_id) AS run_count,
       COUNT(DISTINCT CASE WHEN entity_type = 'PIPELINE' AND to_state IN ({_PIPELINE_END})
                           THEN pipeline_logging_id END) AS finished_run_count,
       COUNT(DISTINCT CASE WHEN entity_type = 'STEP' THEN step_logging_id END) AS step_count
FROM {table}
{_where(table, _scope(org, run, dates))}
"""
