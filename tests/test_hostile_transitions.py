"""Every illegal (state, event) pair is refused cleanly, and the engine keeps working after it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statemachine import IllegalTransition, InMemorySink, PipelineRun, StepRun
from statemachine.machines import ENGINES
from tests.strategies.hostile import (
    TABLES,
    RaisingStr,
    cyclic_dict,
    drive_to,
    fire,
    illegal_pairs,
    new_entity,
    paths_to_states,
)

CASES = [
    pytest.param(kind, state, event, id=f"{kind}-{state}-{event}")
    for kind, table in TABLES.items()
    for state, event in illegal_pairs(table)
]


def _snapshot(entity: PipelineRun | StepRun) -> tuple[Any, ...]:
    return (
        entity.state,
        entity.retry_count,
        entity.entered_monotonic_ns,
        entity.entered_at,
        entity.org_slug,
        entity.entity_name,
    )


def _hostile_kwargs(event: str) -> dict[str, Any]:
    """Arguments that would be costly or dangerous to process, for events that take them."""
    if event in ("fail", "retry", "time_out"):
        return {
            "error": RaisingStr("x"),
            "reason": "\ud800" * 10,
            "metadata": {"loop": cyclic_dict()},
        }
    return {"reason": "r", "metadata": {"loop": cyclic_dict()}}


class TestIllegalMatrix:
    """Walk the specification's full (state, event) matrix of both machines."""

    def test_matrix_is_not_empty(self) -> None:
        """Both machines have illegal pairs, and every state is reachable to test them in."""
        for table in TABLES.values():
            assert illegal_pairs(table)
            assert set(paths_to_states(table)) == set(table.states)

    @pytest.mark.parametrize(("kind", "state", "event"), CASES)
    def test_illegal_pair_is_refused(self, kind: str, state: str, event: str) -> None:
        """An illegal event raises a readable IllegalTransition and changes and emits nothing."""
        sink = InMemorySink()
        entity = new_entity(kind, sink)
        drive_to(entity, state, TABLES[kind])
        before = _snapshot(entity)
        emitted = list(sink.records)

        with pytest.raises(IllegalTransition) as info:
            fire(entity, event, **_hostile_kwargs(event))

        exc = info.value
        message = str(exc)
        assert (exc.event, exc.state) == (event, state)
        assert exc.legal_events == TABLES[kind].legal_events(state)
        assert "\n" not in message
        assert not message.startswith(("'", '"'))
        assert f"Can't {event}" in message
        assert state in message
        assert repr(entity.entity_name) in message
        for legal in exc.legal_events:
            assert legal in message
        assert _snapshot(entity) == before
        assert sink.records == emitted
        assert all(a is b for a, b in zip(sink.records, emitted, strict=True))

    @pytest.mark.parametrize(("kind", "state", "event"), CASES)
    def test_engine_keeps_working_after_refusal(self, kind: str, state: str, event: str) -> None:
        """After a refusal a legal event succeeds and continues the chain from the same state."""
        sink = InMemorySink()
        entity = new_entity(kind, sink)
        drive_to(entity, state, TABLES[kind])
        with pytest.raises(IllegalTransition):
            fire(entity, event)
        emitted = list(sink.records)

        legal = entity.legal_events()
        if legal:
            record = fire(entity, legal[0])
            assert record.from_state == state
            assert entity.state == record.to_state
            assert sink.records[:-1] == emitted
            assert sink.records[-1] is record
        else:  # a terminal entity: the shared machine must still serve fresh entities
            fresh = new_entity(kind, sink)
            record = fresh.start()
            assert (record.from_state, record.to_state) == ("PENDING", "RUNNING")
            assert sink.records[: len(emitted)] == emitted

    @pytest.mark.parametrize("kind", list(TABLES))
    def test_unknown_event_through_the_engine(self, kind: str) -> None:
        """An event the table does not know at all is an IllegalTransition, not a KeyError."""
        sink = InMemorySink()
        entity = new_entity(kind, sink)
        for name in ("explode", "", "start; DROP TABLE x", "__init__", "to_RUNNING"):
            with pytest.raises(IllegalTransition) as info:
                ENGINES[kind].fire(entity, name)
            assert info.value.legal_events == ("start",) + (("fail",) if kind == "STEP" else ())
        assert entity.state == "PENDING"
        assert sink.records == []


class TestRefusedArguments:
    """A legal event with an invalid argument is refused as cleanly as an illegal one."""

    @pytest.mark.parametrize("bad", ["BOGUS", "", "transient ", 42, None.__class__])
    def test_invalid_error_type_changes_nothing(self, bad: object) -> None:
        """fail(error_type=<not an ErrorType>) raises ValueError naming the field; no row."""
        sink = InMemorySink()
        step = new_entity("STEP", sink)
        step.start()
        before = _snapshot(step)
        with pytest.raises(ValueError, match="'error_type' must be one of"):
            step.fail(RuntimeError("x"), error_type=bad)  # type: ignore[arg-type]
        assert _snapshot(step) == before
        assert len(sink.records) == 1
        assert step.complete().to_state == "COMPLETED"

    def test_invalid_metadata_type_changes_nothing(self) -> None:
        """metadata that is not a mapping is refused before the state changes."""
        sink = InMemorySink()
        step = new_entity("STEP", sink)
        step.start()
        before = _snapshot(step)
        with pytest.raises((TypeError, ValueError)):
            step.complete(metadata=[1, 2, 3])  # type: ignore[arg-type]
        assert _snapshot(step) == before
        assert len(sink.records) == 1
        assert step.complete().to_state == "COMPLETED"


EVENT_NAMES = ("start", "complete", "fail", "retry", "time_out")


class TestRandomEventStorm:
    """Random legal and illegal events with hostile payloads never break the chain."""

    @settings(max_examples=60, deadline=None)
    @given(
        kind=st.sampled_from(list(TABLES)),
        events=st.lists(st.sampled_from(EVENT_NAMES), max_size=25),
        hostile=st.lists(st.booleans(), min_size=25, max_size=25),
    )
    def test_storm_keeps_a_continuous_chain(
        self, kind: str, events: list[str], hostile: list[bool]
    ) -> None:
        """Each emitted record starts where the previous one ended, and every refusal is an
        IllegalTransition that leaves state and record count as they were."""
        sink = InMemorySink()
        entity = new_entity(kind, sink)
        for event, bad in zip(events, hostile, strict=False):
            if not hasattr(entity, event):
                continue
            kwargs = _hostile_kwargs(event) if bad else {}
            state, count = entity.state, len(sink.records)
            if event in entity.legal_events():
                record = fire(entity, event, **kwargs)
                assert (record.from_state, record.to_state) == (state, entity.state)
            else:
                with pytest.raises(IllegalTransition):
                    fire(entity, event, **kwargs)
                assert (entity.state, len(sink.records)) == (state, count)
        own = [r for r in sink.records if r.entity_type == kind]
        current = "PENDING"
        for record in own:
            assert record.from_state == current
            current = record.to_state
        assert current == entity.state
