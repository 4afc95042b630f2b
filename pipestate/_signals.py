"""SIGINT and SIGTERM cancel the run cleanly: every entity ends, rows are flushed, then exit.

Orchestrators (Kubernetes, systemd, CI runners) stop jobs with SIGTERM; without a handler the
process dies with its rows still queued. The first signal cancels the run through
executor.cancellation.request_cancel (so rows say who cancelled), and restores the default
handler, so a second signal stops the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

# The conventional exit codes of a process ended by a signal: 128 + the signal number.
EXIT_CODES = {"sigint": 128 + signal.SIGINT, "sigterm": 128 + signal.SIGTERM}
_SIGNALS = (("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM))


@contextlib.contextmanager
def cancel_on_signals(task: asyncio.Task[Any]) -> Iterator[list[str]]:
    """While inside, SIGINT/SIGTERM cancel `task`; yields the list of sources received."""
    loop = asyncio.get_running_loop()
    received: list[str] = []
    installed: list[signal.Signals] = []

    def on_signal(source: str, signum: signal.Signals) -> None:
        # Imported when a signal comes: a run that ends on its own never cancels anything.
        from executor.cancellation import request_cancel

        received.append(source)
        request_cancel(task, source=source)
        # A second signal is not caught: it ends the process the usual way.
        if signum in installed:
            installed.remove(signum)
            loop.remove_signal_handler(signum)

    for source, signum in _SIGNALS:
        try:
            loop.add_signal_handler(signum, on_signal, source, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            continue
        installed.append(signum)
    try:
        yield received
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
