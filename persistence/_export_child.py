"""The exporter child process: `python -m persistence._export_child OPTIONS_JSON`.

Hosts every exporter the parent asked for, each behind its own ExportWorker (queue, thread,
drops by reason), so a slow receiver of one never holds up another. Reads length-prefixed
messages on stdin: ("batch", rows) is unpacked once and offered to every exporter (no answer);
("flush", timeout) and ("stop", timeout) are answered with (kind, all_settled, counts per
exporter). After a stop, or when stdin closes, it exits at once: an export still stuck on a
receiver is abandoned (counted as "shutdown"), never waited for past the parent's budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

# While draining, how often to check that the parent is still there to hear the answer.
_PARENT_POLL_SECONDS = 0.1


class Orphaned(Exception):
    """The parent process went away: nobody is left to export for."""


def build(kind: str, service_name: str | None) -> Any:
    """The exporter named `kind`, configured by this process's environment."""
    if kind == "openlineage":
        from persistence.exporters.openlineage import OpenLineageExporter

        return OpenLineageExporter()
    if kind == "otel":
        from persistence.exporters.otel import OTelExporter

        return OTelExporter(service_name=service_name)
    raise ValueError(f"exporter kind must be 'openlineage' or 'otel' (got {kind!r})")


def counts(workers: Mapping[str, Any], final: bool = False) -> dict[str, dict[str, Any]]:
    """Each exporter's exported / dropped / queued / in flight; final: all unsettled is lost."""
    report: dict[str, dict[str, Any]] = {}
    for kind, worker in workers.items():
        stats = worker.stats()
        dropped = dict(stats["dropped"])
        queued, in_flight = stats["queued"], stats["in_flight"]
        if final and queued + in_flight:
            # We exit now: an export still waiting on its receiver is not known to have arrived.
            dropped["shutdown"] = dropped.get("shutdown", 0) + queued + in_flight
            queued = in_flight = 0
        report[kind] = {
            "exported": stats["exported"],
            "dropped": dropped,
            "queued": queued,
            "in_flight": in_flight,
        }
    return report


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _settle(workers: Mapping[str, Any], timeout: float | None, *, stop: bool) -> bool:
    """Flush (or stop) every worker within one shared deadline; True if all settled.

    Waits in short slices, checking the parent is still alive: a parent killed while we drain
    (its stdin is not read meanwhile) must not leave us exporting until the deadline.
    """
    parent = os.getppid()
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = list(workers.values())
    gone = False  # a worker whose thread ended unsettled: nothing more will settle there
    while waiting:
        if os.getppid() != parent:
            raise Orphaned
        left = _left(deadline)
        if left == 0.0:
            break
        step = _PARENT_POLL_SECONDS if left is None else min(_PARENT_POLL_SECONDS, left)
        still = []
        for worker in waiting:  # they drain concurrently: waiting on one delays none
            if worker.flush(step):
                continue
            if worker.join(0):
                gone = True
            else:
                still.append(worker)
        waiting = still
    if not stop:
        return not waiting and not gone
    ok = True
    for worker in workers.values():
        ok = worker.stop(_left(deadline)) and ok
    return ok


def serve(workers: Mapping[str, Any], source: IO[bytes], sink: IO[bytes]) -> None:
    """Feed batches to every worker and answer flush/stop, until stop or the end of stdin."""
    from persistence._export_wire import read_frame, unpack, write_frame

    offers = [worker.offer for worker in workers.values()]
    while True:
        try:
            kind, payload = read_frame(source)
        except EOFError:
            _settle(workers, 0.0, stop=True)
            return
        if kind == "batch":
            for row in payload:
                record = unpack(row)
                for offer in offers:
                    offer(record)
        elif kind == "flush":
            ok = _settle(workers, payload, stop=False)
            write_frame(sink, ("flushed", ok, counts(workers)))
        else:  # "stop"
            ok = _settle(workers, payload, stop=True)
            write_frame(sink, ("stopped", ok, counts(workers, final=True)))
            return


def main(argv: list[str]) -> int:
    """Build the exporters, say ready, serve until stopped; exit without waiting on stragglers."""
    from persistence._export_wire import write_frame
    from persistence._export_worker import ExportWorker
    from persistence._priority import run_in_background
    from persistence.fanout import ExportSettings

    # Best-effort telemetry: the pipeline gets the CPU first (SCHED_IDLE: see _priority.py).
    run_in_background()
    # Frames go to a private copy of the pipe; fd 1 (and sys.stdout) become stderr, so nothing
    # a library prints (the OTel console exporter, a transport's debug output) corrupts them.
    source = sys.stdin.buffer
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        options = json.loads(argv[0])
        settings = ExportSettings(**options["settings"])
        workers = {
            kind: ExportWorker(build(kind, options["service_name"]), settings)
            for kind in options["kinds"]
        }
    except Exception as error:
        write_frame(sink, ("error", f"{type(error).__name__}: {error}"))
        return 1
    for worker in workers.values():
        worker.start()
    write_frame(sink, ("ready", ""))
    with contextlib.suppress(BrokenPipeError, ConnectionError, Orphaned):  # the parent went away
        serve(workers, source, sink)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    # Not sys.exit: the libraries' atexit hooks would wait on an export stuck on its receiver.
    os._exit(code)
