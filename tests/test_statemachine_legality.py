"""statemachine.legality: a hand-logged transition is checked against the same tables."""

from __future__ import annotations

import enum
import pickle

import pytest

from statemachine import IllegalTransition, PipelineState, StepState
from statemachine.errors import IllegalLoggedTransition
from statemachine.legality import check_logged_transition
from statemachine.spec import TABLES
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


class TestRefusalFields:
    """Each refusal carries exactly what was given and what the table allows (mutation tests)."""

    @pytest.mark.parametrize("kind", sorted(TABLES))
    def test_legal_edge_fields(self, kind: str) -> None:
        """A missing edge names the entity, the lower-case kind, both states and the legal moves."""
        table = TABLES[kind]
        for source in table.states:
            dest = table.initial  # no table has an edge back into its initial state
            with pytest.raises(IllegalLoggedTransition) as info:
                check_logged_transition(kind, source, dest, entity_name="load")
            err = info.value
            legal_dests = sorted(e.dest for e in table.edges if e.source == source)
            assert (err.entity, err.kind, err.state, err.to_state, err.event) == (
                "load",
                kind.lower(),
                source,
                dest,
                "log",
            )
            assert err.entity_id is None
            assert err.legal_events == table.legal_events(source)
            shown = ", ".join(legal_dests) if legal_dests else "none (terminal)"
            assert str(err).endswith(f"legal from {source}: {shown}")

    def test_terminal_source_lists_no_move(self) -> None:
        """From a terminal state the message says there is no legal move at all."""
        for kind, table in TABLES.items():
            for source in sorted(table.terminal):
                with pytest.raises(IllegalLoggedTransition) as info:
                    check_logged_transition(kind, source, table.initial)
                assert str(info.value).endswith(f"legal from {source}: none (terminal)")
                assert info.value.legal_events == ()

    def test_unknown_state_fields(self) -> None:
        """An unknown state is refused as known-state, listing the kind's states in order."""
        table = TABLES["STEP"]
        with pytest.raises(IllegalLoggedTransition) as info:
            check_logged_transition("STEP", "RUNNING", "LOST", entity_name="load", entity_id=7)
        err = info.value
        assert err.rule == "known-state"
        got = (err.entity, err.kind, err.state, err.to_state)
        assert got == ("load", "step", "RUNNING", "LOST")
        assert err.entity_id == "7"
        assert f"(expected one of {', '.join(table.states)})" in str(err)

    def test_unknown_type_lists_known_types(self) -> None:
        """An unknown entity type lists every known type, comma-separated and sorted."""
        with pytest.raises(IllegalLoggedTransition) as info:
            check_logged_transition("JOB", "PENDING", "RUNNING", entity_name="j")
        assert str(info.value).endswith(f"expected one of {', '.join(sorted(TABLES))}")
        assert (info.value.entity, info.value.kind) == ("j", "job")

    def test_enum_values_are_read(self) -> None:
        """Enum members are read by value, so a member whose name differs still passes."""

        class Renamed(enum.Enum):
            BEGIN = "PENDING"
            GO = "RUNNING"

        check_logged_transition("PIPELINE", Renamed.BEGIN, Renamed.GO)
        with pytest.raises(IllegalLoggedTransition) as info:
            check_logged_transition("PIPELINE", Renamed.GO, Renamed.BEGIN, entity_name=Renamed.GO)
        assert info.value.entity == "RUNNING"
