"""What the three peer benchmarks share: the workloads, timing, peak RSS and the JSON they print.

Each *_bench.py runs under its own tool's venv (pipestate's, Prefect's or Dagster's), so this module
uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The workloads every tool runs: name -> number of steps (task runs / ops) per run.
WORKLOADS: dict[str, int] = {
    "chain10": 10,
    "chain100": 100,
    "concurrent100": 100,
    "retry": 1,
    "timeout": 1,
}
RETRIES = 2  # the failing step raises ConnectionError on every attempt: 1 + 2 attempts in all
TIMEOUT_S = 0.5  # the timed-out step's limit ...
SLOW_S = 5.0  # ... and how long it would otherwise sleep
HEADLINE = "chain100"  # the workload whose per-step overhead carries the ratio
# Run once, last, untimed: 100 concurrent no-op steps, then the process exits at once. What a tool
# has persisted of this run after the exit is the sharpest test of "no row lost".
EXIT_WORKLOAD = "exit100"
EXIT_STEPS = 100
# Run once, untimed, before each variant's timings: first-call imports and caches are not overhead.
WARMUP = "warmup"


def repeats(quick: bool, *, cheap: bool = False) -> int:
    """How many times each workload runs (the median is reported).

    A tool whose runs take milliseconds gets more repeats: on a shared machine a few samples of a
    millisecond-long run are easily all hit by someone else's load.
    """
    if quick:
        return 1
    return 21 if cheap else 5


def expected_runs(n_repeats: int) -> dict[str, dict[str, int]]:
    """Per workload, the pipeline runs and step runs (task runs / ops) a full run starts."""
    out = {
        name: {"pipeline_runs": n_repeats, "step_runs": steps * n_repeats}
        for name, steps in WORKLOADS.items()
    }
    out[EXIT_WORKLOAD] = {"pipeline_runs": 1, "step_runs": EXIT_STEPS}
    return out


def persisted_report(
    tool: str,
    store: str,
    run_report: dict[str, Any],
    found: dict[str, dict[str, int]],
    state_rows: dict[str, int | None],
) -> dict[str, Any]:
    """The check's JSON: per workload, runs expected vs runs whose terminal state was stored."""
    expected: dict[str, dict[str, int]] = run_report["expected"]
    by_workload = {}
    for name, exp in expected.items():
        got = found.get(name, {})
        by_workload[name] = {
            "pipeline_runs_expected": exp["pipeline_runs"],
            "pipeline_runs_persisted": got.get("pipeline_runs", 0),
            "step_runs_expected": exp["step_runs"],
            "step_runs_persisted": got.get("step_runs", 0),
        }
    total_exp = sum(w["step_runs_expected"] for w in by_workload.values())
    total_got = sum(w["step_runs_persisted"] for w in by_workload.values())
    pipe_exp = sum(w["pipeline_runs_expected"] for w in by_workload.values())
    pipe_got = sum(w["pipeline_runs_persisted"] for w in by_workload.values())
    exit_w = by_workload[EXIT_WORKLOAD]
    return {
        "tool": tool,
        "store": store,
        "by_workload": by_workload,
        "step_runs_expected": total_exp,
        "step_runs_persisted": total_got,
        "step_runs_persisted_pct": pct(total_got, total_exp),
        "pipeline_runs_expected": pipe_exp,
        "pipeline_runs_persisted": pipe_got,
        "exit_step_runs_persisted_pct": pct(
            exit_w["step_runs_persisted"], exit_w["step_runs_expected"]
        ),
        **state_rows,
    }


def slow_sleep(seconds: float) -> None:
    """Sleep in short slices so a tool's timeout (signal or thread exception) can interrupt it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Measure the wall time of a block; the elapsed seconds end up in the yielded list."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def per_step_ms(workload: str, wall_s: float) -> float:
    """Per-step overhead in ms: wall time, less the time the step itself must take, per step."""
    steps = WORKLOADS[workload]
    if workload == "timeout":
        return max(wall_s - TIMEOUT_S, 0.0) * 1000.0
    if workload == "retry":
        steps = 1 + RETRIES  # each attempt is a step execution
    return wall_s * 1000.0 / steps


def measure(
    runners: dict[str, Callable[[str], None]], n_repeats: int, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Time each workload n_repeats times per variant; return variant -> workload -> figures.

    Variants alternate run by run, so load from elsewhere on a shared machine falls on all of
    them alike. Each variant first runs WARMUP, untimed: first-call costs are not overhead.
    """
    for run_once in runners.values():
        run_once(WARMUP)
    out: dict[str, dict[str, Any]] = {variant: {} for variant in runners}
    for workload, steps in WORKLOADS.items():
        walls: dict[str, list[float]] = {variant: [] for variant in runners}
        for i in range(n_repeats):
            for variant, run_once in runners.items():
                with stopwatch() as box:
                    run_once(workload)
                walls[variant].append(box[0])
                log(f"{variant} {workload} #{i + 1}: {box[0]:.4f} s")
        for variant, samples in walls.items():
            wall = statistics.median(samples)
            out[variant][workload] = {
                "steps": steps,
                "wall_s": wall,
                "wall_s_min": min(samples),
                "wall_s_max": max(samples),
                "per_step_ms": per_step_ms(workload, wall),
            }
    return out


def peak_rss_mb(*, children: bool = False) -> dict[str, float]:
    """Peak resident set size of this process (and of its largest reaped child), in MiB.

    Only Prefect asks for the child figure (its API server runs as a subprocess); for the others
    it would only show short-lived forks, whose RSS starts as a copy of the parent's.
    """
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if children:
        out["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def base_result(tool: str, version: str, n_repeats: int) -> dict[str, Any]:
    """The fields every run report starts with."""
    return {
        "tool": tool,
        "version": version,
        "python": platform.python_version(),
        "repeats": n_repeats,
        "retries": RETRIES,
        "timeout_s": TIMEOUT_S,
        "expected": expected_runs(n_repeats),
    }


def emit(result: dict[str, Any], out: str | None) -> None:
    """Print the report as JSON on stdout and, if asked, write it to a file too."""
    text = json.dumps(result, indent=2, sort_keys=True)
    if out:
        Path(out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def load(path: str) -> dict[str, Any]:
    """Read a run report written by emit()."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def log(message: str) -> None:
    """Progress on stderr, so stdout stays pure JSON."""
    print(f"  [{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The shared command line: `run [--quick] [--out F]` or `check --run F [--out F]`."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the workloads and report timings as JSON")
    run.add_argument("--quick", action="store_true", help="one repeat instead of three")
    run.add_argument("--out", help="also write the JSON report to this file")
    check = sub.add_parser("check", help="count the state rows persisted by an earlier run")
    check.add_argument("--run", required=True, help="the run's JSON report (for expected counts)")
    check.add_argument("--out", help="also write the JSON report to this file")
    return parser.parse_args(argv)


def pct(found: int, expected: int) -> float:
    """found / expected as a percentage (100 when nothing was expected)."""
    return 100.0 if expected == 0 else 100.0 * found / expected
