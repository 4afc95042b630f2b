"""Persistence benchmark: transitions/s from emit() to durable in SQLite, and query latency.

    .venv/bin/python benchmarks/persistence.py            # 200k transitions, 1M rows for queries
    .venv/bin/python benchmarks/persistence.py --quick    # 20k transitions, 100k rows
    .venv/bin/python benchmarks/persistence.py --write-only   # skip the 1M-row query part

Write figures, measured in the same run on the same records: bare SQLite executemany of
prepared values (same schema, indexes and pragmas, 1,000-row transactions: the upper bound of
what any Python on top can reach), the store alone (dict rows and records), and end to end
(emit() to committed in the WAL, stop() drained) at default and tuned logger settings, and
the writer process's CPU per row in the default run.

Targets (issue 4): >= 50,000 transitions/s from one process; each seed query <= 1 s on 1M rows.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is benchmarks/, whose transitions.py would shadow the
# `transitions` library; put the repository root there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _writer_pool
from persistence.queries import run_query
from persistence.schema import load_table_specs, sqlite_create_table, sqlite_indexes, table_spec
from persistence.stores._sqlite_rows import RowPreparer
from persistence.stores.base import STATE_TRANSITIONS
from persistence.stores.sqlite import PAGE_SIZE_BYTES, wal_autocheckpoint_pages
from statemachine.ids import uuid7_str
from statemachine.records import TransitionRecord

END = dt.datetime(2025, 12, 21, 12, 0, tzinfo=dt.UTC)
STEPS = ("extract", "transform", "load", "publish")
ERRORS = (
    ("TRANSIENT", "builtins.ConnectionError"),
    ("TIMEOUT", "asyncio.TimeoutError"),
    ("PERMANENT", "builtins.PermissionError"),
    ("VALIDATION_ERROR", "classifier.errors.ValidationError"),
)


def _uuid(rng: random.Random) -> str:
    """A new id as the engine makes them (UUIDv7, time-ordered); `rng` drives the rest."""
    return uuid7_str()


def pipeline_transitions(rng: random.Random, start: dt.datetime) -> list[dict[str, Any]]:
    """The ~10 transitions of one realistic run: a pipeline and four steps, some failing."""
    run_id = _uuid(rng)
    out: list[dict[str, Any]] = []
    at = start

    def add(entity_type: str, name: str, step_id: str | None, frm: str, to: str, **kw: Any) -> None:
        out.append(
            {
                "transition_id": _uuid(rng),
                "pipeline_logging_id": run_id,
                "step_logging_id": step_id,
                "entity_type": entity_type,
                "entity_name": name,
                "from_state": frm,
                "to_state": to,
                "transition_time": at,
                **kw,
            }
        )

    add("PIPELINE", "billing", None, "PENDING", "RUNNING")
    if rng.random() < 0.005:
        return out  # hung: never leaves RUNNING
    failed = False
    for step in STEPS:
        step_id = _uuid(rng)
        add("STEP", step, step_id, "PENDING", "RUNNING")
        took = int(rng.expovariate(1 / 60_000))
        at += dt.timedelta(milliseconds=took)
        if rng.random() < 0.05:
            error_type, error_class = rng.choice(ERRORS)
            add(
                "STEP",
                step,
                step_id,
                "RUNNING",
                "FAILED",
                error_type=error_type,
                retry_count=rng.randint(0, 3),
                duration_in_state_ms=took,
                metadata={"error_class": error_class, "is_retryable": error_type == "TRANSIENT"},
            )
            failed = True
            break
        add("STEP", step, step_id, "RUNNING", "COMPLETED", duration_in_state_ms=took)
    total = int((at - start).total_seconds() * 1000)
    add(
        "PIPELINE",
        "billing",
        None,
        "RUNNING",
        "FAILED" if failed else "COMPLETED",
        duration_in_state_ms=total,
    )
    return out


def make_records(count: int, *, days: int = 30, seed: int = 1) -> list[TransitionRecord]:
    """At least `count` TransitionRecords from realistic runs spread over `days` days."""
    rng = random.Random(seed)
    records: list[TransitionRecord] = []
    span = days * 86_400
    while len(records) < count:
        start = END - dt.timedelta(seconds=rng.uniform(0, span))
        for t in pipeline_transitions(rng, start):
            when = t.pop("transition_time")
            records.append(
                TransitionRecord(
                    org_slug="acme", transition_time=when, transition_date=when.date(), **t
                )
            )
    return records[:count]


async def _e2e(path: Path, records: list[TransitionRecord], settings: LoggerSettings) -> float:
    """Seconds from the first emit until every record is committed (stop() drained)."""
    store = SQLiteStore(path)
    store.ensure_tables(load_table_specs(), dry_run=False)
    logger = MetadataLogger(store, settings)
    await logger.start()
    begin = time.perf_counter()
    for i, record in enumerate(records):
        logger.emit(record)
        if i % 100 == 99:
            await asyncio.sleep(0)  # a pipeline yields between transitions
    await logger.stop(timeout=600)
    elapsed = time.perf_counter() - begin
    depths = logger.get_queue_depths()["state_transition"]
    store.close()
    if depths["rows_written"] != len(records):
        raise RuntimeError(f"lost rows: {depths}")
    return elapsed


def _raw_executemany(path: Path, values: list[list[Any]], batch: int) -> float:
    """Seconds for bare executemany of prepared values (same schema, indexes and pragmas as
    SQLiteStore, one transaction per `batch` rows): what SQLite itself costs, an upper bound."""
    spec = table_spec(STATE_TRANSITIONS)
    conn = sqlite3.connect(path, isolation_level=None)
    pragmas = ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536")
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
    for pragma in (*pragmas, "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {wal_autocheckpoint_pages(PAGE_SIZE_BYTES)}")
    conn.execute(sqlite_create_table(spec))
    for _, statement in sqlite_indexes(spec):
        conn.execute(statement)
    sql = RowPreparer(spec).insert_sql
    begin = time.perf_counter()
    for i in range(0, len(values), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, values[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - begin
    conn.close()
    return elapsed


def bench_write(tmp: Path, count: int) -> dict[str, float]:
    """Transitions/s: bare SQLite, the store alone, the logger at default settings and tuned."""
    # Each store's writer child is reaped at close(), not parked for the next store: its CPU
    # then shows in RUSAGE_CHILDREN (e2e_default_writer_cpu_us_per_row).
    _writer_pool.POOL_SIZE = 0
    records = make_records(count, seed=7)
    preparer = RowPreparer(table_spec(STATE_TRANSITIONS))
    begin = time.perf_counter()
    rows = [r.to_row() for r in records]
    preparer.prepare(rows)
    dict_prep = time.perf_counter() - begin
    begin = time.perf_counter()
    values, _ = preparer.prepare_items(records)
    record_prep = time.perf_counter() - begin
    raw = _raw_executemany(tmp / "bare.db", values, 1000)
    timings: dict[str, float] = {}
    for label, write in (("rows", "write_batch"), ("records", "write_records")):
        store = SQLiteStore(tmp / f"store-{label}.db")
        store.ensure_tables(load_table_specs(), dry_run=False)
        items: list[Any] = rows if label == "rows" else records
        method = getattr(store, write)
        begin = time.perf_counter()
        for i in range(0, len(items), 1000):
            method(STATE_TRANSITIONS, items[i : i + 1000])
        timings[label] = time.perf_counter() - begin
        store.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    default = asyncio.run(_e2e(tmp / "default.db", records, LoggerSettings(put_timeout=600)))
    # The writer process is reaped by store.close() inside _e2e: its CPU is in RUSAGE_CHILDREN.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    tuned_settings = LoggerSettings(
        batch_size=1000, queue_size=20_000, workers=2, put_timeout=600, flush_interval_seconds=1
    )
    tuned = asyncio.run(_e2e(tmp / "tuned.db", records, tuned_settings))
    return {
        "transitions": float(count),
        "to_row_and_prepare_us_per_row": 1e6 * dict_prep / count,
        "prepare_records_us_per_row": 1e6 * record_prep / count,
        "bare_sqlite_executemany_rows_per_s": count / raw,
        "store_write_batch_rows_per_s": count / timings["rows"],
        "store_write_records_rows_per_s": count / timings["records"],
        "e2e_default_rows_per_s": count / default,
        # CPU the writer process spent per row (commits, conversion, SQLite): less load-bound
        # than the wall-clock rates; 10 us is the budget of 100,000 rows/s on its own core.
        "e2e_default_writer_cpu_us_per_row": 1e6 * child_cpu / count,
        "e2e_tuned_rows_per_s": count / tuned,
    }


def load_rows(path: Path, count: int) -> str:
    """Fill a fresh file with `count` rows fast (one transaction, indexes built afterwards)."""
    spec = table_spec(STATE_TRANSITIONS)
    preparer = RowPreparer(spec)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")  # as SQLiteStore makes its files
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(sqlite_create_table(spec))
    conn.execute("BEGIN")
    timeline_id = ""
    chunk: list[TransitionRecord] = []
    made = 0
    rng_seed = 11
    while made < count:
        chunk = make_records(min(100_000, count - made), seed=rng_seed)
        rng_seed += 1
        good, _ = preparer.prepare([r.to_row() for r in chunk])
        conn.executemany(preparer.insert_sql, good)
        made += len(chunk)
        timeline_id = chunk[-1].pipeline_logging_id
    conn.execute("COMMIT")
    conn.close()
    store = SQLiteStore(path)
    store.ensure_tables(load_table_specs(), dry_run=False)  # builds the indexes
    store.query("timeline", {"pipeline_logging_id": ""})
    store.close()
    return timeline_id


def bench_queries(tmp: Path, count: int) -> dict[str, float]:
    """Median latency of each catalog query on `count` rows (3 runs after a warm-up)."""
    path = tmp / "queries.db"
    begin = time.perf_counter()
    timeline_id = load_rows(path, count)
    figures: dict[str, float] = {"query_rows": float(count), "load_s": time.perf_counter() - begin}
    params: dict[str, dict[str, Any]] = {
        "stuck": {"now": END},
        "failures": {"as_of": END.date()},
        "steps": {"as_of": END.date()},
        "retries": {"as_of": END.date()},
        "timeline": {"pipeline_logging_id": timeline_id},
        "runs": {"as_of": END.date()},
    }
    store = SQLiteStore(path)
    for name, p in params.items():
        run_query(store, name, **p)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            result = run_query(store, name, **p)
            times.append(time.perf_counter() - t)
        figures[f"query_{name}_s"] = statistics.median(times)
        figures[f"query_{name}_result_rows"] = float(len(result))
    store.close()
    return figures


def run(quick: bool, *, queries: bool = True) -> dict[str, float]:
    """Run both parts (queries=False: the write part only); figures by name."""
    with tempfile.TemporaryDirectory(prefix="pipestate-bench-") as tmp:
        figures = bench_write(Path(tmp), 20_000 if quick else 200_000)
        if queries:
            figures.update(bench_queries(Path(tmp), 100_000 if quick else 1_000_000))
    figures["cpu_count"] = float(os.cpu_count() or 0)
    return figures


def main(argv: list[str] | None = None) -> None:
    """Print a small table of the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--write-only", action="store_true", help="skip the query latencies")
    args = parser.parse_args(argv)
    figures = run(args.quick, queries=not args.write_only)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        target = ""
        if key.endswith("_rows_per_s"):
            target = f"  ({value / 50_000:.2f}x of the 50,000/s target)"
        elif key.startswith("query_") and key.endswith("_s"):
            target = f"  ({'ok' if value <= 1.0 else 'OVER'} vs 1 s target)"
        print(f"{key:<{width}}  {value:>14,.3f}{target}")


if __name__ == "__main__":
    main()
