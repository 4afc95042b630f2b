"""The specification table, its enums, and the validator that checks tables when machines build."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from statemachine import InvalidDefinition, PipelineState, StepState
from statemachine._table import Edge, MachineTable
from statemachine._validate import validate_table
from statemachine.machines import ENGINES, build_machine
from statemachine.spec import PIPELINE, STEP, TABLES
from tests.strategies.events import EXPECTED, STATES, TERMINAL


def _table(edges: tuple[Edge, ...], **changes: Any) -> MachineTable:
    base = MachineTable(
        kind="TEST",
        label="Test",
        states=("PENDING", "RUNNING", "DONE"),
        initial="PENDING",
        terminal=frozenset({"DONE"}),
        error_states=frozenset(),
        edges=edges,
    )
    return attrs.evolve(base, **changes)


_GOOD = (Edge("start", "PENDING", "RUNNING", "r"), Edge("finish", "RUNNING", "DONE", "r"))


class TestSpecification:
    """The tables say exactly what issue 3 says."""

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=lambda t: t.kind)
    def test_edges_match_issue(self, table: MachineTable) -> None:
        """Each table's edges are exactly the issue's legal transitions."""
        edges = {(e.source, e.event): e.dest for e in table.edges}
        assert edges == EXPECTED[table.kind]
        assert len(edges) == len(table.edges)

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=lambda t: t.kind)
    def test_states_and_terminal_sets(self, table: MachineTable) -> None:
        """States and terminal sets are the issue's, starting at PENDING."""
        assert table.states == STATES[table.kind]
        assert table.terminal == TERMINAL[table.kind]
        assert table.initial == "PENDING"

    def test_enums_mirror_states(self) -> None:
        """PipelineState / StepState are str enums whose values equal their names and the table."""
        assert [s.value for s in PipelineState] == list(PIPELINE.states)
        assert [s.value for s in StepState] == list(STEP.states)
        assert all(s.value == s.name == str(s) for s in (*PipelineState, *StepState))

    def test_only_retry_start_increments(self) -> None:
        """Only RETRYING -start-> RUNNING increments retry_count."""
        inc = [
            (t.kind, e.source, e.event)
            for t in TABLES.values()
            for e in t.edges
            if e.increments_retry
        ]
        assert inc == [("STEP", "RETRYING", "start")]

    def test_legal_events_lookup(self) -> None:
        """legal_events and dest answer from the edges."""
        assert STEP.legal_events("PENDING") == ("start", "fail")
        assert STEP.legal_events("FAILED") == ()
        assert STEP.dest("RETRYING", "start") == "RUNNING"
        assert STEP.dest("PENDING", "complete") is None
        assert PIPELINE.events == ("start", "complete", "fail", "time_out")

    def test_transitions_logger_quiet(self) -> None:
        """The transitions logger stays at WARNING (INFO makes every trigger ~5x slower)."""
        assert logging.getLogger("transitions").level == logging.WARNING

    def test_machines_built_at_import(self) -> None:
        """Both shared machines exist, strict and without auto transitions."""
        for kind, engine in ENGINES.items():
            machine = engine.machine
            assert set(machine.events) == set(TABLES[kind].events)
            assert not machine.auto_transitions
            assert machine.send_event
            assert machine.models == []
            assert not machine.on_exception


