"""The API thread before the runs: a lower CPU priority and GIL hand-overs for the runner thread.

`pipestate serve` answers requests on one thread (uvicorn's loop) and runs the pipelines on
another (RunnerLoop). Under load the runner thread is busy all the time, and a request then
waits twice: for a core, and for the GIL.

- The core: the runner thread lowers its own CPU priority (Linux per-thread nice, +5 by
  default). What it starts inherits it: the MetadataLogger's writer child and worker threads.
  A core that both want goes to the API thread first; when the API thread is idle the runs
  get every cycle, so throughput only changes when the two compete.
- The GIL: CPython 3.11 gives it to a waiting thread only after 5 ms (the switch interval), and
  a busy asyncio loop lets it go and takes it back at every turn (each epoll), so the waiting
  API thread is woken, finds it taken again, and starts another 5 ms wait (the convoy effect:
  a request can wait several times in a row). GilHandover makes a busy runner loop pause for
  a moment (50 us) once a millisecond, with the GIL released, which is long enough for a
  waiting thread to take it. It pauses only when the runner thread used more than half of the
  last interval's time, and it stops its timer after 100 idle intervals (re-armed by the next
  hand-over of work), so an idle server does not wake up a thousand times a second.

Measured (benchmarks/service.py, the probe under 50 clients at nice 19; interleaved runs on
this 2-core machine, docs/api.md "Submit latency"): submit p99 from a median of 23.8 ms over 9
runs to 15.5 ms over 6 runs with both on; the nice alone 22.5 ms (8 runs).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import structlog

_log = structlog.get_logger("pipestate.service")

# Defaults of `pipestate serve --runner-nice/--runner-yield-us` (ServiceSettings).
DEFAULT_RUNNER_NICE = 5
DEFAULT_RUNNER_YIELD_US = 50
TICK_SECONDS = 0.001  # how often a busy runner loop offers the GIL
BUSY_SHARE = 0.5  # the runner thread's CPU over the last tick's wall time that counts as busy
IDLE_TICKS = 100  # quiet ticks before the timer stops (re-armed by the next hand-over)


def lower_this_thread(nice: int) -> int | None:
    """Add `nice` to the calling thread's CPU niceness (Linux); return the new value or None."""
    if nice <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return None
    tid = threading.get_native_id()
    try:
        # On Linux PRIO_PROCESS with a thread id changes that thread only; raising one's own
        # niceness needs no privilege. Threads and processes it starts inherit the value.
        target = min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as exc:  # pragma: no cover - a platform without per-thread priorities
        _log.warning("runner_nice_not_set", nice=nice, error=str(exc))
        return None
    return target


class GilHandover:
    """Timer on the runner loop: a busy loop pauses `pause_us` with the GIL released each tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pause_us: int) -> None:
        self.loop = loop
        self.pause_s = pause_us / 1_000_000
        self.busy_share = BUSY_SHARE
        self.pauses = 0  # hand-overs offered so far (tests and /metrics read it)
        self.armed = False
        self._lock = threading.Lock()  # arm() (any thread) against the disarm (the loop's)
        self._idle = 0
        self._cpu = 0.0
        self._wall = 0.0

    def arm(self) -> None:
        """From any thread, when work is handed to the loop: start the timer if it stopped."""
        if self.armed or self.pause_s <= 0:
            return
        with self._lock:
            if self.armed:
                return
            self.armed = True
        self.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self._idle = 0
        self._cpu, self._wall = time.thread_time(), time.perf_counter()
        self.loop.call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        """On the runner loop: pause if the last tick was busy; stop after IDLE_TICKS quiet ones."""
        cpu, wall = time.thread_time(), time.perf_counter()
        window = wall - self._wall
        if window < 0.9 * TICK_SECONDS:
            # uvloop's timers count whole milliseconds from the loop's cached clock and can fire
            # a fraction of one early: judge no window shorter than a tick (a short one would
            # count a single hand-over's ~0.1 ms of work as a busy loop).
            self.loop.call_later(TICK_SECONDS - window, self._tick)
            return
        if cpu - self._cpu > self.busy_share * window:
            time.sleep(self.pause_s)  # releases the GIL: a waiting thread takes it now
            self.pauses += 1
            self._idle = 0
        else:
            self._idle += 1
            if self._idle >= IDLE_TICKS:
                with self._lock:
                    self.armed = False
                return
        self._cpu, self._wall = time.thread_time(), time.perf_counter()
        self.loop.call_later(TICK_SECONDS, self._tick)
