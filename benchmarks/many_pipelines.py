"""Scale: 10,000 concurrent 10-step pipelines in one process, SQLite, default logger settings.

Run: .venv/bin/python benchmarks/many_pipelines.py [--quick]

The workload runs in a fresh child process (so its peak RSS is its own): 10,000 (quick: 2,000)
pipelines of 10 chained generic.noop steps started at once on one event loop, logged through
MetadataLogger into a fresh SQLite file with the seed's default settings and the CLI's derived
run and step rows, flushed before the clock stops. Figures: wall time per step, rows written
and dropped (all three tables; target 0 dropped), and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

PIPELINES = 10_000
QUICK_PIPELINES = 2_000
QUEUES = ("state_transition", "pipeline", "step")
# Collected by run_all.py: (claim, figure, "<=" or ">=", target).
TARGETS = (
    ("10,000 concurrent 10-step pipelines: rows dropped (defaults)", "scale_rows_dropped", "<=", 0),
)


async def _workload(pipelines: int, path: Path) -> dict[str, float]:
    """Run the pipelines against a fresh SQLite file; return the figures."""
    from executor.config import PipelineConfig, RetryDefaults, StepConfig
    from executor.runner import run_pipeline
    from persistence.logger import MetadataLogger
    from persistence.settings import LoggerSettings
    from persistence.stores.sqlite import SQLiteStore

    def chain(name: str) -> PipelineConfig:
        steps = tuple(
            StepConfig(
                step_id=f"s{i}", processor="generic.noop", depends_on=(f"s{i - 1}",) * bool(i)
            )
            for i in range(10)
        )
        return PipelineConfig(pipeline_id=name, steps=steps, retry=RetryDefaults(max_retries=0))

    configs = [chain(f"scale-{i}") for i in range(pipelines)]
    store = SQLiteStore(path)
    logger = MetadataLogger(store, LoggerSettings(), derive_run_rows=True)
    await logger.start()
    begin = time.perf_counter()
    await asyncio.gather(*(run_pipeline(c, org_slug="bench", logger=logger) for c in configs))
    drained = await logger.flush()
    elapsed = time.perf_counter() - begin
    await logger.stop()
    store.close()
    queues = logger.get_queue_depths()
    return {
        "scale_pipelines": float(pipelines),
        "scale_ms_per_step": 1000 * elapsed / (10 * pipelines),
        "scale_wall_s": elapsed,
        "scale_rows_written": float(sum(queues[q]["rows_written"] for q in QUEUES)),
        "scale_rows_dropped": float(sum(queues[q]["rows_dropped"] for q in QUEUES)),
        "scale_flushed": float(drained),
    }


def _child(pipelines: int) -> None:
    """Run the workload here and print its figures as one JSON line."""
    from pipestate.cli import configure_logging

    configure_logging(debug=False)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(_workload(pipelines, Path(tmp) / "scale.db"))
    figures["scale_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def run(quick: bool) -> dict[str, float]:
    """Run the workload in a child process; return its figures."""
    pipelines = QUICK_PIPELINES if quick else PIPELINES
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(pipelines)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures (or, with --child N, run the workload in this process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 pipelines")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    for name, value in run(args.quick).items():
        print(f"{name:<22} {value:>14,.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
