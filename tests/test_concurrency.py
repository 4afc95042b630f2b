"""Threads and asyncio tasks racing on one StepRun / PipelineRun: one winner, no torn records."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import MetadataLogger
from statemachine import (
    IllegalTransition,
    InMemorySink,
    PipelineRun,
    StepRun,
    TransitionRecord,
)
from statemachine.spec import PIPELINE, STEP
from tests.race import race
from tests.strategies.events import running_pipeline
from tests.strategies.hostile import transition_rows, with_logger

THREADS = 8
TASKS = 16
LEGAL = {
    "PIPELINE": {(e.source, e.dest) for e in PIPELINE.edges},
    "STEP": {(e.source, e.dest) for e in STEP.edges},
}
ERROR_STATES = {"PIPELINE": PIPELINE.error_states, "STEP": STEP.error_states}


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Switch threads every microsecond so races interleave inside transitions."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


class TeeSink:
    """Keeps every record in memory (thread-safe) and forwards it to another sink."""

    def __init__(self, target: Any | None = None) -> None:
        self.memory = InMemorySink()
        self.target = target

    def emit(self, record: TransitionRecord) -> None:
        """Keep, then forward."""
        self.memory.emit(record)
        if self.target is not None:
            self.target.emit(record)


def check_chain(records: list[TransitionRecord]) -> None:
    """One entity's records: legal edges, continuous, retry_count consistent, not torn."""
    assert records
    kind = records[0].entity_type
    state, retries, seen = "PENDING", 0, set()
    for record in records:
        assert record.entity_type == kind
        assert (record.from_state, record.to_state) in LEGAL[kind]
        assert record.from_state == state, "chain broken: a record starts where none ended"
        if (record.from_state, record.to_state) == ("RETRYING", "RUNNING"):
            retries += 1
        assert record.retry_count == retries, "retry_count torn from its transition"
        assert record.duration_in_state_ms >= 0
        # Error states carry an error type: FAILED and RETRYING, and a pipeline's TIMEOUT.
        assert (record.error_type is not None) == (record.to_state in ERROR_STATES[kind])
        assert record.transition_id not in seen
        seen.add(record.transition_id)
        state = record.to_state


def _own(records: list[TransitionRecord], entity: PipelineRun | StepRun) -> list[TransitionRecord]:
    if isinstance(entity, StepRun):
        return [r for r in records if r.step_logging_id == entity.step_logging_id]
    return [r for r in records if r.entity_type == "PIPELINE"]


def _retry_cycle_events(retries: int) -> list[str]:
    return ["start"] + ["retry", "start"] * retries + ["complete"]


