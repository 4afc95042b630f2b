"""The composed machine: exhaustive exploration time, and `pipestate verify` on 1M SQLite rows.

Run: .venv/bin/python benchmarks/joint.py [--quick]

Figures (measured in this run):
- explore_<n>_steps_s / _states / _edges: the breadth-first exploration of one pipeline with n
  steps over every dependency shape (target for n = 4: under 60 s);
- verify_s: `persistence.verify.verify` on verify_rows rows (1,000,000; 100,000 with --quick) of
  legal, finished runs in a SQLite file (target: under 10 s for 1M rows), verify_cpu_s the CPU
  time it used (on a shared machine the wall time includes waiting for a core), and
  verify_over_count_scan: its time over a plain COUNT(*) scan of the same table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from persistence.stores.base import STATE_TRANSITIONS  # noqa: E402
from persistence.stores.sqlite import SQLiteStore  # noqa: E402
from persistence.verify import verify  # noqa: E402
from statemachine.explore import explore  # noqa: E402

BASE = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
ROWS_PER_RUN = 20  # pipeline start + 3 steps x (start, retry, start, retry, start, complete) + end
# (from, to, retry_count after, ms in the state left) of one step's six rows.
STEP_ROWS = (
    ("PENDING", "RUNNING", 0, 1),
    ("RUNNING", "RETRYING", 0, 40),
    ("RETRYING", "RUNNING", 1, 100),
    ("RUNNING", "RETRYING", 1, 40),
    ("RETRYING", "RUNNING", 2, 200),
    ("RUNNING", "COMPLETED", 2, 40),
)


def _run_rows(index: int) -> list[dict[str, Any]]:
    """The 20 rows of one finished run, timestamps and durations consistent."""
    run_id = f"run-{index:08d}"
    start = BASE + dt.timedelta(seconds=index)
    common = {"org_slug": f"org{index % 7}", "pipeline_logging_id": run_id, "trigger_type": "api"}

    def row(
        n: int, kind: str, name: str, step: str | None, edge: tuple[Any, ...], at: dt.datetime
    ) -> dict[str, Any]:
        source, dest, retries, ms = edge
        return {
            **common,
            "transition_id": f"{run_id}-{n:02d}",
            "step_logging_id": step,
            "entity_type": kind,
            "entity_name": name,
            "from_state": source,
            "to_state": dest,
            "transition_time": at,
            "transition_date": at.date(),
            "retry_count": retries,
            "duration_in_state_ms": ms,
            "error_type": "TRANSIENT" if dest == "RETRYING" else None,
            "metadata": "{}",
        }

    rows = [row(0, "PIPELINE", "nightly", None, ("PENDING", "RUNNING", 0, 0), start)]
    at = start
    for s in range(3):
        for k, edge in enumerate(STEP_ROWS):
            at += dt.timedelta(milliseconds=edge[3])
            rows.append(row(1 + s * 6 + k, "STEP", f"step{s}", f"{run_id}-s{s}", edge, at))
    end = at + dt.timedelta(milliseconds=1)
    rows.append(
        row(
            19,
            "PIPELINE",
            "nightly",
            None,
            ("RUNNING", "COMPLETED", 0, int((end - start).total_seconds() * 1000)),
            end,
        )
    )
    return rows


def load(path: Path, rows: int) -> None:
    """Write `rows` rows (whole runs) through SQLiteStore.write_batch."""
    store = SQLiteStore(path, synchronous="OFF")
    try:
        batch: list[dict[str, Any]] = []
        for index in range(rows // ROWS_PER_RUN):
            batch += _run_rows(index)
            if len(batch) >= 20_000:
                store.write_batch(STATE_TRANSITIONS, batch)
                batch = []
        if batch:
            store.write_batch(STATE_TRANSITIONS, batch)
    finally:
        store.close()


def bench_verify(tmp: Path, rows: int) -> dict[str, float]:
    """verify() on `rows` clean rows, and a COUNT(*) scan for scale."""
    path = tmp / "verify.db"
    load(path, rows)
    conn = sqlite3.connect(path)
    begin = time.perf_counter()
    conn.execute(f"SELECT COUNT(*), MAX(transition_time) FROM {STATE_TRANSITIONS}").fetchall()
    scan = time.perf_counter() - begin
    conn.close()
    store = SQLiteStore(path)
    begin, cpu = time.perf_counter(), time.process_time()
    report = verify(store)
    seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    store.close()
    if not report.clean or report.rows != rows:
        raise AssertionError(f"benchmark rows must verify clean: {report.render()[:500]}")
    return {
        "verify_rows": float(rows),
        "verify_s": seconds,
        # SQLite runs in this process: its CPU time is what an idle machine's wall time would be.
        "verify_cpu_s": cpu,
        "verify_over_count_scan": seconds / scan,
    }


def bench_explore(max_steps: int) -> dict[str, float]:
    """Time and size of the exploration for 1 .. max_steps steps."""
    figures: dict[str, float] = {}
    for n in range(1, max_steps + 1):
        result = explore(n)
        if result.counterexample is not None:
            raise AssertionError(result.counterexample.render())
        figures[f"explore_{n}_steps_s"] = result.seconds
        figures[f"explore_{n}_steps_states"] = float(result.states)
        figures[f"explore_{n}_steps_edges"] = float(result.edges)
    return figures


def run(quick: bool) -> dict[str, float]:
    """Both parts; figures by name."""
    figures = bench_explore(4)
    with tempfile.TemporaryDirectory(prefix="pipestate-bench-") as tmp:
        figures.update(bench_verify(Path(tmp), 100_000 if quick else 1_000_000))
    return figures


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1M")
    figures = run(parser.parse_args(argv).quick)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:>14,.3f}")


if __name__ == "__main__":
    main()
