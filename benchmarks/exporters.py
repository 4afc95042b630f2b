"""What the OpenLineage and OpenTelemetry exporters add to a transition, next to the logger alone.

Run: .venv/bin/python benchmarks/exporters.py [--quick]

Both runs drive the same real StepRun transitions on one event loop into a MetadataLogger on
SQLite (run/step rows derived, as the CLI does); the second wraps the logger in a FanoutSink with
both exporters on, sending over HTTP to a receiver on 127.0.0.1 (OpenLineage client HTTP
transport, OTLP/HTTP) whose worker threads run while the transitions are timed. Timed: the
transitions only (what a pipeline pays); the exporters' drain afterwards is reported apart.
Also: a 5 s-per-request receiver, to show that it costs the pipeline nothing.
Target (issue 17): both exporters <= 1.3 x the logger alone per transition.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Run as a script, this directory is sys.path[0] and benchmarks/transitions.py would shadow
# the `transitions` package; put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from persistence import LoggerSettings, MetadataLogger, SQLiteStore  # noqa: E402
from persistence._export_worker import ExportWorker  # noqa: E402
from persistence.exporters import build_exporters  # noqa: E402
from persistence.fanout import ExportSettings, FanoutSink  # noqa: E402
from statemachine import InMemorySink, NullSink, PipelineRun, StepRun  # noqa: E402

TARGET_RATIO = 1.3


# The receiver runs in its own process, as a real one would: its CPU is not the pipeline's.
_RECEIVER = """
import os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
os.nice(19)  # it stands in for a receiver on another machine: it must not take our CPU
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


async def _drive(sink: Any, steps: int) -> float:
    """Seconds for `steps` step start/complete pairs plus the pipeline's own two transitions."""
    run = PipelineRun.create("bench", org_slug="bench", sink=sink)
    objs = [StepRun.create(f"s{i % 50}", pipeline=run) for i in range(steps)]
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        run.start()
        for index, step in enumerate(objs):
            step.start()
            step.complete()
            if index % 64 == 63:
                await asyncio.sleep(0)  # let the logger's tasks run, as a real pipeline does
        run.complete()
        return time.perf_counter() - started
    finally:
        gc.enable()


async def _one(steps: int, exporters: bool, receiver_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "bench.db"))
        try:
            async with MetadataLogger(store, LoggerSettings(), derive_run_rows=True) as logger:
                fanout = None
                sink: Any = logger
                if exporters:
                    workers = build_exporters(
                        True, True, settings=ExportSettings(queue_size=65536, batch_size=256)
                    )
                    fanout = FanoutSink(logger, workers)
                    fanout.start()
                    # Exporter processes start with the run; measure the steady state.
                    for worker in workers:
                        worker.wait_ready(60)
                    sink = fanout
                elapsed = await _drive(sink, steps)
                await logger.flush()
                figures = {"elapsed": elapsed}
                if fanout is not None:
                    started = time.perf_counter()
                    await asyncio.to_thread(fanout.stop, 60 if receiver_url else 0.2)
                    figures["drain"] = time.perf_counter() - started
                    stats = fanout.stats()
                    figures["dropped"] = sum(s["dropped_total"] for s in stats.values())
                return figures
        finally:
            store.close()


def emit_overhead_us(count: int) -> float:
    """Microseconds FanoutSink.emit adds per record over its primary sink (two exporter queues).

    The workers are blocked (their exporter waits on an event), so this is the pipeline
    thread's own cost: two lock-protected appends. Best of five.
    """
    gate = threading.Event()

    class _Blocked:
        name = "blocked"

        def export(self, records: Any) -> None:
            gate.wait(60)

        def shutdown(self, timeout: float) -> None:
            return None

    sink = InMemorySink()
    run = PipelineRun.create("bench", org_slug="bench", sink=sink)
    run.start()
    for _ in range(count // 2):
        step = StepRun.create("s", pipeline=run)
        step.start()
        step.complete()
    records = sink.records
    best = float("inf")
    for _ in range(5):
        settings = ExportSettings(queue_size=len(records) + 1, batch_size=len(records) + 1)
        workers = [ExportWorker(_Blocked(), settings) for _ in range(2)]
        fanout = FanoutSink(NullSink(), workers)
        fanout.start()
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
        gate.set()
        fanout.stop(5)
        gate.clear()
        best = min(best, (fanned - bare) / len(records) * 1e6)
    return best


def _env(url: str) -> None:
    os.environ["OPENLINEAGE_URL"] = url
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    for name in ("OPENLINEAGE_CONFIG", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        os.environ.pop(name, None)


def run(quick: bool) -> dict[str, float]:
    """Measure logger alone, logger + both exporters, and a slow receiver; return the figures."""
    import logging

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # the slow run's timeouts
    # Many short interleaved pairs, best of each: this shared 2-core machine is noisy.
    steps, repeats = (1_000, 5) if quick else (2_000, 11)
    transitions = 2 * steps + 2
    receiver = _Receiver()
    try:
        _env(receiver.url)
        asyncio.run(_one(200, True, receiver.url))  # warm up imports and connections
        alone, both, drain = [], [], []
        for _ in range(repeats):
            alone.append(asyncio.run(_one(steps, False, None))["elapsed"])
            figures = asyncio.run(_one(steps, True, receiver.url))
            both.append(figures["elapsed"])
            drain.append(figures["drain"])
            dropped = figures["dropped"]
    finally:
        receiver.close()
    slow = _Receiver(delay=5.0)
    try:
        _env(slow.url)
        slow_runs = [asyncio.run(_one(steps, True, None)) for _ in range(3)]
        slow_figures = min(slow_runs, key=lambda figures: figures["elapsed"])
    finally:
        slow.close()
    best_alone, best_both = min(alone), min(both)
    return {
        "logger_us_per_transition": round(1e6 * best_alone / transitions, 3),
        "both_exporters_us_per_transition": round(1e6 * best_both / transitions, 3),
        "both_over_logger": round(best_both / best_alone, 3),
        "export_drain_us_per_transition": round(1e6 * min(drain) / transitions, 1),
        "export_dropped": dropped,
        "fanout_emit_overhead_us": round(emit_overhead_us(20_000), 3),
        "slow_receiver_over_logger": round(slow_figures["elapsed"] / best_alone, 3),
        "slow_receiver_dropped": slow_figures["dropped"],
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
