"""The peer workloads under Dagster 1.x: in memory, and on the SQLite storage under DAGSTER_HOME.

`run` executes the workloads with `execute_in_process` twice, on an ephemeral (in-memory) instance
and on DagsterInstance.get() (SQLite run and event-log storage under DAGSTER_HOME), then exits;
`check`, a separate process started after that exit, opens the same instance and counts the runs
and step outcomes Dagster actually persisted.
Runs only in the .bench-peers/dagster venv (see run.sh).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # the sibling module, found through the path set above


def build_jobs() -> dict[str, Any]:
    """One Dagster job per workload, named after it."""
    from dagster import In, Nothing, RetryPolicy, job, op

    @op(ins={"after": In(Nothing)})
    def noop() -> None:
        return None

    @op(retry_policy=RetryPolicy(max_retries=c.RETRIES, delay=0))
    def always_fails() -> None:
        raise ConnectionError("connection reset by peer")

    # Dagster has no per-op timeout (only a run-level max_runtime enforced by the daemon's run
    # monitoring), so the op enforces its own limit: the failure is recorded like a timeout.
    @op
    def slow() -> None:
        time.sleep(c.TIMEOUT_S)  # exactly the limit: no overshoot is charged to Dagster
        raise TimeoutError(f"op exceeded its {c.TIMEOUT_S} s limit")

    def chain_job(name: str, n: int) -> Any:
        @job(name=name)
        def _chain() -> None:
            prev = noop.alias("s0")()
            for i in range(1, n):
                prev = noop.alias(f"s{i}")(after=prev)

        return _chain

    def fan_job(name: str, n: int) -> Any:
        @job(name=name)
        def _fan() -> None:
            for i in range(n):
                noop.alias(f"s{i}")()

        return _fan

    @job(name="retry")
    def retry() -> None:
        always_fails()

    @job(name="timeout")
    def timeout() -> None:
        slow()

    return {
        c.WARMUP: chain_job(c.WARMUP, 1),
        "chain10": chain_job("chain10", 10),
        "chain100": chain_job("chain100", 100),
        "concurrent100": fan_job("concurrent100", 100),
        "retry": retry,
        "timeout": timeout,
        c.EXIT_WORKLOAD: fan_job(c.EXIT_WORKLOAD, c.EXIT_STEPS),
    }


def run(quick: bool) -> dict[str, Any]:
    """Run every workload in memory and on SQLite storage and return the run report."""
    import dagster
    from dagster import DagsterInstance

    jobs = build_jobs()
    # Console logging at WARNING, as for Prefect: the figures measure orchestration, not printing.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    n = c.repeats(quick)
    result = c.base_result("dagster", dagster.__version__, n)
    started = time.perf_counter()
    with DagsterInstance.ephemeral() as memory, DagsterInstance.get() as sqlite:

        def on(instance: DagsterInstance) -> Any:
            return lambda w: jobs[w].execute_in_process(
                run_config=quiet, instance=instance, raise_on_error=False
            )

        result["variants"] = c.measure({"memory": on(memory), "sqlite": on(sqlite)}, n, c.log)
        # Last: the exit workload, after which the process ends with no grace period.
        on(sqlite)(c.EXIT_WORKLOAD)
    result["total_s"] = time.perf_counter() - started
    result["notes"] = (
        "execute_in_process (in-process executor: ops run one at a time, so concurrent100 is "
        "serial); retry via RetryPolicy(delay=0); no per-op timeout in Dagster, so the timeout "
        "op raises TimeoutError itself after the limit; persistence checked on the sqlite variant"
    )
    result.update(c.peak_rss_mb())
    return result


def check(run_report: dict[str, Any]) -> dict[str, Any]:
    """Count, per workload job, the finished runs and step outcomes in DAGSTER_HOME's storage."""
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    found: dict[str, dict[str, int]] = {}
    events = 0
    with DagsterInstance.get() as instance:
        for dagster_run in instance.get_runs():
            got = found.setdefault(dagster_run.job_name, {"pipeline_runs": 0, "step_runs": 0})
            if dagster_run.status in finished:
                got["pipeline_runs"] += 1
            for entry in instance.all_logs(dagster_run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                events += 1
                if event.event_type in (
                    DagsterEventType.STEP_SUCCESS,
                    DagsterEventType.STEP_FAILURE,
                ):
                    got["step_runs"] += 1
    return c.persisted_report(
        "dagster",
        "SQLite run and event-log storage under DAGSTER_HOME (DagsterInstance.get())",
        run_report,
        found,
        {"state_rows_persisted": events, "state_rows_expected": None},
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: `run` or `check` (see _common.parse_args)."""
    args = c.parse_args(argv, __doc__ or "")
    report = run(args.quick) if args.command == "run" else check(c.load(args.run))
    c.emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
