"""Child process for the outbox crash tests: a long pipeline logging through an outbox.

    python -m tests.outbox_driver run --store URL --outbox PATH [--steps 1000] [--pace 0.002]
    python -m tests.outbox_driver recover --store URL --outbox PATH [--timeout 120]

`run` drives one PipelineRun with --steps StepRuns (start + complete each) and logs every
transition through MetadataLogger(OutboxStore(remote)). After each step it prints
"emitted N" (N = transitions handed to the logger so far) and flushes stdout, so a parent can
SIGKILL it at a known point. `recover` opens the same outbox and ships what is left, then prints
one JSON line with the outbox status. BigQuery endpoints come from PIPESTATE_BQ_ENDPOINT, as for
open_store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from persistence import MetadataLogger
from persistence.outbox import OutboxStore, open_remote
from statemachine import PipelineRun, StepRun, TransitionRecord
from statemachine.sink import TransitionSink


class CountingSink:
    """Forwards each record to the logger and counts it (emit never blocks)."""

    def __init__(self, inner: TransitionSink) -> None:
        self.inner = inner
        self.emitted = 0

    def emit(self, record: TransitionRecord) -> None:
        """Count, then hand the record to the logger."""
        self.emitted += 1
        self.inner.emit(record)


def _outbox(args: argparse.Namespace) -> OutboxStore:
    """Open the remote through the outbox; the short interval makes uploads overlap the run."""
    return OutboxStore(
        open_remote(args.store),
        args.outbox,
        batch_size=args.batch_size,
        upload_interval_seconds=args.interval,
    )


async def _run(args: argparse.Namespace) -> None:
    store = _outbox(args)
    logger = MetadataLogger(store)
    await logger.start()
    sink = CountingSink(logger)
    run = PipelineRun.create("outbox-crash", org_slug="acme", sink=sink)
    print(f"pipeline {run.pipeline_logging_id}", flush=True)
    run.start()
    for i in range(args.steps):
        step = StepRun.create(f"step_{i:04d}", pipeline=run)
        step.start()
        step.complete(metadata={"rows_processed": i})
        print(f"emitted {sink.emitted}", flush=True)
        # Pacing: a real step takes time; it lets the logger and the uploader overlap the run.
        await asyncio.sleep(args.pace)
    run.complete()
    await logger.stop()
    store.close()
    print(f"done {sink.emitted}", flush=True)


def _recover(args: argparse.Namespace) -> int:
    store = _outbox(args)
    left = store.drain(args.timeout)
    status = store.status()
    store.close(timeout=0)
    print(json.dumps({"left": left, **status}, default=str), flush=True)
    return 0 if left == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the mode and run it; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["run", "recover"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--pace", type=float, default=0.002)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.mode == "run":
        asyncio.run(_run(args))
        return 0
    return _recover(args)


if __name__ == "__main__":
    sys.exit(main())
