"""The peer workloads under pipestate: executor.run_pipeline with a MetadataLogger on SQLite.

`run` executes the workloads twice, with a NullSink (the executor alone) and with a MetadataLogger
on a SQLiteStore at $PIPESTATE_BENCH_DB, then exits; `check`, a separate process started after
that exit, reads the SQLite file with the sqlite3 module and counts the transition rows persisted.
Runs in the project venv (.venv).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # the sibling module, found through the path set above

DB_ENV = "PIPESTATE_BENCH_DB"
TABLE = "org_meta_state_transitions"
ORG = "bench"


def db_path() -> str:
    """The SQLite file the benchmark writes and the check reads."""
    return os.environ.get(DB_ENV) or "pipestate-bench.db"


def workload_configs() -> dict[str, Any]:
    """One validated PipelineConfig per workload, named after it."""
    import yaml

    from executor import parse_pipeline_config

    def noop(i: int, after: int | None) -> dict[str, Any]:
        step: dict[str, Any] = {"step_id": f"s{i}", "processor": "generic.noop"}
        if after is not None:
            step["depends_on"] = [f"s{after}"]
        return step

    def pipeline(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "pipeline_id": name,
            "timeout_minutes": 10,
            "concurrency": 100,
            # Zero delay, as for the peers: the figure is the orchestration overhead.
            "retry": {"max_retries": c.RETRIES, "base_delay_seconds": 0, "max_delay_seconds": 0},
            "steps": steps,
        }

    raw = {
        c.WARMUP: pipeline(c.WARMUP, [noop(0, None)]),
        "chain10": pipeline("chain10", [noop(i, i - 1 if i else None) for i in range(10)]),
        "chain100": pipeline("chain100", [noop(i, i - 1 if i else None) for i in range(100)]),
        "concurrent100": pipeline("concurrent100", [noop(i, None) for i in range(100)]),
        "retry": pipeline(
            "retry",
            [
                {
                    "step_id": "always_fails",
                    "processor": "generic.fail",
                    "config": {"exception": "ConnectionError", "message": "connection reset"},
                }
            ],
        ),
        "timeout": pipeline(
            "timeout",
            [
                {
                    "step_id": "slow",
                    "processor": "generic.slow_processor",
                    "config": {"sleep_seconds": c.SLOW_S},
                    "timeout_minutes": c.TIMEOUT_S / 60.0,
                    "max_retries": 0,  # a step timeout is retryable by policy; not here
                }
            ],
        ),
        c.EXIT_WORKLOAD: pipeline(c.EXIT_WORKLOAD, [noop(i, None) for i in range(c.EXIT_STEPS)]),
    }
    return {
        name: parse_pipeline_config(yaml.safe_dump(doc), source=f"<bench {name}>")
        for name, doc in raw.items()
    }


class CountingSink:
    """Forward every record to the real sink and count them: the rows the store must hold."""

    def __init__(self, inner: Any) -> None:
        """Wrap `inner` (any TransitionSink)."""
        self.inner = inner
        self.count = 0

    def emit(self, record: Any) -> None:
        """Count, then forward."""
        self.count += 1
        self.inner.emit(record)


def _runner(
    loop: asyncio.AbstractEventLoop, configs: dict[str, Any], sink: Any
) -> Callable[[str], None]:
    from executor import run_pipeline

    def run_once(workload: str) -> None:
        loop.run_until_complete(run_pipeline(configs[workload], org_slug=ORG, logger=sink))

    return run_once


def run(quick: bool) -> dict[str, Any]:
    """Run every workload with a NullSink and with a MetadataLogger on SQLite; return the report."""
    from importlib.metadata import version

    from persistence import MetadataLogger, SQLiteStore
    from statemachine import NullSink

    configs = workload_configs()
    n = c.repeats(quick, cheap=True)
    result = c.base_result("pipestate", version("pipestate"), n)
    path = db_path()
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)

    loop = asyncio.new_event_loop()
    try:
        started = time.perf_counter()
        store = SQLiteStore(path)
        logger = MetadataLogger(store)
        loop.run_until_complete(logger.start())
        counting = CountingSink(logger)
        runners = {
            "null": _runner(loop, configs, NullSink()),
            "sqlite": _runner(loop, configs, counting),
        }
        result["variants"] = c.measure(runners, n, c.log)
        # Last: the exit workload, then the documented shutdown (stop drains) and exit.
        runners["sqlite"](c.EXIT_WORKLOAD)
        loop.run_until_complete(logger.stop())
        store.close()
        result["total_s"] = time.perf_counter() - started
    finally:
        loop.close()
    result["state_rows_expected"] = counting.count
    result["notes"] = (
        "one asyncio loop; concurrency 100; retry delay 0; MetadataLogger at default settings "
        "on SQLiteStore; stop() drains the queue before the process exits"
    )
    result.update(c.peak_rss_mb())
    return result


def check(run_report: dict[str, Any]) -> dict[str, Any]:
    """Count, per workload pipeline, the runs whose terminal transition is in the SQLite file."""
    terminal = ("COMPLETED", "FAILED", "TIMEOUT")
    marks = ",".join("?" * len(terminal))
    with sqlite3.connect(f"file:{db_path()}?mode=ro", uri=True) as conn:
        pipelines = conn.execute(
            f"SELECT entity_name, count(*) FROM {TABLE} WHERE entity_type = 'PIPELINE' "
            f"AND to_state IN ({marks}) GROUP BY entity_name",
            terminal,
        ).fetchall()
        steps = conn.execute(
            f"SELECT p.entity_name, count(*) FROM {TABLE} s JOIN (SELECT DISTINCT "
            f"pipeline_logging_id, entity_name FROM {TABLE} WHERE entity_type = 'PIPELINE') p "
            "ON s.pipeline_logging_id = p.pipeline_logging_id "
            f"WHERE s.entity_type = 'STEP' AND s.to_state IN ({marks}) GROUP BY p.entity_name",
            terminal,
        ).fetchall()
        rows = int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
    found: dict[str, dict[str, int]] = {}
    for name, count in pipelines:
        found.setdefault(name, {})["pipeline_runs"] = int(count)
    for name, count in steps:
        found.setdefault(name, {})["step_runs"] = int(count)
    return c.persisted_report(
        "pipestate",
        f"SQLiteStore file ({TABLE}), read with sqlite3",
        run_report,
        found,
        {
            "state_rows_persisted": rows,
            "state_rows_expected": int(run_report["state_rows_expected"]),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: `run` or `check` (see _common.parse_args)."""
    args = c.parse_args(argv, __doc__ or "")
    report = run(args.quick) if args.command == "run" else check(c.load(args.run))
    c.emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
