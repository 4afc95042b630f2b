"""Logger tuning sweep: throughput and drops for the seed's knobs (queue, batch, workers, interval).

Two workloads per setting, both into a real SQLite file:
- burst: N transitions emitted as fast as possible on the hot path (put_timeout=0), with a yield
  every 100 emits, as a busy pipeline would; counts what the bounded queue drops;
- sustained: the same N with put_timeout=5 s (the seed's default), reporting rows/s end to end.
The numbers back the tuning advice in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Run as a script, this directory is sys.path[0] and would shadow real packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from persistence import LoggerSettings, MetadataLogger, SQLiteStore  # noqa: E402
from persistence.schema import load_table_specs  # noqa: E402
from statemachine import InMemorySink, PipelineRun, StepRun  # noqa: E402
from statemachine.records import TransitionRecord  # noqa: E402

SETTINGS: dict[str, dict[str, float]] = {
    "default (q1000 b100 w5 i5)": {},
    "queue 2000": {"queue_size": 2000},
    "queue 10000": {"queue_size": 10000},
    "batch 200": {"batch_size": 200},
    "workers 10": {"workers": 10},
    "workers 1": {"workers": 1},
    "interval 2 s": {"flush_interval_seconds": 2.0},
}


def make_records(count: int) -> list[TransitionRecord]:
    """Real transition records from real state objects (pipelines of 10 steps)."""
    sink = InMemorySink()
    while len(sink.records) < count:
        run = PipelineRun.create("bench", org_slug="bench", sink=sink)
        run.start()
        for i in range(10):
            step = StepRun.create(f"s{i}", pipeline=run)
            step.start()
            step.complete()
        run.complete()
    return sink.records[:count]


async def _drive(path: Path, records: list[TransitionRecord], settings: LoggerSettings) -> dict:
    store = SQLiteStore(path)
    store.ensure_tables(load_table_specs(), dry_run=False)
    logger = MetadataLogger(store, settings)
    await logger.start()
    begin = time.perf_counter()
    for i, record in enumerate(records):
        logger.emit(record)
        if i % 100 == 99:
            await asyncio.sleep(0)
    emitted = time.perf_counter() - begin
    await logger.stop(timeout=600)
    elapsed = time.perf_counter() - begin
    depths = logger.get_queue_depths()["state_transition"]
    store.close()
    return {
        "emit_us_per_row": 1e6 * emitted / len(records),
        "rows_per_s": depths["rows_written"] / elapsed,
        "dropped": float(depths["rows_dropped"]),
        "dropped_pct": 100.0 * depths["rows_dropped"] / len(records),
    }


def run(quick: bool) -> dict[str, float]:
    """Sweep the settings; return flat figures named '<setting>: <figure>'."""
    count = 20_000 if quick else 100_000
    records = make_records(count)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, overrides) in enumerate(SETTINGS.items()):
            for mode, put_timeout in (("burst", 0.0), ("sustained", 5.0)):
                settings = LoggerSettings(**{**overrides, "put_timeout": put_timeout})
                path = Path(tmp) / f"{n}-{mode}.db"
                figures = asyncio.run(_drive(path, records, settings))
                for key, value in figures.items():
                    out[f"{name} {mode}: {key}"] = round(value, 3)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the sweep as a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for key, value in run(args.quick).items():
        print(f"{key:60s} {value:>12,.3f}")


if __name__ == "__main__":
    main()
