"""statemachine.legality: a hand-logged transition is checked against the same tables."""

from __future__ import annotations

import pickle

import pytest

from statemachine import IllegalTransition, PipelineState, StepState
from statemachine.legality import check_logged_transition
from tests.strategies.events import EXPECTED, STATES


class TestLegalEdges:
    """Every edge of the hand-written tables passes, as text or as enum members."""

    @pytest.mark.parametrize(
        ("kind", "source", "dest"),
        [(k, s, EXPECTED[k][(s, e)]) for k in EXPECTED for (s, e) in EXPECTED[k]],
    )
    def test_edge_passes(self, kind: str, source: str, dest: str) -> None:
        """A legal (from, to) pair of its entity type raises nothing, also given as enums."""
        enum = PipelineState if kind == "PIPELINE" else StepState
        check_logged_transition(kind, source, dest)
        check_logged_transition(kind, enum(source), enum(dest), entity_name="x")


class TestIllegal:
    """Anything else raises an IllegalTransition naming the rule and what was given."""

    @pytest.mark.parametrize(
        ("kind", "source", "dest"),
        [
            (k, s, d)
            for k in STATES
            for s in STATES[k]
            for d in STATES[k]
            if d
            not in {
                EXPECTED[k].get((s, e)) for e in ("start", "complete", "fail", "retry", "time_out")
            }
        ],
    )
    def test_missing_edge(self, kind: str, source: str, dest: str) -> None:
        """Every pair of known states that is not an edge is refused as legal-edge."""
        with pytest.raises(IllegalTransition) as info:
            check_logged_transition(kind, source, dest, entity_name="load", entity_id="id-1")
        assert info.value.rule == "legal-edge"
        assert f"{source} -> {dest}" in str(info.value)
        assert info.value.entity_id == "id-1"

    def test_unknown_type_and_state(self) -> None:
        """An unknown entity type, or a state of the other machine, is named in the message."""
        with pytest.raises(IllegalTransition, match="entity_type 'JOB'") as info:
            check_logged_transition("JOB", "PENDING", "RUNNING")
        assert info.value.rule == "known-entity-type"
        with pytest.raises(IllegalTransition, match="to_state 'TIMEOUT' is not a STEP state"):
            check_logged_transition("STEP", "RUNNING", "TIMEOUT")
        with pytest.raises(IllegalTransition, match="from_state 'None'"):
            check_logged_transition("PIPELINE", None, "RUNNING")

    def test_pickles(self) -> None:
        """The refusal survives pickling with its message and rule."""
        with pytest.raises(IllegalTransition) as info:
            check_logged_transition("PIPELINE", "COMPLETED", "RUNNING", entity_name="p")
        copy = pickle.loads(pickle.dumps(info.value))
        assert (str(copy), copy.rule, copy.to_state) == (str(info.value), "legal-edge", "RUNNING")