class TestValidator:
    """validate_table rejects each kind of broken table, naming the states."""

    def test_good_table_passes(self) -> None:
        """A sound table validates and builds."""
        validate_table(_table(_GOOD))
        build_machine(_table(_GOOD))

    def test_unreachable_state(self) -> None:
        """A state no path from PENDING reaches is named."""
        table = _table(
            _GOOD,
            states=("PENDING", "RUNNING", "DONE", "LIMBO"),
            terminal=frozenset({"DONE", "LIMBO"}),
        )
        with pytest.raises(InvalidDefinition, match="unreachable from PENDING: LIMBO") as info:
            validate_table(table)
        assert info.value.states == ("LIMBO",)

    def test_trap_state(self) -> None:
        """A non-terminal state with no way to a terminal state is named."""
        edges = (*_GOOD, Edge("stall", "RUNNING", "STUCK", "r"))
        table = _table(edges, states=("PENDING", "RUNNING", "DONE", "STUCK"))
        with pytest.raises(InvalidDefinition, match="never reach a terminal state: STUCK"):
            validate_table(table)

    def test_edge_out_of_terminal(self) -> None:
        """An edge leaving a terminal state is named."""
        table = _table((*_GOOD, Edge("again", "DONE", "RUNNING", "r")))
        with pytest.raises(InvalidDefinition, match="terminal states have outgoing edges: DONE"):
            validate_table(table)

    def test_unknown_state(self) -> None:
        """An edge to an undeclared state is named."""
        table = _table((*_GOOD, Edge("jump", "RUNNING", "NOWHERE", "r")))
        with pytest.raises(InvalidDefinition, match="unknown states: NOWHERE"):
            validate_table(table)

    def test_unknown_initial_and_terminal(self) -> None:
        """An undeclared initial or terminal state is named."""
        with pytest.raises(InvalidDefinition, match="initial state 'START'"):
            validate_table(_table(_GOOD, initial="START"))
        with pytest.raises(InvalidDefinition, match="terminal states are not declared states: END"):
            validate_table(_table(_GOOD, terminal=frozenset({"DONE", "END"})))

    def test_nondeterministic_edge(self) -> None:
        """The same event twice from one state is rejected."""
        table = _table((*_GOOD, Edge("finish", "RUNNING", "PENDING", "r")))
        with pytest.raises(InvalidDefinition, match="declared twice"):
            validate_table(table)

    def test_builder_validates(self) -> None:
        """build_machine refuses a broken table unless told not to check."""
        table = _table((*_GOOD, Edge("again", "DONE", "RUNNING", "r")))
        with pytest.raises(InvalidDefinition):
            build_machine(table)
        build_machine(table, validate=False)


class TestValidatorDetails:
    """Each refusal names the table and carries the offending states (mutation tests)."""

    @pytest.mark.parametrize(
        ("changes", "words", "states"),
        [
            ({"initial": "START"}, "initial state 'START' is not a declared state", ("START",)),
            (
                {"error_states": frozenset({"OOPS", "BAD"})},
                "error states are not declared states: BAD, OOPS",
                ("BAD", "OOPS"),
            ),
            (
                {"states": ("PENDING", "RUNNING", "DONE", "RUNNING", "DONE")},
                "states declared twice: DONE, RUNNING",
                ("DONE", "RUNNING"),
            ),
            ({"terminal": frozenset()}, "no terminal state declared", ()),
        ],
    )
    def test_set_errors(self, changes: dict[str, Any], words: str, states: tuple[str, ...]) -> None:
        """Bad state sets are refused with the table's kind, the reason and the states named."""
        with pytest.raises(InvalidDefinition) as info:
            validate_table(_table(_GOOD, **changes))
        assert str(info.value) == f"TEST table: {words}"
        assert info.value.states == states

    def test_edge_errors_carry_states(self) -> None:
        """Unknown edge states, terminal exits and trapped states travel on the error."""
        cases = [
            (_table((*_GOOD, Edge("jump", "LIMBO", "NOWHERE", "r"))), ("LIMBO", "NOWHERE")),
            (_table((*_GOOD, Edge("again", "DONE", "RUNNING", "r"))), ("DONE",)),
            (
                _table(
                    (*_GOOD, Edge("stall", "RUNNING", "STUCK", "r")),
                    states=("PENDING", "RUNNING", "DONE", "STUCK"),
                ),
                ("STUCK",),
            ),
        ]
        for table, states in cases:
            with pytest.raises(InvalidDefinition) as info:
                validate_table(table)
            assert str(info.value).startswith("TEST table: ")
            assert info.value.states == states

    def test_event_names_must_be_identifiers(self) -> None:
        """An event name that is not a Python identifier is refused and quoted."""
        table = _table((*_GOOD, Edge("re-run", "RUNNING", "PENDING", "r")))
        words = r"event names must be identifiers: \['re-run'\]"
        with pytest.raises(InvalidDefinition, match=words):
            validate_table(table)

    def test_nondeterministic_names_both_destinations(self) -> None:
        """A duplicated (state, event) names both destinations and the source state."""
        table = _table((*_GOOD, Edge("finish", "RUNNING", "PENDING", "r")))
        with pytest.raises(InvalidDefinition) as info:
            validate_table(table)
        assert "event 'finish' from RUNNING is declared twice (to DONE and to PENDING)" in str(
            info.value
        )
        assert info.value.states == ("RUNNING",)

    def test_reachability_follows_chains(self) -> None:
        """A state reached only through several edges counts as reachable and as escaping."""
        edges = (
            Edge("a", "PENDING", "S1", "r"),
            Edge("b", "S1", "S2", "r"),
            Edge("c", "S2", "S3", "r"),
            Edge("d", "S3", "DONE", "r"),
            Edge("e", "S1", "PENDING", "r"),
        )
        validate_table(_table(edges, states=("PENDING", "S1", "S2", "S3", "DONE")))
