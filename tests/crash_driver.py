"""Child process for the SIGKILL loss-window tests: the real `pipestate run`, with an emit tap.

    python -m tests.crash_driver SIDE_FILE READY_AFTER -- <pipestate arguments>

Before running `pipestate.cli.main(<pipestate arguments>)` unchanged, it wraps
MetadataLogger.emit so that each transition handed to the logger first appends one line
"<transition_id> <time.monotonic_ns()>" to SIDE_FILE (a plain write(2): it survives SIGKILL of
this process). After READY_AFTER transitions it prints "burst" on stdout once, so the parent can
kill it while transitions are still flowing. CLOCK_MONOTONIC is system-wide on Linux, so the
parent compares these times with its own reading at the kill.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _install_tap(side_file: str, ready_after: int) -> None:
    """Wrap MetadataLogger.emit to record every transition before the logger sees it."""
    from persistence.logger import MetadataLogger

    fd = os.open(side_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = MetadataLogger.emit
    emitted = 0

    def emit(self: MetadataLogger, record: Any) -> None:
        nonlocal emitted
        os.write(fd, f"{record.transition_id} {time.monotonic_ns()}\n".encode())
        original(self, record)
        emitted += 1
        if emitted == ready_after:
            sys.stdout.write("burst\n")
            sys.stdout.flush()

    MetadataLogger.emit = emit  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """Install the tap, then run the pipestate CLI with the remaining arguments."""
    args = sys.argv[1:] if argv is None else argv
    side_file, ready_after, separator, *cli_args = args
    if separator != "--":
        raise SystemExit("usage: python -m tests.crash_driver SIDE_FILE READY_AFTER -- ARGS...")
    _install_tap(side_file, int(ready_after))
    from pipestate.cli import main as cli_main

    return int(cli_main(cli_args) or 0)


if __name__ == "__main__":
    sys.exit(main())
