"""What the OpenLineage and OpenTelemetry exporters add to a transition, next to the logger alone.

Run: .venv/bin/python benchmarks/exporters.py [--quick]

Both variants drive the same real StepRun transitions on one event loop into a MetadataLogger on
SQLite (run/step rows derived, as the CLI does); the second wraps the logger in a FanoutSink with
both exporters on (one child process for both), sending over HTTP to a receiver process on
127.0.0.1 (OpenLineage client HTTP transport, OTLP/HTTP) while the transitions are timed.
Timed: the transitions only (what a pipeline pays); the child's catch-up afterwards (the drain)
is reported apart. One set-up (two loggers, one child) serves every pair; the two variants are
timed back to back in pairs, the first of each pair alternating, and every ratio is the median
of the pairs' ratios, so a load change on this shared machine hits both sides of a pair alike;
the load average is printed with the figures. Besides wall time, the pipeline
process's CPU time (all its threads, not the exporters' child) gives the parent-side cost, and
the event loop's wait for a core (Linux run_delay) shows when the cost is a core taken away.
Also: a receiver that sleeps 5 s per request, to show that it costs the pipeline nothing, and
that stop() leaves no exporter process behind.
Target (issue 17): both exporters <= 1.3 x the logger alone per transition.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this directory is sys.path[0] and benchmarks/transitions.py would shadow
# the `transitions` package; put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from persistence import LoggerSettings, MetadataLogger, SQLiteStore  # noqa: E402
from persistence._export_process import ExportProcess  # noqa: E402
from persistence.exporters import build_exporters  # noqa: E402
from persistence.fanout import ExportSettings, FanoutSink  # noqa: E402
from statemachine import InMemorySink, NullSink, PipelineRun, StepRun  # noqa: E402

TARGET_RATIO = 1.3
_Pair = tuple[dict[str, float], dict[str, float]]


# The receiver runs in its own process, as a real one would: its CPU is not the pipeline's.
_RECEIVER = """
import os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
# It stands in for a receiver on another machine: it must not take our CPU, nor make a core
# look busy when the scheduler places the pipeline's writer child (SCHED_IDLE, as the exporter
# child: persistence/_priority.py).
os.nice(19)
if hasattr(os, "SCHED_IDLE"):
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
delay = float(sys.argv[1])
release = threading.Event()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if delay:
            release.wait(delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        return None

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()  # until the benchmark closes our stdin
"""


class _Receiver:
    """A receiver process on 127.0.0.1 answering 200 to every POST after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER, str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _loop_wait_s() -> float:
    """Seconds this thread (the event loop) has spent runnable but waiting for a core.

    Linux's per-thread run_delay (/proc/thread-self/schedstat); 0.0 where it is not available.
    """
    try:
        with open("/proc/thread-self/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _drive(sink: Any, steps: int) -> tuple[float, float, float]:
    """(wall s, process CPU s, loop's wait for a core s) for `steps` step start/complete pairs
    plus the pipeline's two."""
    run = PipelineRun.create("bench", org_slug="bench", sink=sink)
    objs = [StepRun.create(f"s{i % 50}", pipeline=run) for i in range(steps)]
    gc.collect()
    gc.disable()
    try:
        wait, cpu, started = _loop_wait_s(), time.process_time(), time.perf_counter()
        run.start()
        for index, step in enumerate(objs):
            step.start()
            step.complete()
            if index % 64 == 63:
                await asyncio.sleep(0)  # let the logger's tasks run, as a real pipeline does
        run.complete()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return elapsed, cpu, _loop_wait_s() - wait
    finally:
        gc.enable()


async def _pairs_async(
    count: int, steps: int, stop_timeout: float
) -> tuple[list[_Pair], dict[str, float]]:
    """`count` (alone, both) pairs on one set-up, and what stop() left: two loggers on two
    stores and the exporter child are started once and idle before the first timing; the
    sides alternate which goes first; after each "both" side the child's work is flushed, so
    it never spills into the next timing (that flush is the pair's drain)."""
    with tempfile.TemporaryDirectory() as tmp:
        stores = [SQLiteStore(os.path.join(tmp, f"{name}.db")) for name in ("alone", "both")]
        try:
            settings = LoggerSettings()
            async with (
                MetadataLogger(stores[0], settings, derive_run_rows=True) as alone_logger,
                MetadataLogger(stores[1], settings, derive_run_rows=True) as both_logger,
            ):
                workers = build_exporters(
                    True, True, settings=ExportSettings(queue_size=65536, batch_size=256)
                )
                fanout = FanoutSink(both_logger, workers)
                fanout.start()
                for worker in workers:  # the child starts with the run: time the steady state
                    getattr(worker, "wait_ready", lambda _t: True)(60)

                async def timed(sink: Any, logger: MetadataLogger) -> dict[str, float]:
                    elapsed, cpu, wait = await _drive(sink, steps)
                    await logger.flush()
                    return {"elapsed": elapsed, "cpu": cpu, "loop_wait": wait}

                async def both() -> dict[str, float]:
                    figures = await timed(fanout, both_logger)
                    started = time.perf_counter()
                    await asyncio.to_thread(fanout.flush, stop_timeout)
                    figures["drain"] = time.perf_counter() - started
                    return figures

                pairs: list[_Pair] = []
                for index in range(count):
                    if index % 2:
                        with_exporters = await both()
                        pairs.append((await timed(alone_logger, alone_logger), with_exporters))
                    else:
                        alone = await timed(alone_logger, alone_logger)
                        pairs.append((alone, await both()))
                await asyncio.to_thread(fanout.stop, stop_timeout)
                # stop() promises no exporter thread or process outlives it: check.
                after: dict[str, float] = {
                    "left_running": sum(not w.join(0) for w in fanout.workers),
                    "dropped": sum(s["dropped_total"] for s in fanout.stats().values()),
                }
                return pairs, after
        finally:
            for store in stores:
                store.close()


def emit_overhead_us(count: int) -> float:
    """Microseconds FanoutSink.emit adds per record over its primary sink (both exporters on).

    One ExportProcess (both exporters) whose thread is not started, so this is exactly the
    pipeline thread's own cost: one lock-free append. Best of seven, each side apart.
    """
    sink = InMemorySink()
    run = PipelineRun.create("bench", org_slug="bench", sink=sink)
    run.start()
    for _ in range(count // 2):
        step = StepRun.create("s", pipeline=run)
        step.start()
        step.complete()
    records = sink.records
    bare_best = fanned_best = float("inf")
    for _ in range(7):
        settings = ExportSettings(queue_size=len(records) + 1, batch_size=len(records) + 1)
        process = ExportProcess(("openlineage", "otel"), settings)
        fanout = FanoutSink(NullSink(), [process])
        null = NullSink()
        gc.disable()
        try:
            started = time.perf_counter()
            for record in records:
                null.emit(record)
            bare = time.perf_counter() - started
            started = time.perf_counter()
            for record in records:
                fanout.emit(record)
            fanned = time.perf_counter() - started
        finally:
            gc.enable()
        fanout.stop(0)  # never started: the queue is counted dropped, no child to end
        bare_best, fanned_best = min(bare_best, bare), min(fanned_best, fanned)
    # Best of each side apart: the difference of one noisy pair can even come out negative.
    return (fanned_best - bare_best) / len(records) * 1e6


def _env(url: str) -> None:
    os.environ["OPENLINEAGE_URL"] = url
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    for name in ("OPENLINEAGE_CONFIG", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        os.environ.pop(name, None)


def _pairs(count: int, steps: int, stop_timeout: float) -> tuple[list[_Pair], dict[str, float]]:
    """`count` (alone, both) pairs, timed alternately alone-first and both-first; stop's count."""
    return asyncio.run(_pairs_async(count, steps, stop_timeout))


def _ratio(pairs: list[_Pair], key: str) -> float:
    return statistics.median(both[key] / alone[key] for alone, both in pairs)


def run(quick: bool) -> dict[str, float]:
    """Measure logger alone vs logger + both exporters in pairs, and a slow receiver."""
    import logging

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # the slow run's timeouts
    steps, repeats = (1_000, 15) if quick else (2_000, 25)
    transitions = 2 * steps + 2
    load_before = os.getloadavg()[0]
    receiver = _Receiver()
    try:
        _env(receiver.url)
        _pairs(1, 200, 60)  # warm up imports and connections
        pairs, after = _pairs(repeats, steps, 60)
    finally:
        receiver.close()
    slow = _Receiver(delay=5.0)
    try:
        _env(slow.url)
        # 0.2 s to drain: the receiver holds every request 5 s, so most records are dropped.
        slow_pairs, slow_after = _pairs(3, steps, 0.2)
    finally:
        slow.close()
    alone = [a for a, _ in pairs]
    both = [b for _, b in pairs]
    per = 1e6 / transitions
    return {
        "logger_us_per_transition": round(per * statistics.median(r["elapsed"] for r in alone), 3),
        "both_exporters_us_per_transition": round(
            per * statistics.median(r["elapsed"] for r in both), 3
        ),
        "both_over_logger": round(_ratio(pairs, "elapsed"), 3),
        "both_over_logger_cpu": round(_ratio(pairs, "cpu"), 3),
        # The loop's run_delay during the timed transitions, per transition: time it was ready
        # to run but a core was taken (by our writer/exporter children or anything else).
        "logger_loop_wait_us_per_transition": round(
            per * statistics.median(r["loop_wait"] for r in alone), 3
        ),
        "both_loop_wait_us_per_transition": round(
            per * statistics.median(r["loop_wait"] for r in both), 3
        ),
        "export_drain_us_per_transition": round(
            per * statistics.median(r["drain"] for r in both), 1
        ),
        "export_dropped": after["dropped"],
        "fanout_emit_overhead_us": round(emit_overhead_us(20_000), 3),
        "slow_receiver_over_logger": round(_ratio(slow_pairs, "elapsed"), 3),
        "slow_receiver_dropped": slow_after["dropped"],
        "left_running_after_stop": after["left_running"] + slow_after["left_running"],
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures and the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transitions and repeats")
    args = parser.parse_args(argv)
    from pipestate.cli import configure_logging

    configure_logging(debug=False)
    figures = run(args.quick)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:>12}")
    print(f"target: both_over_logger <= {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
