"""The `pipestate` console script: the cyclic collector is held back while the CLI starts up."""

from __future__ import annotations

import gc

# The cyclic collector's first threshold while the console script starts (default 700).
# Start-up allocates a few hundred thousand objects that live as long as the process (modules,
# classes, functions) and next to no cyclic garbage; at 700 the collector walks them again and
# again, about 20 M instructions (~5 ms) of a `pipestate run`. The bound keeps garbage at a
# few MB; long-running commands (serve, watch) go back to the default: steady_gc().
STARTUP_GC_THRESHOLD = 50_000
_DEFAULT_GC: list[tuple[int, ...]] = []


def hold_gc() -> None:
    """Raise the collector's first threshold for start-up (once; steady_gc() undoes it)."""
    if not _DEFAULT_GC:
        default = gc.get_threshold()
        _DEFAULT_GC[:] = [default]
        gc.set_threshold(STARTUP_GC_THRESHOLD, *default[1:])


def steady_gc() -> None:
    """Give the collector its default thresholds back (for commands that run for long)."""
    if _DEFAULT_GC:
        gc.set_threshold(*_DEFAULT_GC.pop())


def console_main() -> None:
    """The script's entry: hold the collector back, then import and run the CLI."""
    # Before pipestate.cli is imported: click, attrs and the engine's modules are most of the
    # start-up's allocations (13 collections, ~2.5 ms of CPU, when the threshold came after).
    hold_gc()
    from pipestate.cli import console_main as run

    run()
