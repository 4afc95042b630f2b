"""Rebuilding state objects from stored chains: legal paths only, deterministic next ids."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statemachine import InMemorySink, ManualClock, PipelineRun, StepRun
from statemachine.errors import IllegalTransition, JointRuleViolation
from statemachine.rehydrate import BrokenChain, deterministic_id, rebuild_run
from statemachine.spec import STEP
from tests.watch_support import NOW, Runs


def _rows(runs: Runs) -> list[dict[str, object]]:
    return [r.to_row() for r in runs.records]


class TestRebuild:
    """A stored chain becomes objects in the state it ends in."""

    def test_states_and_retry_counts(self) -> None:
        """Each entity is rebuilt in its last stored state with its stored retry count."""
        runs = Runs()
        runs.crashed("r1", NOW)
        rebuilt = rebuild_run(_rows(runs), sink=InMemorySink(), purpose="recovered")
        assert rebuilt.pipeline.state == "RUNNING"
        states = {s.entity_name: s.state for s in rebuilt.steps}
        assert states == {"extract": "COMPLETED", "load": "RUNNING", "flaky": "RETRYING"}
        assert all(s.pipeline_logging_id == "r1" for s in rebuilt.steps)

    def test_order_and_duplicates_do_not_matter(self) -> None:
        """Shuffled rows with duplicates (BigQuery may hold some) rebuild the same states."""
        runs = Runs()
        runs.crashed("r1", NOW)
        rows = _rows(runs) * 2
        random.Random(7).shuffle(rows)
        rebuilt = rebuild_run(rows, sink=InMemorySink(), purpose="recovered")
        assert {s.entity_name: s.state for s in rebuilt.steps}["flaky"] == "RETRYING"

    def test_next_transition_uses_deterministic_id_and_duration(self) -> None:
        """The next event's row has UUIDv5(entity, purpose) as id and the time since entry."""
        runs = Runs()
        runs.crashed("r1", NOW)
        sink = InMemorySink()
        clock = ManualClock(start=NOW + dt.timedelta(minutes=10))
        rebuilt = rebuild_run(_rows(runs), sink=sink, purpose="recovered", clock=clock)
        for step in rebuilt.steps:
            if not step.is_terminal:
                step.fail(error_type="TRANSIENT", reason="Cancelled by test")
        record = rebuilt.pipeline.fail(error_type="TRANSIENT", reason="Cancelled by test")
        assert record.transition_id == deterministic_id("r1", "recovered")
        assert record.duration_in_state_ms == 10 * 60_000
        assert (record.from_state, record.to_state) == ("RUNNING", "FAILED")
        assert len(sink.records) == 3
        assert sink.records[-1] == record

    def test_rebuilt_run_obeys_the_joint_rules(self) -> None:
        """The rebuilt pipeline knows its steps: it cannot fail while one is still RUNNING."""
        runs = Runs()
        runs.crashed("r1", NOW)
        rebuilt = rebuild_run(_rows(runs), sink=InMemorySink(), purpose="recovered")
        with pytest.raises(JointRuleViolation, match="load=RUNNING"):
            rebuilt.pipeline.fail(error_type="TRANSIENT")

    def test_never_stamped_before_the_stored_rows(self) -> None:
        """A clock behind the stored rows (another host) still stamps after the latest one."""
        runs = Runs()
        runs.crashed("r1", NOW)
        clock = ManualClock(start=NOW - dt.timedelta(hours=1))
        rebuilt = rebuild_run(_rows(runs), sink=InMemorySink(), purpose="p", clock=clock)
        load = next(s for s in rebuilt.steps if s.entity_name == "load")
        record = load.fail(error_type="TRANSIENT")
        assert record.transition_time >= max(r.transition_time for r in runs.records)

    def test_rebuilt_objects_obey_the_table(self) -> None:
        """A rebuilt COMPLETED step refuses fail(): the machine is the same one."""
        runs = Runs()
        runs.crashed("r1", NOW)
        rebuilt = rebuild_run(_rows(runs), sink=InMemorySink(), purpose="x")
        done = next(s for s in rebuilt.steps if s.state == "COMPLETED")
        with pytest.raises(IllegalTransition):
            done.fail(error_type="TRANSIENT")

    def test_ids_differ_per_entity_and_purpose(self) -> None:
        """Deterministic ids are stable for one (entity, purpose) and differ otherwise."""
        assert deterministic_id("a", "recovered") == deterministic_id("a", "recovered")
        assert deterministic_id("a", "recovered") != deterministic_id("b", "recovered")
        assert deterministic_id("a", "recovered") != deterministic_id("a", "other")


class TestBrokenChains:
    """Chains with gaps or illegal edges are refused with a message naming the entity."""

    def test_gap(self) -> None:
        """A step whose first stored row leaves RUNNING (its start row missing) is refused."""
        runs = Runs()
        runs.add("r1", NOW, "etl", "PENDING", "RUNNING")
        runs.add("r1", NOW, "a", "RUNNING", "COMPLETED", step="s-a")
        with pytest.raises(BrokenChain, match="step s-a: no stored transition leaves PENDING"):
            rebuild_run(_rows(runs), sink=InMemorySink(), purpose="p")

    def test_illegal_edge(self) -> None:
        """PENDING -> COMPLETED is not an edge of the step table."""
        runs = Runs()
        runs.add("r1", NOW, "etl", "PENDING", "RUNNING")
        runs.add("r1", NOW, "a", "PENDING", "COMPLETED", step="s-a")
        with pytest.raises(BrokenChain, match="not a legal edge"):
            rebuild_run(_rows(runs), sink=InMemorySink(), purpose="p")

    def test_no_pipeline_rows(self) -> None:
        """Steps without their pipeline's rows cannot be rebuilt."""
        with pytest.raises(BrokenChain, match="no stored PIPELINE"):
            rebuild_run([], sink=InMemorySink(), purpose="p")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["complete", "fail", "retry", "start"]), max_size=12))
def test_replayed_step_chains_rebuild_exactly(events: list[str]) -> None:
    """Invariant: whatever legal path a step took, rebuilding its rows gives its state and count."""
    sink = InMemorySink()
    clock = ManualClock(start=NOW)
    run = PipelineRun.create("etl", org_slug="acme", sink=sink, clock=clock)
    run.start()
    step = StepRun.create("s", pipeline=run)
    for event in events:
        if event not in step.legal_events():
            continue
        clock.advance(ms=5)
        getattr(step, event)(**({"error_type": "TRANSIENT"} if event in ("fail", "retry") else {}))
    rebuilt = rebuild_run(
        [r.to_row() for r in sink.records], sink=InMemorySink(), purpose="p", clock=clock
    )
    if step.state == STEP.initial:
        assert rebuilt.steps == ()
    else:
        (only,) = rebuilt.steps
        assert (only.state, only.retry_count) == (step.state, step.retry_count)
