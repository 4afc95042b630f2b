"""The peer workloads under Prefect 3 (ephemeral server on 127.0.0.1, SQLite under PREFECT_HOME).

`run` executes the workloads and exits right after the last flow, as a script would; `check`, a
separate process started after that exit, reads Prefect's SQLite database directly and counts the
flow and task runs whose terminal state was actually persisted.
Runs only in the .bench-peers/prefect venv (see run.sh).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # the sibling module, found through the path set above

TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def run(quick: bool) -> dict[str, Any]:
    """Run every workload under Prefect and return the run report."""
    import prefect
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import wait

    @task(name="noop", cache_policy=NO_CACHE, persist_result=False)
    def noop(i: int) -> int:
        return i

    @task(
        name="always_fails",
        retries=c.RETRIES,
        retry_delay_seconds=0,
        cache_policy=NO_CACHE,
        persist_result=False,
    )
    def always_fails() -> None:
        raise ConnectionError("connection reset by peer")

    @task(name="slow", timeout_seconds=c.TIMEOUT_S, cache_policy=NO_CACHE, persist_result=False)
    def slow() -> None:
        c.slow_sleep(c.SLOW_S)

    def chain10() -> None:
        x = 0
        for _ in range(10):
            x = noop(x + 1)

    def chain100() -> None:
        x = 0
        for _ in range(100):
            x = noop(x + 1)

    def concurrent100() -> None:
        wait([noop.submit(i) for i in range(100)])

    def retry() -> None:
        always_fails()

    def timeout() -> None:
        slow()

    def warmup() -> None:
        noop(0)

    def exit100() -> None:
        wait([noop.submit(i) for i in range(c.EXIT_STEPS)])

    bodies = [warmup, chain10, chain100, concurrent100, retry, timeout, exit100]
    flows = {body.__name__: flow(name=body.__name__, persist_result=False)(body) for body in bodies}

    def run_once(workload: str) -> None:
        # return_state: the failing workloads must not raise out of the benchmark.
        flows[workload](return_state=True)

    # The first flow starts the ephemeral server; time it apart from the per-step figures.
    started = time.perf_counter()
    run_once(c.WARMUP)
    startup_s = time.perf_counter() - started
    c.log(f"server start + first flow: {startup_s:.2f} s")

    n = c.repeats(quick)
    result = c.base_result("prefect", prefect.__version__, n)
    result["variants"] = c.measure({"server": run_once}, n, c.log)
    result["startup_s"] = startup_s
    # Last: the exit workload, after which the process ends with no grace period.
    run_once(c.EXIT_WORKLOAD)
    result["notes"] = (
        "ephemeral API server (subprocess on 127.0.0.1, SQLite under PREFECT_HOME); "
        "PREFECT_LOGGING_LEVEL=WARNING; concurrent100 uses .submit on the default "
        "ThreadPoolTaskRunner; server start timed apart as startup_s"
    )
    return result


def check(run_report: dict[str, Any]) -> dict[str, Any]:
    """Count, per workload flow, the flow and task runs whose terminal state Prefect persisted."""
    db = Path(os.environ["PREFECT_HOME"]) / "prefect.db"
    marks = ",".join("?" * len(TERMINAL))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        flows = conn.execute(
            "SELECT f.name, count(*) FROM flow_run fr JOIN flow f ON fr.flow_id = f.id "
            f"WHERE fr.state_type IN ({marks}) GROUP BY f.name",
            TERMINAL,
        ).fetchall()
        tasks = conn.execute(
            "SELECT f.name, count(*) FROM task_run tr JOIN flow_run fr ON tr.flow_run_id = fr.id "
            f"JOIN flow f ON fr.flow_id = f.id WHERE tr.state_type IN ({marks}) GROUP BY f.name",
            TERMINAL,
        ).fetchall()
        task_states = conn.execute("SELECT count(*) FROM task_run_state").fetchone()[0]
        flow_states = conn.execute("SELECT count(*) FROM flow_run_state").fetchone()[0]
    found: dict[str, dict[str, int]] = {}
    for name, count in flows:
        found.setdefault(name, {})["pipeline_runs"] = int(count)
    for name, count in tasks:
        found.setdefault(name, {})["step_runs"] = int(count)
    return c.persisted_report(
        "prefect",
        "SQLite database of the ephemeral API server (PREFECT_HOME/prefect.db), read directly",
        run_report,
        found,
        {"state_rows_persisted": int(task_states + flow_states), "state_rows_expected": None},
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: `run` or `check` (see _common.parse_args)."""
    args = c.parse_args(argv, __doc__ or "")
    if args.command == "run":
        report: dict[str, Any] = {}

        def finish() -> None:
            # Registered before Prefect starts its server, so it runs after Prefect's own
            # atexit hook has stopped the server: RUSAGE_CHILDREN then includes the server.
            if report:
                report.update(c.peak_rss_mb(children=True))
                c.emit(report, args.out)

        atexit.register(finish)
        report.update(run(args.quick))
    else:
        c.emit(check(c.load(args.run)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
