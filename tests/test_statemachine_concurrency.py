"""Two triggers on one entity never both succeed, also from many threads at once."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from statemachine import InMemorySink, PipelineRun, StepRun
from tests.race import race
from tests.strategies.events import running_pipeline

THREADS = 8
ROUNDS = 40


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond so races actually interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


class TestConcurrentTriggers:
    """Per-entity locking makes each legality check and state change one step."""

    @pytest.mark.parametrize("event", ["complete", "fail", "retry"])
    def test_same_event_many_threads_one_winner(self, event: str) -> None:
        """THREADS threads firing one event on a RUNNING step: exactly one succeeds."""
        sink = InMemorySink()
        pipeline = running_pipeline("p", org_slug="acme", sink=sink)
        for _ in range(ROUNDS):
            step = StepRun.create("s", pipeline=pipeline)
            step.start()
            before = len(sink.records)
            wins, losses = race([getattr(step, event)] * THREADS)
            assert len(wins) == 1
            assert len(losses) == THREADS - 1
            assert sink.records[before:] == wins

    def test_different_events_one_winner(self) -> None:
        """complete and fail racing from RUNNING (both terminal): exactly one wins."""
        sink = InMemorySink()
        pipeline = running_pipeline("p", org_slug="acme", sink=sink)
        for _ in range(ROUNDS):
            step = StepRun.create("s", pipeline=pipeline)
            step.start()
            wins, losses = race([step.complete, step.fail] * (THREADS // 2))
            assert len(wins) == 1
            assert step.state == wins[0].to_state
            assert len(losses) == THREADS - 1

    def test_racing_retry_and_fail_form_a_chain(self) -> None:
        """retry and fail racing from RUNNING: the winners' records form one legal chain."""
        sink = InMemorySink()
        pipeline = running_pipeline("p", org_slug="acme", sink=sink)
        for _ in range(ROUNDS):
            step = StepRun.create("s", pipeline=pipeline)
            step.start()
            before = len(sink.records)
            race([step.retry, step.fail] * (THREADS // 2))
            moves = [(r.from_state, r.to_state) for r in sink.records[before:]]
            assert moves in (
                [("RUNNING", "FAILED")],
                [("RUNNING", "RETRYING"), ("RETRYING", "FAILED")],
            )

    def test_start_from_pending_one_winner(self) -> None:
        """Many threads starting one pipeline: one PENDING -> RUNNING record."""
        for _ in range(ROUNDS):
            sink = InMemorySink()
            run = PipelineRun.create("p", org_slug="acme", sink=sink)
            wins, _ = race([run.start] * THREADS)
            assert len(wins) == 1
            assert [(r.from_state, r.to_state) for r in sink.records] == [("PENDING", "RUNNING")]

    def test_independent_entities_all_succeed(self) -> None:
        """Threads on different steps do not block each other's transitions."""
        sink = InMemorySink()
        pipeline = running_pipeline("p", org_slug="acme", sink=sink)
        steps = [StepRun.create(f"s{i}", pipeline=pipeline) for i in range(THREADS)]
        wins, losses = race([s.start for s in steps])
        assert (len(wins), len(losses)) == (THREADS, 0)
