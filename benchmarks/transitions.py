"""What a pipestate transition costs next to a bare `transitions` trigger and a dict table.

Run: .venv/bin/python benchmarks/transitions.py [--quick]

Figures (all measured in this run, best of several repeats, GC off while timing):
- bare_trigger_us: one `machine.events[name].trigger(obj)` on the step machine's shape with a
  no-op per-edge callback and a slots object (no bookkeeping at all);
- full_transition_us: one StepRun.start()/complete() (lock + trigger + duration + uuid4 id +
  TransitionRecord + InMemorySink.emit);
- dict_table_us: a hand-written dict table doing the same bookkeeping without `transitions`;
- bytes_per_steprun: tracemalloc growth per live StepRun over 10,000 of them.
Targets: full <= 1.6 x bare; <= 2048 bytes per live StepRun.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0] and its name would shadow the
# `transitions` package; drop that entry and put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from statemachine import InMemorySink, PipelineRun, StepRun, uuid4_str  # noqa: E402
from statemachine.clock import SYSTEM_CLOCK  # noqa: E402
from statemachine.machines import build_machine  # noqa: E402
from statemachine.records import TransitionRecord, trusted_record  # noqa: E402
from statemachine.spec import STEP  # noqa: E402

TARGET_RATIO = 1.6
TARGET_BYTES = 2048


class _Bare:
    __slots__ = ("__weakref__", "state")

    def __init__(self) -> None:
        self.state = "PENDING"


class _DictEntity:
    __slots__ = ("_lock", "entered_ns", "retry_count", "state")

    def __init__(self) -> None:
        self.state = "PENDING"
        self.retry_count = 0
        self.entered_ns = time.monotonic_ns()
        self._lock = threading.RLock()


_DICT_TABLE = {(e.source, e.event): e.dest for e in STEP.edges}


def _dict_fire(entity: _DictEntity, event: str, sink: InMemorySink) -> TransitionRecord:
    """The same bookkeeping as the engine, driven by a plain dict instead of a Machine."""
    with entity._lock:
        source = entity.state
        dest = _DICT_TABLE.get((source, event))
        if dest is None:
            raise ValueError(f"Can't {event} when {source}")
        now_ns = SYSTEM_CLOCK.monotonic_ns()
        now = SYSTEM_CLOCK.now()
        elapsed = now_ns - entity.entered_ns
        record = trusted_record(
            uuid4_str(),
            "acme",
            "pid",
            "sid",
            "STEP",
            "extract",
            source,
            dest,
            now,
            "Step started",
            None,
            None,
            None,
            entity.retry_count,
            elapsed // 1_000_000 if elapsed > 0 else 0,
            {},
            "api",
            None,
        )
        entity.state = dest
        entity.entered_ns = now_ns
        sink.emit(record)
        return record


def _best_us(prepare: Callable[[], Callable[[], int]], repeats: int) -> float:
    """Best microseconds per transition over `repeats` runs.

    prepare() builds the objects (untimed) and returns the timed run, which returns how many
    transitions it performed.
    """
    best = float("inf")
    for _ in range(repeats):
        run_once = prepare()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            count = run_once()
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        best = min(best, elapsed / count * 1e6)
    return best


def bench_bare(n: int, repeats: int) -> float:
    """Microseconds per bare trigger on a model-less machine with a no-op callback."""

    def noop(edge: Any, event_data: Any) -> None:
        return None

    machine = build_machine(STEP, noop)
    start, complete = machine.events["start"], machine.events["complete"]

    def prepare() -> Callable[[], int]:
        objs = [_Bare() for _ in range(n)]

        def run_once() -> int:
            for obj in objs:
                start.trigger(obj)
                complete.trigger(obj)
            return 2 * n

        return run_once

    return _best_us(prepare, repeats)


def bench_full(n: int, repeats: int) -> float:
    """Microseconds per full StepRun transition into an InMemorySink."""

    def prepare() -> Callable[[], int]:
        pipeline = PipelineRun.create("bench", org_slug="acme", sink=InMemorySink())
        pipeline.start()  # joint rule 1: steps move only while their pipeline is RUNNING
        steps = [StepRun.create("extract", pipeline=pipeline) for _ in range(n)]

        def run_once() -> int:
            for step in steps:
                step.start()
                step.complete()
            return 2 * n

        return run_once

    return _best_us(prepare, repeats)


def bench_dict(n: int, repeats: int) -> float:
    """Microseconds per transition of the hand-written dict table with the same bookkeeping."""

    def prepare() -> Callable[[], int]:
        sink = InMemorySink()
        entities = [_DictEntity() for _ in range(n)]

        def run_once() -> int:
            for entity in entities:
                _dict_fire(entity, "start", sink)
                _dict_fire(entity, "complete", sink)
            return 2 * n

        return run_once

    return _best_us(prepare, repeats)


def bytes_per_steprun(count: int = 10_000) -> float:
    """tracemalloc growth per live StepRun (ids, timestamps, lock included)."""
    pipeline = PipelineRun.create("bench", org_slug="acme", sink=InMemorySink())
    StepRun.create("warm", pipeline=pipeline)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        steps = [StepRun.create("extract", pipeline=pipeline) for _ in range(count)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    del steps
    return grown / count


def run(quick: bool) -> dict[str, float]:
    """Measure every figure and return name -> number."""
    n, repeats = (2_000, 3) if quick else (20_000, 7)
    bare = bench_bare(n, repeats)
    full = bench_full(n, repeats)
    table = bench_dict(n, repeats)
    memory = bytes_per_steprun()
    return {
        "bare_trigger_us": round(bare, 3),
        "full_transition_us": round(full, 3),
        "dict_table_us": round(table, 3),
        "full_over_bare": round(full / bare, 3),
        "dict_over_bare": round(table / bare, 3),
        "bytes_per_steprun": round(memory, 1),
        "target_full_over_bare": TARGET_RATIO,
        "target_bytes_per_steprun": TARGET_BYTES,
        "meets_ratio_target": float(full / bare <= TARGET_RATIO),
        "meets_memory_target": float(memory <= TARGET_BYTES),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures as a small table."""
    args = sys.argv[1:] if argv is None else argv
    figures = run(quick="--quick" in args)
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
