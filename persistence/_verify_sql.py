"""The SQL of `pipestate verify`: every check runs inside the database, one pass over the rows.

One statement per dialect, assembled from fixed fragments (never from caller text): filters are
bound parameters (`@name` works in SQLite and BigQuery alike), the legal edges come from the
specification tables. Each entity's rows are ordered by time; rows stamped in the same
microsecond fall back to the order of their from_state along the machine (PENDING, RUNNING,
RETRYING, then the rest), then to transition_id.
"""

from __future__ import annotations

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


def _quoted(values: object) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))  # type: ignore[attr-defined]


_LEGAL = _quoted(f"{k}:{e.source}>{e.dest}" for k, t in TABLES.items() for e in t.edges)
_PIPELINE_END = _quoted(PIPELINE.terminal)
_STEP_END = _quoted(STEP.terminal)


def _ms_between(dialect: str, later: str, earlier: str) -> str:
    """Whole milliseconds from `earlier` to `later` (both timestamp columns)."""
    if dialect == "bigquery":
        return f"TIMESTAMP_DIFF({later}, {earlier}, MILLISECOND)"

    def epoch_us(column: str) -> str:
        # SQLite keeps canonical fixed-width UTC text (see persistence.queries.sqlite).
        return (
            f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({column}, 21, 6) AS INTEGER))"
        )

    return f"(({epoch_us(later)} - {epoch_us(earlier)}) / 1000)"


def _scope(org: bool, run: bool, dates: bool) -> str:
    """The WHERE clause picking the rows (of whole runs) to check."""
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
    return ("WHERE " + " AND ".join(own)) if own else ""


def _base(dialect: str, table: str, org: bool, run: bool, dates: bool) -> str:
    """CTEs v (the rows in scope) and w (each row with its entity's previous row)."""
    where = _scope(org, run, dates).replace("{table}", table)
    return f"""
v AS (
    SELECT transition_id, org_slug, pipeline_logging_id, step_logging_id, entity_type,
           entity_name, from_state, to_state, transition_time, retry_count,
           duration_in_state_ms,
           CASE WHEN entity_type = 'STEP' THEN COALESCE(step_logging_id, '') ELSE '' END
               AS entity_key,
           CASE from_state WHEN 'PENDING' THEN 0 WHEN 'RUNNING' THEN 1
                           WHEN 'RETRYING' THEN 2 ELSE 3 END AS tie
    FROM {table}
    {where}
),
w AS (
    SELECT v.*,
           ROW_NUMBER() OVER e AS seq,
           LAG(from_state) OVER e AS prev_from,
           LAG(to_state) OVER e AS prev_to,
           LAG(transition_time) OVER e AS prev_time,
           LEAD(transition_id) OVER e AS next_id,
           SUM(CASE WHEN from_state = 'RETRYING' AND to_state = 'RUNNING' THEN 1 ELSE 0 END)
               OVER (e ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS retries
    FROM v
    WINDOW e AS (PARTITION BY pipeline_logging_id, entity_type, entity_key
                 ORDER BY transition_time, tie, transition_id)
)"""