class TestThreads:
    """Several threads fire on the same entity at the same moment."""

    @pytest.mark.parametrize("retries", [0, 3, 10])
    def test_same_event_has_one_winner_per_round(self, retries: int) -> None:
        """Each round every thread fires the same legal event: exactly one succeeds."""
        sink = TeeSink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        for event in _retry_cycle_events(retries):
            calls = [getattr(step, event) for _ in range(THREADS)]
            wins, refusals = race(calls)
            assert len(wins) == 1
            assert len(refusals) == THREADS - 1
        assert step.state == "COMPLETED"
        assert step.retry_count == retries
        check_chain(_own(sink.memory.records, step))
        assert len(_own(sink.memory.records, step)) == 2 + 2 * retries

    @pytest.mark.parametrize("seed", range(6))
    def test_different_terminal_events_have_one_winner(self, seed: int) -> None:
        """Threads firing complete or fail on a RUNNING step: one wins, the rest are refused,
        and the step ends where the winner's record says."""
        rng = random.Random(seed)
        sink = TeeSink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        step.start()
        choices: list[Callable[[], TransitionRecord]] = [
            step.complete,
            lambda: step.fail(RuntimeError("boom")),
        ]
        wins, refusals = race([rng.choice(choices) for _ in range(THREADS)])
        assert len(wins) == 1
        assert len(refusals) == THREADS - 1
        assert step.state == wins[0].to_state
        check_chain(_own(sink.memory.records, step))

    @pytest.mark.parametrize("seed", range(6))
    def test_mixed_events_form_one_legal_chain(self, seed: int) -> None:
        """Threads firing start / retry / complete / fail at random: the winners, in emission
        order, are one legal chain (RUNNING -> RETRYING -> FAILED is two legal wins)."""
        rng = random.Random(seed)
        sink = TeeSink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        step.start()
        choices: list[Callable[[], TransitionRecord]] = [
            step.start,
            step.complete,
            lambda: step.fail(RuntimeError("boom")),
            lambda: step.retry(ConnectionError("reset")),
        ]
        for _ in range(5):
            wins, refusals = race([rng.choice(choices) for _ in range(THREADS)])
            assert len(wins) + len(refusals) == THREADS
        own = _own(sink.memory.records, step)
        check_chain(own)
        assert own[-1].to_state == step.state

    def test_pipeline_run_races(self) -> None:
        """Threads racing start, then complete vs fail vs time_out on one PipelineRun."""
        sink = TeeSink()
        run = PipelineRun.create("p", org_slug="o", sink=sink)
        wins, _ = race([run.start for _ in range(THREADS)])
        assert len(wins) == 1
        enders: list[Callable[[], TransitionRecord]] = [
            run.complete,
            lambda: run.fail(RuntimeError("x")),
            lambda: run.time_out(TimeoutError("late")),
        ]
        wins, refusals = race([enders[i % 3] for i in range(THREADS)])
        assert len(wins) == 1
        assert len(refusals) == THREADS - 1
        assert run.is_terminal
        check_chain(_own(sink.memory.records, run))


class TestAsyncioAndThreads:
    """asyncio tasks on the loop and worker threads drive the same step together."""

    def test_tasks_and_threads_one_winner_per_phase(self) -> None:
        """Per phase, TASKS tasks (half firing on the loop, half via to_thread) race the same
        event: exactly one record per phase, the chain continuous."""
        sink = TeeSink()
        step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
        events = _retry_cycle_events(5)

        async def fire(event: str, in_thread: bool) -> TransitionRecord | None:
            await asyncio.sleep(0)
            try:
                if in_thread:
                    return await asyncio.to_thread(getattr(step, event))
                return getattr(step, event)()
            except IllegalTransition:
                return None

        async def main() -> list[int]:
            winners = []
            for event in events:
                results = await asyncio.gather(*(fire(event, i % 2 == 0) for i in range(TASKS)))
                winners.append(sum(r is not None for r in results))
            return winners

        assert asyncio.run(main()) == [1] * len(events)
        check_chain(_own(sink.memory.records, step))
        assert step.retry_count == 5


class TestThroughMetadataLogger:
    """Records emitted from many threads land in SQLite whole, once, in a continuous chain."""

    def test_threads_emit_into_sqlite(self, tmp_path: Path) -> None:
        """THREADS threads race on shared steps and also drive their own steps, emitting
        through one MetadataLogger: every record lands exactly once and each entity's stored
        chain is continuous and equal to what was emitted."""
        db = tmp_path / "race.db"

        async def body(logger: MetadataLogger) -> list[TransitionRecord]:
            sink = TeeSink(logger)
            pipeline = PipelineRun.create("p", org_slug="o", sink=sink)
            pipeline.start()
            shared = [StepRun.create(f"shared{i}", pipeline=pipeline) for i in range(4)]

            def worker(index: int) -> None:
                own = StepRun.create(f"own{index}", pipeline=pipeline)
                for event in _retry_cycle_events(3):
                    getattr(own, event)()
                    for step in shared:
                        with contextlib.suppress(IllegalTransition):
                            getattr(step, event)()

            await asyncio.gather(*(asyncio.to_thread(worker, i) for i in range(THREADS)))
            # A shared step may be left RETRYING by the race; joint rules 2 and 3 want every
            # step closed before the pipeline ends.
            for step in shared:
                if not step.is_terminal:
                    step.fail(RuntimeError("left open by the race"))
            if all(step.state == "COMPLETED" for step in shared):
                pipeline.complete()
            else:
                pipeline.fail(RuntimeError("a shared step failed"))
            return list(sink.memory.records)

        emitted, depths = with_logger(db, body, batch_size=64)
        stored = transition_rows(db)
        assert depths["state_transition"]["rows_dropped"] == 0
        assert sorted(r["transition_id"] for r in stored) == sorted(
            r.transition_id for r in emitted
        )
        by_id = {r.transition_id: r for r in emitted}
        entities: dict[str, list[TransitionRecord]] = {}
        for record in emitted:
            entities.setdefault(record.step_logging_id or "pipeline", []).append(record)
        assert len(entities) == 1 + 4 + THREADS
        for chain in entities.values():
            check_chain(chain)
        for row in stored:
            record = by_id[row["transition_id"]]
            assert (row["from_state"], row["to_state"], row["retry_count"]) == (
                record.from_state,
                record.to_state,
                record.retry_count,
            )
        # Shared steps were raced by threads at different phases: whoever won, each stored
        # chain ends in the state the object is in.
        assert {r.entity_name for r in emitted if r.entity_name.startswith("shared")} == {
            f"shared{i}" for i in range(4)
        }


