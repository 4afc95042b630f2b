"""Benchmark: the cost of emit -> outbox, per row, amortised (target <= 25 us/row).

Measures OutboxStore.write_batch at batch sizes 1, 100 and 500 with synchronous=FULL (the default:
fsync on every commit) and NORMAL, with the uploader idle so only the local commit is timed, then
with the uploader shipping to a no-op remote at the same time, and finally end to end through the
MetadataLogger (emit N records, flush) against the same logger writing to a no-op store.

Run: .venv/bin/python benchmarks/outbox.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: import from the repo root, not from benchmarks/ (whose module names,
    # e.g. transitions.py, would shadow installed packages).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from persistence.outbox import OutboxStore
from persistence.stores.base import STATE_TRANSITIONS, WriteResult
from statemachine.records import TransitionRecord

TARGET_US_PER_ROW = 25.0
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class NoopRemote:
    """A remote that accepts everything instantly: isolates the outbox's own cost."""

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Accept every row."""
        return WriteResult(written=len(rows))

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Answer nothing."""
        return []

    def close(self) -> None:
        """Nothing to release."""


def record(i: int) -> TransitionRecord:
    """Return a typical step transition record (metadata, no error)."""
    return TransitionRecord(
        transition_id=f"00000000-0000-4000-8000-{i:012d}",
        org_slug="acme",
        pipeline_logging_id="11111111-1111-4111-8111-111111111111",
        step_logging_id=f"22222222-2222-4222-8222-{i:012d}",
        entity_type="STEP",
        entity_name=f"extract_{i % 50}",
        from_state="RUNNING",
        to_state="COMPLETED",
        transition_time=T0,
        transition_date=T0.date(),
        reason="Step completed successfully",
        duration_in_state_ms=1234,
        metadata={"rows_processed": 1000},
        trigger_type="api",
    )


def bench_write_batch(
    workdir: Path, batch: int, rows_total: int, synchronous: str, *, ship: bool
) -> float:
    """Return microseconds per row for write_batch(batch rows) repeated to rows_total rows."""
    rows = [record(i).to_row() for i in range(batch)]
    path = workdir / f"wb-{synchronous}-{batch}-{ship}.db"
    # Idle uploader: huge batch and interval, so only the local commit is timed.
    options: dict[str, Any] = (
        {"batch_size": 500, "upload_interval_seconds": 0.05}
        if ship
        else {"batch_size": 10**9, "upload_interval_seconds": 3600.0}
    )
    store = OutboxStore(NoopRemote(), path, synchronous=synchronous, **options)
    store.write_batch(STATE_TRANSITIONS, rows)  # open the file and create the tables
    loops = max(1, rows_total // batch)
    started = time.perf_counter()
    for _ in range(loops):
        store.write_batch(STATE_TRANSITIONS, rows)
    elapsed = time.perf_counter() - started
    store.close(timeout=30.0)
    return elapsed / (loops * batch) * 1e6


async def _through_logger(store: Any, n: int) -> float:
    """Emit n records through a MetadataLogger on store, flush, return us per row."""
    from persistence import MetadataLogger

    records = [record(i) for i in range(n)]
    async with MetadataLogger(store) as logger:
        started = time.perf_counter()
        # Flush every 500 records so the default 1,000-entry queue never overflows.
        for start in range(0, n, 500):
            for rec in records[start : start + 500]:
                logger.emit(rec)
            await logger.flush()
        elapsed = time.perf_counter() - started
    return elapsed / n * 1e6


def bench_logger(workdir: Path, n: int) -> dict[str, float]:
    """Return us/row for logger -> no-op store and logger -> outbox -> no-op remote."""
    baseline = asyncio.run(_through_logger(NoopRemote(), n))
    # emit -> outbox only: the uploader stays idle until close.
    idle = OutboxStore(
        NoopRemote(), workdir / "idle.db", batch_size=10**9, upload_interval_seconds=3600.0
    )
    to_outbox = asyncio.run(_through_logger(idle, n))
    idle.close(timeout=60.0)
    # emit -> outbox -> remote: the uploader ships concurrently (competes for the GIL and file).
    shipping = OutboxStore(NoopRemote(), workdir / "shipping.db", upload_interval_seconds=0.05)
    with_shipping = asyncio.run(_through_logger(shipping, n))
    shipping.close(timeout=60.0)
    return {
        "logger_noop_us_per_row": baseline,
        "logger_outbox_us_per_row": to_outbox,
        "emit_to_outbox_overhead_us_per_row": to_outbox - baseline,
        "logger_outbox_shipping_us_per_row": with_shipping,
        "emit_to_outbox_shipping_overhead_us_per_row": with_shipping - baseline,
    }


def run(quick: bool) -> dict[str, float]:
    """Run every measurement and return name -> figure (us per row unless named otherwise)."""
    total = 2_000 if quick else 20_000
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pipestate-bench-outbox-") as tmp:
        workdir = Path(tmp)
        for synchronous in ("FULL", "NORMAL"):
            for batch in (1, 100, 500):
                rows_total = total // 10 if batch == 1 else total
                key = f"write_batch_{synchronous.lower()}_b{batch}_us_per_row"
                results[key] = bench_write_batch(
                    workdir, batch, rows_total, synchronous, ship=False
                )
        results["write_batch_full_b100_shipping_us_per_row"] = bench_write_batch(
            workdir, 100, total, "FULL", ship=True
        )
        results.update(bench_logger(workdir, total))
    results["target_us_per_row"] = TARGET_US_PER_ROW
    results["emit_to_outbox_vs_target_ratio"] = (
        results["emit_to_outbox_overhead_us_per_row"] / TARGET_US_PER_ROW
    )
    return results


def main(argv: list[str] | None = None) -> None:
    """Parse --quick, run, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows, faster run")
    args = parser.parse_args(argv)
    results = run(args.quick)
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.2f}")


if __name__ == "__main__":
    main()