def violations_sql(dialect: str, table: str, *, org: bool, run: bool, dates: bool) -> str:
    """Every violation (at most @max_per_kind of each kind, with the kind's total)."""
    gap = _ms_between(dialect, "transition_time", "prev_time")
    cols = "pipeline_logging_id, step_logging_id, transition_id, entity_name, transition_time"
    return f"""
WITH {_base(dialect, table, org, run, dates)},
runs AS (
    SELECT pipeline_logging_id,
           MIN(CASE WHEN entity_type = 'PIPELINE' AND to_state = 'RUNNING'
                    THEN transition_time END) AS started,
           MAX(CASE WHEN entity_type = 'PIPELINE' AND to_state IN ({_PIPELINE_END})
                    THEN transition_time END) AS ended,
           MAX(CASE WHEN entity_type = 'PIPELINE' AND to_state IN ({_PIPELINE_END})
                    THEN to_state END) AS end_state
    FROM w
    GROUP BY pipeline_logging_id
),
flagged AS (
    SELECT w.*,
           (seq > 1 AND from_state = prev_from AND to_state = prev_to
            AND transition_time = prev_time) AS is_dup
    FROM w
),
violations AS (
    SELECT 'illegal-edge' AS kind, {cols},
           entity_type || ' ' || from_state || ' -> ' || to_state || ' is not in the tables'
               AS detail
    FROM flagged
    WHERE entity_type || ':' || from_state || '>' || to_state NOT IN ({_LEGAL})
    UNION ALL
    SELECT 'broken-chain', {cols},
           CASE WHEN seq = 1
                THEN 'first row starts at ' || from_state || ', not PENDING'
                ELSE 'starts at ' || from_state || ' but the previous row ended at ' || prev_to
           END
    FROM flagged
    WHERE (seq = 1 AND from_state <> 'PENDING')
       OR (seq > 1 AND from_state <> prev_to AND NOT is_dup)
    UNION ALL
    SELECT 'duplicate', {cols},
           'same ' || from_state || ' -> ' || to_state || ' at the same time as the row before'
    FROM flagged
    WHERE is_dup
    UNION ALL
    SELECT 'duplicate', MIN(pipeline_logging_id), MIN(step_logging_id), transition_id,
           MIN(entity_name), MIN(transition_time),
           'transition_id stored ' || CAST(COUNT(*) AS STRING_TYPE) || ' times'
    FROM v
    GROUP BY transition_id
    HAVING COUNT(*) > 1
    UNION ALL
    SELECT 'duration', {cols},
           'duration_in_state_ms ' || CAST(duration_in_state_ms AS STRING_TYPE)
               || CASE WHEN seq > 1
                       THEN ' but ' || CAST({gap} AS STRING_TYPE)
                            || ' ms passed since the previous row'
                       ELSE ' is negative' END
    FROM flagged
    WHERE duration_in_state_ms < 0
       OR (seq > 1 AND NOT is_dup
           AND ABS(duration_in_state_ms - {gap}) > @tolerance_ms + {gap} / 100)
    UNION ALL
    SELECT 'retry-count', {cols},
           'retry_count ' || CAST(retry_count AS STRING_TYPE) || ' after '
               || CAST(retries AS STRING_TYPE) || ' retries'
    FROM flagged
    WHERE retry_count <> retries AND NOT is_dup
    UNION ALL
    SELECT 'identity', {cols},
           CASE WHEN entity_type = 'STEP' THEN 'STEP row without step_logging_id'
                ELSE 'PIPELINE row with a step_logging_id' END
    FROM flagged
    WHERE (entity_type = 'STEP' AND step_logging_id IS NULL)
       OR (entity_type = 'PIPELINE' AND step_logging_id IS NOT NULL)
    UNION ALL
    SELECT 'outside-run', f.pipeline_logging_id, f.step_logging_id, f.transition_id,
           f.entity_name, f.transition_time,
           CASE WHEN r.started IS NULL THEN 'step row in a run that never started'
                WHEN f.transition_time < r.started THEN 'step row before its pipeline started'
                ELSE 'step row after its pipeline ended ' || r.end_state END
    FROM flagged AS f
    JOIN runs AS r ON r.pipeline_logging_id = f.pipeline_logging_id
    WHERE f.entity_type = 'STEP'
      AND (r.started IS NULL OR f.transition_time < r.started
           OR (r.ended IS NOT NULL AND f.transition_time > r.ended))
    UNION ALL
    SELECT 'unfinished-step', f.pipeline_logging_id, f.step_logging_id, f.transition_id,
           f.entity_name, f.transition_time,
           'step ends ' || f.to_state || ' in a run that ended ' || r.end_state
    FROM flagged AS f
    JOIN runs AS r ON r.pipeline_logging_id = f.pipeline_logging_id
    WHERE f.entity_type = 'STEP' AND f.next_id IS NULL AND r.end_state IS NOT NULL
      AND (f.to_state NOT IN ({_STEP_END})
           OR (r.end_state = 'COMPLETED' AND f.to_state <> 'COMPLETED'))
)
SELECT kind, pipeline_logging_id, step_logging_id, transition_id, entity_name,
       transition_time, detail, kind_total
FROM (
    SELECT violations.*,
           COUNT(*) OVER (PARTITION BY kind) AS kind_total,
           ROW_NUMBER() OVER (PARTITION BY kind
                              ORDER BY pipeline_logging_id, transition_time, transition_id)
               AS rn
    FROM violations
) AS numbered
WHERE rn <= @max_per_kind
ORDER BY kind, rn
""".replace("STRING_TYPE", "STRING" if dialect == "bigquery" else "TEXT")


def summary_sql(dialect: str, table: str, *, org: bool, run: bool, dates: bool) -> str:
    """Rows, runs, finished runs and step entities in scope."""
    where = _scope(org, run, dates).replace("{table}", table)
    return f"""
SELECT COUNT(*) AS row_count,
       COUNT(DISTINCT pipeline_logging_id) AS run_count,
       COUNT(DISTINCT CASE WHEN entity_type = 'PIPELINE' AND to_state IN ({_PIPELINE_END})
                           THEN pipeline_logging_id END) AS finished_run_count,
       COUNT(DISTINCT CASE WHEN entity_type = 'STEP' THEN step_logging_id END) AS step_count
FROM {table}
{where}
"""
