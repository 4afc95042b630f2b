"""Profile the write path and the executor's per-step path (pyinstrument; not part of make bench).

Run: .venv/bin/python benchmarks/profile_write_path.py [--pipelines 1000] [--writer thread]

Runs N concurrent 10-step no-op pipelines (as benchmarks/executor.py does) into a fresh SQLite
file with the CLI's derived rows on, twice: once into a NullSink, once through MetadataLogger.
The event loop's thread is sampled by pyinstrument (its call tree is printed); the writer
thread's share is accounted per commit with time.thread_time() around SQLiteStore.write_many
(pyinstrument samples one thread), or, with the default writer process, as the reaped child's
CPU (getrusage(RUSAGE_CHILDREN)). Summary lines: CPU per step of the loop with each sink, and
of the writer, so the cost of logging splits into "on the loop" and "in the writer".
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from executor.config import PipelineConfig, RetryDefaults, StepConfig  # noqa: E402
from executor.runner import run_pipeline  # noqa: E402
from persistence.logger import MetadataLogger  # noqa: E402
from persistence.stores.base import WriteResult  # noqa: E402
from persistence.stores.sqlite import SQLiteStore  # noqa: E402
from statemachine import NullSink  # noqa: E402


class TimedSQLiteStore(SQLiteStore):
    """SQLiteStore that adds up the writer thread's CPU time spent in write_many."""

    writer_cpu = 0.0
    commits = 0
    rows = 0

    def write_many(self, parts: Sequence[tuple[str, Sequence[Any]]]) -> list[WriteResult]:
        """Time the commit on this thread's CPU clock."""
        started = time.thread_time()
        try:
            return super().write_many(parts)
        finally:
            self.writer_cpu += time.thread_time() - started
            self.commits += 1
            self.rows += sum(len(items) for _, items in parts)


def chain(name: str) -> PipelineConfig:
    """Ten chained no-op steps."""
    steps = tuple(
        StepConfig(step_id=f"s{i}", processor="generic.noop", depends_on=(f"s{i - 1}",) * bool(i))
        for i in range(10)
    )
    return PipelineConfig(pipeline_id=name, steps=steps, retry=RetryDefaults(max_retries=0))


async def workload(configs: list[PipelineConfig], sink: Any) -> None:
    """All pipelines at once on this loop."""
    await asyncio.gather(*(run_pipeline(c, org_slug="prof", logger=sink) for c in configs))


async def profiled(configs: list[PipelineConfig], use_logger: bool, process: bool) -> str:
    """Run once under pyinstrument; return the summary line."""
    from pyinstrument import Profiler

    steps = 10 * len(configs)
    with tempfile.TemporaryDirectory() as tmp:
        store = TimedSQLiteStore(Path(tmp) / "profile.db", writer_process=process)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sink: Any = NullSink()
        if use_logger:
            sink = MetadataLogger(store, derive_run_rows=True)
            await sink.start()
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        loop_cpu = time.thread_time()
        profiler.start()
        await workload(configs, sink)
        if use_logger:
            await sink.flush()
        profiler.stop()
        loop_cpu = time.thread_time() - loop_cpu
        if use_logger:
            await sink.stop()
        store.close()  # reaps the writer process: its CPU is in RUSAGE_CHILDREN now
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    label = "MetadataLogger+SQLite" if use_logger else "NullSink"
    line = f"{label}: loop thread {1e6 * loop_cpu / steps:.1f} us CPU per step"
    if use_logger and process:
        line += f"; writer process {1e6 * child_cpu / steps:.1f} us CPU per step"
    elif use_logger:
        line += (
            f"; writer thread {1e6 * store.writer_cpu / steps:.1f} us CPU per step"
            f" ({store.commits} commits, {store.rows / max(1, store.commits):.0f} rows each)"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    """Profile both sinks and print the call trees and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--writer", choices=("process", "thread"), default="process")
    args = parser.parse_args(argv)
    configs = [chain(f"prof-{i}") for i in range(args.pipelines)]
    asyncio.run(workload(configs[:5], NullSink()))  # warm-up: imports, registry, machines
    process = args.writer == "process"
    summary = [asyncio.run(profiled(configs, flag, process)) for flag in (False, True)]
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
