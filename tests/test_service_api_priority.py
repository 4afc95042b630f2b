"""The API thread before the runs: the runner thread's niceness and its GIL hand-overs.

Real threads and loops (RunnerLoop as `pipestate serve` builds it); the priorities are read
back from the kernel (os.getpriority on the thread id). The latency this buys is measured in
benchmarks/service.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from pipestate.cli import main
from pipestate.service._api_priority import (
    DEFAULT_RUNNER_NICE,
    DEFAULT_RUNNER_YIELD_US,
    IDLE_TICKS,
    TICK_SECONDS,
)
from pipestate.service._runner import RunnerLoop, ServingLoop
from pipestate.service.settings import ServiceSettings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
BOUND = 10.0


def _niceness(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


async def _ids_seen_by_the_runner() -> tuple[int, int]:
    """(the runner thread's id, the id of a worker thread it starts)."""
    worker = await asyncio.to_thread(threading.get_native_id)
    return threading.get_native_id(), worker


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def _busy(turns: int) -> float:
    """Keep the runner loop busy: turns of ~1 ms of CPU, each ending in a loop turn; return the
    runner thread's time off the CPU meanwhile (wall minus its CPU), in seconds."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(turns):
        _spin(0.001)
        await asyncio.sleep(0)
    return (time.perf_counter() - wall) - (time.thread_time() - cpu)


def test_the_runner_thread_and_what_it_starts_run_at_the_added_niceness() -> None:
    """RunnerLoop(nice=5) lowers its own thread by 5 (capped at 19), threads it starts inherit it,
    and the API's thread (this one) keeps its own; nice=0 changes nothing."""
    mine = _niceness(threading.get_native_id())
    for nice, expected in ((5, min(19, mine + 5)), (0, mine)):
        runner = RunnerLoop(nice=nice)
        runner.start()
        try:
            runner_tid, worker_tid = runner.submit(_ids_seen_by_the_runner()).result(BOUND)
            assert _niceness(runner_tid) == expected
            assert _niceness(worker_tid) == expected
            assert _niceness(threading.get_native_id()) == mine
        finally:
            runner.stop()


def test_a_busy_runner_loop_offers_the_gil_and_an_idle_one_stops_its_timer() -> None:
    """Work handed over arms the timer; ~200 ms of busy loop turns get pauses that really leave
    the CPU; an idle loop gets none, and after IDLE_TICKS quiet ticks the timer disarms."""
    runner = RunnerLoop(yield_us=50)
    runner.start()
    try:
        handover = runner.handover
        assert handover is not None
        # A loaded test machine may give the spinning thread well under all of a core: count a
        # tick as busy from a third of it (an idle tick uses a few percent).
        handover.busy_share = 0.35
        off_cpu = runner.submit(_busy(200)).result(BOUND)
        busy_pauses = handover.pauses
        assert busy_pauses >= 10  # ~200 ticks went by, nearly all of them busy
        # Each pause really left the CPU (and so the GIL) for its 50 us.
        assert off_cpu >= 0.8 * busy_pauses * 50e-6
        # Idle now: once the tick that saw the burst's end has passed, no pause at all, and the
        # timer runs out after IDLE_TICKS quiet ticks (bounded waits on the loop itself).
        runner.submit(asyncio.sleep(20 * TICK_SECONDS)).result(BOUND)
        settled = handover.pauses
        runner.submit(asyncio.sleep(3 * IDLE_TICKS * TICK_SECONDS)).result(BOUND)
        assert handover.armed is False
        assert handover.pauses == settled
        # The next hand-over of work arms it again.
        runner.submit(_busy(50)).result(BOUND)
        assert handover.pauses > settled
    finally:
        runner.stop()


def test_no_handover_without_a_pause_and_none_on_the_serving_loop() -> None:
    """yield_us=0 builds no timer; the serving-loop runner (the API's own loop) never changes
    its niceness nor pauses, whatever it is given."""
    runner = RunnerLoop(yield_us=0)
    runner.start()
    try:
        runner.submit(_busy(5)).result(BOUND)
        assert runner.handover is None
    finally:
        runner.stop()

    async def on_the_serving_loop() -> tuple[int, object]:
        serving = ServingLoop(nice=7, yield_us=50)
        await serving.open()
        ids = await serving.call(_ids_seen_by_the_runner())
        await serving.close()
        return ids[0], serving.handover

    mine = _niceness(threading.get_native_id())
    tid, handover = asyncio.run(on_the_serving_loop())
    assert tid == threading.get_native_id()
    assert _niceness(tid) == mine
    assert handover is None


def test_the_settings_are_validated_and_read_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """Defaults 5 and 50; $PIPESTATE_RUNNER_NICE/$PIPESTATE_RUNNER_YIELD_US are read, a given
    value wins; out-of-range or non-integer values are one error naming the field or variable."""
    settings = ServiceSettings()
    assert (settings.runner_nice, settings.runner_yield_us) == (
        DEFAULT_RUNNER_NICE,
        DEFAULT_RUNNER_YIELD_US,
    )
    monkeypatch.setenv("PIPESTATE_RUNNER_NICE", "0")
    monkeypatch.setenv("PIPESTATE_RUNNER_YIELD_US", "200")
    from_env = ServiceSettings.from_env()
    assert (from_env.runner_nice, from_env.runner_yield_us) == (0, 200)
    assert ServiceSettings.from_env(runner_nice=3, runner_yield_us=None).runner_nice == 3
    assert ServiceSettings.from_env(runner_yield_us=None).runner_yield_us == 200
    with pytest.raises(ValueError, match=r"runner_nice must be an integer from 0 to 19 \(got 20\)"):
        ServiceSettings(runner_nice=20)
    with pytest.raises(ValueError, match=r"runner_yield_us must be .*\(got -1\)"):
        ServiceSettings(runner_yield_us=-1)
    monkeypatch.setenv("PIPESTATE_RUNNER_NICE", "high")
    with pytest.raises(
        ValueError, match=r"PIPESTATE_RUNNER_NICE must be an integer \(got 'high'\)"
    ):
        ServiceSettings.from_env()
    assert main(["serve", "--runner-nice", "25", "--port", "0"]) == 2
    assert "--runner-nice" in capsys.readouterr().err
