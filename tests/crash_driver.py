"""Child process for the SIGKILL loss-window tests: the real `pipestate run`, with an emit tap.

    python -m tests.crash_driver SIDE_FILE READY_AFTER [MIN_MS] -- <pipestate arguments>

It enters as the installed `pipestate` script does (the collector held back, pipestate._script),
and before running `pipestate.cli.main(<pipestate arguments>)` unchanged, it wraps
MetadataLogger.emit so that each transition handed to the logger first appends one line
"<transition_id> <time.monotonic_ns()>" to SIDE_FILE (a plain write(2): it survives SIGKILL of
this process), and each cyclic collection of this process one line "<generation> <start
monotonic ns> <thread CPU ns>" to SIDE_FILE.gc. Once it has emitted READY_AFTER transitions and
MIN_MS milliseconds (default 0) have passed since the first, it prints "burst" on stdout once,
so the parent can kill it while transitions are still flowing. CLOCK_MONOTONIC is system-wide on
Linux, so the parent compares these times with its own reading at the kill.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _install_tap(side_file: str, ready_after: int, min_ms: float) -> None:
    """Wrap MetadataLogger.emit to record every transition before the logger sees it."""
    from persistence.logger import MetadataLogger

    fd = os.open(side_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = MetadataLogger.emit
    emitted = 0
    first_ns: int | None = None
    told = False

    def emit(self: MetadataLogger, record: Any) -> None:
        nonlocal emitted, first_ns, told
        now = time.monotonic_ns()
        os.write(fd, f"{record.transition_id} {now}\n".encode())
        original(self, record)
        emitted += 1
        first_ns = now if first_ns is None else first_ns
        if not told and emitted >= ready_after and now - first_ns >= min_ms * 1e6:
            told = True
            sys.stdout.write("burst\n")
            sys.stdout.flush()

    MetadataLogger.emit = emit  # type: ignore[method-assign]
    _tap_collections(side_file + ".gc")


def _tap_collections(path: str) -> None:
    """Append "<generation> <start monotonic ns> <thread CPU ns>" to `path` per collection of
    this process: the loop stands still meanwhile, with the rows it queued last in memory."""
    import gc

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pid = os.getpid()  # the forked writer process inherits the callback: skip its collections
    started = (0, 0)

    def collected(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if os.getpid() != pid:
            return
        if phase == "start":
            started = (time.monotonic_ns(), time.thread_time_ns())
            return
        cpu = time.thread_time_ns() - started[1]
        os.write(fd, f"{info['generation']} {started[0]} {cpu}\n".encode())

    gc.callbacks.append(collected)


def main(argv: list[str] | None = None) -> int:
    """Install the tap, then run the pipestate CLI with the remaining arguments."""
    args = sys.argv[1:] if argv is None else argv
    split = args.index("--") if "--" in args else -1
    if split not in (2, 3):
        raise SystemExit(
            "usage: python -m tests.crash_driver SIDE_FILE READY_AFTER [MIN_MS] -- ARGS..."
        )
    side_file, ready_after, *rest = args[:split]
    cli_args = args[split + 1 :]
    # The installed `pipestate` script (pipestate._script) holds the collector back before it
    # imports the CLI; without that, this process's collections would not be a real run's.
    from pipestate._script import hold_gc

    hold_gc()
    _install_tap(side_file, int(ready_after), float(rest[0]) if rest else 0.0)
    from pipestate.cli import main as cli_main

    return int(cli_main(cli_args) or 0)


if __name__ == "__main__":
    sys.exit(main())
