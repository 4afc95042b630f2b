"""Background CPU priority for helper processes (the exporter child): SCHED_IDLE, else nice 19.

Why SCHED_IDLE and not only nice 19: the pipeline's event loop writes each group into the SQLite
writer child's pipe, a synchronous wake-up that makes the scheduler place the writer child on
the loop's own core unless another core is idle. A core busy with a nice-19 exporter child does
not count as idle, so during a burst the writer child queued behind the loop (and the loop
behind it) while the exporter child had the other core: the loop waited 9-14 ms per 2,000
transitions for a core, against under 1 ms with the exporters off (issue 17's regression,
docs/lineage.md). A core that runs only SCHED_IDLE tasks counts as idle when a waking task is
placed (the kernel's select_idle_sibling keeps the wakee's previous core if it is idle or runs
only SCHED_IDLE tasks), so the writer child stays on the exporter child's core instead of
joining the loop's; and a SCHED_IDLE task gives way at once to any waking normal task. Inside the
pipeline's session (one scheduler autogroup) it gets the CPU the pipeline leaves idle; when the
pipeline is quiet it still gets a full share against other sessions, so it drains.
"""

from __future__ import annotations

import contextlib
import os

# Where SCHED_IDLE is not available (or refused), the lowest niceness is the next best thing.
BACKGROUND_NICENESS = 19


def run_in_background() -> str:
    """Lower the calling thread, and every thread it starts later, to background priority.

    Returns the policy applied: "idle" (SCHED_IDLE), "nice" (only nice 19) or "none".
    Call it first thing in a helper process's main, before it starts any thread.
    """
    applied = "none"
    with contextlib.suppress(OSError):
        os.nice(BACKGROUND_NICENESS)  # kept if SCHED_IDLE is refused; SCHED_IDLE ignores it
        applied = "nice"
    set_scheduler = getattr(os, "sched_setscheduler", None)
    idle = getattr(os, "SCHED_IDLE", None)
    if set_scheduler is not None and idle is not None:
        with contextlib.suppress(OSError):
            set_scheduler(0, idle, os.sched_param(0))
            applied = "idle"
    return applied