def _after_pipeline_end(records: list[TransitionRecord]) -> list[TransitionRecord]:
    """Step records emitted after the pipeline's terminal record (joint rule 4 wants none)."""
    ends = [
        i for i, r in enumerate(records) if r.entity_type == "PIPELINE" and r.to_state in TERMINAL
    ]
    return [r for r in records[ends[0] :] if r.entity_type == "STEP"] if ends else []


TERMINAL = PIPELINE.terminal


class TestJointRules:
    """Pipeline and step events racing on threads: joint rules hold, the locks never deadlock."""

    @pytest.mark.parametrize("seed", range(4))
    def test_pipeline_end_races_step_ends(self, seed: int) -> None:
        """Steps ending on some threads while others end the pipeline: every step event wins,
        the pipeline ends only after all of them (COMPLETED only over COMPLETED steps), and no
        step row follows the pipeline's last row."""
        rng = random.Random(seed)
        for _ in range(10):
            sink = TeeSink()
            run = PipelineRun.create("p", org_slug="o", sink=sink)
            run.start()
            steps = [StepRun.create(f"s{i}", pipeline=run) for i in range(THREADS)]
            for step in steps:
                step.start()
            calls: list[Callable[[], TransitionRecord]] = [
                rng.choice([step.complete, functools.partial(step.fail, RuntimeError("x"))])
                for step in steps
            ]
            calls += [run.complete, functools.partial(run.fail, RuntimeError("p")), run.time_out]
            wins, _ = race(calls)
            assert sum(r.entity_type == "STEP" for r in wins) == THREADS
            records = sink.memory.records
            assert _after_pipeline_end(records) == []
            if run.state == "COMPLETED":
                assert all(step.state == "COMPLETED" for step in steps)
            assert all(step.is_terminal for step in steps) or not run.is_terminal
            check_chain(_own(records, run))

    def test_creation_races_pipeline_completion(self) -> None:
        """Threads creating and finishing steps race a thread completing the pipeline: each
        step is either refused at creation or completed before the pipeline completes."""
        for _ in range(10):
            self._creation_round()

    @staticmethod
    def _creation_round() -> None:
        sink = TeeSink()
        run = PipelineRun.create("p", org_slug="o", sink=sink)
        run.start()
        created: list[StepRun] = []

        def add_step(index: int) -> TransitionRecord:
            step = StepRun.create(f"late{index}", pipeline=run)  # may be refused: rule 4
            created.append(step)
            step.start()
            return step.complete()

        def finish() -> TransitionRecord:
            while True:
                with contextlib.suppress(IllegalTransition):
                    return run.complete()

        race([functools.partial(add_step, i) for i in range(THREADS)] + [finish])
        assert run.state == "COMPLETED"
        assert all(step.state == "COMPLETED" for step in created)
        assert _after_pipeline_end(sink.memory.records) == []
