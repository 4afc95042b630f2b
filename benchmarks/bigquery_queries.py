"""Seed query latency on the local BigQuery emulator, next to SQLite on the same rows.

    .venv/bin/python benchmarks/bigquery_queries.py            # 100,000 rows
    .venv/bin/python benchmarks/bigquery_queries.py --quick    # 10,000 rows

One run starts the emulator (local-bigquery from .venv-bq, bound to 127.0.0.1, data in a temporary
directory, always stopped at the end), bootstraps a dataset, streams the rows in through
BigQueryStore.write_batch (insertAll, 500 rows a request: the store's own path, fast enough here),
loads the same rows into a SQLiteStore, and times each seed query on both: the median of 3 runs
after a warm-up. The emulator runs on DuckDB, so its figures are a reference for the SQL, not a
prediction of BigQuery's latency (which is dominated by job scheduling, about a second a query).
Without .venv-bq (`make bq-emulator`) the benchmark says so in one line and returns no figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this directory is sys.path[0]; benchmarks/transitions.py and
# benchmarks/classifier.py would then shadow the real `transitions` and `classifier` packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from persistence import SQLiteStore  # noqa: E402
from persistence.bootstrap import bootstrap  # noqa: E402
from persistence.queries import QUERY_NAMES, run_query  # noqa: E402
from persistence.stores.base import STATE_TRANSITIONS, Store  # noqa: E402

QUICK_ROWS = 10_000
FULL_ROWS = 100_000
REPEATS = 3
BQ_BATCH = 500  # BigQueryStore splits into <= 500-row requests anyway
SQLITE_BATCH = 1_000
DATASET = "bench"


def _persistence_bench() -> ModuleType:
    """benchmarks/persistence.py, loaded by path: its name would clash with our package."""
    spec = importlib.util.spec_from_file_location("_bench_persistence", HERE / "persistence.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'persistence.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(store: Store, rows: list[dict[str, Any]], batch: int) -> float:
    """Seconds to write every row through the store; raises if any row is rejected."""
    begin = time.perf_counter()
    for i in range(0, len(rows), batch):
        result = store.write_batch(STATE_TRANSITIONS, rows[i : i + batch])
        if result.rejected:
            raise RuntimeError(f"{store!r} rejected rows: {result.rejected[:3]}")
    return time.perf_counter() - begin


def _time_query(store: Store, name: str, params: dict[str, Any]) -> tuple[float, int]:
    """Median seconds of REPEATS runs after a warm-up, and the result's row count."""
    run_query(store, name, **params)
    times = []
    result: list[dict[str, Any]] = []
    for _ in range(REPEATS):
        begin = time.perf_counter()
        result = run_query(store, name, **params)
        times.append(time.perf_counter() - begin)
    return statistics.median(times), len(result)


def _bq_count(emulator: Any, table_ref: str) -> int:
    """Rows the emulator holds in a table, asked by a plain client (checks the load landed)."""
    from tests.bq_emulator import emulator_client

    client = emulator_client(emulator)
    try:
        result = client.query(f"SELECT COUNT(*) AS n FROM `{table_ref}`").result()
        return int(next(iter(result))["n"])
    finally:
        client.close()


def _measure(tmp: Path, count: int) -> dict[str, float]:
    """Start the emulator, load both stores with the same rows, time every query on both."""
    from persistence.stores.bigquery import BigQueryStore
    from tests.bq_emulator import run_emulator

    bench = _persistence_bench()
    records = bench.make_records(count, seed=11)
    rows = [r.to_row() for r in records]
    end: dt.datetime = bench.END
    params: dict[str, dict[str, Any]] = {
        "stuck": {"now": end},
        "failures": {"as_of": end.date()},
        "steps": {"as_of": end.date()},
        "retries": {"as_of": end.date()},
        "runs": {"as_of": end.date()},
        "timeline": {"pipeline_logging_id": records[0].pipeline_logging_id},
    }
    missing = set(QUERY_NAMES) - set(params)
    if missing:
        raise RuntimeError(f"no parameters for seed queries {sorted(missing)}")
    figures: dict[str, float] = {"rows": float(count)}

    sqlite = SQLiteStore(tmp / "bench.db")
    try:
        bootstrap(sqlite)
        figures["sqlite_load_s"] = _load(sqlite, rows, SQLITE_BATCH)
        sqlite_times = {name: _time_query(sqlite, name, p) for name, p in params.items()}
    finally:
        sqlite.close()

    begin = time.perf_counter()
    with run_emulator(tmp / "emulator") as emulator:
        figures["bq_emulator_start_s"] = time.perf_counter() - begin
        bq = BigQueryStore(emulator.project, DATASET, api_endpoint=emulator.endpoint)
        try:
            bootstrap(bq)
            figures["bq_load_s"] = _load(bq, rows, BQ_BATCH)
            landed = _bq_count(emulator, bq.table_ref(STATE_TRANSITIONS))
            if landed != count:
                raise RuntimeError(f"emulator holds {landed} rows, expected {count}")
            bq_times = {name: _time_query(bq, name, p) for name, p in params.items()}
        finally:
            bq.close()

    figures["bq_load_rows_per_s"] = count / figures["bq_load_s"]
    for name in params:
        bq_s, bq_rows = bq_times[name]
        sqlite_s, sqlite_rows = sqlite_times[name]
        if bq_rows != sqlite_rows:
            raise RuntimeError(f"{name}: emulator returned {bq_rows} rows, SQLite {sqlite_rows}")
        figures[f"bq_{name}_s"] = bq_s
        figures[f"sqlite_{name}_s"] = sqlite_s
        figures[f"bq_over_sqlite_{name}"] = bq_s / sqlite_s
        figures[f"{name}_result_rows"] = float(bq_rows)
    return figures


def run(quick: bool) -> dict[str, float]:
    """Figures by name (bq_<query>_s, sqlite_<query>_s, ratios, rows); {} without .venv-bq."""
    from tests.bq_emulator import emulator_venv

    venv = emulator_venv()
    if not (venv / "bin" / "local-bigquery").exists():
        print(f"bigquery_queries: skipped, no BigQuery emulator in {venv} (run `make bq-emulator`)")
        return {}
    with tempfile.TemporaryDirectory(prefix="pipestate-bq-bench-") as tmp:
        return _measure(Path(tmp), QUICK_ROWS if quick else FULL_ROWS)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so the emulator's context manager stops it."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Print the figures: per query, emulator and SQLite latency side by side, and the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    figures = run(args.quick)
    if not figures:
        return
    print(f"rows: {figures['rows']:,.0f}")
    print(f"emulator start: {figures['bq_emulator_start_s']:.2f} s")
    print(
        f"load: emulator (insertAll via write_batch) {figures['bq_load_s']:.2f} s "
        f"({figures['bq_load_rows_per_s']:,.0f} rows/s), SQLite {figures['sqlite_load_s']:.2f} s"
    )
    print(f"{'query':<10} {'result rows':>11} {'emulator s':>11} {'sqlite s':>10} {'ratio':>8}")
    for name in QUERY_NAMES:
        print(
            f"{name:<10} {figures[f'{name}_result_rows']:>11,.0f} "
            f"{figures[f'bq_{name}_s']:>11.4f} {figures[f'sqlite_{name}_s']:>10.4f} "
            f"{figures[f'bq_over_sqlite_{name}']:>7.1f}x"
        )


if __name__ == "__main__":
    main()
